//! Helpers shared by the CLI integration suites.
#![allow(dead_code)]

pub mod nodes;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A Makefile line that makes every build of an `install` target differ (a stand-in for a
/// build that is not reproducible).
pub const NOISY_INSTALL: &str = "\thead -c 16 /dev/urandom > $(PREFIX)/noise\n";

pub fn guixie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_guixie"));
    c.env_remove("GUIXIE_STORE").env_remove("GUIXIE_STORE_DIR");
    c
}

/// Runs and asserts success, returning stdout.
pub fn ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn ok_str(cmd: &mut Command) -> String {
    String::from_utf8(ok(cmd))
        .expect("utf-8 output")
        .trim_end()
        .to_owned()
}

pub fn fails(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    assert!(!out.status.success(), "{cmd:?} unexpectedly succeeded");
    out
}

/// Runs `cmd` with `input` on its standard input (e.g. `guixie repl`); returns its output.
pub fn with_stdin(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Whether the reference peer is installed. In CI (`GUIXIE_REQUIRE_NIX=1`) its absence fails
/// the test instead of skipping it, so the comparison can never silently not run.
pub fn nix_available() -> bool {
    required_tool(
        Command::new("nix-store").arg("--version"),
        "nix-store is not installed (scripts/test.sh installs nix-bin)",
    )
}

/// Whether `probe` succeeds; in CI (`GUIXIE_REQUIRE_NIX=1`) a failure fails the test with
/// `missing` instead of skipping it.
fn required_tool(probe: &mut Command, missing: &str) -> bool {
    let found = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("GUIXIE_REQUIRE_NIX").is_none(),
            "GUIXIE_REQUIRE_NIX is set but {missing}"
        );
        eprintln!("skipping: {missing}");
    }
    found
}

/// A Nix command run single-user against the local store, as the project's machines run it.
pub fn nix(program: &str) -> Command {
    let mut c = Command::new(program);
    // Nix keeps narinfo answers per cache URL in ~/.cache/nix; tests' caches are on random
    // ports serving the same paths, so a port used again must not answer from an old run.
    c.env("NIX_REMOTE", "local")
        .arg("--extra-experimental-features")
        .arg("nix-command")
        .args(["--option", "narinfo-cache-negative-ttl", "0"])
        .args(["--option", "narinfo-cache-positive-ttl", "0"]);
    c
}

/// A private Nix store rooted at `root` with logical directory `store_dir`.
pub fn nix_store_uri(root: &Path, store_dir: &str) -> String {
    format!("local?root={}&store={store_dir}", root.display())
}

/// Where a Nix chroot store keeps its files (Nix 2.8 uses `<root>/nix/store` whatever the
/// logical store directory is).
pub fn nix_real_store(root: &Path, store_dir: &str) -> PathBuf {
    let logical = root.join(store_dir.trim_start_matches('/'));
    if logical.exists() {
        logical
    } else {
        root.join("nix/store")
    }
}

/// Writes the synthetic graph of the benchmarks (`bench/gen-graph.py`): `form` is `nix` or
/// `scm`, `packages` derivations each depending on up to 3 earlier ones.
pub fn write_synthetic_graph(form: &str, packages: usize, out: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/gen-graph.py");
    let text = ok(Command::new("python3")
        .arg(script)
        .args([form, &packages.to_string(), "3"]));
    std::fs::write(out, text).unwrap();
}

/// A failed build's error text followed by the build log it names (`log: PATH`), if any.
pub fn error_and_log(stderr: &[u8]) -> String {
    use std::io::Read;
    let mut text = String::from_utf8_lossy(stderr).into_owned();
    if let Some(log) = text
        .split("log: ")
        .nth(1)
        .and_then(|l| l.split([';', '\n']).next())
    {
        if let Ok(f) = std::fs::File::open(log.trim()) {
            let _ = flate2::read::GzDecoder::new(f).read_to_string(&mut text);
        }
    }
    text
}

/// A Python HTTP server for `dir` on the host's loopback, stopped when dropped. Fixed-output
/// builds reach it only with `--host-loopback`, at [`Served::url`] (the gateway 10.0.2.2).
pub struct Served {
    child: std::process::Child,
    pub port: u16,
}

impl Served {
    pub fn new(dir: &Path) -> Served {
        Served::start(dir, false)
    }

    /// Also stores what is `PUT` (as an HTTP binary cache Nix uploads to does).
    pub fn writable(dir: &Path) -> Served {
        Served::start(dir, true)
    }

