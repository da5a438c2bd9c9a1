//! guixie against the reference peer, real Nix (Debian's nix-bin): NAR bytes, hashes, store
//! paths for /nix/store and /gnu/store, `.drv` files, JSON views and signatures.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use guixie_formats::hash::{HashAlgo, Hasher};

fn varied_tree(root: &Path) {
    fs::create_dir_all(root.join("deep/a/b/c/d/e")).unwrap();
    fs::create_dir(root.join("empty-dir")).unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    for n in 0..18 {
        fs::write(root.join(format!("size-{n:02}")), vec![b'x'; n]).unwrap();
    }
    fs::write(root.join("deep/a/b/c/d/e/leaf"), b"leaf\n").unwrap();
    let exe = root.join("run.sh");
    fs::write(&exe, b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    let odd: &[&[u8]] = &[
        "héllo wörld ☃".as_bytes(),
        b"with space",
        b"-leading-dash",
        b"quote\"and'apos",
        b"back\\slash",
        b"new\nline",
        b"\xff\xfe-not-utf8",
        b"Zupper",
        b"a.b.c",
    ];
    for name in odd {
        fs::write(root.join(OsStr::from_bytes(name)), name).unwrap();
    }
    symlink("empty-file", root.join("link-rel")).unwrap();
    symlink("/etc/passwd", root.join("link-abs")).unwrap();
    symlink("does/not/exist", root.join("link-dangling")).unwrap();
    symlink("deep", root.join("link-dir")).unwrap();
    let mut big = Vec::with_capacity(3 << 20);
    let mut x: u32 = 12345;
    for _ in 0..(3 << 20) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big.push((x >> 16) as u8);
    }
    fs::write(root.join("deep/random.bin"), big).unwrap();
}

#[test]
fn nar_and_hashes_match_nix_on_a_varied_tree() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("tree");
    varied_tree(&t);
    let ours = ok(guixie().args(["nar", "dump"]).arg(&t));
    let theirs = ok(nix("nix-store").arg("--dump").arg(&t));
    assert!(ours == theirs, "NAR bytes differ from nix-store --dump");

    for (algo, len16) in [("sha1", 40), ("sha256", 64), ("sha512", 128)] {
        let nix32 = ok_str(nix("nix-hash").args(["--type", algo, "--base32"]).arg(&t));
        let ours32 = ok_str(
            guixie()
                .args(["hash", "path", "--type", algo, "--to", "nix32"])
                .arg(&t),
        );
        assert_eq!(ours32, nix32, "{algo} nix32");
        let base16 = ok_str(nix("nix-hash").args(["--type", algo]).arg(&t));
        let ours16 = ok_str(
            guixie()
                .args(["hash", "path", "--type", algo, "--to", "base16"])
                .arg(&t),
        );
        assert_eq!(
            (ours16.len(), ours16.clone()),
            (len16, base16.clone()),
            "{algo} base16"
        );
        // Conversions agree with Nix's own converters, both ways.
        let conv =
            ok_str(guixie().args(["hash", "convert", "--to", "nix32", "--type", algo, &base16]));
        assert_eq!(
            conv,
            ok_str(nix("nix-hash").args(["--type", algo, "--to-base32", &base16]))
        );
        let back =
            ok_str(guixie().args(["hash", "convert", "--to", "base16", "--type", algo, &nix32]));
        assert_eq!(
            back,
            ok_str(nix("nix-hash").args(["--type", algo, "--to-base16", &nix32]))
        );
        let sri =
            ok_str(guixie().args(["hash", "convert", "--to", "sri", &format!("{algo}:{nix32}")]));
        assert_eq!(
            sri,
            ok_str(nix("nix").args(["hash", "to-sri", "--type", algo, &nix32]))
        );
        let flat = ok_str(
            nix("nix-hash")
                .args(["--flat", "--type", algo, "--base32"])
                .arg(t.join("deep/random.bin")),
        );
        let ours_flat = ok_str(
            guixie()
                .args(["hash", "file", "--type", algo, "--to", "nix32"])
                .arg(t.join("deep/random.bin")),
        );
        assert_eq!(ours_flat, flat, "{algo} flat");
    }

    // Restoring Nix's NAR gives a tree whose NAR is the same bytes again.
    let restored = dir.path().join("restored");
    let mut child = guixie()
        .args(["nar", "restore"])
        .arg(&restored)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &theirs).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert!(ok(nix("nix-store").arg("--dump").arg(&restored)) == theirs);
}

