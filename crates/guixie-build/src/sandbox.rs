//! The sandbox: a helper process (`guixie-sandbox SPEC`, single-threaded, as
//! `unshare(CLONE_NEWUSER)` requires) enters new user, mount, PID, network, UTS and IPC
//! namespaces and maps the caller to uid/gid 1000. Its child, PID 1 of the new PID namespace,
//! builds a root from the spec: inputs bind-mounted read-only, a writable build directory and
//! store directory for the outputs, `/tmp`, `/proc`, a minimal `/dev`, `/etc/passwd`,
//! `/etc/group` and `/etc/hosts`. It brings loopback up, `pivot_root`s into the root, and
//! exec's the builder with exactly the spec's environment. The builder runs as uid 1000 with
//! no capabilities (they are cleared at exec), so it cannot mount, and it cannot see the host's
//! network, processes or files.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// An empty host directory on which the helper mounts the new root, a tmpfs: its
    /// skeleton (mount points, `/etc` files, device nodes) costs no disk inodes.
    pub root: PathBuf,
    /// (host path, path inside) bind-mounted read-only.
    pub inputs: Vec<(PathBuf, PathBuf)>,
    /// (path inside, target) symbolic links made in the new root, e.g. `/bin` → `usr/bin`.
    #[serde(default)]
    pub symlinks: Vec<(PathBuf, PathBuf)>,
    /// (host directory, path inside): writable directories (store dir, build dir, /tmp),
    /// bind-mounted so that what the build leaves there is on the host's disk.
    pub writable_dirs: Vec<(PathBuf, PathBuf)>,
    pub workdir: PathBuf,
    pub builder: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    /// Fixed-output derivations get a network, through `slirp4netns` (their output is
    /// checked); others have none. Either way the build has a network namespace of its own.
    pub network: bool,
    /// The `slirp4netns` executable, for builds with a network.
    #[serde(default)]
    pub slirp4netns: Option<PathBuf>,
    /// Whether a build with a network reaches the host's 127.0.0.1 (as 10.0.2.2).
    #[serde(default)]
    pub host_loopback: bool,
    pub hostname: String,
    /// Limits applied to the builder.
    pub max_processes: u64,
    /// A `pids` cgroup (with `pids.max` set) for the helper to join before anything else;
    /// `None` when the build already runs inside one (the builder's session cgroup).
    pub pids_cgroup: Option<PathBuf>,
    pub max_file_size: u64,
    /// The host uid and gid the sandbox's uid 1000 maps to when guixie runs as root (a build
    /// user of its own, never 0); unprivileged, the caller's own ids are used.
    #[serde(default)]
    pub build_user: Option<(u32, u32)>,
    /// Size of the build's private `/dev/shm`, in bytes.
    #[serde(default = "default_shm_bytes")]
    pub shm_bytes: u64,
}

fn default_shm_bytes() -> u64 {
    64 << 20
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "NUL byte in a string for the sandbox",
        )
    })
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

fn path_c(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str().as_bytes())
}

fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    mount_with(src, target, fstype, flags, None)
}

fn mount_with(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src_c = src.map(path_c).transpose()?;
    let target_c = path_c(target)?;
    let fs_c = fstype.map(|f| cstr(f.as_bytes())).transpose()?;
    let data_c = data.map(|d| cstr(d.as_bytes())).transpose()?;
    // SAFETY: every pointer is a valid C string or null for the duration of the call.
    let rc = unsafe {
        libc::mount(
            src_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            target_c.as_ptr(),
            fs_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            data_c
                .as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr().cast()),
        )
    };
    check(
        rc,
        &format!(
            "mount {} on {}",
            src.map(|s| s.display().to_string()).unwrap_or_default(),
            target.display()
        ),
    )
}

fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

fn bind_read_only(root: &Path, host: &Path, at: &Path) -> io::Result<()> {
    let target = inside(root, at);
    let meta = std::fs::metadata(host)
        .map_err(|e| io::Error::new(e.kind(), format!("input {}: {e}", host.display())))?;
    if meta.is_dir() {
        std::fs::create_dir_all(&target)?;
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, b"")?;
    }
    mount(Some(host), &target, None, libc::MS_BIND | libc::MS_REC)?;
    mount(
        None,
        &target,
        None,
        libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | libc::MS_REC
            | libc::MS_NOSUID
            | libc::MS_NODEV,
    )
}

fn write_file(path: &str, contents: &str) -> io::Result<()> {
    std::fs::write(path, contents).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a local ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        check(fd, "socket")?;
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags =
            (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short;
        let rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        libc::close(fd);
        check(rc, "bringing up loopback")
    }
}

