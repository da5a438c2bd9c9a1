//! `guixie run --trace=python` (issue 14): a Python agent built by guixie calls an HTTP
//! service on the host's loopback; its run is recorded through the gateway, then replayed
//! with the service stopped, printing the same; a request the recording lacks fails the
//! replay. The call tree is judged from the report, the sandbox's denials from a probe
//! (with `--network` and the unsandboxed run as positive controls).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;

/// Answers `GET /ask?q=WORD` with the word reversed and `POST /report` with the number of
/// steps, logging each request line to the file `argv[2]`.
const SERVICE: &str = r#"
import http.server, json, sys, urllib.parse
log = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, body):
        log.write(self.requestline + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["q"][0]
        self.answer(json.dumps({"answer": q[::-1]}).encode())
    def do_POST(self):
        steps = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["steps"]
        self.answer(("%d steps, first %s" % (len(steps), steps[0])).encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    secret: PathBuf,
    log: PathBuf,
    bin: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "host only").unwrap();
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/agent.scm");
    let out = ok_str(
        guixie()
            .arg("--store")
            .arg(&root)
            .args(["build", "-q", agent]),
    );
    Setup {
        bin: format!("{}/bin", out.trim()),
        log: dir.path().join("requests.log"),
        _dir: dir,
        root,
        work,
        secret,
    }
}

impl Setup {
    fn service(&self) -> Served {
        let log = self.log.clone();
        Served::spawn(move |port| {
            let mut c = Command::new("python3");
            c.args(["-c", SERVICE, &port.to_string()]).arg(log);
            c
        })
    }

    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn run(&self, options: &[&str], program: &str, args: &[&str]) -> Output {
        let mut c = guixie();
        c.arg("--store")
            .arg(&self.root)
            .current_dir(&self.work)
            .args(["run", "--trace=python"])
            .args(options)
            .arg(format!("{}/{program}", self.bin))
            .args(args);
        c.output().unwrap()
    }