/// sha256 and length of a command's stdout, streamed (the NAR of a >1 GiB file is not kept).
fn stream_digest(cmd: &mut Command) -> (String, u64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut h = Hasher::new(HashAlgo::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    assert!(child.wait().unwrap().success(), "{cmd:?} failed");
    (h.finish().to_hex(), total)
}

#[test]
fn nar_matches_nix_on_a_sparse_file_over_1_gib() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("big");
    fs::create_dir(&t).unwrap();
    let f = fs::File::create(t.join("sparse")).unwrap();
    f.set_len((1 << 30) + 4097).unwrap();
    drop(f);
    let ours = stream_digest(guixie().args(["nar", "dump"]).arg(&t));
    let theirs = stream_digest(nix("nix-store").arg("--dump").arg(&t));
    assert_eq!(ours, theirs);
    assert!(ours.1 > 1 << 30);
    let h = ok_str(guixie().args(["hash", "path", "--to", "nix32"]).arg(&t));
    assert_eq!(
        h,
        ok_str(
            nix("nix-hash")
                .args(["--type", "sha256", "--base32"])
                .arg(&t)
        )
    );
}

#[test]
fn store_add_gives_the_path_nix_store_add_gives() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("tree");
    varied_tree(&t);
    let file = dir.path().join("single-file.txt");
    fs::write(&file, "just a file\n").unwrap();
    let link = dir.path().join("a-link");
    symlink("somewhere", &link).unwrap();
    for store_dir in ["/nix/store", "/gnu/store"] {
        let nix_root = dir
            .path()
            .join(format!("nix-root{}", store_dir.replace('/', "-")));
        let ours_root = dir
            .path()
            .join(format!("guixie-root{}", store_dir.replace('/', "-")));
        for src in [&t, &file, &link] {
            let theirs = ok_str(
                nix("nix-store")
                    .args(["--store", &nix_store_uri(&nix_root, store_dir), "--add"])
                    .arg(src),
            );
            let ours = ok_str(
                guixie()
                    .args(["--store-dir", store_dir, "--store"])
                    .arg(&ours_root)
                    .args(["store", "add"])
                    .arg(src),
            );
            assert_eq!(ours, theirs, "{store_dir} {src:?}");
            assert!(ours.starts_with(store_dir));
            let info: serde_json::Value = serde_json::from_slice(&ok(guixie()
                .args(["--json", "--store-dir", store_dir, "--store"])
                .arg(&ours_root)
                .args(["store", "info", &ours])))
            .unwrap();
            let nix_info: serde_json::Value = serde_json::from_slice(&ok(nix("nix").args([
                "path-info",
                "--json",
                "--store",
                &nix_store_uri(&nix_root, store_dir),
                &theirs,
            ])))
            .unwrap();
            let nix_hash = nix_info[0]["narHash"].as_str().unwrap();
            let ours_sri = ok_str(guixie().args([
                "hash",
                "convert",
                "--to",
                "sri",
                info["narHash"].as_str().unwrap(),
            ]));
            assert_eq!(ours_sri, nix_hash);
            assert_eq!(info["narSize"], nix_info[0]["narSize"]);
        }
    }
}