/// The helper's exit status when the sandbox could not be set up (the reason is on stderr).
pub const SETUP_FAILED: i32 = 125;

/// The helper's entry point: never returns. Exit status: the builder's, or [`SETUP_FAILED`]
/// with a message on stderr if the sandbox could not be set up.
///
/// Unprivileged, the helper enters all namespaces at once, maps its own ids to 1000, and
/// builds the root with the capabilities it holds in the new user namespace. As root, it
/// builds the root first (as root, in a mount namespace of its own), then drops every group,
/// enters the other namespaces with uid and gid 1000 mapped to the spec's build user, and
/// becomes that user: the builder never runs as, or maps to, host uid 0.
pub fn helper_main(spec_path: &OsStr) -> ! {
    let fail = |e: io::Error| -> ! {
        eprintln!("guixie sandbox: {e}");
        std::process::exit(SETUP_FAILED)
    };
    let spec: SandboxSpec = match std::fs::read(spec_path)
        .map_err(io::Error::other)
        .and_then(|b| serde_json::from_slice(&b).map_err(io::Error::other))
    {
        Ok(s) => s,
        Err(e) => fail(e),
    };
    if let Some(cg) = &spec.pids_cgroup {
        if let Err(e) = std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string()) {
            fail(io::Error::new(
                e.kind(),
                format!("joining {}: {e}", cg.display()),
            ))
        }
    }
    // If guixie dies (even by SIGKILL), so does the build.
    die_with_parent();
    // A session of its own, with no controlling terminal: nothing the build does reaches the
    // user's terminal (TIOCSTI and the like).
    // SAFETY: setsid has no preconditions; it fails only for a process-group leader, which
    // the helper (a freshly spawned child) is not.
    if let Err(e) = check(unsafe { libc::setsid() }, "setsid") {
        fail(e)
    }
    let mut slirp = match (spec.network, &spec.slirp4netns) {
        (false, _) => None,
        (true, Some(program)) => {
            match crate::slirp::SlirpLauncher::fork(program, spec.host_loopback) {
                Ok(l) => Some(l),
                Err(e) => fail(io::Error::new(e.kind(), format!("slirp4netns: {e}"))),
            }
        }
        (true, None) => fail(io::Error::new(
            io::ErrorKind::NotFound,
            "a build with a network needs slirp4netns (Debian package slirp4netns)",
        )),
    };
    if let Err(e) = enter_namespaces(&spec, slirp.as_mut()) {
        fail(e)
    }
    // SAFETY: fork in a single-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(io::Error::last_os_error())
    }
    if pid > 0 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        std::process::exit(code)
    }
    // PID 1 of the namespace dies with the helper, and takes every build process with it.
    die_with_parent();
    let privileged = spec.build_user.is_some();
    let setup = if privileged {
        Ok(())
    } else {
        build_root(&spec)
    };
    match setup.and_then(|()| enter_root(&spec)) {
        Ok(never) => match never {},
        Err(e) => fail(e),
    }
}

fn die_with_parent() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
}

/// Enters the build's namespaces and sets up its identity (see [`helper_main`]).
fn enter_namespaces(
    spec: &SandboxSpec,
    slirp: Option<&mut crate::slirp::SlirpLauncher>,
) -> io::Result<()> {
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET;
    match spec.build_user {
        Some(user) => enter_as_build_user(spec, flags, user, slirp),
        None => {
            // SAFETY: getuid and getgid have no preconditions.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            if uid == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "running as root, the sandbox needs a build user",
                ));
            }
            // SAFETY: this process is single-threaded (the helper starts nothing before this).
            check(
                unsafe { libc::unshare(flags) },
                "unshare (user namespaces may be disabled on this machine)",
            )?;
            write_maps("self", uid, gid)?;
            if let Some(s) = slirp {
                // SAFETY: getpid has no preconditions.
                s.attach(unsafe { libc::getpid() })?;
            }
            Ok(())
        }
    }
}

fn write_maps(pid: &str, uid: u32, gid: u32) -> io::Result<()> {
    write_file(&format!("/proc/{pid}/setgroups"), "deny")?;
    write_file(&format!("/proc/{pid}/uid_map"), &format!("1000 {uid} 1\n"))?;
    write_file(&format!("/proc/{pid}/gid_map"), &format!("1000 {gid} 1\n"))
}

