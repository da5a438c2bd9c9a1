//! `guixie publish` for Guix clients, checked with real libgcrypt (guile-gcrypt): its
//! `Signature:`s verify as Guix verifies them, narinfos Guix's keys signed are accepted by
//! guixie's substituter, and a thousand pipelined narinfo requests are answered in order.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store")
        .arg(root)
        .args(["--store-dir", "/gnu/store"]);
    c
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/guix")
        .join(name)
}

/// What Guix would say of `narinfo`'s signature with `key` in its ACL.
fn guix_status(dir: &Path, narinfo: &str, key: &str) -> String {
    let (n, k) = (dir.join("status.narinfo"), dir.join("status.key"));
    std::fs::write(&n, narinfo).unwrap();
    std::fs::write(&k, key).unwrap();
    ok_str(
        Command::new("guile-3.0")
            .arg("--no-auto-compile")
            .arg(script("narinfo-status.scm"))
            .arg(&n)
            .arg(&k),
    )
    .trim()
    .to_owned()
}

/// A store with one built path (no references), and that path.
fn store_with_a_path(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let root = dir.join(name);
    let scm = dir.join("thing.scm");
    std::fs::write(
        &scm,
        "(derivation \"thing\" \"/bin/sh\" '(\"-c\" \"echo guix dialect > $out\"))\n",
    )
    .unwrap();
    let out = ok_str(at(&root).args(["build", "-q", "--no-attest"]).arg(&scm));
    (root, scm, out.trim().to_owned())
}

fn hash_part(path: &str) -> &str {
    &path.rsplit('/').next().unwrap()[..32]
}

#[test]
fn guix_verifies_guixie_signatures_with_libgcrypt() {
    if !guile_gcrypt_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (root, _, out) = store_with_a_path(dir.path(), "ours");
    let (key, _) = key_pair(dir.path(), "guixie-guix-1");
    let server = publish_with(at(&root), &key, &["--compression", "zstd"]);
    let acl_key = body_of(&http_get(&server.url, "/signing-key.pub"));
    assert!(
        acl_key.starts_with("(public-key \n (ecc \n  (curve Ed25519)\n  (q #"),
        "{acl_key}"
    );
    let narinfo = body_of(&http_get(
        &server.url,
        &format!("/{}.narinfo", hash_part(&out)),
    ));
    let signature_at = narinfo.find("Signature: 1;").expect(&narinfo);
    assert!(narinfo[..signature_at].starts_with(&format!("StorePath: {out}\nNarHash: sha256:")));
    assert!(
        narinfo[signature_at..].contains("Compression: zstd")
            && narinfo[signature_at..].contains("Compression: none"),
        "one download per compression after the signature: {narinfo}"
    );
    assert_eq!(
        guix_status(dir.path(), &narinfo, &acl_key),
        "valid-signature"
    );

    // Positive controls: the same checker refuses what it should.
    let tampered = narinfo.replacen("NarSize: ", "NarSize: 1", 1);
    assert_eq!(
        guix_status(dir.path(), &tampered, &acl_key),
        "hash-mismatch"
    );
    let (stranger, _) = key_pair(dir.path(), "stranger-1");
    let other = publish_with(at(&root), &stranger, &[]);
    let other_key = body_of(&http_get(&other.url, "/signing-key.pub"));
    assert_eq!(
        guix_status(dir.path(), &narinfo, &other_key),
        "unauthorized-key"
    );
    let b64_at = signature_at + narinfo[signature_at..].rfind(';').unwrap() + 1;
    let mut sig = data_from_b64(&narinfo[b64_at..narinfo[b64_at..].find('\n').unwrap() + b64_at]);
    // Flip s's last nibble inside the S-expression's hex, keeping it well formed. (Its first
    // digit may be any: libgcrypt's MPIs drop leading zero bytes.)
    let s_hex = sig.windows(4).position(|w| w == b"(s #").unwrap() + 4;
    let s_at = s_hex + sig[s_hex..].iter().position(|&b| b == b'#').unwrap() - 1;
    sig[s_at] = if sig[s_at] == b'A' { b'B' } else { b'A' };
    let forged = format!(
        "{}{}{}",
        &narinfo[..b64_at],
        b64(&sig),
        &narinfo[b64_at + narinfo[b64_at..].find('\n').unwrap()..]
    );
    assert_eq!(
        guix_status(dir.path(), &forged, &acl_key),
        "invalid-signature"
    );

    // Guix's clients pipeline up to 1000 narinfo requests on one connection.
    let hit = format!(
        "GET /{}.narinfo HTTP/1.1\r\nHost: x\r\n\r\n",
        hash_part(&out)
    );
    let miss = |i: usize| format!("GET /{:0>32}.narinfo HTTP/1.1\r\nHost: x\r\n\r\n", i % 10);
    let requests: Vec<String> = (0..1000)
        .map(|i| if i % 3 == 0 { hit.clone() } else { miss(i) })
        .collect();
    let answers = pipelined(server.url.trim_start_matches("http://"), &requests);
    assert_eq!(answers.len(), 1000);
    for (i, (status, body)) in answers.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(*status, 200, "request {i}");
            assert!(body.starts_with(format!("StorePath: {out}").as_bytes()));
        } else {
            assert_eq!(*status, 404, "request {i}");
        }
    }
}

