//! `guixie publish` against the real peer: Nix 2.8 substitutes guixie's outputs from it.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn publish(root: &Path, key: &Path, extra: &[&str]) -> Publisher {
    publish_with(at(root), key, extra)
}

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store")
        .arg(root)
        .args(["--store-dir", "/nix/store"]);
    c
}

#[test]
fn nix_substitutes_from_guixie_publish_and_trusts_only_its_key() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let outs = build_synthetic_graph(|| at(&ours), 6, dir.path());
    let outs: Vec<&str> = outs.iter().map(String::as_str).collect();
    assert!(!outs.is_empty());
    let talk = dir.path().join("talk.scm");
    std::fs::write(
        &talk,
        "(derivation \"talk\" \"/bin/sh\" '(\"-c\" \"echo hello from the build; echo > $out\"))\n",
    )
    .unwrap();
    let talked = ok_str(at(&ours).args(["build", "-q", "--no-attest"]).arg(&talk));
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/inside"), "x").unwrap();
    let tree = ok_str(at(&ours).args(["store", "add"]).arg(&tree));
    let (sk, pk) = (dir.path().join("cache.sec"), dir.path().join("cache.pub"));
    ok(guixie()
        .args(["key", "generate", "guixie-cache-1", "--secret-key-file"])
        .arg(&sk)
        .arg("--public-key-file")
        .arg(&pk));
    let public = std::fs::read_to_string(&pk).unwrap();
    let server = publish(&ours, &sk, &[]);

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
    // Its build log, as `nix log --store` reads it from a cache.
    let log = ok_str(
        nix("nix")
            .args([
                "log",
                "--option",
                "substituters",
                "",
                "--store",
                &server.url,
            ])
            .arg(&talked),
    );
    assert!(log.contains("hello from the build"), "{log}");
    // The NAR listing `nix store ls` reads from a cache.
    let listed = ok_str(
        nix("nix")
            .args(["store", "ls", "--recursive", "--store", &server.url])
            .arg(&tree),
    );
    assert!(
        listed.contains("sub/inside") || listed.contains("./sub/inside"),
        "{listed}"
    );
    // `nix copy` too, with its own signature check.
    let copied = dir.path().join("copied");
    ok(nix("nix")
        .args(["copy", "--from", &server.url, "--to"])
        .arg(nix_store_uri(&copied, "/nix/store"))
        .args(["--option", "trusted-public-keys", public.trim()])
        .args(&outs));

    // Compressed (once per NAR): Nix decompresses whatever guixie emits.
    for compression in ["zstd", "gzip"] {
        let server = publish(&ours, &sk, &["--compression", compression]);
        let into = dir.path().join(format!("from-{compression}"));
        let zuri = nix_store_uri(&into, "/nix/store");
        ok(nix("nix")
            .args(["copy", "--from", &server.url, "--to", &zuri])
            .args(["--option", "trusted-public-keys", public.trim()])
            .args(&outs));
        for out in &outs {
            let theirs = ok_str(nix("nix-store").args(["--store", &zuri, "-q", "--hash", out]));
            let mine = ok_str(nix("nix-store").args(["--store", &uri, "-q", "--hash", out]));
            assert_eq!(theirs, mine, "{out} through {compression}");
        }
    }
    let key_served = http_get(&server.url, "/signing-key.pub");
    assert!(key_served.starts_with("HTTP/1.1 200"), "{key_served}");
    assert_eq!(
        key_served.split("\r\n\r\n").nth(1).unwrap().trim(),
        public.trim()
    );
    let cached = ours.join("var/guixie/publish-cache");
    assert!(std::fs::read_dir(&cached).unwrap().count() >= outs.len());

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

