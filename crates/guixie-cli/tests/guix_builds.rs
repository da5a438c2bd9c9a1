//! Package files written in Guix's style build real programs (issue 16, second part): origins
//! with URI lists, `mirror://`, patches and a snippet (`search-patches` from `(gnu packages)`),
//! a `git-fetch` checkout of a local repository served over HTTP, the cmake, perl, python,
//! pyproject and copy build systems, `(guix build utils)` on the build side, `(guix config)`,
//! and package modules that use each other in a cycle. Each program's output is checked by
//! running it outside the sandbox.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guix-builds")
}

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store")
        .arg(root)
        .arg("-L")
        .arg(fixtures().join("modules"));
    c
}

fn real(root: &Path, logical: &str) -> PathBuf {
    root.join(logical.trim_start_matches('/'))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `dir/<name>.tar.gz` of the fixture source `source` (its top directory named `name`).
fn tarball(source: &str, name: &str, dir: &Path) -> String {
    let top = dir.join("src").join(name);
    copy_tree(&fixtures().join(source), &top);
    let file = dir.join(format!("{name}.tar.gz"));
    run(Command::new("tar")
        .arg("czf")
        .arg(&file)
        .arg("-C")
        .arg(dir.join("src"))
        .arg(name));
    ok_str(guixie().args(["hash", "file", "--to", "nix32"]).arg(&file))
        .trim()
        .to_owned()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    run(Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo))
}