#[test]
fn guixie_substitutes_what_a_guix_key_signed() {
    if !guile_gcrypt_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (root, scm, out) = store_with_a_path(dir.path(), "builder");
    // The narinfo and NAR of the path, as an unsigned Guix-dialect cache serves them.
    let (key, _) = key_pair(dir.path(), "unused-1");
    let server = publish_with(at(&root), &key, &[]);
    let served = body_of(&http_get(
        &server.url,
        &format!("/{}.narinfo", hash_part(&out)),
    ));
    let signature_at = served.find("Signature:").unwrap();
    let downloads = &served[served[signature_at..].find('\n').unwrap() + signature_at + 1..];
    let downloads: String = downloads
        .lines()
        .filter(|l| !l.starts_with("Sig:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let url = downloads
        .lines()
        .find_map(|l| l.strip_prefix("URL: "))
        .unwrap()
        .to_owned();
    let nar = raw_body(&http_get_bytes(&server.url, &format!("/{url}")));
    drop(server);

    let cache = dir.path().join("guix-cache");
    std::fs::create_dir_all(cache.join("nar")).unwrap();
    std::fs::write(cache.join(&url), &nar).unwrap();
    let (part, dl) = (dir.path().join("part"), dir.path().join("downloads"));
    std::fs::write(&part, &served[..signature_at]).unwrap();
    std::fs::write(&dl, &downloads).unwrap();
    let narinfo = cache.join(format!("{}.narinfo", hash_part(&out)));
    let q_hex = ok_str(
        Command::new("guile-3.0")
            .arg("--no-auto-compile")
            .arg(script("sign-narinfo.scm"))
            .args([&part, &dl, &narinfo]),
    );
    let q = hex_decode(q_hex.trim());
    let trusted = format!("guix-host-1:{}", b64(&q));
    let url = format!("file://{}", cache.display());

    // An untrusted key first: nothing is substituted, the build is refused.
    let fresh = dir.path().join("fresh");
    let stranger = std::fs::read_to_string(dir.path().join("unused-1.pub")).unwrap();
    let e = fails(
        at(&fresh)
            .args(["build", "-q", "--no-attest", "--substitute-urls", &url])
            .args(["--trusted-key", stranger.trim()])
            .arg(&scm),
    );
    let e = String::from_utf8_lossy(&e.stderr);
    assert!(e.contains("not signed by a trusted key"), "{e}");
    fails(at(&fresh).args(["store", "info", &out]));
    // The store's configuration names the cache and the key; no flags needed.
    let conf = fresh.join("etc/guixie/guixie.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(
        &conf,
        // An unreachable cache first: it is passed over, with a warning.
        format!("substituters = http://127.0.0.1:1 {url}\ntrusted-public-keys = {trusted}\n"),
    )
    .unwrap();
    let run = at(&fresh)
        .args(["build", "--no-attest"])
        .arg(&scm)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(
        log.contains("substituting "),
        "substituted, not built: {log}"
    );
    assert!(log.contains("warning: passing over a cache"), "{log}");
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), out);
    ok(at(&fresh).args(["store", "verify"]));
}

fn body_of(answer: &str) -> String {
    answer.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn http_get_bytes(base: &str, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    answer
}

fn raw_body(answer: &[u8]) -> Vec<u8> {
    let at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    answer[at + 4..].to_vec()
}

fn hex_decode(s: &str) -> Vec<u8> {
    data_encoding::HEXUPPER_PERMISSIVE
        .decode(s.as_bytes())
        .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

fn data_from_b64(s: &str) -> Vec<u8> {
    data_encoding::BASE64.decode(s.as_bytes()).unwrap()
}