/// Nix builds the synthetic graph and copies it into a signed `file://` cache (xz, its default,
/// and uncompressed).
fn nix_cache(dir: &Path, compression: &str) -> (Vec<String>, std::path::PathBuf, String) {
    let nix_graph = dir.join("graph.nix");
    write_synthetic_graph("nix", 6, &nix_graph);
    let root = dir.join("nix-store");
    let uri = nix_store_uri(&root, "/nix/store");
    let drvs = ok_str(
        nix("nix-instantiate")
            .args(["--store", &uri])
            .arg(&nix_graph),
    );
    let outs = ok_str(
        nix("nix-store")
            .args([
                "--store",
                &uri,
                "--option",
                "sandbox-paths",
                "/bin/sh=/bin/busybox",
                "-r",
            ])
            .args(drvs.split_whitespace()),
    );
    let (sk, pk) = (dir.join("nix.sec"), dir.join("nix.pub"));
    ok(nix("nix-store")
        .args(["--generate-binary-cache-key", "nix-cache-1"])
        .arg(&sk)
        .arg(&pk));
    let cache = dir.join(format!("cache-{compression}"));
    let outs: Vec<String> = outs.split_whitespace().map(str::to_owned).collect();
    ok(nix("nix")
        .args(["copy", "--from", &uri, "--to"])
        .arg(format!(
            "file://{}?compression={compression}&secret-key={}",
            cache.display(),
            sk.display()
        ))
        .args(&outs));
    (
        outs,
        cache,
        std::fs::read_to_string(&pk).unwrap().trim().to_owned(),
    )
}

#[test]
fn guixie_substitutes_from_nix_caches_and_refuses_what_it_cannot_check() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (outs, cache, public) = nix_cache(dir.path(), "xz");
    let graph = dir.path().join("graph.scm");
    write_synthetic_graph("scm", 6, &graph);
    let served = Served::new(&cache);
    let http = format!("http://127.0.0.1:{}", served.port);
    for (i, url) in [format!("file://{}", cache.display()), http]
        .iter()
        .enumerate()
    {
        let ours = dir.path().join(format!("ours-{i}"));
        let drvs = ok_str(at(&ours).arg("eval").arg(&graph));
        ok(at(&ours)
            .args(["build", "-q", "--no-attest", "--substitute-urls", url])
            .args(["--trusted-key", &public])
            .args(drvs.split_whitespace()));
        for out in &outs {
            let info: serde_json::Value =
                serde_json::from_slice(&ok(at(&ours).args(["--json", "store", "info", out])))
                    .unwrap();
            let nix_hash = ok_str(
                nix("nix-store")
                    .args([
                        "--store",
                        &nix_store_uri(&dir.path().join("nix-store"), "/nix/store"),
                    ])
                    .args(["-q", "--hash", out]),
            );
            assert_eq!(info["narHash"].as_str().unwrap(), nix_hash, "{url}: {out}");
        }
        // Nothing was built: no build log exists.
        let logs = ours.join("var/guixie/build-logs");
        assert!(
            !logs.exists() || std::fs::read_dir(&logs).unwrap().next().is_none(),
            "{url}: something was built instead of substituted"
        );
        ok(at(&ours).args(["store", "verify"]));
    }

    // A key it does not trust: refused, naming why; with --fallback, built.
    let other = ok_str(guixie().args(["key", "generate", "someone-else-1"]));
    let other_public = other.lines().nth(1).unwrap().to_owned();
    let url = format!("file://{}", cache.display());
    let refused = dir.path().join("refused");
    let drvs = ok_str(at(&refused).arg("eval").arg(&graph));
    let e = fails(
        at(&refused)
            .args(["build", "--no-attest", "--substitute-urls", &url])
            .args(["--trusted-key", &other_public])
            .args(drvs.split_whitespace()),
    );
    let said = String::from_utf8_lossy(&e.stderr);
    assert!(said.contains("not signed by a trusted key"), "{said}");
    let valid = ok_str(at(&refused).args(["store", "ls"]));
    assert!(outs.iter().all(|o| !valid.contains(o.as_str())), "{valid}");
    ok(at(&refused)
        .args([
            "build",
            "-q",
            "--no-attest",
            "--fallback",
            "--substitute-urls",
            &url,
        ])
        .args(["--trusted-key", &other_public])
        .args(drvs.split_whitespace()));
    ok(at(&refused).args(["store", "verify"]));
}