    fn report(&self, out: &Output) -> (String, serde_json::Value) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let path = stderr
            .lines()
            .find_map(|l| l.strip_prefix("report: "))
            .unwrap_or_else(|| panic!("no report printed: {stderr}"))
            .to_owned();
        let mut c = guixie();
        c.arg("--store")
            .arg(&self.root)
            .args(["report", "json", &path]);
        let json = serde_json::from_slice(&ok(&mut c)).unwrap();
        (path, json)
    }

    fn real(&self, item: &str) -> PathBuf {
        self.root.join(item.trim_start_matches('/'))
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The report's calls of `function` in its first process, as `name=value` lists.
fn calls_of(report: &serde_json::Value, function: &str) -> Vec<String> {
    let p = &report["processes"][0];
    let functions = p["functions"].as_array().unwrap();
    let index = functions
        .iter()
        .position(|f| f["name"] == function)
        .unwrap_or_else(|| panic!("no {function} in {report}"));
    p["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["function"] == index)
        .map(|c| {
            c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| format!("{}={}", a[0].as_str().unwrap(), a[1].as_str().unwrap()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn an_agent_recorded_then_replayed_without_the_service_prints_the_same() {
    let s = setup();
    let service = s.service();
    let url = format!("http://127.0.0.1:{}", service.port);
    let task = ["find", "a", "book"];
    let args: Vec<&str> = std::iter::once(url.as_str()).chain(task).collect();

    let recorded = s.run(&["--record"], "agent", &args);
    assert!(recorded.status.success(), "{recorded:?}");
    assert_eq!(
        stdout(&recorded),
        "plan: dnif; a; koob\nservice says: 3 steps, first dnif\n"
    );
    assert_eq!(s.requests().len(), 4, "{:?}", s.requests());
    let (_, report) = s.report(&recorded);
    assert_eq!(report["schema"], "guixie.python-report/1");
    assert_eq!(report["http"]["mode"], "record");
    assert_eq!(report["http"]["exchanges"], 4);
    // The call tree: the agent's own functions with their arguments, no library code.
    let p = &report["processes"][0];
    assert!(
        p["argv"][0].as_str().unwrap().ends_with("bin/.agent-real"),
        "{p}"
    );
    assert_eq!(
        calls_of(&report, "ask"),
        task.map(|w| format!("service='{url}' word='{w}'"))
    );
    assert_eq!(
        calls_of(&report, "report"),
        [format!("service='{url}' steps=<list>")]
    );
    let files: Vec<&str> = p["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert!(
        files.iter().all(|f| f.ends_with("bin/.agent-real")),
        "{files:?}"
    );
    // The recording is a store item the report references.
    let recording = report["http"]["recording"].as_str().unwrap().to_owned();
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.real(&recording)).unwrap()).unwrap();
    assert_eq!(kept["schema"], "guixie.http-recording/1");
    assert_eq!(
        kept["exchanges"][0]["request"]["url"],
        format!("{url}/ask?q=find")
    );
    let info = ok_str(guixie().arg("--store").arg(&s.root).args([
        "store",
        "info",
        s.report(&recorded).0.as_str(),
    ]));
    assert!(info.contains(&format!("reference:  {recording}")), "{info}");

    // Replayed while the service still runs: it is not asked again.
    let replayed = s.run(&["--replay", &recording], "agent", &args);
    assert_eq!(stdout(&replayed), stdout(&recorded), "{replayed:?}");
    assert_eq!(s.requests().len(), 4, "the replay reached the service");
    drop(service);
    let replayed = s.run(&["--replay", &recording], "agent", &args);
    assert!(replayed.status.success(), "{replayed:?}");
    assert_eq!(stdout(&replayed), stdout(&recorded));
    let (_, again) = s.report(&replayed);
    assert_eq!(again["http"]["mode"], "replay");
    assert_eq!(again["http"]["exchanges"], 4);
    assert_eq!(
        again["processes"][0]["calls"],
        report["processes"][0]["calls"]
    );

    // A task the recording does not cover fails the replay, naming the request.
    let other: Vec<&str> = [url.as_str(), "find", "a", "cat"].into();
    let missed = s.run(&["--replay", &recording], "agent", &other);
    assert_eq!(missed.status.code(), Some(1), "{missed:?}");
    let stderr = String::from_utf8_lossy(&missed.stderr);
    assert!(
        stderr.contains(&format!("no recorded answer for GET {url}/ask?q=cat")),
        "{stderr}"
    );
    let (_, missed) = s.report(&missed);
    // The report it then posts differs too ("(cat: 502)" among its steps).
    assert_eq!(
        missed["http"]["unrecorded"],
        serde_json::json!([format!("GET {url}/ask?q=cat"), format!("POST {url}/report")])
    );
}

#[test]
fn the_sandbox_holds_under_the_python_tracer() {
    let s = setup();
    let service = s.service();
    let port = service.port.to_string();
    let secret = s.secret.to_str().unwrap();
    let mut recording = String::new();
    for mode in ["none", "--record", "--replay"] {
        let options: Vec<&str> = match mode {
            "none" => vec![],
            "--record" => vec!["--record"],
            _ => vec!["--replay", &recording],
        };
        let out = s.run(&options, "probe", &[secret, &port]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            stdout(&out),
            "file: unreachable\nnetwork: unreachable\nport: closed\ninterface: lo\n",
            "{mode}"
        );
        let (_, report) = s.report(&out);
        assert_eq!(calls_of(&report, "readable"), [format!("path='{secret}'")]);
        if mode == "--record" {
            recording = report["http"]["recording"].as_str().unwrap().to_owned();
        }
    }
    // Only the gateway leads out, and the probe did not take it.
    assert!(s.requests().is_empty(), "{:?}", s.requests());
    // Positive controls: with --network there is a route out; unsandboxed, the file is read.
    let out = s.run(&["--network"], "probe", &[secret]);
    assert!(stdout(&out).contains("network: reachable"), "{out:?}");
    let host = ok_str(
        guixie()
            .arg("--store")
            .arg(&s.root)
            .arg("run")
            .arg(format!("{}/probe", s.bin))
            .arg(secret),
    );
    assert!(host.contains("file: readable"), "{host}");
}

#[test]
fn a_python_build_is_traced_in_each_process_and_compared() {
    let s = setup();
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/agent.scm");
    let out = guixie()
        .arg("--store")
        .arg(&s.root)
        .current_dir(&s.work)
        .args(["build", "--trace=python", agent])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = stdout(&out).trim().to_owned();
    let mut c = guixie();
    c.arg("--store")
        .arg(&s.root)
        .args(["report", "json", &report]);
    let r: serde_json::Value = serde_json::from_slice(&ok(&mut c)).unwrap();
    assert_eq!(r["build"]["outputs_equal"], true, "{r}");
    assert!(
        r["program"].as_str().unwrap().ends_with("-agent-1.0.drv"),
        "{r}"
    );
    // python-build-system runs setup.py twice: each process traced, from its first line.
    let argv: Vec<String> = r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {}", p["argv"][0], p["argv"][1]))
        .collect();
    assert_eq!(
        argv,
        [r#""setup.py" "build""#, r#""setup.py" "install""#],
        "{r}"
    );
    for p in r["processes"].as_array().unwrap() {
        let own: Vec<&str> = p["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["file"].as_str().unwrap())
            .collect();
        // setup.py is the build's own code; setuptools (the toolchain's) is passed over.
        assert_eq!(own, ["/build/source/setup.py"], "{p}");
    }
}
