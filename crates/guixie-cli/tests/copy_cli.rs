//! `guixie copy --to|--from`: closures through `file://` directories and `http://` caches,
//! read and written by real Nix on the other side.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store")
        .arg(root)
        .args(["--store-dir", "/nix/store"]);
    c
}

fn nar_hash(store: &Path, path: &str) -> String {
    let info: serde_json::Value =
        serde_json::from_slice(&ok(at(store).args(["--json", "store", "info", path]))).unwrap();
    info["narHash"].as_str().unwrap().to_owned()
}

#[test]
fn closures_cross_file_and_http_caches_both_ways_with_nix() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let outs = build_synthetic_graph(|| at(&ours), 8, dir.path());
    let outs: Vec<&str> = outs.iter().map(String::as_str).collect();
    let (sk, public) = key_pair(dir.path(), "copy-test-1");

    // To a directory, xz as Nix writes by default; Nix reads it back with its own checks.
    let cache = dir.path().join("cache");
    let url = format!("file://{}", cache.display());
    ok(at(&ours)
        .args(["copy", "--to", &url, "--compression", "xz", "--key"])
        .arg(&sk)
        .args(&outs));
    assert!(cache.join("nix-cache-info").is_file());
    let theirs = dir.path().join("theirs");
    let uri = nix_store_uri(&theirs, "/nix/store");
    ok(nix("nix")
        .args(["copy", "--from", &url, "--to", &uri])
        .args(["--option", "trusted-public-keys", &public])
        .args(&outs));
    for out in &outs {
        let nix = ok_str(nix("nix-store").args(["--store", &uri, "-q", "--hash", out]));
        assert_eq!(nix, nar_hash(&ours, out), "{out}");
    }
    // A cache of another store directory is not written into.
    let other = dir.path().join("other-cache");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("nix-cache-info"), "StoreDir: /gnu/store\n").unwrap();
    let e = fails(
        at(&ours)
            .args(["copy", "--to"])
            .arg(format!("file://{}", other.display()))
            .arg(outs[0]),
    );
    assert!(String::from_utf8_lossy(&e.stderr).contains("StoreDir /gnu/store"));
    // A link planted in a cache directory is not written through.
    let planted = dir.path().join("planted-cache");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, planted.join("nar")).unwrap();
    let e = fails(
        at(&ours)
            .args(["copy", "--to"])
            .arg(format!("file://{}", planted.display()))
            .arg(outs[0]),
    );
    assert!(String::from_utf8_lossy(&e.stderr).contains("not a directory of the cache"));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // A second copy writes nothing.
    let again = at(&ours)
        .args(["copy", "--to", &url, "--key"])
        .arg(&sk)
        .args(&outs)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 paths written"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // From a directory Nix wrote (signed with Nix's own signing), into a fresh guixie store.
    let nix_cache = dir.path().join("nix-cache");
    let nix_url = format!("file://{}", nix_cache.display());
    ok(nix("nix")
        .args(["copy", "--from", &uri, "--to"])
        .arg(format!("{nix_url}?secret-key={}", sk.display()))
        .args(&outs));
    let fresh = dir.path().join("fresh");
    // Positive control: a key it does not trust, and nothing becomes valid.
    let (_, stranger) = key_pair(dir.path(), "stranger-1");
    let refused = fails(
        at(&fresh)
            .args(["copy", "--from", &nix_url, "--trusted-key", &stranger])
            .args(&outs),
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not signed by a trusted key"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    fails(at(&fresh).args(["store", "info", outs[0]]));
    ok(at(&fresh)
        .args(["copy", "--from", &nix_url, "--trusted-key", &public])
        .args(&outs));
    for out in &outs {
        assert_eq!(nar_hash(&fresh, out), nar_hash(&ours, out), "{out}");
    }
    ok(at(&fresh).args(["store", "verify"]));

    // Over HTTP: PUT into a plain server, then both guixie and Nix substitute from it.
    let served_dir = dir.path().join("served");
    std::fs::create_dir(&served_dir).unwrap();
    let server = Served::writable(&served_dir);
    let http = format!("http://127.0.0.1:{}", server.port);
    ok(at(&ours)
        .args(["copy", "--to", &http, "--key"])
        .arg(&sk)
        .args(&outs));
    assert!(served_dir.join("nix-cache-info").is_file());
    let over_http = dir.path().join("over-http");
    ok(at(&over_http)
        .args(["copy", "--from", &http, "--trusted-key", &public])
        .args(&outs));
    ok(at(&over_http).args(["store", "verify"]));
    let nix_http = dir.path().join("nix-http");
    let nix_http_uri = nix_store_uri(&nix_http, "/nix/store");
    ok(nix("nix")
        .args(["copy", "--from", &http, "--to", &nix_http_uri])
        .args(["--option", "trusted-public-keys", &public])
        .args(&outs));

    // Over HTTPS: a test authority's certificate for 127.0.0.1, the authority trusted through
    // SSL_CERT_FILE (else the system's trust store decides).
    let (cert, tls_key, ca) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    let openssl = |args: &[&str]| {
        ok(Command::new("openssl").current_dir(dir.path()).args(args));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "1",
                "-subj",
                "/CN=guixie-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.path().join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let tls = Served::https(&served_dir, &cert, &tls_key);
    let https = format!("https://127.0.0.1:{}", tls.port);
    let over_https = dir.path().join("over-https");
    // Positive control: an unknown issuer is refused.
    let untrusted = fails(
        at(&over_https)
            .env("SSL_CERT_FILE", "/dev/null")
            .args(["copy", "--from", &https, "--trusted-key", &public])
            .arg(outs[0]),
    );
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains(&https),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    ok(at(&over_https)
        .env("SSL_CERT_FILE", &ca)
        .args(["copy", "--from", &https, "--trusted-key", &public])
        .args(&outs));
    ok(at(&over_https).args(["store", "verify"]));
}
