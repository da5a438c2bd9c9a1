//! The sandbox: a helper process (`guixie-sandbox SPEC`, single-threaded, as
//! `unshare(CLONE_NEWUSER)` requires) enters new user, mount, PID, network, UTS and IPC
//! namespaces with uid/gid 1000 mapped to the caller, or, run as root, to a build user of its
//! own (`identity`). The root (`root`) is a read-only tmpfs: inputs bind-mounted read-only, a
//! writable build directory and store directory for the outputs, `/tmp`, a minimal `/dev`,
//! `/etc/passwd`, `/etc/group` and `/etc/hosts`. PID 1 of the new PID namespace mounts
//! `/proc` (with `/proc/sys` read-only), a capped `/dev/shm`, brings loopback up,
//! `pivot_root`s into the root, closes every inherited descriptor but 0–2, and exec's the
//! builder with exactly the spec's environment. The builder runs as uid 1000 with no
//! capabilities (they are cleared at exec), in a session of its own, so it cannot mount, and
//! it cannot see the host's network, processes or files. Fixed-output builds get a network
//! through slirp4netns (`crate::slirp`).

mod gateway;
mod identity;
mod root;
mod view;

pub use gateway::GatewaySpec;
pub use view::{view_main, VIEW_FAILED};

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use identity::enter_namespaces;
use root::{build_root, mount, mount_with};

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
    /// A built-in builder run by the helper itself, inside the sandbox, instead of `builder`.
    #[serde(default)]
    pub builtin_fetch: Option<BuiltinFetch>,
    /// Size of the build's private `/dev/shm`, in bytes.
    #[serde(default = "default_shm_bytes")]
    pub shm_bytes: u64,
    /// The build runs under a tracer: what could blind it is refused too.
    #[serde(default)]
    pub traced: bool,
    /// A debugger runs inside (gdb): `ptrace` is allowed within the sandbox.
    #[serde(default)]
    pub debugger: bool,
    /// The only egress is the caller's gateway (a traced run's HTTP recorder).
    #[serde(default)]
    pub gateway: Option<GatewaySpec>,
}

/// Nix's `builtin:fetchurl`, as the sandbox runs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BuiltinFetch {
    /// Tried in order until one answers (`urls`, else `url`).
    pub urls: Vec<String>,
    /// The output's path inside the sandbox.
    pub out: PathBuf,
    pub executable: bool,
    /// The download is a NAR (uncompressed or gzip) to restore as the output.
    pub unpack: bool,
    /// The certificate authorities HTTPS downloads trust (PEM), read from the host before
    /// the sandbox hides it, as Nix's `ssl-cert-file`; `None`: the built-in web roots.
    #[serde(default)]
    pub ca_certificates: Option<String>,
}

fn default_shm_bytes() -> u64 {
    64 << 20
}

pub(super) fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "NUL byte in a string for the sandbox",
        )
    })
}

pub(super) fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

pub(super) fn path_c(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str().as_bytes())
}

pub(super) fn write_file(path: &str, contents: &str) -> io::Result<()> {
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

/// The host's name-service configuration a sandbox with a network is shown (its resolver
/// is slirp4netns's).
pub(crate) const NAME_SERVICE_FILES: [&str; 2] = ["/etc/nsswitch.conf", "/etc/services"];

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
    let mut spec: SandboxSpec = match std::fs::read(spec_path)
        .map_err(io::Error::other)
        .and_then(|b| serde_json::from_slice(&b).map_err(io::Error::other))
    {
        Ok(s) => s,
        Err(e) => fail(e),
    };
    // The root is named again after the set-up has changed directory into it.
    match std::path::absolute(&spec.root) {
        Ok(root) => spec.root = root,
        Err(e) => fail(e),
    }
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

pub(super) fn die_with_parent() {
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
    // Every build starts with Linux's default soft limit on descriptors, whatever the host's
    // is: the host's setting does not reach the build unless it raises the limit itself, and
    // programs that close every possible descriptor before an exec (Guile's spawn does) do
    // not make 2^20 calls, which a tracer would stop at.
    set_soft_limit(libc::RLIMIT_NOFILE, BUILD_SOFT_NOFILE)?;
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
    #[cfg(target_arch = "x86_64")]
    if spec.traced {
        // The marks guixie's tracer stops at, first: the sandbox's filter, installed next,
        // still refuses what it refuses (a refusal outranks a mark), and the build cannot
        // remove either.
        crate::seccomp::install_program(&crate::seccomp::trace_program(
            &crate::syscall_tracer::traced_numbers(),
        ))
        .map_err(|e| io::Error::new(e.kind(), format!("installing the tracer's filter: {e}")))?;
    }
    crate::seccomp::install(spec.traced, spec.debugger)
        .map_err(|e| io::Error::new(e.kind(), format!("installing the seccomp filter: {e}")))?;
    if let Some(g) = &spec.gateway {
        gateway::start_carrier(g)?;
    }
    if let Some(fetch) = &spec.builtin_fetch {
        // No exec clears this process's capabilities in the user namespace: drop them.
        drop_capabilities()?;
        let mut log = io::stderr();
        let result = crate::fetch::fetch_in_sandbox(fetch, &mut log);
        if let Err(e) = &result {
            eprintln!("{e}");
        }
        std::process::exit(if result.is_ok() { 0 } else { 1 })
    }
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

/// Empties every capability set and the bounding set.
fn drop_capabilities() -> io::Result<()> {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments; unknown capabilities fail with EINVAL.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [0u32; 6]; // two { effective, permitted, inheritable } sets, all empty
                          // SAFETY: capset with a valid v3 header and two zeroed data structs.
    check(
        unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int },
        "dropping capabilities",
    )
}

/// The soft limit on open descriptors every build starts with.
pub const BUILD_SOFT_NOFILE: u64 = 1024;

/// Lowers (never raises) the soft limit to `value`, keeping the hard limit.
fn set_soft_limit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid struct it is given.
    check(unsafe { libc::getrlimit(resource, &mut lim) }, "getrlimit")?;
    lim.rlim_cur = lim.rlim_cur.min(value);
    // SAFETY: valid rlimit struct.
    check(unsafe { libc::setrlimit(resource, &lim) }, "setrlimit")
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: valid rlimit struct.
    check(unsafe { libc::setrlimit(resource, &lim) }, "setrlimit")
}