#[test]
fn a_nar_differing_by_one_byte_is_refused() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (outs, cache, public) = nix_cache(dir.path(), "none");
    // Flip one byte of file contents in every NAR (the archive stays well formed): after the
    // `contents` token come an 8-byte length and the data.
    for e in std::fs::read_dir(cache.join("nar")).unwrap() {
        let p = e.unwrap().path();
        let mut bytes = std::fs::read(&p).unwrap();
        let token = bytes.windows(8).position(|w| w == b"contents").unwrap();
        bytes[token + 16] ^= 0x20;
        std::fs::write(&p, bytes).unwrap();
    }
    let ours = dir.path().join("ours");
    let graph = dir.path().join("graph.scm");
    write_synthetic_graph("scm", 6, &graph);
    let drvs = ok_str(at(&ours).arg("eval").arg(&graph));
    let e = fails(
        at(&ours)
            .args(["build", "--no-attest", "--substitute-urls"])
            .arg(format!("file://{}", cache.display()))
            .args(["--trusted-key", &public])
            .args(drvs.split_whitespace()),
    );
    let said = String::from_utf8_lossy(&e.stderr);
    assert!(
        said.contains("cannot substitute") && said.contains("nar/") && said.contains("hash"),
        "{said}"
    );
    let valid = ok_str(at(&ours).args(["store", "ls"]));
    assert!(outs.iter().all(|o| !valid.contains(o.as_str())), "{valid}");
    ok(at(&ours).args(["store", "verify"]));
}

#[test]
fn lying_caches_are_refused_and_leave_the_store_clean() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (outs, cache, public) = nix_cache(dir.path(), "none");
    let graph = dir.path().join("graph.scm");
    write_synthetic_graph("scm", 6, &graph);
    let narinfos: Vec<std::path::PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "narinfo"))
        .collect();
    let nar_of = |narinfo: &Path| {
        let text = std::fs::read_to_string(narinfo).unwrap();
        let url = text
            .lines()
            .find_map(|l| l.strip_prefix("URL: "))
            .unwrap()
            .to_owned();
        cache.join(url)
    };
    type Lie = fn(&Path, &Path);
    let lies: [(&str, Lie, &str); 3] = [
        (
            "truncated",
            |_, nar| {
                let bytes = std::fs::read(nar).unwrap();
                std::fs::write(nar, &bytes[..bytes.len() / 2]).unwrap();
            },
            "nar/",
        ),
        (
            "too long",
            |_, nar| {
                let mut bytes = std::fs::read(nar).unwrap();
                bytes.extend_from_slice(&[0; 64]);
                std::fs::write(nar, bytes).unwrap();
            },
            "longer than its NarSize",
        ),
        (
            "other store",
            |narinfo, _| {
                let text = std::fs::read_to_string(narinfo).unwrap();
                std::fs::write(narinfo, text.replace("/nix/store/", "/gnu/store/")).unwrap();
            },
            "narinfo",
        ),
    ];
    for (what, lie, expected) in lies {
        let lying = dir.path().join(format!("lying-{}", what.replace(' ', "-")));
        ok(Command::new("cp").arg("-r").arg(&cache).arg(&lying));
        for narinfo in &narinfos {
            let narinfo = lying.join(narinfo.file_name().unwrap());
            let nar = lying.join(nar_of(&narinfo).strip_prefix(&cache).unwrap());
            lie(&narinfo, &nar);
        }
        let ours = dir.path().join(format!("ours-{}", what.replace(' ', "-")));
        let drvs = ok_str(at(&ours).arg("eval").arg(&graph));
        let e = fails(
            at(&ours)
                .args(["build", "--no-attest", "--substitute-urls"])
                .arg(format!("file://{}", lying.display()))
                .args(["--trusted-key", &public])
                .args(drvs.split_whitespace()),
        );
        let said = String::from_utf8_lossy(&e.stderr);
        assert!(said.contains(expected), "{what}: {said}");
        let valid = ok_str(at(&ours).args(["store", "ls"]));
        assert!(
            outs.iter().all(|o| !valid.contains(o.as_str())),
            "{what}: {valid}"
        );
        ok(at(&ours).args(["store", "verify"]));
    }
}

