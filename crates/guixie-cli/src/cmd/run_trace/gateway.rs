//! The recording gateway: the only egress of a `guixie run --record|--replay` sandbox. The
//! program reaches it as its HTTP proxy; the sandbox carries each connection to this Unix
//! socket. Recording, it forwards each plain-HTTP request and keeps the exchange;
//! replaying, it answers from a recording and opens no connection at all.
//!
//! One request per connection (it answers `Connection: close`), at most [`MAX_ACTIVE`]
//! at once, each bounded in size and time.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use guixie_introspect::http_recording::{
    Exchange, Replayer, Request, Response, MAX_BODY, MAX_EXCHANGES,
};

const MAX_HEAD: usize = 64 << 10;
const MAX_HEADERS: usize = 100;
const MAX_ACTIVE: usize = 16;
const TIMEOUT: Duration = Duration::from_secs(60);
/// Bodies held for a recording, in all.
const MAX_HELD: usize = 512 << 20;
/// Unanswered requests named (a replay fails on the first anyway).
const MAX_UNRECORDED: usize = 100;

/// Headers not carried: those about one hop, not the request; `content-length`, which the
/// gateway sets itself from the body it holds; `expect`, since it answers only once it has
/// the whole body (and ureq would hand a `100 Continue` back as the answer).
const HOP_BY_HOP: [&str; 11] = [
    "expect",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

pub enum Mode {
    Record(ureq::Agent),
    Replay(Mutex<Replayer>),
}

impl Mode {
    pub fn record() -> Mode {
        Mode::Record(
            ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(TIMEOUT)
                .build(),
        )
    }
}

struct Shared {
    mode: Mode,
    exchanges: Mutex<Vec<Exchange>>,
    unrecorded: Mutex<Vec<String>>,
    stop: AtomicBool,
    active: Mutex<usize>,
    idle: Condvar,
}

pub struct Gateway {
    socket: PathBuf,
    shared: Arc<Shared>,
    accept: std::thread::JoinHandle<()>,
}

/// What went through the gateway: the exchanges answered, in the order they ended, and
/// the requests a replay had no answer for.
pub struct Traffic {
    pub exchanges: Vec<Exchange>,
    pub unrecorded: Vec<String>,
}

impl Gateway {
    /// Listens on [`guixie_build::container::GATEWAY_SOCKET`] in `dir`, which the sandbox's
    /// user (a build user, when guixie runs as root) must be able to reach.
    pub fn start(dir: &Path, mode: Mode) -> io::Result<Gateway> {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let socket = dir.join(guixie_build::container::GATEWAY_SOCKET);
        let listener = UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
        let shared = Arc::new(Shared {
            mode,
            exchanges: Mutex::default(),
            unrecorded: Mutex::default(),
            stop: AtomicBool::new(false),
            active: Mutex::new(0),
            idle: Condvar::new(),
        });
        let accepting = shared.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                {
                    let mut active = accepting.active.lock().unwrap();
                    while *active >= MAX_ACTIVE {
                        active = accepting.idle.wait(active).unwrap();
                    }
                    *active += 1;
                }
                let shared = accepting.clone();
                std::thread::spawn(move || {
                    serve(&shared, stream);
                    *shared.active.lock().unwrap() -= 1;
                    shared.idle.notify_all();
                });
            }
        });
        Ok(Gateway {
            socket,
            shared,
            accept,
        })
    }

    /// Stops listening, waits for the requests under way, and gives what went through.
    pub fn finish(self) -> Traffic {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag.
        let _ = UnixStream::connect(&self.socket);
        let _ = self.accept.join();
        let mut active = self.shared.active.lock().unwrap();
        while *active > 0 {
            let (guard, timeout) = self.shared.idle.wait_timeout(active, TIMEOUT).unwrap();
            active = guard;
            if timeout.timed_out() {
                break;
            }
        }
        drop(active);
        Traffic {
            exchanges: std::mem::take(&mut self.shared.exchanges.lock().unwrap()),
            unrecorded: std::mem::take(&mut self.shared.unrecorded.lock().unwrap()),
        }
    }
}

fn serve(shared: &Shared, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let response = match read_request(&mut BufReader::new(stream)) {
        Ok(request) => answer(shared, request),
        Err(refusal) => refusal,
    };
    let _ = write_response(&mut out, &response);
}

