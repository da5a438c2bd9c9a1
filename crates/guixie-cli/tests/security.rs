//! Attacks on the sandbox and the store, tried as a hostile package author, a concurrent build
//! or another local user would (the classes published against Nix, Lix and Guix daemons; see
//! docs/security.md). Each is judged from outside the sandbox, by what the host sees, and each
//! has a positive control: the same attack run on the host without the sandbox, which the
//! detector must catch. Every scenario runs as root and as an unprivileged user.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A store and the binaries, owned so that `user` (or root, for `None`) can use them.
struct Sandbox {
    dir: tempfile::TempDir,
    user: Option<&'static str>,
}

const TEST_USER: &str = "guixie-test";

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl Sandbox {
    fn new(user: Option<&'static str>) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        if let Some(u) = user {
            if !Command::new("id").arg(u).output().unwrap().status.success() {
                ok(Command::new("useradd").args(["--no-create-home", "--shell", "/bin/sh", u]));
            }
            for bin in ["guixie", "guixie-sandbox"] {
                let from = Path::new(env!("CARGO_BIN_EXE_guixie")).with_file_name(bin);
                fs::copy(&from, dir.path().join(bin)).unwrap();
            }
            ok(Command::new("chown").arg(u).arg(dir.path()));
        }
        Sandbox { dir, user }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command run as this sandbox's user.
    fn run(&self, program: &str) -> Command {
        match self.user {
            None => Command::new(program),
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--", program]);
                c
            }
        }
    }

    fn guixie(&self) -> Command {
        let bin = match self.user {
            None => PathBuf::from(env!("CARGO_BIN_EXE_guixie")),
            Some(_) => self.path().join("guixie"),
        };
        let mut c = self.run(bin.to_str().unwrap());
        c.env_remove("GUIXIE_STORE")
            .env_remove("GUIXIE_STORE_DIR")
            .arg("--store")
            .arg(self.store());
        c
    }

    fn store(&self) -> PathBuf {
        self.path().join("store")
    }

    /// Writes a file the sandbox's user can read.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    /// A raw derivation running `script` under /bin/sh, with `inputs` (store paths).
    fn derivation(
        &self,
        name: &str,
        script: &str,
        inputs: &[&str],
        fixed: Option<&str>,
    ) -> PathBuf {
        let inputs: String = inputs.iter().map(|i| format!(" \"{i}\"")).collect();
        let fixed = fixed
            .map(|h| format!(" #:hash \"{h}\""))
            .unwrap_or_default();
        self.write(
            &format!("{name}.scm"),
            &format!(
                "(derivation \"{name}\" \"/bin/sh\" (list \"-c\" \"{}\") #:inputs (list{inputs}){fixed})\n",
                script.replace('\\', "\\\\").replace('"', "\\\"")
            ),
        )
    }

    fn build(&self, file: &Path, extra: &[&str]) -> Output {
        self.guixie()
            .arg("build")
            .arg("-q")
            .args(extra)
            .arg(file)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The physical location of a logical store path.
    fn real(&self, logical: &str) -> PathBuf {
        self.store().join(logical.trim_start_matches('/'))
    }

    /// The statically linked attack program (attacks/attack.c), in the store.
    fn attack_program(&self) -> String {
        let bin = self.path().join("attack");
        ok(Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks/attack.c")));
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        ok_str(self.guixie().args(["store", "add"]).arg(&bin))
    }

    fn verify_clean(&self) {
        ok(self.guixie().args(["store", "verify"]));
    }
}

/// Whether the sandbox's user can give fixed-output builds a network (slirp4netns opens
/// `/dev/net/tun` as that user); when not, such builds must fail and say why.
fn fixed_output_network(s: &Sandbox) -> bool {
    let usable = s
        .run("/bin/sh")
        .args(["-c", "test -r /dev/net/tun -a -w /dev/net/tun"])
        .status()
        .unwrap()
        .success();
    if !usable {
        let file = s.derivation(
            "no-tun",
            "echo x > $out",
            &[],
            Some(&format!("sha256:{}", "0".repeat(64))),
        );
        let text = error_and_log(&s.build(&file, &[]).stderr);
        assert!(text.contains("/dev/net/tun"), "no-tun: {text}");
        eprintln!(
            "{:?}: /dev/net/tun is not usable: fixed-output scenarios skipped",
            s.user
        );
    }
    usable
}

fn each_identity(scenario: impl Fn(&Sandbox)) {
    scenario(&Sandbox::new(None));
    if running_as_root() {
        scenario(&Sandbox::new(Some(TEST_USER)));
    } else {
        eprintln!("not root: the unprivileged run is the only one");
    }
}

/// The directory a `--keep-failed` error names.
fn kept_dir(text: &str) -> PathBuf {
    let kept = text
        .split("build directory kept at ")
        .nth(1)
        .unwrap_or_else(|| panic!("no kept directory named: {text}"));
    PathBuf::from(kept.lines().next().unwrap().trim())
}

/// Host uids a `uid_map` maps to.
fn mapped_host_uids(uid_map: &str) -> Vec<u64> {
    uid_map
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

#[test]
fn a_build_never_is_or_maps_to_host_root_and_sees_no_host_identity() {
    // Positive control: without a sandbox, the map names host uid 0 and the boot id is there.
    let host_map = fs::read_to_string("/proc/self/uid_map").unwrap();
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    if running_as_root() {
        assert!(
            mapped_host_uids(&host_map).contains(&0),
            "detector: {host_map}"
        );
    }
    each_identity(|s| {
        let script = "cat /proc/self/uid_map > $out; cat /proc/sys/kernel/random/boot_id >> $out; \
                      echo 60 2>> $out > /proc/sys/vm/overcommit_ratio; touch /build/mine; exit 1";
        let file = s.derivation("identity", script, &[], None);
        let failed = s.build(&file, &["--keep-failed"]);
        assert!(!failed.status.success());
        let text = error_and_log(&failed.stderr);
        let kept = kept_dir(&text);
        let file = s.derivation("identity-out", &script.replace("exit 1", "true"), &[], None);
        let built = s.build(&file, &[]);
        assert!(built.status.success(), "{}", error_and_log(&built.stderr));
        let out =
            fs::read_to_string(s.real(String::from_utf8_lossy(&built.stdout).trim())).unwrap();
        let uids = mapped_host_uids(&out);
        assert!(
            !uids.is_empty() && !uids.contains(&0),
            "maps to host root: {out}"
        );
        assert!(
            !out.contains(boot_id.trim()),
            "the host's boot id is visible"
        );
        assert!(
            out.contains("Read-only file system"),
            "/proc/sys is writable: {out}"
        );
        // The build's own file, seen from the host, is owned by the build user, never root
        // (root mode) or by the invoking user (unprivileged).
        if s.user.is_none() && running_as_root() {
            use std::os::unix::fs::MetadataExt;
            assert!(uids[0] >= 0x7000_0000, "build user {}", uids[0]);
            // Kept for inspection, it is handed back to the invoking user (root here).
            assert_eq!(fs::symlink_metadata(kept.join("mine")).unwrap().uid(), 0);
        }
        s.verify_clean();
    });
}

#[test]
fn build_areas_are_private_and_kept_failures_are_defused() {
    let snoop = |path: &Path| -> bool {
        // Whether the other local user can list, read or run anything at `path`.
        let p = path.display().to_string();
        Command::new("runuser")
            .args(["-u", "nobody", "--", "/bin/sh", "-c"])
            .arg(format!(
                "ls {p} >/dev/null 2>&1 || cat {p}/suid >/dev/null 2>&1 || test -x {p}/suid"
            ))
            .status()
            .unwrap()
            .success()
    };
    if !running_as_root() {
        eprintln!("skipping: needs root to act as another local user");
        return;
    }
    // Positive control: a world-readable directory is seen by the other user.
    let open_dir = tempfile::tempdir().unwrap();
    fs::set_permissions(open_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(open_dir.path().join("suid"), "x").unwrap();
    let mut parent = open_dir.path().to_path_buf();
    while let Some(p) = parent.parent() {
        let _ = fs::set_permissions(&parent, fs::Permissions::from_mode(0o755));
        parent = p.to_path_buf();
        if parent == Path::new("/tmp") {
            break;
        }
    }
    assert!(snoop(open_dir.path()), "detector");
    each_identity(|s| {
        let script =
            "cp /bin/sh /build/suid; chmod 6755 /build/suid; touch /build/ready; sleep 20; exit 1";
        let file = s.derivation("private", script, &[], None);
        let mut child = s
            .guixie()
            .args(["build", "--keep-failed"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let builds = s.store().join("var/guixie/builds");
        let start = Instant::now();
        let build_dir = loop {
            let found = fs::read_dir(&builds).ok().and_then(|d| {
                d.flatten()
                    .map(|e| e.path().join("w/build"))
                    .find(|b| b.join("ready").exists())
            });
            if let Some(b) = found {
                break b;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the build never got ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            !snoop(&build_dir),
            "another user reaches the running build's directory"
        );
        assert!(!snoop(&builds), "another user lists the build areas");
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        );
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        child.wait().unwrap();
        // Built again to its end: kept, nothing in it may be setuid, setgid or privileged.
        let file = s.derivation(
            "kept",
            "cp /bin/sh /build/suid; chmod 6755 /build/suid; mkdir /build/d; chmod 2777 /build/d; exit 1",
            &[],
            None,
        );
        let failed = s.build(&file, &["--keep-failed"]);
        let text = error_and_log(&failed.stderr);
        let kept = kept_dir(&text);
        for f in ["suid", "d"] {
            let mode = fs::symlink_metadata(kept.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7000, 0, "{f} keeps mode {mode:o}");
        }
        assert!(!snoop(&kept), "another user reaches the kept build");
        s.verify_clean();
    });
}

/// A Python listener on an abstract Unix socket, standing for a process outside the build that
/// receives a descriptor and writes through it later.
fn descriptor_thief(name: &str, wait_seconds: u32) -> std::process::Child {
    let script = format!(
        r#"
import socket, os, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0{name}")
s.listen(1)
print("listening", flush=True)
s.settimeout(float(sys.argv[1]))
try:
    c, _ = s.accept()
except socket.timeout:
    print("nobody came", flush=True)
    sys.exit(0)
msg, fds, flags, addr = socket.recv_fds(c, 1, 1)
print("got", len(fds), flush=True)
sys.stdin.readline()
os.pwrite(fds[0], b"evil\n", 0)
print("written", flush=True)
"#
    );
    let mut thief = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(wait_seconds.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Only once it listens may the attack start.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let out = thief.stdout.as_mut().unwrap();
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    assert_eq!(line, b"listening", "the thief did not start");
    thief
}

fn finish_thief(mut thief: std::process::Child) -> String {
    use std::io::Write;
    let _ = thief.stdin.take().unwrap().write_all(b"go\n");
    let out = thief.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn outputs_cannot_be_changed_through_a_smuggled_descriptor() {
    let good_hash = {
        use std::io::Write;
        let mut p = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin.take().unwrap().write_all(b"good\n").unwrap();
        let out = p.wait_with_output().unwrap();
        let hex = String::from_utf8_lossy(&out.stdout);
        format!("sha256:{}", hex.split_whitespace().next().unwrap())
    };
    // Positive control: the attack program run on the host hands its file over, and the thief
    // rewrites it.
    let probe = Sandbox::new(None);
    let attack = probe.attack_program();
    let name = format!("guixie-thief-{}", std::process::id());
    let thief = descriptor_thief(&name, 30);
    let host_file = probe.path().join("f");
    ok(Command::new(probe.real(&attack))
        .args(["sendfd", &name])
        .arg(&host_file));
    let said = finish_thief(thief);
    assert!(said.contains("written"), "detector: {said}");
    assert_eq!(
        fs::read_to_string(&host_file).unwrap(),
        "evil\n",
        "detector"
    );
    each_identity(|s| {
        let attack = s.attack_program();
        if !fixed_output_network(s) {
            return;
        }
        // A fixed-output build has a network, but in a namespace of its own: the thief, on
        // the host's abstract socket, never gets the descriptor (and had it got one, it would
        // write through it only once the output is registered).
        let name = format!(
            "guixie-thief-{}-{}",
            std::process::id(),
            s.user.unwrap_or("root")
        );
        let thief = descriptor_thief(&name, 2);
        let script = format!("{attack} sendfd {name} $out");
        let file = s.derivation("smuggle-fixed", &script, &[&attack], Some(&good_hash));
        let built = s.build(&file, &[]);
        assert!(built.status.success(), "{}", error_and_log(&built.stderr));
        let out = s.real(String::from_utf8_lossy(&built.stdout).trim());
        let said = finish_thief(thief);
        assert!(
            said.contains("nobody came"),
            "the build reached the host: {said}"
        );
        let log = ok(s
            .guixie()
            .arg("log")
            .arg(String::from_utf8_lossy(&built.stdout).trim()));
        assert!(
            String::from_utf8_lossy(&log).contains("connect"),
            "the attack did not run"
        );
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "good\n",
            "fixed output changed"
        );
        // An input-addressed build, whose background writer outlives the builder's exit.
        let file = s.derivation(
            "smuggle-late",
            "echo good > $out; (sleep 2; echo evil >> /proc/self/fd/9) 9>>$out & exit 0",
            &[],
            None,
        );
        let built = s.build(&file, &[]);
        assert!(built.status.success(), "{}", error_and_log(&built.stderr));
        std::thread::sleep(Duration::from_secs(3));
        let out = s.real(String::from_utf8_lossy(&built.stdout).trim());
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "good\n",
            "output changed later"
        );
        s.verify_clean();
    });
}

#[test]
fn no_extended_attribute_or_capability_reaches_the_store() {
    let xattrs = |p: &Path| -> Vec<String> {
        let mut buf = vec![0u8; 4096];
        let n = rustix::fs::llistxattr(p, &mut buf[..]).unwrap_or(0);
        buf[..n]
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    };
    // Positive control: on the host, the attack leaves both attributes.
    let probe = Sandbox::new(None);
    let attack = probe.attack_program();
    let host_file = probe.path().join("xattr-probe");
    ok(Command::new(probe.real(&attack))
        .arg("xattr")
        .arg(&host_file));
    assert!(
        xattrs(&host_file).contains(&"user.attack".to_owned()),
        "detector"
    );
    each_identity(|s| {
        let attack = s.attack_program();
        let file = s.derivation(
            "xattrs",
            &format!("mkdir $out; {attack} xattr $out/bin; {attack} xattr /build/kept; exit 1"),
            &[&attack],
            None,
        );
        let failed = s.build(&file, &["--keep-failed"]);
        let text = error_and_log(&failed.stderr);
        assert!(
            text.contains("user.attack set"),
            "the attack did not run: {text}"
        );
        let kept = kept_dir(&text);
        assert_eq!(
            xattrs(&kept.join("kept")),
            Vec::<String>::new(),
            "kept build"
        );
        let file = s.derivation(
            "xattrs-out",
            &format!("mkdir $out; {attack} xattr $out/bin"),
            &[&attack],
            None,
        );
        let built = s.build(&file, &[]);
        assert!(built.status.success(), "{}", error_and_log(&built.stderr));
        let out = s.real(String::from_utf8_lossy(&built.stdout).trim());
        assert_eq!(xattrs(&out.join("bin")), Vec::<String>::new());
        assert_eq!(xattrs(&out), Vec::<String>::new());
        s.verify_clean();
    });
}

#[test]
fn links_out_of_the_store_are_refused_and_cleanup_never_follows_them() {
    each_identity(|s| {
        // A host directory the build knows the path of.
        let victim = s.path().join("victim");
        fs::create_dir_all(victim.join("sub")).unwrap();
        fs::write(victim.join("sub/file"), "host").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
        let v = victim.display();
        for (name, script, expect) in [
            (
                "climb",
                "mkdir -p $out/a/b; ln -s ../../../../../etc/passwd $out/a/b/l".to_owned(),
                "climbs out of the store",
            ),
            (
                "absolute-dotdot",
                format!("mkdir $out; ln -s $NIX_STORE/../../{v} $out/l"),
                "points outside the store",
            ),
            (
                "cleanup",
                format!("mkdir -p /build/d/e; ln -s {v} /build/d/e/l; ln -s {v}/sub /build/x; chmod 0 /build/d; exit 1"),
                "failed",
            ),
        ] {
            let file = s.derivation(name, &script, &[], None);
            let out = s.build(&file, &[]);
            assert!(!out.status.success(), "{name} succeeded");
            let text = error_and_log(&out.stderr);
            assert!(text.contains(expect), "{name}: {text}");
        }
        assert_eq!(fs::read_to_string(victim.join("sub/file")).unwrap(), "host");
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o755
        );
        s.verify_clean();
        if !fixed_output_network(s) {
            return;
        }
        // A flat fixed output must be a regular file: a link to a host file is refused, and
        // the error does not give away that file's hash.
        let shadow = s.write("secret", "top secret\n");
        let file = s.derivation(
            "flat-link",
            &format!("ln -s {} $out", shadow.display()),
            &[],
            Some("sha256:0000000000000000000000000000000000000000000000000000000000000000"),
        );
        let out = s.build(&file, &[]);
        let text = error_and_log(&out.stderr);
        assert!(text.contains("must be a regular file"), "flat-link: {text}");
        // The detector: the secret's hash, as an error would print it.
        for to in ["nix32", "base16"] {
            let secret_hash = ok_str(
                s.guixie()
                    .args(["hash", "file", "--type", "sha256", "--to", to])
                    .arg(&shadow),
            );
            let digest = secret_hash.rsplit(':').next().unwrap().to_owned();
            assert!(digest.len() > 40, "detector: {secret_hash}");
            assert!(
                !text.contains(&digest),
                "the error gives away the secret's hash"
            );
        }
        s.verify_clean();
    });
}

#[test]
fn no_channel_back_to_the_session() {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::CommandExt;
    let leak_into = |cmd: &mut Command, fds: Vec<i32>| {
        // SAFETY: only async-signal-safe fcntl calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &fds {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
                Ok(())
            });
        }
    };
    let script = "echo reopened > /dev/stderr || exit 3; \
                  for fd in 3 4 5 6 7 8 9; do echo token >&$fd; done 2>/dev/null; \
                  ls /proc/self/fd > $out; echo x 2>> $out > /dev/tty; cut -d' ' -f7 /proc/self/stat >> $out; \
                  printf 'a\\033]52;c;ZXZpbA==\\007b\\033[2Jc\\n'";
    each_identity(|s| {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let dirfd: OwnedFd = fs::File::open(s.path()).unwrap().into();
        let fds = vec![theirs.as_raw_fd(), dirfd.as_raw_fd()];
        // Positive control: the same script on the host, with the same leak, reaches us.
        let mut control = s.run("/bin/sh");
        control.arg("-c").arg(script.replace("$out", "/dev/null"));
        leak_into(&mut control, fds.clone());
        control
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let mut got = [0u8; 64];
        let n = (&ours).read(&mut got).unwrap_or(0);
        assert!(
            String::from_utf8_lossy(&got[..n]).contains("token"),
            "detector"
        );
        let file = s.derivation("channel", script, &[], None);
        let mut cmd = s.guixie();
        cmd.args(["build", "-q", "--verbose"]).arg(&file);
        leak_into(&mut cmd, fds.clone());
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let n = (&ours).read(&mut got).unwrap_or(0);
        assert_eq!(n, 0, "the build wrote to a leaked descriptor");
        let built =
            fs::read_to_string(s.real(String::from_utf8_lossy(&out.stdout).trim())).unwrap();
        let fd_list: Vec<&str> = built
            .lines()
            .take_while(|l| l.parse::<u32>().is_ok())
            .collect();
        assert!(
            fd_list.iter().all(|fd| fd.parse::<u32>().unwrap() <= 3),
            "descriptors: {built}"
        );
        assert!(built.contains("/dev/tty"), "no /dev/tty error: {built}");
        assert_eq!(
            built.lines().last(),
            Some("0"),
            "has a controlling terminal: {built}"
        );
        // What the builder printed reaches the terminal without its escape sequences; the log
        // keeps them (the control: the payload was printed).
        assert!(
            !out.stderr.contains(&0x1b),
            "escape sequence on the terminal"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("abc"));
        let log = ok(s
            .guixie()
            .arg("log")
            .arg(String::from_utf8_lossy(&out.stdout).trim()));
        assert!(
            log.contains(&0x1b),
            "detector: the builder printed no escape"
        );
    });
}

#[test]
fn shared_memory_is_private_and_capped() {
    // Positive control: an uncapped tmpfs takes 100 MiB.
    let shm = Path::new("/dev/shm").join(format!("guixie-probe-{}", std::process::id()));
    if Path::new("/dev/shm").exists() {
        let wrote = Command::new("dd")
            .args(["if=/dev/zero", "bs=1M", "count=100"])
            .arg(format!("of={}", shm.display()))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let _ = fs::remove_file(&shm);
        assert!(wrote.success(), "detector");
    }
    each_identity(|s| {
        let file = s.derivation(
            "shm",
            "dd if=/dev/zero of=/dev/shm/fill bs=1M count=100 2>&1; ls /dev/shm > $out",
            &[],
            None,
        );
        let out = s.build(&file, &["--verbose"]);
        let text = error_and_log(&out.stderr);
        assert!(
            text.contains("No space left"),
            "/dev/shm took 100 MiB: {text}"
        );
        assert!(
            !Path::new("/dev/shm/fill").exists(),
            "the build wrote the host's /dev/shm"
        );
        s.verify_clean();
    });
}

#[test]
fn fixed_output_builds_reach_the_host_loopback_only_when_asked() {
    use std::net::TcpListener;
    each_identity(|s| {
        if !fixed_output_network(s) {
            return;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        // printf hello: the output the declared hash names, whatever the network did.
        let hello = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let reached = |name: &str, extra: &[&str]| -> bool {
            let script = format!(
                "echo token | timeout 3 nc 10.0.2.2 {port}; echo token | timeout 3 nc 127.0.0.1 {port}; printf hello > $out"
            );
            let file = s.derivation(name, &script, &[], Some(hello));
            let out = s.build(&file, extra);
            assert!(
                out.status.success(),
                "{name}: {}",
                error_and_log(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
            let mut any = false;
            while let Ok((mut conn, _)) = listener.accept() {
                conn.set_nonblocking(false).unwrap();
                let mut got = String::new();
                let _ = conn.read_to_string(&mut got);
                any |= got.contains("token");
            }
            any
        };
        assert!(
            !reached("loopback-denied", &[]),
            "a fixed-output build reached the host's loopback"
        );
        // Positive control: asked for, the gateway address leads to the host's loopback.
        assert!(
            reached("loopback-allowed", &["--host-loopback"]),
            "detector"
        );
        s.verify_clean();
    });
}

/// `builtin:fetchurl` runs inside the sandbox: a `file://` URL names a file of the sandbox,
/// so a host secret is neither fetched nor hashed into an error; `unpack = "1"` restores a
/// NAR download as the output, as Nix's `<nix/fetchurl.nix>` uses it.
#[test]
fn builtin_fetchurl_runs_inside_the_sandbox() {
    each_identity(|s| {
        if !fixed_output_network(s) {
            return;
        }
        let secret = s.write("fetch-secret", "host secret\n");
        // Positive control: on the host, the secret is there and has a hash to give away.
        let digest = ok_str(
            s.guixie()
                .args(["hash", "file", "--to", "base16"])
                .arg(&secret),
        );
        assert_eq!(digest.len(), 64, "detector: {digest}");
        let wrong = format!("sha256:{}", "0".repeat(64));
        let file = s.write(
            "fetch-secret.scm",
            &format!(
                "(derivation \"stolen\" \"builtin:fetchurl\" '() #:env-vars '((\"url\" . \"file://{}\")) #:hash \"{wrong}\")\n",
                secret.display()
            ),
        );
        let out = s.build(&file, &[]);
        assert!(!out.status.success(), "a host file was fetched");
        let text = error_and_log(&out.stderr);
        assert!(text.contains("No such file"), "{text}");
        assert!(
            !text.contains(&digest),
            "the error gives away the secret's hash"
        );

        // unpack: the download is a NAR, restored as the (recursive) output.
        let tree = s.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("sub/f"), "unpacked\n").unwrap();
        std::os::unix::fs::symlink("f", tree.join("sub/l")).unwrap();
        let served = s.path().join("served");
        fs::create_dir_all(&served).unwrap();
        fs::write(
            served.join("tree.nar"),
            ok(s.guixie().args(["nar", "dump"]).arg(&tree)),
        )
        .unwrap();
        let hash = ok_str(
            s.guixie()
                .args(["hash", "path", "--to", "base16"])
                .arg(&tree),
        );
        let server = Served::new(&served);
        let file = s.write(
            "unpack.scm",
            &format!(
                "(derivation \"unpacked\" \"builtin:fetchurl\" '() #:env-vars '((\"url\" . \"{}\") (\"unpack\" . \"1\")) #:hash \"sha256:{hash}\" #:recursive? #t)\n",
                server.url("tree.nar")
            ),
        );
        let out = s.build(&file, &["--host-loopback"]);
        drop(server);
        assert!(out.status.success(), "{}", error_and_log(&out.stderr));
        let built = s.real(String::from_utf8_lossy(&out.stdout).trim());
        assert_eq!(
            fs::read_to_string(built.join("sub/f")).unwrap(),
            "unpacked\n"
        );
        assert_eq!(fs::read_link(built.join("sub/l")).unwrap(), Path::new("f"));
        s.verify_clean();
    });
}

/// Processes of the host whose command line is `sleep <marker>`.
fn sleepers(marker: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).nth(1) == Some(marker.as_bytes()))
        })
        .collect()
}

