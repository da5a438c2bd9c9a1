//! guixie nodes as real processes on loopback: builders share what they built and attested,
//! a consumer accepts only what k of its n trusted builders attest, and `guixie build`
//! substitutes through the consumer node's loopback cache.
mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

/// A running `guixie node`, stopped when dropped.
struct NodeProc {
    child: Child,
    addr: String,
    http: Option<String>,
    cache_key: String,
    stderr: PathBuf,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn store_cmd(root: &Path, origin: &str) -> Command {
    let mut c = guixie();
    c.arg("--store").arg(root).env("GUIXIE_LOG_ORIGIN", origin);
    c
}

fn start_node(root: &Path, origin: &str, args: &[&str]) -> NodeProc {
    let stderr = root.with_extension("node.log");
    let mut child = store_cmd(root, origin)
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut addr, mut http, mut cache_key) = (String::new(), None, String::new());
    // `cache-key:` is the last line of the greeting.
    while cache_key.is_empty() {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the node exited: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        let line = line.trim();
        if let Some(a) = line.strip_prefix("listening: ") {
            addr = a.to_owned();
        } else if let Some(h) = line.strip_prefix("http: ") {
            http = Some(h.to_owned());
        } else if let Some(k) = line.strip_prefix("cache-key: ") {
            cache_key = k.to_owned();
        }
    }
    assert!(addr.starts_with("/ip4/127.0.0.1/tcp/"), "{addr}");
    // Keep reading so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    NodeProc {
        child,
        addr,
        http,
        cache_key,
        stderr,
    }
}

/// Events of `guixie --json build` (on stderr) with this `event`.
fn events(stderr: &[u8], event: &str) -> usize {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == event)
        .count()
}

struct Builders {
    dir: tempfile::TempDir,
    graph: PathBuf,
    roots: Vec<PathBuf>,
    identities: Vec<serde_json::Value>,
}

fn origin(name: &str) -> String {
    format!("{name}.example/log")
}

/// Builders that each built and attested the synthetic graph.
fn builders(names: &[&str], packages: usize) -> Builders {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("graph.scm");
    write_synthetic_graph("scm", packages, &graph);
    let mut roots = Vec::new();
    let mut identities = Vec::new();
    for n in names {
        let root = dir.path().join(n);
        let o = origin(n);
        let drvs = ok_str(store_cmd(&root, &o).arg("eval").arg(&graph));
        ok(store_cmd(&root, &o)
            .args(["build", "-q"])
            .args(drvs.split_whitespace()));
        identities.push(
            serde_json::from_slice(&ok(
                store_cmd(&root, &o).args(["trust", "identity", "--name", n])
            ))
            .unwrap(),
        );
        roots.push(root);
    }
    Builders {
        dir,
        graph,
        roots,
        identities,
    }
}

#[test]
fn a_consumer_substitutes_only_what_two_of_three_builders_attest() {
    let names = ["a", "b", "c"];
    let b = builders(&names, 6);
    let policy = b.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"k": 2, "builders": b.identities}).to_string(),
    )
    .unwrap();
    let nodes: Vec<NodeProc> = names
        .iter()
        .zip(&b.roots)
        .map(|(n, root)| start_node(root, &origin(n), &[]))
        .collect();
    let consumer_root = b.dir.path().join("consumer");
    let mut args = vec![
        "--http",
        "127.0.0.1:0",
        "--policy",
        policy.to_str().unwrap(),
    ];
    for n in &nodes {
        args.extend(["--peer", n.addr.as_str()]);
    }
    let consumer = start_node(&consumer_root, &origin("consumer"), &args);
    let http = consumer.http.clone().expect("the consumer serves http");

    // guixie build in the consumer's store substitutes everything through the node.
    let store = || store_cmd(&consumer_root, &origin("consumer"));
    let drvs = ok_str(store().arg("eval").arg(&b.graph));
    let out = store()
        .args([
            "--json",
            "build",
            "--substitute-urls",
            &http,
            "--trusted-key",
            &consumer.cache_key,
        ])
        .args(drvs.split_whitespace())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = std::fs::read_to_string(&consumer.stderr).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\nnode: {log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        events(&out.stderr, "built"),
        0,
        "{}\nnode: {log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(events(&out.stderr, "started"), 0);
    // The node imported each into the store it shares with the build, once the quorum
    // accepted it.
    assert_eq!(log.matches("accepted and imported").count(), 6, "{log}");
    assert_eq!(
        log.matches("\"accept\" (3 of the 3 trusted builders")
            .count(),
        6,
        "{log}"
    );
    ok(store().args(["store", "verify"]));
}
