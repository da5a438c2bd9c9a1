//! `guixie publish --trace-api` (issue 14): a trace requested over HTTP on loopback. No
//! token, a wrong token, or a target outside the store: refused, and no work done (no
//! report appears); with the token, gdb's report of the crashing program is made and then
//! served by hash; listening beyond loopback is refused at start.

mod common;

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::*;

struct Server {
    child: Child,
    host: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn store_cmd(root: &PathBuf) -> Command {
    let mut c = guixie();
    c.arg("--store").arg(root);
    c
}

fn start(root: &PathBuf, extra: &[&str]) -> Server {
    let mut child = store_cmd(root)
        .args(["publish", "--listen", "127.0.0.1:0", "--trace-api"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut url, mut token) = (String::new(), String::new());
    out.read_line(&mut url).unwrap();
    out.read_line(&mut token).unwrap();
    Server {
        child,
        host: url.trim().trim_start_matches("http://").to_owned(),
        token: token
            .trim()
            .strip_prefix("trace token: ")
            .unwrap_or_else(|| panic!("no token printed: {token}"))
            .to_owned(),
    }
}

/// (status, body) of one request.
fn request(host: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn reports(root: &PathBuf) -> Vec<String> {
    ok_str(store_cmd(root).args(["store", "roots"]))
        .lines()
        .filter(|l| l.contains("-gdb.json") || l.contains("report-"))
        .map(String::from)
        .collect()
}

#[test]
fn a_trace_needs_the_token_and_a_target_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let buggy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/buggy.scm");
    let item = ok_str(store_cmd(&root).args(["build", "-q", buggy]));
    let crash = format!("{}/bin/crash", item.trim());
    let server = start(&root, &[]);
    let asked = format!(r#"{{"tool": "gdb", "target": "{crash}"}}"#);
    let bearer = format!("Authorization: Bearer {}", server.token);
    let wrong = format!("Authorization: Bearer {}", "0".repeat(server.token.len()));

    let (status, said) = request(&server.host, "POST", "/guixie/trace", &[], &asked);
    assert_eq!(status, 401, "{said}");
    assert!(said.contains("needs the token"), "{said}");
    let (status, _) = request(&server.host, "POST", "/guixie/trace", &[&wrong], &asked);
    assert_eq!(status, 401);
    assert!(reports(&root).is_empty(), "work was done without the token");

    let elsewhere =
        r#"{"tool": "gdb", "target": "/gnu/store/00000000000000000000000000000000-x/bin/x"}"#;
    let (status, said) = request(&server.host, "POST", "/guixie/trace", &[&bearer], elsewhere);
    assert_eq!(status, 404, "{said}");
    assert!(said.contains("not in this store"), "{said}");
    let climbing = format!(
        r#"{{"tool": "gdb", "target": "{}/../../../../../../bin/sh"}}"#,
        item.trim()
    );
    let (status, said) = request(&server.host, "POST", "/guixie/trace", &[&bearer], &climbing);
    assert_eq!(status, 404, "{said}");
    let host_file = r#"{"tool": "gdb", "target": "/bin/sh"}"#;
    let (status, _) = request(&server.host, "POST", "/guixie/trace", &[&bearer], host_file);
    assert_eq!(status, 400);
    let strace_run = format!(r#"{{"tool": "strace", "target": "{crash}"}}"#);
    let (status, said) = request(
        &server.host,
        "POST",
        "/guixie/trace",
        &[&bearer],
        &strace_run,
    );
    assert!(
        status == 400 && said.contains("valgrind, gdb, perf, python"),
        "{said}"
    );
    let (status, said) = request(&server.host, "POST", "/guixie/trace", &[&bearer], "{");
    assert!(status == 400 && said.contains("trace request"), "{said}");
    assert!(reports(&root).is_empty());

    // With the token: the report is made, and served by its hash. The program's arguments
    // stay the program's: they cannot name another store (or a network) for guixie.
    let elsewhere = dir.path().join("other-store");
    let asked = format!(
        r#"{{"tool": "gdb", "target": "{crash}", "args": ["--store", "{}", "--network"]}}"#,
        elsewhere.display()
    );
    let (status, said) = request(&server.host, "POST", "/guixie/trace", &[&bearer], &asked);
    assert_eq!(status, 200, "{said}");
    let answer: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(answer["exit_code"], 139, "{said}");
    let report = answer["report"].as_str().unwrap();
    let hash = report
        .trim_start_matches("/gnu/store/")
        .split('-')
        .next()
        .unwrap();
    let (status, body) = request(
        &server.host,
        "GET",
        &format!("/guixie/report/{hash}"),
        &[],
        "",
    );
    assert_eq!(status, 200, "{body}");
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served["schema"], "guixie.gdb-report/1");
    assert_eq!(served["ending"]["signal"]["name"], "SIGSEGV", "{served}");
    assert_eq!(
        served["args"],
        serde_json::json!(["--store", elsewhere, "--network"])
    );
    assert!(
        !elsewhere.exists(),
        "the request's arguments reached guixie"
    );
    // A store item that is not a report is not served as one.
    let program_hash = item
        .trim()
        .trim_start_matches("/gnu/store/")
        .split('-')
        .next()
        .unwrap();
    let (status, _) = request(
        &server.host,
        "GET",
        &format!("/guixie/report/{program_hash}"),
        &[],
        "",
    );
    assert_eq!(status, 404);
    // The binary cache is still there beside it.
    let (status, info) = request(&server.host, "GET", "/nix-cache-info", &[], "");
    assert!(
        status == 200 && info.contains("StoreDir: /gnu/store"),
        "{info}"
    );
}

#[test]
fn the_trace_api_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = fails(store_cmd(&dir.path().join("store")).args([
        "publish",
        "--listen",
        "0.0.0.0:0",
        "--trace-api",
    ]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("loopback interface only"), "{said}");
}

#[test]
fn traces_are_bounded_in_number_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let buggy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/buggy.scm");
    let item = ok_str(store_cmd(&root).args(["build", "-q", buggy]));
    let server = start(&root, &["--trace-jobs", "1", "--trace-timeout", "3"]);
    let bearer = format!("Authorization: Bearer {}", server.token);
    // valgrind's two runs of fib(34) take far longer than 3 s.
    let slow = format!(
        r#"{{"tool": "valgrind", "target": "{}/bin/busy"}}"#,
        item.trim()
    );
    let started = std::time::Instant::now();
    let first = {
        let (host, bearer, slow) = (server.host.clone(), bearer.clone(), slow.clone());
        std::thread::spawn(move || request(&host, "POST", "/guixie/trace", &[&bearer], &slow))
    };
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let (status, said) = request(&server.host, "POST", "/guixie/trace", &[&bearer], &slow);
    assert_eq!(status, 503, "{said}");
    let (status, said) = first.join().unwrap();
    assert_eq!(status, 504, "{said}");
    assert!(said.contains("longer than 3 s"), "{said}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(reports(&root).is_empty(), "a stopped trace left a report");
}