/// As root: the root is built as root, then a child enters the namespaces and this process,
/// still root outside them, maps the child's uid and gid 1000 to the build user (only a
/// process outside a user namespace may map ids other than its own). Returns in the child,
/// as the build user; this process waits for it and exits with its status.
fn enter_as_build_user(
    spec: &SandboxSpec,
    flags: libc::c_int,
    (uid, gid): (u32, u32),
    slirp: Option<&mut crate::slirp::SlirpLauncher>,
) -> io::Result<()> {
    if uid == 0 || gid == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the build user may not be root",
        ));
    }
    // The host's mount namespace, to return to once the child has its own copy of the root:
    // the private one is then torn down while the build runs, not after it.
    let host_mounts = std::fs::File::open("/proc/self/ns/mnt")?;
    // SAFETY: unshare in a single-threaded process.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWNS) },
        "unshare (mount namespace)",
    )?;
    build_root(spec)?;
    // Root's supplementary groups (0 among them) must not reach the builder.
    // SAFETY: an empty group list.
    check(unsafe { libc::setgroups(0, std::ptr::null()) }, "setgroups")?;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let (entered_r, entered_w) = std::io::pipe()?;
    let (mapped_r, mapped_w) = std::io::pipe()?;
    // SAFETY: fork in a single-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        use std::io::{Read, Write};
        die_with_parent();
        drop((entered_r, mapped_w));
        // SAFETY: the child is single-threaded.
        check(
            unsafe { libc::unshare(flags) },
            "unshare (user namespaces may be disabled on this machine)",
        )?;
        (&entered_w).write_all(b"e")?;
        drop(entered_w);
        let mut ok = [0u8; 1];
        (&mapped_r).read_exact(&mut ok)?;
        // The root came from a more privileged namespace, so its mount is locked and cannot
        // be pivoted to: bind it onto itself (the copy belongs to this namespace; what is
        // mounted inside it stays locked). Still root by uid, this process can reach it.
        mount(
            Some(&spec.root),
            &spec.root,
            None,
            libc::MS_BIND | libc::MS_REC,
        )?;
        std::env::set_current_dir(&spec.root)
            .map_err(|e| io::Error::new(e.kind(), format!("chdir to the sandbox root: {e}")))?;
        // The user namespace has no uid 0, so the capabilities held in it survive the change
        // of identity (they are dropped at exec).
        // SAFETY: setresgid/setresuid with ids mapped in our user namespace.
        unsafe {
            check(libc::setresgid(1000, 1000, 1000), "setresgid")?;
            check(libc::setresuid(1000, 1000, 1000), "setresuid")?;
        }
        // A change of credentials clears the parent-death signal: set it again, and stop if
        // the parent is already gone.
        die_with_parent();
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != parent {
            std::process::exit(SETUP_FAILED)
        }
        return Ok(());
    }
    drop((entered_w, mapped_r));
    let mapped = (|| {
        use std::io::{Read, Write};
        let mut e = [0u8; 1];
        (&entered_r).read_exact(&mut e)?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns to a mount namespace descriptor, in a single-threaded process.
        check(
            unsafe { libc::setns(host_mounts.as_raw_fd(), libc::CLONE_NEWNS) },
            "returning to the host's mount namespace",
        )?;
        drop(host_mounts);
        write_maps(&pid.to_string(), uid, gid)?;
        if let Some(s) = slirp {
            s.attach(pid)?;
        }
        (&mapped_w).write_all(b"m")
    })();
    drop(mapped_w);
    if let Err(e) = mapped {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        return Err(e);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    std::process::exit(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
}

/// The build's root: a tmpfs with the inputs bind-mounted read-only, the writable
/// directories, mount points, `/etc` files and device nodes; read-only itself.
fn build_root(spec: &SandboxSpec) -> io::Result<()> {
    let root = &spec.root;
    // Nothing we mount propagates back to the host.
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE)?;
    mount_with(
        Some(Path::new("tmpfs")),
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("size=16m,mode=0755"),
    )?;
    // Writable directories are mounts of their own, so the root around them can be made
    // read-only at the end.
    for (host, d) in &spec.writable_dirs {
        let dir = inside(root, d);
        std::fs::create_dir_all(&dir)?;
        mount(
            Some(host),
            &dir,
            None,
            libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV,
        )?;
        // MS_BIND ignores the other flags: apply them with a remount.
        mount(
            None,
            &dir,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV,
        )?;
    }
    for (host, at) in &spec.inputs {
        bind_read_only(root, host, at)?;
    }
    for (at, target) in &spec.symlinks {
        std::os::unix::fs::symlink(target, inside(root, at))?;
    }
    for dir in ["proc", "dev", "dev/shm", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    // No /dev/tty: the builder has no terminal to reach.
    for dev in ["null", "zero", "full", "random", "urandom"] {
        let host = Path::new("/dev").join(dev);
        if host.exists() {
            let target = root.join("dev").join(dev);
            std::fs::write(&target, b"")?;
            mount(Some(&host), &target, None, libc::MS_BIND)?;
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(to, root.join("dev").join(link));
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:Nix build user:/build:/noshell\nnixbld:x:1000:100:Nix build user:/build:/noshell\nnobody:x:65534:65534:Nobody:/:/noshell\n")?;
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nnixbld:!:100:\nnogroup:x:65534:\n",
    )?;
    std::fs::write(
        root.join("etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n",
    )?;
    if spec.network {
        std::fs::write(
            root.join("etc/resolv.conf"),
            format!("nameserver {}\n", crate::slirp::DNS),
        )?;
    }
    // Everything else in the root is read-only for the builder.
    mount(
        None,
        root,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
    )?;
    // The rest of the set-up works relative to the new root: as the build user, the host
    // directories above it cannot be traversed.
    std::env::set_current_dir(root)
        .map_err(|e| io::Error::new(e.kind(), format!("chdir to the sandbox root: {e}")))
}

/// In PID 1 of the build: `/proc` (with host-global settings read-only and the host's boot
/// id hidden), a private capped `/dev/shm`, the host name, loopback; then `pivot_root`,
/// limits, the seccomp filter, and the builder.
fn enter_root(spec: &SandboxSpec) -> io::Result<std::convert::Infallible> {
    // The current directory is the root (see `build_root`).
    let root = Path::new(".");
    let proc_dir = root.join("proc");
    mount(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )?;
    // /proc/sys holds the host's kernel settings: read-only, whatever the build's identity.
    let sys = proc_dir.join("sys");
    mount(Some(&sys), &sys, None, libc::MS_BIND | libc::MS_REC)?;
    mount(
        None,
        &sys,
        None,
        libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC,
    )?;
    // The host's boot id identifies the machine and this boot; the build reads nothing.
    mount(
        Some(&root.join("dev/null")),
        &sys.join("kernel/random/boot_id"),
        None,
        libc::MS_BIND,
    )?;
    mount_with(
        Some(Path::new("tmpfs")),
        &root.join("dev/shm"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&format!("size={},mode=1777", spec.shm_bytes.max(4096))),
    )?;
    let host = cstr(spec.hostname.as_bytes())?;
    // SAFETY: valid pointer and length.
    check(
        unsafe { libc::sethostname(host.as_ptr(), spec.hostname.len()) },
        "sethostname",
    )?;
    loopback_up()?;
    // pivot_root(".", ".") then detaching the old root leaves only the new one.
    let dot = cstr(b".")?;
    // SAFETY: valid C strings; syscalls on our own mount namespace.
    unsafe {
        check(
            libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) as libc::c_int,
            "pivot_root",
        )?;
        check(
            libc::umount2(dot.as_ptr(), libc::MNT_DETACH),
            "detaching the host root",
        )?;
    }
    let workdir = path_c(&spec.workdir)?;
    // SAFETY: valid C string.
    check(
        unsafe { libc::chdir(workdir.as_ptr()) },
        "chdir to the build directory",
    )?;
    set_limit(libc::RLIMIT_NPROC, spec.max_processes)?;
    set_limit(libc::RLIMIT_FSIZE, spec.max_file_size)?;
    set_limit(libc::RLIMIT_CORE, 0)?;
    let builder = cstr(&spec.builder)?;
    let mut argv: Vec<CString> = vec![builder.clone()];
    for a in &spec.args {
        argv.push(cstr(a)?);
    }
    let envp: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| cstr(&[k.as_slice(), b"=", v.as_slice()].concat()))
        .collect::<io::Result<_>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // Only stdin, stdout and stderr go to the builder: whatever else this process inherited
    // (a descriptor its caller leaked, a directory, a socket) is closed.
    // SAFETY: close_range with a valid range and no flags closes descriptors we no longer use.
    check(
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) as libc::c_int },
        "closing inherited descriptors",
    )?;
    crate::seccomp::install()
        .map_err(|e| io::Error::new(e.kind(), format!("installing the seccomp filter: {e}")))?;
    // SAFETY: null-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(builder.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    // The sandbox is fine; the builder is not: report it as the builder's failure (status
    // 127, as shells do), not as a sandbox that could not be set up.
    eprintln!(
        "guixie sandbox: executing builder {}: {}",
        String::from_utf8_lossy(&spec.builder),
        io::Error::last_os_error()
    );
    std::process::exit(127)
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: valid rlimit struct.
    check(unsafe { libc::setrlimit(resource, &lim) }, "setrlimit")
}
