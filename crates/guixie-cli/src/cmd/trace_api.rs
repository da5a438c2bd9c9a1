//! `guixie publish --trace-api`: introspection as a service, beside the binary cache, on
//! the loopback interface only (`docs/introspection.md`).
//!
//! - `GET /guixie/report/HASH`: a report (any of guixie's schemas) by its store path's hash.
//! - `POST /guixie/trace` with `Authorization: Bearer TOKEN` (the token the server printed
//!   when it started) and `{"tool": …, "target": …, "args": […]}`: a traced build of a
//!   `.drv` or a traced run of a program, of this store only; answered with the report's
//!   path once it is made.
//!
//! Each trace is a `guixie` process of its own, in a fresh directory, killed when its time
//! is up; at most `jobs` run at once, and a request beyond them is refused, not queued.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use guixie_introspect::report::{Report, MAX_REPORT_BYTES};
use guixie_store::{LocalStore, PathInfoQuery as _};
use serde::Deserialize;
use tokio::io::AsyncReadExt as _;

const MAX_REQUEST_BYTES: usize = 64 << 10;
const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 1024;
/// What is kept of a trace's stderr (its end: the report's path is printed last).
const STDERR_TAIL: usize = 64 << 10;

const BUILD_TOOLS: [&str; 3] = ["strace", "python", "perf"];
/// Report reads at once (they need no token).
pub const READERS: usize = 4;
const RUN_TOOLS: [&str; 4] = ["valgrind", "gdb", "perf", "python"];

pub struct TraceApi {
    pub store: Arc<LocalStore>,
    pub token: String,
    /// `guixie` and the options that name this store, for the trace processes.
    pub exe: PathBuf,
    pub store_args: Vec<OsString>,
    pub jobs: Arc<tokio::sync::Semaphore>,
    pub timeout: Duration,
    pub readers: Arc<tokio::sync::Semaphore>,
}

impl TraceApi {
    /// A token of 32 random bytes, in hex.
    pub fn new_token(rng: &dyn guixie_env::Randomness) -> String {
        rng.bytes32().iter().map(|b| format!("{b:02x}")).collect()
    }
}

pub fn router(api: Arc<TraceApi>) -> axum::Router {
    axum::Router::new()
        .route("/guixie/report/{hash}", axum::routing::get(get_report))
        .route("/guixie/trace", axum::routing::post(post_trace))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(api)
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let mut m = message.into();
    m.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        m,
    )
        .into_response()
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn get_report(State(api): State<Arc<TraceApi>>, Path(hash): Path<String>) -> Response {
    if hash.len() != 32 || !hash.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a report is named by its store path's hash: 32 Nix base-32 characters",
        );
    }
    let Ok(_reading) = api.readers.clone().try_acquire_owned() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "busy: ask again later");
    };
    let store = api.store.clone();
    let found = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, String> {
        let Some(path) = store.path_by_hash_part(&hash).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let file = store.real_path(&path);
        // A report is one file; a directory or a link is some other item.
        if !std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        let bytes = guixie_store::safe_fs::read_capped(&file, MAX_REPORT_BYTES)
            .map_err(|e| e.to_string())?;
        Ok(Report::parse(&bytes).is_ok().then_some(bytes))
    })
    .await;
    match found {
        Ok(Ok(Some(bytes))) => json(StatusCode::OK, bytes),
        Ok(Ok(None)) => refuse(
            StatusCode::NOT_FOUND,
            "no report by that hash in this store",
        ),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceRequest {
    tool: String,
    /// A `.drv` (a traced build) or a program in a store item (a traced run).
    target: String,
    #[serde(default)]
    args: Vec<String>,
}

/// Compares in time that does not depend on where the strings differ.
fn same_token(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn post_trace(State(api): State<Arc<TraceApi>>, headers: HeaderMap, body: Bytes) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| same_token(g, &api.token)) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "a trace request needs the token guixie publish printed when it started \
             (Authorization: Bearer TOKEN)",
        );
    }
    let request: TraceRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("a trace request is {{\"tool\", \"target\", \"args\"}}: {e}"),
            )
        }
    };
    let command = match checked(&api, &request) {
        Ok(c) => c,
        Err((status, message)) => return refuse(status, message),
    };
    let Ok(_permit) = api.jobs.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: as many traces as allowed are under way; ask again later",
        );
    };
    run_trace(&api, command).await
}