fn answer(shared: &Shared, request: Request) -> Response {
    match &shared.mode {
        Mode::Replay(replayer) => {
            let found = replayer.lock().unwrap().answer(&request);
            match found {
                Some(response) => {
                    shared.exchanges.lock().unwrap().push(Exchange {
                        request: request.redacted(),
                        response: response.clone(),
                    });
                    response
                }
                None => {
                    let line = request.line();
                    let mut unrecorded = shared.unrecorded.lock().unwrap();
                    if unrecorded.len() < MAX_UNRECORDED {
                        unrecorded.push(line.clone());
                    }
                    drop(unrecorded);
                    refusal(
                        502,
                        &format!("guixie replay: no recorded answer for {line}"),
                    )
                }
            }
        }
        Mode::Record(agent) => {
            let response = forward(agent, &request);
            let size = request.body.len() + response.body.len();
            let mut kept = shared.exchanges.lock().unwrap();
            let held: usize = kept
                .iter()
                .map(|e| e.request.body.len() + e.response.body.len())
                .sum();
            // The recording must stay readable back (base64 grows a body by a third).
            if kept.len() >= MAX_EXCHANGES || held + size > MAX_HELD {
                return refusal(
                    503,
                    &format!(
                        "guixie gateway: the recording is full ({MAX_EXCHANGES} exchanges or \
                         {MAX_HELD} bytes of bodies)"
                    ),
                );
            }
            kept.push(Exchange {
                request: request.redacted(),
                response: response.clone().redacted(),
            });
            response
        }
    }
}

fn forward(agent: &ureq::Agent, request: &Request) -> Response {
    let mut call = agent.request(&request.method, &request.url);
    for (name, value) in &request.headers {
        call = call.set(name, value);
    }
    let result = if request.body.is_empty() {
        call.call()
    } else {
        call.send_bytes(&request.body)
    };
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return refusal(502, &format!("guixie gateway: {}: {e}", request.line())),
    };
    let mut headers = Vec::new();
    for name in response.headers_names() {
        if HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        for value in response.all(&name) {
            headers.push((name.clone(), value.to_owned()));
        }
    }
    let status = response.status();
    let reason = response.status_text().to_owned();
    let mut body = Vec::new();
    let read = response
        .into_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body);
    match read {
        Err(e) => refusal(
            502,
            &format!(
                "guixie gateway: {}: reading the answer: {e}",
                request.line()
            ),
        ),
        Ok(_) if body.len() > MAX_BODY => refusal(
            502,
            &format!(
                "guixie gateway: {}: the answer is over {MAX_BODY} bytes",
                request.line()
            ),
        ),
        Ok(_) => Response {
            status,
            reason,
            headers,
            body,
        },
    }
}

/// A proxy request (`GET http://host/path HTTP/1.1`), its body by `Content-Length`; or the
/// answer that says why it cannot be carried.
fn read_request(reader: &mut impl BufRead) -> Result<Request, Response> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut line = Vec::new();
        let n = reader
            .take((MAX_HEAD - head.len()) as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| refusal(400, &format!("guixie gateway: reading the request: {e}")))?;
        if n == 0 {
            return Err(refusal(
                400,
                &format!(
                    "guixie gateway: the request's head ends early or is over {MAX_HEAD} bytes"
                ),
            ));
        }
        head.extend_from_slice(&line);
    }
    let mut parsed_headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut parsed_headers);
    parsed
        .parse(&head)
        .map_err(|e| refusal(400, &format!("guixie gateway: a malformed request: {e}")))?;
    let method = parsed.method.unwrap_or_default().to_owned();
    let target = parsed.path.unwrap_or_default().to_owned();
    if method == "CONNECT" {
        return Err(refusal(
            501,
            &format!(
                "guixie gateway: CONNECT {target}: HTTPS cannot be recorded; only plain HTTP goes through"
            ),
        ));
    }
    if !target.starts_with("http://") {
        return Err(refusal(
            400,
            &format!(
                "guixie gateway: {method} {target}: a proxy request names an absolute http:// URL \
                 (is http_proxy set?)"
            ),
        ));
    }
    let mut headers = Vec::new();
    let mut length = 0usize;
    for h in parsed.headers.iter() {
        let value = String::from_utf8_lossy(h.value).into_owned();
        let name = h.name.to_ascii_lowercase();
        if name == "transfer-encoding" {
            return Err(refusal(
                411,
                "guixie gateway: a request body must come with a Content-Length",
            ));
        }
        if name == "content-length" {
            length = value
                .trim()
                .parse()
                .map_err(|_| refusal(400, &format!("guixie gateway: Content-Length {value:?}")))?;
        }
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" {
            headers.push((h.name.to_owned(), value));
        }
    }
    if length > MAX_BODY {
        return Err(refusal(
            413,
            &format!("guixie gateway: a request body of {length} bytes; at most {MAX_BODY}"),
        ));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| {
        refusal(
            400,
            &format!("guixie gateway: reading the request's body: {e}"),
        )
    })?;
    Ok(Request {
        method,
        url: target,
        headers,
        body,
    })
}