/// A repository with two commits; returns the first's id and the NAR hash of its tree
/// without `.git` (checked against Nix's `nix-hash` when Nix is here), and serves a bare
/// clone as `served/notes.git` (Git's "dumb" HTTP protocol).
fn notes_repository(dir: &Path, served: &Path) -> (String, String) {
    let repo = dir.join("notes");
    fs::create_dir_all(repo.join("docs")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    fs::write(repo.join("notes.txt"), "first notes\n").unwrap();
    fs::write(repo.join("docs/guide.md"), "# guide\n").unwrap();
    fs::write(repo.join("docs/skip.txt"), "not installed\n").unwrap();
    fs::write(repo.join("run.sh"), "#!/bin/sh\necho notes\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(repo.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]).trim().to_owned();
    // The tree of that commit, as Guix hashes a checkout.
    let tree = dir.join("notes-tree");
    fs::create_dir_all(&tree).unwrap();
    run(Command::new("sh").arg("-c").arg(format!(
        "git -C {} archive {commit} | tar -x -C {}",
        repo.display(),
        tree.display()
    )));
    let hash = ok_str(guixie().args(["hash", "path", "--to", "nix32"]).arg(&tree))
        .trim()
        .to_owned();
    if nix_available() {
        let theirs = run(nix("nix-hash")
            .args(["--type", "sha256", "--base32"])
            .arg(&tree));
        assert_eq!(theirs.trim(), hash, "nix-hash disagrees on the tree's hash");
    }
    // A later commit: the origin names the earlier one, not the branch's tip.
    fs::write(repo.join("notes.txt"), "second notes\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "second"]);
    let bare = served.join("notes.git");
    run(Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&repo)
        .arg(&bare));
    git(&bare, &["update-server-info"]);
    (commit, hash)
}

/// The first `/gnu/store/…NAME` path in `text` (not a `.drv`).
fn store_path_ending(text: &str, name: &str) -> Option<String> {
    text.match_indices(name).find_map(|(i, _)| {
        let end = i + name.len();
        if text[end..].starts_with(".drv") {
            return None;
        }
        let start = text[..i].rfind("/gnu/store/")?;
        Some(text[start..end].to_owned())
    })
}

fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn guix_style_origins_and_build_systems_build_real_programs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let served_dir = tmp.path().join("served");
    fs::create_dir_all(&served_dir).unwrap();
    let greet_c = tarball("greet-c", "greet-c-1.0", &served_dir);
    let hello_cmake = tarball("hello-cmake", "hello-cmake-1.0", &served_dir);
    let greet_perl = tarball("greet-perl", "greet-perl-1.0", &served_dir);
    let greet_py = tarball("greet-py", "greet-py-1.0", &served_dir);
    let greet_pp = tarball("greet-pyproject", "greet-pyproject-2.0", &served_dir);
    let (commit, notes) = notes_repository(tmp.path(), &served_dir);
    let served = Served::new(&served_dir);
    let base = served.url("");
    let text = fs::read_to_string(fixtures().join("packages.scm.in"))
        .unwrap()
        .replace("@URL@/", &base)
        .replace("@DEAD@", &dead_port().to_string())
        .replace("@GREET_C@", &greet_c)
        .replace("@HELLO_CMAKE@", &hello_cmake)
        .replace("@GREET_PERL@", &greet_perl)
        .replace("@GREET_PY@", &greet_py)
        .replace("@GREET_PP@", &greet_pp)
        .replace("@COMMIT@", &commit)
        .replace("@NOTES@", &notes);
    let file = tmp.path().join("packages.scm");
    fs::write(&file, text).unwrap();
    // Making the two toolchains (the base and the build tools' variant) takes longer than
    // this budget; it is not evaluation time.
    let drv = ok_str(
        at(&root)
            .args(["eval", "--max-eval-seconds", "5"])
            .arg(&file),
    );
    let outs = ok_str(
        at(&root)
            .args(["build", "-q", "--host-loopback"])
            .arg(&file),
    );
    drop(served);
    let logical: Vec<String> = outs.lines().map(str::to_owned).collect();
    // Wrapped programs name the store at its logical directory: `guixie run` shows it there.
    let run_logical = |i: usize, program: &str| {
        ok_str(
            at(&root)
                .arg("run")
                .arg(format!("{}/{program}", logical[i])),
        )
    };
    let outs: Vec<PathBuf> = outs.lines().map(|o| real(&root, o)).collect();
    assert_eq!(outs.len(), 7, "{outs:?}");
    let [greet_c, hello_cmake, greet_perl, greet_py, greet_pp, notes, utils] = &outs[..] else {
        unreachable!()
    };

    // The patched source: the patch changed the message, the snippet deleted a file and
    // edited the Makefile (the build log shows the flag).
    assert_eq!(
        run(&mut Command::new(greet_c.join("bin/greet"))),
        "hello from the patched greet-c\n"
    );
    let greet_drv = drv.lines().next().unwrap();
    let log = ok_str(at(&root).arg("log").arg(greet_drv));
    assert!(log.contains("-O2 -o greet"), "{log}");
    // The patched source is the build's input, a reproducible tarball of its own.
    let greet_text = fs::read_to_string(real(&root, greet_drv)).unwrap();
    let patched = store_path_ending(&greet_text, "-greet-c-1.0.tar.xz")
        .unwrap_or_else(|| panic!("no patched source among the inputs: {greet_text}"));
    let listing = run(Command::new("tar").arg("tJf").arg(real(&root, &patched)));
    assert!(listing.contains("greet-c-1.0/greet.c"), "{listing}");
    assert!(!listing.contains("junk.txt"), "{listing}");
    // The repacked tarball is reproducible: rebuilt, it is bit for bit the same.
    let patched_drv = store_path_ending(&greet_text, "-greet-c-1.0.tar.xz.drv").unwrap();
    ok(at(&root).args(["build", "--check", &patched_drv]));

    // cmake, perl, python and pyproject each built and installed their program.
    assert_eq!(
        run(&mut Command::new(hello_cmake.join("bin/hello-cmake"))),
        "hello from cmake\n"
    );
    let site = run(Command::new("perl").args([
        "-MConfig",
        "-e",
        "print substr($Config{installsitelib}, 1 + length $Config{siteprefixexp})",
    ]));
    assert_eq!(
        run(Command::new("perl")
            .arg("-I")
            .arg(greet_perl.join(site))
            .arg(greet_perl.join("bin/greet-perl"))),
        "hello from perl\n"
    );
    assert_eq!(run_logical(3, "bin/greet-py"), "hello from python");
    assert_eq!(run_logical(4, "bin/greet-pp"), "hello from pyproject");
    for (out, site) in [(greet_py, "greet"), (greet_pp, "greet_pp")] {
        assert!(out.join("lib/python3/dist-packages").join(site).is_dir());
    }
    let pp_log = ok_str(at(&root).arg("log").arg(drv.lines().nth(4).unwrap()));
    assert!(pp_log.contains("Ran 1 test"), "{pp_log}");

    // The git checkout of the first commit, installed by the copy build system's plan.
    assert!(
        notes
            .to_string_lossy()
            .ends_with(&format!("-notes-0.1-1.{}", &commit[..7])),
        "{}",
        notes.display()
    );
    assert_eq!(
        fs::read_to_string(notes.join("share/notes/notes.txt")).unwrap(),
        "first notes\n"
    );
    assert!(notes.join("share/doc/notes/guide.md").exists());
    assert!(!notes.join("share/doc/notes/skip.txt").exists());
    // A directory without filters, into a directory: installed under its own name.
    assert!(notes.join("share/all/docs/skip.txt").exists());
    assert_eq!(run(&mut Command::new(notes.join("bin/notes"))), "notes\n");

    // (guix build utils) on the build side, (guix config) and specification->package.
    assert_eq!(
        fs::read_to_string(utils.join("config")).unwrap(),
        "guixie /gnu/store"
    );
    assert_eq!(
        fs::read_to_string(utils.join("found")).unwrap(),
        "hello-cmake\n"
    );
    assert_eq!(fs::read_to_string(utils.join("left")).unwrap(), "left");
    let wrapper = fs::read_to_string(utils.join("bin/hello-cmake")).unwrap();
    assert!(
        wrapper.contains("export GREETER='utils-check'"),
        "{wrapper}"
    );
    assert_eq!(run_logical(6, "bin/hello-cmake"), "hello from cmake");

    // The build tools are a toolchain variant of their own: pinning the base toolchain
    // alone refuses it; pinning both accepts it.
    let toolchain_hash = |drv: &str| -> String {
        let text = fs::read_to_string(real(&root, drv)).unwrap();
        let start = text.find("\"guixieToolchain\",\"").unwrap() + "\"guixieToolchain\",\"".len();
        let path = &text[start..start + text[start..].find('"').unwrap()];
        let info: serde_json::Value =
            serde_json::from_slice(&ok(at(&root).args(["--json", "store", "info", path]))).unwrap();
        info["narHash"].as_str().unwrap().to_owned()
    };
    let drvs: Vec<&str> = drv.lines().collect();
    let (base, tools) = (toolchain_hash(drvs[0]), toolchain_hash(drvs[1]));
    assert_ne!(base, tools);
    let e = fails(
        at(&root)
            .env("GUIXIE_BOOTSTRAP_SHA256", &base)
            .arg("eval")
            .arg(&file),
    );
    let e = String::from_utf8_lossy(&e.stderr);
    assert!(
        e.contains("GUIXIE_BOOTSTRAP_SHA256 pins") && e.contains("cmake"),
        "{e}"
    );
    ok(at(&root)
        .env("GUIXIE_BOOTSTRAP_SHA256", format!("{base}, {tools}"))
        .arg("eval")
        .arg(&file));
}

#[test]
fn origin_errors_name_their_form() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let hash = "0".repeat(52);
    let eval = |body: &str| {
        let f = tmp.path().join("origin.scm");
        fs::write(
            &f,
            format!(
                "(use-modules (guix packages) (guix download) (guix git-download) (gnu packages)\n\
                   (guix build-system python))\n\
                 (origin {body} (sha256 (base32 \"{hash}\")))\n"
            ),
        )
        .unwrap();
        let out = at(&root).arg("eval").arg(&f).output().unwrap();
        (f, out)
    };
    // An origin's `.drv` holds `urls`.
    let lowered = |body: &str| -> String {
        let (_, out) = eval(body);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let drv = String::from_utf8(out.stdout).unwrap();
        fs::read_to_string(real(&root, drv.trim())).unwrap()
    };
    // mirror:// is expanded into Guix's mirror list, tried in order.
    let text = lowered("(method url-fetch) (uri \"mirror://gnu/hello/hello-2.12.tar.gz\")");
    assert!(
        text.contains(
            "https://ftpmirror.gnu.org/gnu/hello/hello-2.12.tar.gz https://ftp.gnu.org/gnu/hello/hello-2.12.tar.gz"
        ),
        "{text}"
    );
    // The importers' URI helper for PyPI.
    let text = lowered("(method url-fetch) (uri (pypi-uri \"greet\" \"1.0\"))");
    assert!(
        text.contains("https://files.pythonhosted.org/packages/source/g/greet/greet-1.0.tar.gz"),
        "{text}"
    );
    let bad = |body: &str, wanted: &str| {
        let (f, out) = eval(body);
        assert!(!out.status.success(), "{body} was accepted");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains(&format!("{}:3:", f.display())) && e.contains(wanted),
            "{body}: {e}"
        );
    };
    bad(
        "(method url-fetch) (uri \"mirror://nowhere/x.tar.gz\")",
        "no mirror list `nowhere'",
    );
    bad(
        "(method url-fetch) (uri 42)",
        "uri must be a URL string or a list of them",
    );
    bad(
        "(method git-fetch) (uri \"https://example.org/x.git\")",
        "git-fetch needs (git-reference",
    );
    bad(
        "(method url-fetch) (uri \"https://example.org/x.tar.gz\") (patches (search-patches \"missing.patch\"))",
        "no patch \"missing.patch\"",
    );
    bad(
        "(method url-fetch) (uri \"https://example.org/x.tar.gz\") (patch-inputs '())",
        "unknown field `patch-inputs'",
    );
}

