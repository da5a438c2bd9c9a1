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
    /// Fixed-output derivations keep the host network (their output is checked).
    pub network: bool,
    pub hostname: String,
    /// Limits applied to the builder.
    pub max_processes: u64,
    /// A `pids` cgroup (with `pids.max` set) for the helper to join before anything else;
    /// `None` when the build already runs inside one (the builder's session cgroup).
    pub pids_cgroup: Option<PathBuf>,
    pub max_file_size: u64,
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
    let src_c = src.map(path_c).transpose()?;
    let target_c = path_c(target)?;
    let fs_c = fstype.map(|f| cstr(f.as_bytes())).transpose()?;
    // SAFETY: every pointer is a valid C string or null for the duration of the call.
    let rc = unsafe {
        libc::mount(
            src_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            target_c.as_ptr(),
            fs_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            std::ptr::null(),
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
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC;
    if !spec.network {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: this process is single-threaded (the helper starts nothing before this).
    if let Err(e) = check(
        unsafe { libc::unshare(flags) },
        "unshare (user namespaces may be disabled on this machine)",
    ) {
        fail(e)
    }
    let maps = write_file("/proc/self/setgroups", "deny")
        .and_then(|()| write_file("/proc/self/uid_map", &format!("1000 {uid} 1\n")))
        .and_then(|()| write_file("/proc/self/gid_map", &format!("1000 {gid} 1\n")));
    if let Err(e) = maps {
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
    match enter_root(&spec) {
        Ok(never) => match never {},
        Err(e) => fail(e),
    }
}

fn enter_root(spec: &SandboxSpec) -> io::Result<std::convert::Infallible> {
    let root = &spec.root;
    // Nothing we mount propagates back to the host.
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE)?;
    mount(
        Some(Path::new("tmpfs")),
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
    )?;
    // Writable directories are mounts of their own, so the root around them can be made
    // read-only at the end.
    for (host, d) in &spec.writable_dirs {
        let dir = inside(root, d);
        std::fs::create_dir_all(&dir)?;
        mount(Some(host), &dir, None, libc::MS_BIND)?;
    }
    for (host, at) in &spec.inputs {
        bind_read_only(root, host, at)?;
    }
    for (at, target) in &spec.symlinks {
        std::os::unix::fs::symlink(target, inside(root, at))?;
    }
    for dir in ["proc", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    mount(
        Some(Path::new("proc")),
        &root.join("proc"),
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )?;
    for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
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
    std::fs::create_dir_all(root.join("dev/shm"))?;
    mount(
        Some(Path::new("tmpfs")),
        &root.join("dev/shm"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
    )?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:Nix build user:/build:/noshell\nnixbld:x:1000:100:Nix build user:/build:/noshell\nnobody:x:65534:65534:Nobody:/:/noshell\n")?;
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nnixbld:!:100:\nnogroup:x:65534:\n",
    )?;
    std::fs::write(
        root.join("etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n",
    )?;
    // Everything else in the root is read-only for the builder.
    mount(
        None,
        root,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
    )?;
    let host = cstr(spec.hostname.as_bytes())?;
    // SAFETY: valid pointer and length.
    check(
        unsafe { libc::sethostname(host.as_ptr(), spec.hostname.len()) },
        "sethostname",
    )?;
    if !spec.network {
        loopback_up()?;
    }
    // pivot_root(".", ".") then detaching the old root leaves only the new one.
    let root_c = path_c(root)?;
    let dot = cstr(b".")?;
    // SAFETY: valid C strings; syscalls on our own mount namespace.
    unsafe {
        check(libc::chdir(root_c.as_ptr()), "chdir to the sandbox root")?;
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
    crate::seccomp::install()
        .map_err(|e| io::Error::new(e.kind(), format!("installing the seccomp filter: {e}")))?;
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
