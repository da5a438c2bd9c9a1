//! User environments: `guixie shell` (the store at its logical directory, `--pure`,
//! `--container`), `guixie run`, profiles with generations, and the inspection commands.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn at(root: &Path, home: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store").arg(root).env("HOME", home);
    c
}

/// A package whose program reads a file by its logical store path at run time.
const TOOL: &str = r#"
(define data (text-file "data.txt" "found through the logical store\n"))
(define (tool version)
  (derivation (string-append "tool-" version) "/bin/sh"
    (list "-c" (string-append
      "mkdir -p $out/bin; printf '#!/bin/sh\nread l < " (store-item-path data)
      "\necho \"$l (tool " version ")\"\n' > $out/bin/tool; chmod +x $out/bin/tool"))
    #:inputs (list data)))
(tool "VERSION")
"#;

fn tool_scm(dir: &Path, version: &str) -> PathBuf {
    let f = dir.join("tool.scm");
    std::fs::write(&f, TOOL.replace("VERSION", version)).unwrap();
    f
}

fn out_str(cmd: &mut Command) -> (bool, String, String) {
    let o = cmd.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn shell_maps_the_store_and_runs_programs_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (root, home) = (dir.path().join("store"), dir.path().join("home"));
    std::fs::create_dir(&home).unwrap();
    let scm = tool_scm(dir.path(), "1.0");
    let out = ok_str(at(&root, &home).args(["build", "-q"]).arg(&scm));
    let out = out.trim();
    let said = ok_str(at(&root, &home).arg("shell").arg(&scm).args(["--", "tool"]));
    assert_eq!(said, "found through the logical store (tool 1.0)");
    // The same program outside the mapping cannot find its own store reference.
    let real = root.join(out.trim_start_matches('/')).join("bin/tool");
    let (ok_outside, said_outside, _) = out_str(&mut Command::new(&real));
    assert!(
        !ok_outside || !said_outside.contains("found"),
        "the file exists at its logical path on the host, so this proves nothing"
    );
    // `guixie run`, by logical and by physical path.
    let logical = format!("{out}/bin/tool");
    assert_eq!(ok_str(at(&root, &home).args(["run", &logical])), said);
    assert_eq!(ok_str(at(&root, &home).arg("run").arg(&real)), said);
    // The exit status is the program's.
    let status = at(&root, &home)
        .args(["shell", out, "--", "sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));

    // Not pure: the caller's environment is kept; pure: only the packages and a few.
    let env_of = |pure: bool| {
        let mut c = at(&root, &home);
        c.arg("shell").env("GUIXIE_TEST_VAR", "outside");
        if pure {
            c.arg("--pure");
        }
        ok_str(c.args([out, "--", "/usr/bin/env"]))
    };
    let kept = env_of(false);
    assert!(kept.contains("GUIXIE_TEST_VAR=outside"), "{kept}");
    assert!(kept.contains(&format!("PATH={out}/bin:")), "{kept}");
    let pure = env_of(true);
    assert!(!pure.contains("GUIXIE_TEST_VAR"), "{pure}");
    let line = |l: String| pure.lines().any(|x| x == l);
    assert!(line(format!("PATH={out}/bin")), "{pure}");
    assert!(line(format!("GUIXIE_ENVIRONMENT={out}")), "{pure}");

    // A signal sent to guixie reaches the program, which can clean up.
    let mut trapped = at(&root, &home)
        .args(["shell", out, "--", "sh", "-c"])
        .arg("trap 'echo got-TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(trapped.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(trapped.id() as i32, libc::SIGTERM) };
    line.clear();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert_eq!(line, "got-TERM\n");
    assert_eq!(trapped.wait().unwrap().code(), Some(3));

    // --check says the environment is complete here (sh keeps PATH).
    let (fine, report, _) = out_str(
        at(&root, &home)
            .env("SHELL", "/bin/sh")
            .args(["shell", "--check", out]),
    );
    assert!(fine, "{report}");
}

#[test]
fn a_container_sees_only_its_packages_and_no_network() {
    let dir = tempfile::tempdir().unwrap();
    let (root, home) = (dir.path().join("store"), dir.path().join("home"));
    std::fs::create_dir(&home).unwrap();
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.scm");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let marker = dir.path().join("outside-marker");
    std::fs::write(&marker, "x").unwrap();
    let said = ok_str(
        at(&root, &home)
            .current_dir(&work)
            .args(["shell", "-C"])
            .arg(&hello)
            .args(["--", "hello"]),
    );
    assert_eq!(said, "Hello, world!");
    // Shell built-ins only: the container's PATH holds nothing else.
    let script = format!(
        "[ -e {marker} ] && echo host-file-visible; [ -e /gnu/store ] || echo no-store; \
         while read l; do case $l in *:*) echo \"if ${{l%%:*}}\";; esac; done < /proc/net/dev; \
         [ -d {work} ] && echo cwd-shared; command -v ls >/dev/null && echo ls-found; echo done",
        marker = marker.display(),
        work = work.display()
    );
    let seen = ok_str(
        at(&root, &home)
            .current_dir(&work)
            .args(["shell", "-C"])
            .arg(&hello)
            .args(["--", "sh", "-c", &script]),
    );
    assert!(!seen.contains("host-file-visible"), "{seen}");
    assert!(!seen.contains("no-store"), "{seen}");
    assert!(!seen.contains("ls-found"), "{seen}");
    assert!(seen.contains("cwd-shared"), "{seen}");
    let interfaces: Vec<&str> = seen.lines().filter(|l| l.starts_with("if ")).collect();
    assert_eq!(interfaces, ["if lo"], "{seen}");
    // The current directory is shared, so it may not hold the store (its keys, its database).
    let refused = fails(
        at(&root, &home)
            .current_dir(dir.path())
            .args(["shell", "-C"])
            .arg(&hello)
            .args(["--", "hello"]),
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("would share the store"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Positive control: without --container the same script sees the host.
    let host = ok_str(
        at(&root, &home)
            .current_dir(&work)
            .arg("shell")
            .arg(&hello)
            .args(["--", "sh", "-c", &script]),
    );
    assert!(
        host.contains("host-file-visible") && host.contains("ls-found"),
        "{host}"
    );
}

#[test]
fn profiles_have_generations_that_roll_back_and_hold_their_packages() {
    let dir = tempfile::tempdir().unwrap();
    let (root, home) = (dir.path().join("store"), dir.path().join("home"));
    std::fs::create_dir(&home).unwrap();
    let scm = tool_scm(dir.path(), "1.0");
    ok(at(&root, &home).arg("install").arg(&scm));
    let profile = home.join(".guixie-profile");
    assert_eq!(
        ok_str(
            at(&root, &home)
                .arg("shell")
                .arg("-p")
                .arg(&profile)
                .args(["--", "tool"])
        ),
        "found through the logical store (tool 1.0)"
    );
    // A new version of the file: upgrade makes generation 2.
    tool_scm(dir.path(), "2.0");
    let (_, _, said) = out_str(at(&root, &home).arg("upgrade"));
    assert!(said.contains("upgrading tool 1.0 → 2.0"), "{said}");
    let listed = ok_str(at(&root, &home).args(["package", "--list-generations"]));
    assert!(
        listed.contains("Generation 1") && listed.contains("Generation 2\t"),
        "{listed}"
    );
    assert!(listed
        .lines()
        .any(|l| l.starts_with("Generation 2") && l.ends_with("(current)")));
    let in_profile = |expect: &str| {
        let said = ok_str(
            at(&root, &home)
                .arg("shell")
                .arg("-p")
                .arg(&profile)
                .args(["--", "tool"]),
        );
        assert!(said.contains(expect), "{said}");
    };
    in_profile("tool 2.0");
    ok(at(&root, &home).args(["package", "--roll-back"]));
    in_profile("tool 1.0");
    ok(at(&root, &home).args(["package", "--switch-generation", "2"]));
    in_profile("tool 2.0");
    // GC keeps what every generation holds.
    let installed = |n: u32| -> String {
        let link = std::fs::read_link(home.join(format!(".guixie-profile-{n}-link"))).unwrap();
        let refs = ok_str(at(&root, &home).arg("gc").arg("--references").arg(&link));
        refs.lines()
            .find(|l| l.contains("-tool-"))
            .unwrap()
            .to_owned()
    };
    let (v1, v2) = (installed(1), installed(2));
    ok(at(&root, &home).arg("gc"));
    ok(at(&root, &home).args(["store", "info", &v1]));
    let roots = ok_str(at(&root, &home).args(["store", "ls", "--roots"]));
    assert!(
        roots.contains(".guixie-profile-1-link") && roots.contains(".guixie-profile-2-link"),
        "{roots}"
    );
    // Deleting generation 1 frees what only it held; the current one cannot be deleted.
    fails(at(&root, &home).args(["package", "--delete-generations", "2"]));
    ok(at(&root, &home).args(["package", "--delete-generations", "1"]));
    ok(at(&root, &home).arg("gc"));
    fails(at(&root, &home).args(["store", "info", &v1]));
    ok(at(&root, &home).args(["store", "info", &v2]));
    in_profile("tool 2.0");
    // Remove, and the inspection commands.
    ok(at(&root, &home).args(["remove", "tool"]));
    let installed_now = ok_str(at(&root, &home).args(["package", "-I"]));
    assert!(installed_now.is_empty(), "{installed_now}");
    // A manifest file makes the profile exactly what it names.
    ok(at(&root, &home).args(["package", "-m"]).arg(&scm));
    let from_manifest = ok_str(at(&root, &home).args(["package", "-I"]));
    assert!(from_manifest.starts_with("tool\t2.0\t"), "{from_manifest}");
    let size = ok_str(at(&root, &home).arg("size").arg(&v2));
    assert!(
        size.contains(&v2) && size.contains("data.txt") && size.contains("total:"),
        "{size}"
    );
    let referrers = ok_str(at(&root, &home).arg("gc").arg("--referrers").arg(&v2));
    assert!(referrers.contains("-profile"), "{referrers}");
    let requisites = ok_str(at(&root, &home).arg("gc").arg("--requisites").arg(&v2));
    assert!(
        requisites.contains("data.txt") && requisites.contains(&v2),
        "{requisites}"
    );
}

#[test]
fn a_kill_during_a_switch_leaves_one_whole_generation() {
    let dir = tempfile::tempdir().unwrap();
    let (root, home) = (dir.path().join("store"), dir.path().join("home"));
    std::fs::create_dir(&home).unwrap();
    let one = tool_scm(dir.path(), "1.0");
    ok(at(&root, &home).arg("install").arg(&one));
    let profile = home.join(".guixie-profile");
    for i in 0..12u64 {
        let mut child = at(&root, &home)
            .args(["package", "--switch-generation", "1", "--roll-back"])
            .args(["-i"])
            .arg(&one)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3 * i));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever was interrupted, the profile is a generation whose manifest reads.
        let generation = std::fs::read_link(&profile).unwrap();
        let item = std::fs::read_link(home.join(&generation)).unwrap();
        let real = root.join(item.to_string_lossy().trim_start_matches('/'));
        let manifest = std::fs::read_to_string(real.join("manifest")).unwrap();
        assert!(manifest.contains("\"tool\""), "{manifest}");
        ok(at(&root, &home).args(["package", "-I"]));
    }
    ok(at(&root, &home).args(["store", "verify"]));
}

/// Run as root, the same as an unprivileged user (`setpriv`): the view then comes from a user
/// namespace and a chroot, with the user's own id inside.
#[test]
fn an_unprivileged_user_gets_the_same_view() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("skipping: needs root and setpriv to become another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let scm = tool_scm(&home, "1.0");
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&home)
        .status()
        .unwrap();
    assert!(chown.success());
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_guixie"))
            .arg("--store")
            .arg(home.join("store"))
            .args(args)
            .env("HOME", &home)
            .env_remove("GUIXIE_STORE");
        c
    };
    let scm = scm.to_str().unwrap();
    ok(&mut as_nobody(&["build", "-q", scm]));
    let said = ok_str(&mut as_nobody(&["shell", scm, "--", "tool"]));
    assert_eq!(said, "found through the logical store (tool 1.0)");
    let id = ok_str(&mut as_nobody(&[
        "shell",
        scm,
        "--",
        "sh",
        "-c",
        "id -u; touch $HOME/made",
    ]));
    assert_eq!(id, "65534");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(home.join("made")).unwrap().uid(), 65534);
}

#[test]
fn concurrent_installs_keep_both_packages() {
    let dir = tempfile::tempdir().unwrap();
    let (root, home) = (dir.path().join("store"), dir.path().join("home"));
    std::fs::create_dir(&home).unwrap();
    let pkg = |name: &str, delay: &str| {
        let f = dir.path().join(format!("{name}.scm"));
        std::fs::write(
            &f,
            format!(
                "(derivation \"{name}\" \"/bin/sh\" '(\"-c\" \"sleep {delay}; mkdir -p $out/bin; echo > $out/bin/{name}\"))\n"
            ),
        )
        .unwrap();
        f
    };
    let (slow, quick) = (pkg("slow", "2"), pkg("quick", "0"));
    let mut first = at(&root, &home).arg("install").arg(&slow).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    ok(at(&root, &home).arg("install").arg(&quick));
    assert!(first.wait().unwrap().success());
    let installed = ok_str(at(&root, &home).args(["package", "-I"]));
    assert!(
        installed.contains("slow") && installed.contains("quick"),
        "{installed}"
    );
}