/// On a host without a `pids` cgroup (cgroup v2 only, or one guixie may not use), a fork bomb
/// is still bounded: each build runs as its own uid under `RLIMIT_NPROC`, also as root. The
/// host counts the bomb's processes while the build runs.
#[test]
fn processes_are_bounded_without_a_pids_cgroup() {
    const LIMIT: usize = 64;
    let probe = Sandbox::new(None);
    let attack = probe.attack_program();
    // Positive control: the same bomb on the host is seen, all 300 of it.
    let marker = format!("bomb-{}-host", std::process::id());
    let mut host = Command::new(probe.real(&attack))
        .args(["forks", "300", &marker])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sleepers(&marker).len() < 300 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = sleepers(&marker);
    for pid in &seen {
        // SAFETY: signalling processes this test started (their argv[1] is our marker).
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    let _ = host.wait();
    assert_eq!(seen.len(), 300, "the detector counts the host's bomb");

    each_identity(|s| {
        let attack = s.attack_program();
        let marker = format!("bomb-{}-{}", std::process::id(), s.user.unwrap_or("root"));
        let file = s.derivation(
            "bomb",
            &format!("{attack} forks 300 {marker}; exit 1"),
            &[&attack],
            None,
        );
        // As root, hide the host's v1 `pids` hierarchy, as on a cgroup-v2-only host (an
        // unprivileged user cannot use it anyway).
        let mut cmd = if s.user.is_none() {
            let mut c = Command::new("unshare");
            c.args([
                "-m",
                "sh",
                "-c",
                "mount -t tmpfs -o ro,size=4k none /sys/fs/cgroup/pids && exec \"$@\"",
                "sh",
            ]);
            c.arg(env!("CARGO_BIN_EXE_guixie"));
            c.arg("--store").arg(s.store());
            c
        } else {
            s.guixie()
        };
        let mut child = cmd
            .args(["build", "-q", "--max-processes", &LIMIT.to_string()])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut most = 0;
        let status = loop {
            most = most.max(sleepers(&marker).len());
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let log = error_and_log(err.as_bytes());
        assert!(!status.success(), "the bomb's build succeeded");
        assert!(
            most > 0 && most <= LIMIT,
            "{most} of the bomb's processes ran at once (limit {LIMIT}): {log}"
        );
        assert!(log.contains("forks: "), "{log}");
        assert!(sleepers(&marker).is_empty(), "the bomb outlived its build");
    });
}