    /// Over TLS with this certificate and key (PEM files).
    pub fn https(dir: &Path, cert: &Path, key: &Path) -> Served {
        const TLS_SERVER: &str = r#"
import http.server, os, ssl, sys
os.chdir(sys.argv[2])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;
        Served::spawn(|port| {
            let mut cmd = Command::new("python3");
            cmd.args(["-c", TLS_SERVER, &port.to_string()])
                .arg(dir)
                .arg(cert)
                .arg(key);
            cmd
        })
    }

    fn start(dir: &Path, put: bool) -> Served {
        const PUT_SERVER: &str = r#"
import http.server, os, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_PUT(self):
        path = self.translate_path(self.path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        n = int(self.headers["Content-Length"])
        with open(path, "wb") as f:
            while n > 0:
                chunk = self.rfile.read(min(n, 1 << 16))
                if not chunk:
                    break
                f.write(chunk)
                n -= len(chunk)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
os.chdir(sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
        Served::spawn(|port| {
            let mut cmd = Command::new("python3");
            if put {
                cmd.args(["-c", PUT_SERVER, &port.to_string()]);
            } else {
                cmd.args([
                    "-m",
                    "http.server",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                ]);
            }
            cmd.arg(dir);
            cmd
        })
    }

    /// Runs the server `command(port)` makes on a free port and waits for it to listen.
    pub fn spawn(command: impl FnOnce(u16) -> Command) -> Served {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = command(port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Served { child, port }
    }

    /// The URL of `name` as a fixed-output build sees it.
    pub fn url(&self, name: &str) -> String {
        format!("http://10.0.2.2:{}/{name}", self.port)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `guixie publish`, stopped when dropped.
pub struct Publisher {
    pub child: Child,
    pub url: String,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whole answer (status line, headers, body) to `GET path`.
pub fn http_get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// Starts `guixie publish` through `store` (a `guixie` command with its store options) on any
/// free port.
pub fn publish_with(mut store: Command, key: &Path, extra: &[&str]) -> Publisher {
    let mut child = store
        .args(["publish", "--listen", "127.0.0.1:0", "--key"])
        .arg(key)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("http://127.0.0.1:"), "{line}");
    Publisher {
        child,
        url: line.trim().to_owned(),
    }
}

/// Whether Guile with guile-gcrypt (libgcrypt, the Guix dialect's reference) is installed;
/// like [`nix_available`], its absence fails the test in CI.
pub fn guile_gcrypt_available() -> bool {
    required_tool(
        Command::new("guile-3.0").args([
            "--no-auto-compile",
            "-c",
            "(use-modules (gcrypt pk-crypto))",
        ]),
        "guile-gcrypt is not installed (scripts/test.sh installs it)",
    )
}

/// A signing key pair made by `guixie key generate` in `dir`: the secret key file, and the
/// public key (`name:base64`).
pub fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let sk = dir.join(format!("{name}.sec"));
    let pk = dir.join(format!("{name}.pub"));
    ok(guixie()
        .args(["key", "generate", name, "--secret-key-file"])
        .arg(&sk)
        .arg("--public-key-file")
        .arg(&pk));
    (sk, std::fs::read_to_string(&pk).unwrap().trim().to_owned())
}

/// The answers to `requests`, sent all at once on one connection (pipelined), each read by
/// its `Content-Length`: (status, body) in order.
pub fn pipelined(addr: &str, requests: &[String]) -> Vec<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let writer = {
        let mut w = s.try_clone().unwrap();
        let all: String = requests.concat();
        std::thread::spawn(move || w.write_all(all.as_bytes()).unwrap())
    };
    let mut r = std::io::BufReader::new(&mut s);
    let mut answers = Vec::new();
    for _ in requests {
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let code: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut len = None;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = Some(v.trim().parse::<usize>().unwrap());
            }
        }
        let mut body = vec![0; len.expect("every answer has a Content-Length")];
        r.read_exact(&mut body).unwrap();
        answers.push((code, body));
    }
    writer.join().unwrap();
    answers
}

/// Builds the synthetic graph of `packages` derivations with `store` (a `guixie` command with
/// its store options, made afresh each time); its output paths.
pub fn build_synthetic_graph(
    store: impl Fn() -> Command,
    packages: usize,
    dir: &Path,
) -> Vec<String> {
    let graph = dir.join("graph.scm");
    write_synthetic_graph("scm", packages, &graph);
    let drvs = ok_str(store().arg("eval").arg(&graph));
    let outs = ok_str(
        store()
            .args(["build", "-q", "--no-attest"])
            .args(drvs.split_whitespace()),
    );
    outs.split_whitespace().map(str::to_owned).collect()
}