/// `git daemon` serving `dir` on the host's loopback (Git's own protocol, which allows
/// shallow fetches of a commit or a tag), stopped when dropped.
fn git_daemon(dir: &Path) -> Served {
    Served::spawn(|port| {
        let mut cmd = Command::new("git");
        cmd.arg("daemon")
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", dir.display()))
            .arg(dir);
        cmd
    })
}

#[test]
fn git_fetch_of_a_tag_is_shallow_and_a_wrong_hash_registers_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let served_dir = tmp.path().join("served");
    fs::create_dir_all(&served_dir).unwrap();
    let (commit, hash) = notes_repository(tmp.path(), &served_dir);
    git(&served_dir.join("notes.git"), &["tag", "v0.1", &commit]);
    let daemon = git_daemon(&served_dir);
    let origin = |reference: &str, hash: &str| {
        let file = tmp.path().join("origin.scm");
        fs::write(
            &file,
            format!(
                "(use-modules (guix git-download))\n\
                 (origin (method git-fetch)\n\
                   (uri (git-reference (url \"git://10.0.2.2:{}/notes.git\") (commit \"{reference}\")))\n\
                   (file-name \"notes-checkout\") (sha256 (base32 \"{hash}\")))\n",
                daemon.port
            ),
        )
        .unwrap();
        file
    };
    // A tag, fetched shallow (the log says no full fetch was needed): the tagged commit.
    let file = origin("v0.1", &hash);
    let out = ok_str(
        at(&root)
            .args(["build", "-q", "--host-loopback"])
            .arg(&file),
    );
    assert_eq!(
        fs::read_to_string(real(&root, &out).join("notes.txt")).unwrap(),
        "first notes\n"
    );
    let drv = ok_str(at(&root).arg("eval").arg(&file));
    let log = ok_str(at(&root).arg("log").arg(&drv));
    assert!(!log.contains("fetching everything"), "{log}");
    assert!(!real(&root, &out).join(".git").exists());

    // A wrong hash: the build fails, naming both hashes, and nothing is registered.
    let wrong = "1".repeat(52);
    let file = origin(&commit, &wrong);
    let out = fails(at(&root).args(["build", "--host-loopback"]).arg(&file));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("but the derivation declares"), "{e}");
    let valid = ok_str(at(&root).args(["store", "ls"]));
    // Only the tag's checkout, not the wrongly hashed one.
    let checkouts = valid.lines().filter(|l| l.ends_with("-notes-checkout"));
    assert_eq!(checkouts.count(), 1, "{valid}");
}

