//! guixie nodes as real processes on loopback, and the stores they keep.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;

/// A running `guixie node`, stopped when dropped.
pub struct NodeProc {
    child: Child,
    pub addr: String,
    pub http: Option<String>,
    pub cache_key: String,
    pub stderr: PathBuf,
}

impl NodeProc {
    /// `guixie --json build` of `graph` in the store at `root`, substituting through this
    /// node's cache; asserts it succeeded. Its stderr (the build events) and the node's log.
    pub fn build_through(&self, root: &Path, origin: &str, graph: &Path) -> (Vec<u8>, String) {
        let drvs = ok_str(store_cmd(root, origin).arg("eval").arg(graph));
        let http = self.http.as_deref().expect("the node serves http");
        let out = store_cmd(root, origin)
            .args([
                "--json",
                "build",
                "--substitute-urls",
                http,
                "--trusted-key",
                &self.cache_key,
            ])
            .args(drvs.split_whitespace())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(
            out.status.success(),
            "{}\nnode: {log}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.stderr, log)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn store_cmd(root: &Path, origin: &str) -> Command {
    let mut c = guixie();
    // Nix's store directory, so that Nix can substitute the same paths.
    c.arg("--store")
        .arg(root)
        .args(["--store-dir", "/nix/store"])
        .env("GUIXIE_LOG_ORIGIN", origin);
    c
}

pub fn start_node(root: &Path, origin: &str, args: &[&str]) -> NodeProc {
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
pub fn events(stderr: &[u8], event: &str) -> usize {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == event)
        .count()
}

pub struct Builders {
    pub dir: tempfile::TempDir,
    pub graph: PathBuf,
    pub roots: Vec<PathBuf>,
    pub identities: Vec<serde_json::Value>,
}

pub fn origin(name: &str) -> String {
    format!("{name}.example/log")
}

/// Builders that each built and attested the synthetic graph.
pub fn builders(names: &[&str], packages: usize) -> Builders {
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

pub fn write_policy(dir: &Path, name: &str, k: u64, identities: &[serde_json::Value]) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(
        &file,
        serde_json::json!({"k": k, "builders": identities}).to_string(),
    )
    .unwrap();
    file
}
