//! `guixie publish` against the real peer: Nix 2.8 substitutes guixie's outputs from it.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store")
        .arg(root)
        .args(["--store-dir", "/nix/store"]);
    c
}

/// A running `guixie publish`, stopped when dropped.
struct Publisher {
    child: Child,
    url: String,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publish(root: &Path, key: &Path) -> Publisher {
    let mut child = at(root)
        .args(["publish", "--listen", "127.0.0.1:0", "--key"])
        .arg(key)
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

#[test]
fn nix_substitutes_from_guixie_publish_and_trusts_only_its_key() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let graph = dir.path().join("graph.scm");
    write_synthetic_graph("scm", 6, &graph);
    let drvs = ok_str(at(&ours).arg("eval").arg(&graph));
    let outs = ok_str(
        at(&ours)
            .args(["build", "-q", "--no-attest"])
            .args(drvs.split_whitespace()),
    );
    let outs: Vec<&str> = outs.split_whitespace().collect();
    assert!(!outs.is_empty());
    let (sk, pk) = (dir.path().join("cache.sec"), dir.path().join("cache.pub"));
    ok(guixie()
        .args(["key", "generate", "guixie-cache-1", "--secret-key-file"])
        .arg(&sk)
        .arg("--public-key-file")
        .arg(&pk));
    let public = std::fs::read_to_string(&pk).unwrap();
    let server = publish(&ours, &sk);

    // Nix realises the outputs from the cache alone: the closure comes with them.
    let theirs = dir.path().join("theirs");
    let uri = nix_store_uri(&theirs, "/nix/store");
    ok(nix("nix-store")
        .args(["--store", &uri, "-r"])
        .args(&outs)
        .args(["--option", "substituters", &server.url])
        .args(["--option", "trusted-public-keys", public.trim()])
        .args(["--option", "max-jobs", "0"]));
    for out in &outs {
        let mine: serde_json::Value =
            serde_json::from_slice(&ok(at(&ours).args(["--json", "store", "info", out]))).unwrap();
        let nix_hash = ok_str(nix("nix-store").args(["--store", &uri, "-q", "--hash", out]));
        assert_eq!(nix_hash, mine["narHash"].as_str().unwrap(), "{out}");
    }
    // `nix copy` too, with its own signature check.
    let copied = dir.path().join("copied");
    ok(nix("nix")
        .args(["copy", "--from", &server.url, "--to"])
        .arg(nix_store_uri(&copied, "/nix/store"))
        .args(["--option", "trusted-public-keys", public.trim()])
        .args(&outs));

    // A Nix that trusts another key refuses every path.
    let other = ok_str(guixie().args(["key", "generate", "someone-else-1"]));
    let other_public = other.lines().nth(1).unwrap();
    let refused = dir.path().join("refused");
    let out = nix("nix-store")
        .args([
            "--store",
            &nix_store_uri(&refused, "/nix/store"),
            "-r",
            outs[0],
        ])
        .args(["--option", "substituters", &server.url])
        .args(["--option", "trusted-public-keys", other_public])
        .args(["--option", "max-jobs", "0"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "Nix accepted a path signed by a key it does not trust"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not signed by any of the keys"), "{said}");
}