#[test]
fn package_modules_may_use_each_other_in_a_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let left = ok_str(at(&root).args(["build", "-q", "left-tool"]));
    let right = ok_str(at(&root).args(["build", "-q", "right-tool"]));
    assert_eq!(
        fs::read_to_string(real(&root, left.trim())).unwrap(),
        "right"
    );
    assert_eq!(
        fs::read_to_string(real(&root, right.trim())).unwrap(),
        "left"
    );
    // A module that needs a cyclic partner's package while it loads (not in a thunked
    // field) fails with the name and place, as in Guix.
    let dir = tmp.path().join("modules/eager");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("one.scm"),
        "(define-module (eager one) #:use-module (eager two))\n\
         (define-public one-name (string-append \"one+\" two-name))\n",
    )
    .unwrap();
    fs::write(
        dir.join("two.scm"),
        "(define-module (eager two) #:use-module (eager one))\n\
         (define-public two-name (string-append \"two+\" one-name))\n",
    )
    .unwrap();
    let f = tmp.path().join("use.scm");
    fs::write(&f, "(use-modules (eager one))\none-name\n").unwrap();
    let out = fails(
        at(&root)
            .arg("-L")
            .arg(tmp.path().join("modules"))
            .arg("eval")
            .arg(&f),
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("two.scm:2:1:") && e.contains("one-name"), "{e}");
}