/// The `guixie` arguments for the request, once it is known to name this store's items.
fn checked(api: &TraceApi, r: &TraceRequest) -> Result<Vec<String>, (StatusCode, String)> {
    let sd = api.store.store_dir();
    let (item, rest) = sd.parse_path_with_rest(&r.target).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("target {:?}: {e}", r.target),
        )
    })?;
    // Within the item: no `..`, nothing that climbs out of it.
    let within = std::path::Path::new(rest.trim_start_matches('/'))
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    let in_store = within
        && api.store.is_valid(&item).unwrap_or(false)
        && std::fs::symlink_metadata(
            api.store
                .real_path(&item)
                .join(rest.trim_start_matches('/')),
        )
        .is_ok();
    if !in_store {
        return Err((
            StatusCode::NOT_FOUND,
            format!("{} is not in this store", r.target),
        ));
    }
    if r.args.len() > MAX_ARGS
        || r.args
            .iter()
            .any(|a| a.len() > MAX_ARG_BYTES || a.contains('\0'))
    {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_ARGS} arguments of {MAX_ARG_BYTES} bytes, without NUL"),
        ));
    }
    let is_drv = rest.is_empty() && item.name().ends_with(".drv");
    let tools: &[&str] = if is_drv { &BUILD_TOOLS } else { &RUN_TOOLS };
    if !tools.contains(&r.tool.as_str()) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "tool {:?}: a {} is traced with {}",
                r.tool,
                if is_drv { "derivation" } else { "program" },
                tools.join(", ")
            ),
        ));
    }
    if is_drv && !r.args.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "a derivation's build takes no arguments".to_owned(),
        ));
    }
    let trace = format!("--trace={}", r.tool);
    // After `--`, the target and the program's arguments are never taken as options of
    // guixie's (another store, a network, a replay).
    Ok(if is_drv {
        owned(["build", "-q", &trace, "--", &r.target])
    } else {
        let mut c = owned(["run", &trace, "--", &r.target]);
        c.extend(r.args.iter().cloned());
        c
    })
}

fn owned<const N: usize>(words: [&str; N]) -> Vec<String> {
    words.map(String::from).to_vec()
}

async fn run_trace(api: &TraceApi, command: Vec<String>) -> Response {
    let dir = match tempfile::Builder::new()
        .prefix("guixie-trace-api-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let is_build = command[0] == "build";
    // Where a run's guixie says which report it made: apart from its current directory,
    // which the traced program shares.
    let private = match tempfile::Builder::new()
        .prefix("guixie-trace-api-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let report_to = private.path().join("report");
    let mut child = match tokio::process::Command::new(&api.exe)
        .args(&api.store_args)
        .args(&command)
        .env("GUIXIE_REPORT_TO", &report_to)
        .current_dir(dir.path())
        // Its own process group: a trace out of time is stopped whole.
        .process_group(0)
        .stdin(std::process::Stdio::null())
        // A traced program's output is not the client's: only a build's report path is.
        .stdout(if is_build {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("guixie: {e}")),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = tokio::time::timeout(api.timeout, async {
        let (out, err, status) = tokio::join!(tail(stdout), tail(stderr), child.wait());
        (out, err, status)
    })
    .await;
    let Ok((out, err, status)) = finished else {
        if let Some(pid) = child.id() {
            // SAFETY: kill with a process group id and a signal number; no memory involved.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
        let _ = child.wait().await;
        return refuse(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the trace took longer than {} s and was stopped",
                api.timeout.as_secs()
            ),
        );
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    // A build's stdout is guixie's alone; a run's report is named in the private file.
    let report = if is_build {
        out.lines().last().map(str::to_owned)
    } else {
        std::fs::read_to_string(&report_to).ok()
    };
    let Some(report) = report.filter(|r| r.starts_with(api.store.store_dir().as_str())) else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the trace made no report ({status}):\n{err}"),
        );
    };
    let body = serde_json::json!({
        "report": report,
        "exit_code": status.code(),
        "log": err,
    });
    json(
        StatusCode::OK,
        serde_json::to_vec_pretty(&body).expect("JSON serialises"),
    )
}

/// The end of a child's output, at most [`STDERR_TAIL`] bytes of it held at a time.
async fn tail(stream: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = vec![0; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
    }
    if kept.len() > STDERR_TAIL {
        kept.drain(..kept.len() - STDERR_TAIL);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("ab", "abc"));
        assert!(!same_token("", "abc"));
    }
}
