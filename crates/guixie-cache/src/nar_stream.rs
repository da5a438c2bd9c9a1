//! `/nar/<narhash>.nar`: the NAR streamed from the store by a blocking task through a small
//! bounded channel, so memory does not grow with the archive and a slow client slows the
//! producer down. The length is known from the path's info before any byte is produced, so
//! every answer has a `Content-Length` and a client sees a cut stream as short.

use std::io::{self, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use guixie_formats::{Hash, StorePath};
use guixie_store::Store;
use tokio::sync::mpsc;

use crate::request::ByteRange;
use crate::text;

/// Chunks in flight between the producer and the connection.
const CHANNEL_DEPTH: usize = 4;
const CHUNK: usize = 64 << 10;

pub async fn respond(store: Arc<dyn Store>, nar_hash: Hash, range: Option<ByteRange>) -> Response {
    let lookup = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let path = store.path_by_nar_hash(&nar_hash)?;
            path.map(|p| Ok::<_, guixie_store::StoreError>((store.path_info(&p)?, p)))
                .transpose()
        })
        .await
    };
    let (path, nar_size) = match lookup {
        Ok(Ok(Some((Some(info), path)))) => (path, info.nar_size),
        Ok(Ok(_)) => return text(StatusCode::NOT_FOUND, "no such NAR\n", Some(60)),
        _ => return text(StatusCode::INTERNAL_SERVER_ERROR, "store error\n", None),
    };
    let Some((start, end)) = range.unwrap_or(ByteRange::Unsupported).window(nar_size) else {
        let mut r = text(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range not satisfiable\n",
            None,
        );
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{nar_size}")) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return r;
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || produce(store.as_ref(), &path, start, end, tx));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(body);
    let partial = matches!(range, Some(ByteRange::From { .. }));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-nix-nar"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if partial {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{nar_size}", end - 1)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    r
}

/// Writes the NAR's bytes `[start, end)` into the channel; an error ends the stream early,
/// which the client sees as fewer bytes than `Content-Length` promised.
fn produce(
    store: &dyn Store,
    path: &StorePath,
    start: u64,
    end: u64,
    tx: mpsc::Sender<io::Result<Bytes>>,
) {
    let mut w = Window {
        tx,
        at: 0,
        start,
        end,
        buf: Vec::with_capacity(CHUNK),
        finished: false,
    };
    let result = store.write_nar(path, &mut w);
    let flushed = w.flush();
    if !w.finished && (result.is_err() || flushed.is_err() || w.at < end) {
        let _ =
            w.tx.blocking_send(Err(io::Error::other("the NAR could not be produced")));
    }
}

/// Passes on the bytes of a window of what is written, in chunks.
struct Window {
    tx: mpsc::Sender<io::Result<Bytes>>,
    /// Bytes written so far.
    at: u64,
    start: u64,
    end: u64,
    buf: Vec<u8>,
    /// The window is complete; what follows is not needed.
    finished: bool,
}

impl Write for Window {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.finished {
            // Stop producing what nobody will read.
            return Err(io::Error::other("range complete"));
        }
        let (from, to) = (self.at, self.at + data.len() as u64);
        let lo = self.start.max(from);
        let hi = self.end.min(to);
        if lo < hi {
            self.buf
                .extend_from_slice(&data[(lo - from) as usize..(hi - from) as usize]);
        }
        self.at = to;
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        if self.at >= self.end {
            self.flush()?;
            self.finished = true;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}