fn refusal(status: u16, message: &str) -> Response {
    let reason = match status {
        400 => "Bad Request",
        411 => "Length Required",
        413 => "Content Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    };
    Response {
        status,
        reason: reason.to_owned(),
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: format!("{message}\n").into_bytes(),
    }
}

fn write_response(out: &mut impl Write, r: &Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        r.status,
        r.reason.replace(['\r', '\n'], " ")
    );
    for (name, value) in &r.headers {
        if HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        head.push_str(&format!(
            "{}: {}\r\n",
            name.replace(['\r', '\n', ':'], " "),
            value.replace(['\r', '\n'], " ")
        ));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    ));
    out.write_all(head.as_bytes())?;
    out.write_all(&r.body)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Request, Response> {
        read_request(&mut BufReader::new(text.as_bytes()))
    }

    fn refused(text: &str) -> (u16, String) {
        let r = parsed(text).unwrap_err();
        (r.status, String::from_utf8(r.body).unwrap())
    }

    #[test]
    fn a_proxy_request_is_read_without_its_hop_headers() {
        let r = parsed(
            "POST http://127.0.0.1:9/ask?q=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 3\r\n\
             Proxy-Connection: keep-alive\r\nX-Agent: a\r\n\r\nabcdef",
        )
        .unwrap();
        assert_eq!(
            (r.method.as_str(), r.url.as_str()),
            ("POST", "http://127.0.0.1:9/ask?q=1")
        );
        assert_eq!(r.headers, [("X-Agent".to_owned(), "a".to_owned())]);
        assert_eq!(r.body, b"abc");
    }

    #[test]
    fn what_cannot_be_carried_is_answered_with_why() {
        let (s, m) = refused("CONNECT example.org:443 HTTP/1.1\r\n\r\n");
        assert_eq!(s, 501);
        assert!(m.contains("HTTPS cannot be recorded"), "{m}");
        let (s, m) = refused("GET /ask HTTP/1.1\r\n\r\n");
        assert!(s == 400 && m.contains("is http_proxy set"), "{m}");
        let (s, _) = refused("POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(s, 411);
        let (s, _) = refused(&format!(
            "POST http://h/ HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        ));
        assert_eq!(s, 413);
        let (s, m) = refused("POST http://h/ HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
        assert!(s == 400 && m.contains("body"), "{m}");
        let (s, m) = refused("GET http://h/ HTTP/1.1\r\nX: y\r\n");
        assert!(s == 400 && m.contains("ends early"), "{m}");
        let (s, m) = refused(&format!(
            "GET http://h/ HTTP/1.1\r\nX: {}\r\n\r\n",
            "y".repeat(MAX_HEAD)
        ));
        assert!(s == 400 && m.contains("over"), "{m}");
        let (s, m) = refused("GET http://h/ HTTP/1.1\r\nBad Header\r\n\r\n");
        assert!(s == 400 && m.contains("malformed"), "{m}");
    }

    #[test]
    fn an_answer_cannot_split_its_head() {
        let mut out = Vec::new();
        let r = Response {
            status: 200,
            reason: "OK\r\nX-Evil: 1".into(),
            headers: vec![
                ("A".into(), "b\r\nSet-Cookie: x".into()),
                ("B\r\nX-Evil".into(), "2".into()),
            ],
            body: b"hi".to_vec(),
        };
        write_response(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        // The status line, two headers, Content-Length, Connection, the blank line.
        assert_eq!(text.matches("\r\n").count(), 6, "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\nhi"));
    }
}