/// A peer gets the evidence beside the binary: the log's signed checkpoint, and each path's
/// attestations with inclusion proofs, all checkable with the verifiers guixie ships.
#[test]
fn the_evidence_is_served_and_checks_out() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let file = dir.path().join("one.scm");
    std::fs::write(
        &file,
        "(derivation \"one\" \"/bin/sh\" '(\"-c\" \"echo one > $out\"))\n",
    )
    .unwrap();
    let out = ok_str(at(&ours).args(["build", "-q"]).arg(&file));
    let log_key = ok_str(at(&ours).args(["log", "key"]));
    let builder = ok_str(
        guixie()
            .args(["key", "public"])
            .arg(ours.join("var/guixie/builder.key")),
    );
    let (sk, _) = (dir.path().join("cache.sec"), dir.path().join("cache.pub"));
    ok(guixie()
        .args(["key", "generate", "c-1", "--secret-key-file"])
        .arg(&sk)
        .arg("--public-key-file")
        .arg(dir.path().join("cache.pub")));
    let server = publish(&ours, &sk, &[]);

    let cp = http_get(&server.url, "/checkpoint");
    assert!(cp.starts_with("HTTP/1.1 200"), "{cp}");
    let cp_file = dir.path().join("cp");
    std::fs::write(&cp_file, cp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    ok(guixie()
        .args(["checkpoint", "verify"])
        .arg(&cp_file)
        .args(["--log-key", &log_key]));

    let hash_part = out.rsplit('/').next().unwrap()[..32].to_owned();
    let answer = http_get(&server.url, &format!("/attestations/{hash_part}"));
    let body: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let found = body["attestations"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{body}");
    let a = &found[0];
    let proof: Vec<&str> = a["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    ok(guixie().args([
        "log",
        "verify-inclusion",
        "--leaf-hash",
        a["leafHash"].as_str().unwrap(),
        "--index",
        &a["index"].to_string(),
        "--size",
        &body["size"].to_string(),
        "--root",
        body["root"].as_str().unwrap(),
        "--proof",
        &proof.join(","),
    ]));
    let envelope = dir.path().join("envelope.json");
    std::fs::write(&envelope, a["envelope"].to_string()).unwrap();
    ok(guixie()
        .args(["attest", "verify"])
        .arg(&envelope)
        .args(["--key", &builder]));
    // A path nobody attested has none.
    let none = http_get(&server.url, &format!("/attestations/{}", "0".repeat(32)));
    assert!(none.contains("\"attestations\":[]"), "{none}");
}

/// A TCP proxy to `target` that cuts the first connection whose answer passes `cut_after`
/// bytes, and keeps what clients sent.
struct CuttingProxy {
    url: String,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CuttingProxy {
    fn start(target: &str, cut_after: usize) -> CuttingProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let target = target.trim_start_matches("http://").to_owned();
        let (sent2, cut2) = (sent.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = std::net::TcpStream::connect(&target).unwrap();
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let sent = sent2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                let cut = cut2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    let mut passed = 0;
                    while let Ok(n) = s_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if passed + n > cut_after && !cut.swap(true, Ordering::SeqCst) {
                            let _ = c_out.write_all(&buf[..cut_after.saturating_sub(passed)]);
                            break;
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        passed += n;
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                    let _ = s_in.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CuttingProxy { url, sent, cut }
    }
}

#[test]
fn nix_resumes_a_nar_cut_mid_stream_with_a_range_request() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let tree = dir.path().join("big");
    std::fs::create_dir(&tree).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(tree.join("data"), &data).unwrap();
    let path = ok_str(at(&ours).args(["store", "add"]).arg(&tree));
    let (sk, public) = key_pair(dir.path(), "resume-test-1");
    let server = publish(&ours, &sk, &[]);
    let proxy = CuttingProxy::start(&server.url, 1_000_000);
    let theirs = dir.path().join("theirs");
    let uri = nix_store_uri(&theirs, "/nix/store");
    ok(nix("nix")
        .args(["copy", "--from", &proxy.url, "--to", &uri])
        .args(["--option", "trusted-public-keys", public.trim()])
        .arg(path.trim()));
    assert!(
        proxy.cut.load(std::sync::atomic::Ordering::SeqCst),
        "the proxy cut a connection"
    );
    let sent = String::from_utf8_lossy(&proxy.sent.lock().unwrap()).to_ascii_lowercase();
    assert!(
        sent.contains("range: bytes="),
        "Nix asked for the rest: {sent}"
    );
    let mine: serde_json::Value = serde_json::from_slice(&ok(at(&ours).args([
        "--json",
        "store",
        "info",
        path.trim(),
    ])))
    .unwrap();
    let nix_hash = ok_str(nix("nix-store").args(["--store", &uri, "-q", "--hash", path.trim()]));
    assert_eq!(nix_hash, mine["narHash"].as_str().unwrap());
}