const EXPRESSIONS: &str = r#"
let
  sys = "x86_64-linux";
  mk = attrs: derivation ({ system = sys; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; } // attrs);
  src = builtins.toFile "input.txt" "some source\n";
  base = mk { name = "base"; };
  multi = mk { name = "multi"; outputs = [ "out" "dev" "lib" "doc" ]; dep = base; };
  fodFlat = mk { name = "fod-flat"; outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "0000000000000000000000000000000000000000000000000000"; };
  fodFlatSha1 = mk { name = "fod-flat-sha1"; outputHashMode = "flat"; outputHashAlgo = "sha1"; outputHash = "0000000000000000000000000000000000000000"; };
  fodFlatSha512 = mk { name = "fod-flat-sha512"; outputHashMode = "flat"; outputHashAlgo = "sha512"; outputHash = "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="; };
  fodRec = mk { name = "fod-rec"; outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg"; };
  fodRecSha1 = mk { name = "fod-rec-sha1"; outputHashMode = "recursive"; outputHashAlgo = "sha1"; outputHash = "0000000000000000000000000000000000000000"; };
  # Same name and output hash as fodFlat, another recipe: a different .drv whose
  # hashDerivationModulo collides with fodFlat's.
  fodTwin = mk { name = "fod-flat"; outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "0000000000000000000000000000000000000000000000000000"; marker = "different"; };
in rec {
  inherit base multi fodFlat fodFlatSha1 fodFlatSha512 fodRec fodRecSha1 fodTwin;
  strings = mk {
    name = "strings";
    quotes = "say \"hi\" and 'bye'";
    backslashes = "a\\b\\\\c\\n not a newline";
    newlines = "line1\nline2\r\nline3\ttabbed";
    unicode = "héllo wörld ☃ 𝄞 日本語";
    empty = "";
    json = builtins.toJSON { a = [ 1 2 ]; b = "x\"y"; };
  };
  withSrc = mk { name = "with-src"; inherit src; args = [ "-c" "cat ${src} > $out" ]; };
  chain = mk { name = "chain"; a = multi.dev; b = multi.lib; c = base; d = fodRec; e = fodFlat; };
  collide = mk { name = "collide"; a = fodFlat; b = fodTwin; };
  top = mk { name = "top"; deps = [ multi multi.doc chain collide ]; };
}
"#;

#[test]
fn drv_files_from_nix_instantiate_round_trip_and_recompute() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let expr = dir.path().join("exprs.nix");
    fs::write(&expr, EXPRESSIONS).unwrap();
    for store_dir in ["/nix/store", "/gnu/store"] {
        let root = dir
            .path()
            .join(format!("root{}", store_dir.replace('/', "-")));
        let uri = nix_store_uri(&root, store_dir);
        let printed = ok_str(nix("nix-instantiate").args(["--store", &uri]).arg(&expr));
        let top_level: Vec<&str> = printed.lines().collect();
        assert_eq!(top_level.len(), 13);
        let real = nix_real_store(&root, store_dir);
        let drvs: Vec<_> = fs::read_dir(&real)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension() == Some(OsStr::new("drv")))
            .collect();
        assert!(drvs.len() >= 13, "{drvs:?}");
        for drv in &drvs {
            let bytes = fs::read(drv).unwrap();
            assert!(
                ok(guixie().args(["drv", "fmt"]).arg(drv)) == bytes,
                "fmt of {drv:?} differs"
            );
            for collision in ["merge", "last-wins"] {
                ok(guixie()
                    .args(["drv", "check", "--collision", collision, "--inputs"])
                    .arg(&real)
                    .arg(drv));
            }
            let logical = format!("{store_dir}/{}", drv.file_name().unwrap().to_string_lossy());
            let ours: serde_json::Value =
                serde_json::from_slice(&ok(guixie().args(["drv", "show"]).arg(drv))).unwrap();
            let theirs: serde_json::Value = serde_json::from_slice(&ok(nix("nix").args([
                "show-derivation",
                "--store",
                &uri,
                &logical,
            ])))
            .unwrap();
            assert_eq!(ours, theirs, "show-derivation JSON of {logical}");
        }
        // The two fixed-output twins really collide (distinct .drv files, one modulo hash).
        let twins: Vec<_> = drvs
            .iter()
            .filter(|p| p.to_string_lossy().ends_with("-fod-flat.drv"))
            .collect();
        assert_eq!(twins.len(), 2);
        let hashes: Vec<_> = twins
            .iter()
            .map(|p| ok_str(guixie().args(["drv", "hash-modulo"]).arg(p)))
            .collect();
        assert_eq!(hashes[0], hashes[1]);

        // A drv whose output path was tampered with is caught, naming the output.
        let base = drvs
            .iter()
            .find(|p| p.to_string_lossy().ends_with("-base.drv"))
            .unwrap();
        let text = fs::read_to_string(base).unwrap();
        let out_path = text.split('"').nth(3).unwrap().to_owned();
        let mut forged = out_path.clone();
        forged.replace_range(
            store_dir.len() + 1..store_dir.len() + 2,
            if forged.as_bytes()[store_dir.len() + 1] == b'0' {
                "1"
            } else {
                "0"
            },
        );
        let tampered = dir.path().join(base.file_name().unwrap());
        fs::write(&tampered, text.replace(&out_path, &forged)).unwrap();
        let out = fails(guixie().args(["drv", "check"]).arg(&tampered));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("MISMATCH output out"), "{stdout}");
        assert!(stdout.contains("MISMATCH drv path"), "{stdout}");
    }
}

