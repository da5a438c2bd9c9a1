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

/// How NARs are offered: as they are, or compressed once into a cache directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
    Gzip,
    Xz,
}

impl Compression {
    /// The narinfo's `Compression` field and the URL's suffix.
    pub fn name_and_suffix(self) -> (&'static str, &'static str) {
        match self {
            Compression::None => ("none", ""),
            Compression::Zstd => ("zstd", ".zst"),
            Compression::Gzip => ("gzip", ".gz"),
            Compression::Xz => ("xz", ".xz"),
        }
    }
}

/// `/nar/<narhash>.nar[.zst|.gz]`.
pub async fn respond(
    cache: Arc<crate::Cache>,
    nar_hash: Hash,
    compression: Compression,
    range: Option<ByteRange>,
) -> Response {
    let store = cache.store.clone();
    let lookup = {
        let store = store.clone();
        let nar_hash = nar_hash.clone();
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
    if compression == Compression::None {
        // Every byte promised must be producible: a path whose copy lost or gained bytes is
        // refused before the headers, never sent as a 200 that stops short.
        let measured = {
            let (store, path) = (store.clone(), path.clone());
            tokio::task::spawn_blocking(move || store.nar_size(&path)).await
        };
        if !matches!(measured, Ok(Ok(n)) if n == nar_size) {
            return damaged();
        }
        return stream(nar_size, range, move |w| {
            store
                .write_nar(&path, w)
                .map_err(|e| io::Error::other(e.to_string()))
        });
    }
    let Some(dir) = cache.compressed_dir.clone() else {
        return text(StatusCode::NOT_FOUND, "no such NAR\n", Some(60));
    };
    let suffix = compression.name_and_suffix().1;
    let file = dir.join(format!("{}.nar{suffix}", nar_hash.to_nix32()));
    let made = {
        let file = file.clone();
        let expected = (nar_hash.clone(), nar_size);
        tokio::task::spawn_blocking(move || {
            compress_once(store.as_ref(), &path, &expected, &file, compression)
        })
        .await
    };
    let len = match made {
        Ok(Ok(len)) => len,
        _ => return damaged(),
    };
    stream(len, range, move |w| {
        let mut f = std::fs::File::open(&file)?;
        io::copy(&mut f, w).map(drop)
    })
}

/// `/log/<drv>`: the build log, gzip-encoded as it is kept when the client accepts that, else
/// decompressed (counted in a first pass, so the answer still has its length).
pub async fn build_log(cache: &crate::Cache, drv: &StorePath, gzip_ok: bool) -> Response {
    let Some(file) = cache
        .logs_dir
        .as_ref()
        .map(|d| d.join(format!("{drv}.log.gz")))
        .filter(|f| f.is_file())
    else {
        return text(StatusCode::NOT_FOUND, "no such log\n", Some(60));
    };
    let len = if gzip_ok {
        std::fs::metadata(&file).map(|m| m.len())
    } else {
        let f = file.clone();
        tokio::task::spawn_blocking(move || {
            let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(&f)?);
            io::copy(&mut gz, &mut io::sink())
        })
        .await
        .unwrap_or_else(|_| Err(io::Error::other("log reader panicked")))
    };
    let Ok(len) = len else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "unreadable log\n", None);
    };
    let mut r = stream(len, None, move |w| {
        let f = std::fs::File::open(&file)?;
        if gzip_ok {
            io::copy(&mut { f }, w).map(drop)
        } else {
            io::copy(&mut flate2::read::GzDecoder::new(f), w).map(drop)
        }
    });
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if gzip_ok {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// The compressed NAR of `path` at `file`, made now unless an earlier request made it (written
/// under a temporary name and renamed, so a reader never sees half of it). Returns its size.
pub(crate) fn compress_once(
    store: &dyn Store,
    path: &StorePath,
    (nar_hash, nar_size): &(Hash, u64),
    file: &std::path::Path,
    compression: Compression,
) -> io::Result<u64> {
    if let Ok(meta) = std::fs::metadata(file) {
        return Ok(meta.len());
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = file.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let result = (|| {
        let out = write_compressed_nar(
            store,
            path,
            (nar_hash, *nar_size),
            std::fs::File::create(&temp)?,
            compression,
        )?;
        out.sync_all()?;
        std::fs::rename(&temp, file)?;
        std::fs::metadata(file).map(|m| m.len())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Writes `path`'s NAR compressed into `out` and gives `out` back. The NAR is hashed on its
/// way into the compressor: a copy in the store that is not the recorded NAR (`expected`)
/// is an error, so it is never kept, served or copied.
pub(crate) fn write_compressed_nar(
    store: &dyn Store,
    path: &StorePath,
    (nar_hash, nar_size): (&Hash, u64),
    out: std::fs::File,
    compression: Compression,
) -> io::Result<std::fs::File> {
    let mut checked = Checked {
        hasher: guixie_formats::hash::Hasher::new(nar_hash.algo()),
        count: 0,
    };
    let mut write = |enc: &mut dyn Write| -> io::Result<()> {
        let mut tee = Tee {
            checked: &mut checked,
            inner: enc,
        };
        store
            .write_nar(path, &mut tee)
            .map_err(|e| io::Error::other(e.to_string()))
    };
    let out = match compression {
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
            write(&mut enc)?;
            enc.finish()?
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            write(&mut enc)?;
            enc.finish()?
        }
        Compression::Xz => {
            let mut enc = xz2::write::XzEncoder::new(out, 6);
            write(&mut enc)?;
            enc.finish()?
        }
        Compression::None => {
            let mut out = io::BufWriter::new(out);
            write(&mut out)?;
            out.into_inner().map_err(|e| e.into_error())?
        }
    };
    if checked.count != nar_size || checked.hasher.finish() != *nar_hash {
        return Err(io::Error::other("the store's copy is not the recorded NAR"));
    }
    Ok(out)
}

/// The answer for a path whose bytes in the store are not the ones recorded.
fn damaged() -> Response {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "this path's copy in the store is damaged; run `guixie store verify`\n",
        None,
    )
}

/// The hash and size of what passes through a [`Tee`].
struct Checked {
    hasher: guixie_formats::hash::Hasher,
    count: u64,
}

/// Writes to `inner` and counts and hashes what was written.
struct Tee<'a> {
    checked: &'a mut Checked,
    inner: &'a mut dyn Write,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.checked.hasher.update(&buf[..n]);
        self.checked.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Answers with the bytes `produce` writes (`len` of them), or the window of them `range`
/// asks for, streamed through a small bounded channel from a blocking task.
fn stream(
    len: u64,
    range: Option<ByteRange>,
    produce: impl FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
) -> Response {
    let Some((start, end)) = range.unwrap_or(ByteRange::Unsupported).window(len) else {
        let mut r = text(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range not satisfiable\n",
            None,
        );
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return r;
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut w = Window {
            tx,
            at: 0,
            start,
            end,
            buf: Vec::with_capacity(CHUNK),
            finished: false,
        };
        let result = produce(&mut w);
        let flushed = w.flush();
        if !w.finished && (result.is_err() || flushed.is_err() || w.at < end) {
            let _ =
                w.tx.blocking_send(Err(io::Error::other("the NAR could not be produced")));
        }
    });
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
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    r
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