#[test]
fn signatures_interoperate_with_nix() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("payload");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("data"), "signed payload\n").unwrap();
    let nix_root = d.join("nix-root");
    let uri = nix_store_uri(&nix_root, "/nix/store");
    let path = ok_str(nix("nix-store").args(["--store", &uri, "--add"]).arg(&src));
    let hash_part = &path["/nix/store/".len().."/nix/store/".len() + 32];

    // Keys made by each side.
    ok(nix("nix-store")
        .args(["--generate-binary-cache-key", "nix-made-1"])
        .arg(d.join("nix.sec"))
        .arg(d.join("nix.pub")));
    ok(guixie()
        .args(["key", "generate", "guixie-made-1", "--secret-key-file"])
        .arg(d.join("gx.sec"))
        .arg("--public-key-file")
        .arg(d.join("gx.pub")));
    let nix_pub = fs::read_to_string(d.join("nix.pub")).unwrap();
    let gx_pub = fs::read_to_string(d.join("gx.pub")).unwrap();
    assert_eq!(
        ok_str(guixie().args(["key", "public"]).arg(d.join("nix.sec"))),
        nix_pub.trim()
    );

    // A binary cache that Nix can substitute from, written and signed by guixie.
    let cache = d.join("cache");
    fs::create_dir_all(cache.join("nar")).unwrap();
    fs::write(cache.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    fs::write(
        cache.join("nar/p.nar"),
        ok(guixie().args(["nar", "dump"]).arg(&src)),
    )
    .unwrap();
    let nar_hash = ok_str(guixie().args(["hash", "path", "--to", "nix32"]).arg(&src));
    let nar_size = fs::metadata(cache.join("nar/p.nar")).unwrap().len();
    let narinfo = cache.join(format!("{hash_part}.narinfo"));
    fs::write(
        &narinfo,
        format!("StorePath: {path}\nURL: nar/p.nar\nCompression: none\nNarHash: sha256:{nar_hash}\nNarSize: {nar_size}\nReferences: \n"),
    )
    .unwrap();
    let unsigned = fs::read(&narinfo).unwrap();
    for key in ["nix.sec", "gx.sec"] {
        ok(guixie()
            .args(["narinfo", "sign", "-i"])
            .arg(&narinfo)
            .arg("--key")
            .arg(d.join(key)));
    }
    ok(guixie()
        .args(["narinfo", "verify"])
        .arg(&narinfo)
        .args(["--key", nix_pub.trim()]));
    ok(guixie()
        .args(["narinfo", "verify"])
        .arg(&narinfo)
        .args(["--key", gx_pub.trim()]));

    // Nix signs the same path with both keys; Ed25519 is deterministic, so the signatures must be
    // exactly guixie's.
    for key in ["nix.sec", "gx.sec"] {
        ok(nix("nix")
            .args(["store", "sign", "--store", &uri, "--key-file"])
            .arg(d.join(key))
            .arg(&path));
    }
    let info: serde_json::Value = serde_json::from_slice(&ok(nix("nix").args([
        "path-info",
        "--json",
        "--store",
        &uri,
        &path,
    ])))
    .unwrap();
    let mut nix_sigs: Vec<String> = info[0]["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    nix_sigs.sort();
    let shown: serde_json::Value = serde_json::from_slice(&ok(guixie()
        .args(["--json", "narinfo", "show"])
        .arg(&narinfo)))
    .unwrap();
    let mut our_sigs: Vec<String> = shown["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    our_sigs.sort();
    assert_eq!(our_sigs, nix_sigs);

    // Nix substitutes from guixie's cache when it trusts guixie's key, and refuses otherwise.
    let copy = |trusted: &str, to: &str| {
        nix("nix")
            .args([
                "copy",
                "--from",
                &format!("file://{}", cache.display()),
                "--to",
            ])
            .arg(d.join(to))
            .args(["--option", "trusted-public-keys", trusted, &path])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    fs::write(&narinfo, &unsigned).unwrap();
    ok(guixie()
        .args(["narinfo", "sign", "-i"])
        .arg(&narinfo)
        .arg("--key")
        .arg(d.join("gx.sec")));
    assert!(copy(gx_pub.trim(), "dst-trusting").status.success());
    let refused = copy(nix_pub.trim(), "dst-not-trusting");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("lacks a valid signature"));

    // Tampering with a signed field breaks verification on our side too.
    let text = fs::read_to_string(&narinfo).unwrap().replace(
        &format!("NarSize: {nar_size}"),
        &format!("NarSize: {}", nar_size + 8),
    );
    fs::write(&narinfo, text).unwrap();
    let out = fails(
        guixie()
            .args(["narinfo", "verify"])
            .arg(&narinfo)
            .args(["--key", gx_pub.trim()]),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signature verifies"));
}
