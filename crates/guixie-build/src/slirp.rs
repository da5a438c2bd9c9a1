//! Network for fixed-output builds: a network namespace of their own, connected to the outside
//! by `slirp4netns` (user-mode networking, as Guix does; Nix uses pasta). The build shares no
//! namespace with the host, so it reaches none of the host's abstract Unix sockets, and the
//! host's loopback only when asked (`host_loopback`, as 10.0.2.2).
//!
//! The launcher is forked before the helper enters any namespace, so it stays outside them;
//! it waits for the pid of a process inside the new namespaces, then becomes `slirp4netns`.
//! Its exit descriptor is held by the helper: when the build ends, slirp4netns ends.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// The sandbox's DNS server: slirp4netns forwards it to the host's resolver.
pub const DNS: &str = "10.0.2.3";

/// Unprivileged, slirp4netns opens `/dev/net/tun` as the caller: say so clearly when it
/// cannot (some containers give it mode 600; Debian's udev gives 666).
pub fn check_tun_usable() -> Result<(), String> {
    let tun = c"/dev/net/tun";
    // SAFETY: access with a valid C string.
    if unsafe { libc::access(tun.as_ptr(), libc::R_OK | libc::W_OK) } == 0 {
        return Ok(());
    }
    Err(format!(
        "a fixed-output build needs a network of its own, and slirp4netns needs /dev/net/tun \
         readable and writable by this user ({}); make it mode 666 (as Debian's udev does) or run \
         guixie as root",
        io::Error::last_os_error()
    ))
}

pub struct SlirpLauncher {
    pid_w: Option<std::io::PipeWriter>,
    ready_r: std::io::PipeReader,
    _exit_w: OwnedFd,
}

fn inheritable(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl SlirpLauncher {
    /// Forks the launcher. Call it while the helper is still single-threaded and outside any
    /// new namespace.
    pub fn fork(program: &Path, host_loopback: bool) -> io::Result<SlirpLauncher> {
        let (pid_r, pid_w) = std::io::pipe()?;
        let (ready_r, ready_w) = std::io::pipe()?;
        let (exit_r, exit_w) = std::io::pipe()?;
        let program_c = CString::new(program.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: fork in a single-threaded process.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            drop((pid_w, ready_r, exit_w));
            let code = launch(&program_c, pid_r, &ready_w, &exit_r, host_loopback);
            // SAFETY: leaving the forked launcher without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        drop((pid_r, ready_w, exit_r));
        Ok(SlirpLauncher {
            pid_w: Some(pid_w),
            ready_r,
            _exit_w: exit_w.into(),
        })
    }

    /// Connects the network namespace of `pid` and waits until its interface is up.
    pub fn attach(&mut self, pid: libc::pid_t) -> io::Result<()> {
        let mut w = self
            .pid_w
            .take()
            .ok_or_else(|| io::Error::other("attached twice"))?;
        // A line, not the end of the pipe: the helper's children hold copies of its end.
        w.write_all(format!("{pid}\n").as_bytes())?;
        drop(w);
        let mut ready = [0u8; 1];
        match self.ready_r.read(&mut ready)? {
            1 => Ok(()),
            _ => Err(io::Error::other(
                "slirp4netns did not bring the fixed-output build's network up",
            )),
        }
    }
}

/// In the launcher: read the target pid, then exec slirp4netns (returns only on failure).
fn launch(
    program: &CString,
    pid_r: std::io::PipeReader,
    ready_w: &std::io::PipeWriter,
    exit_r: &std::io::PipeReader,
    host_loopback: bool,
) -> i32 {
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
    let mut pid = String::new();
    if std::io::BufRead::read_line(&mut std::io::BufReader::new(pid_r), &mut pid).is_err()
        || pid.trim().is_empty()
    {
        return 1;
    }
    if inheritable(ready_w).is_err() || inheritable(exit_r).is_err() {
        return 1;
    }
    let mut args = vec![
        program.clone(),
        c"--configure".to_owned(),
        c"--mtu=65520".to_owned(),
        CString::new(format!("--ready-fd={}", ready_w.as_raw_fd())).expect("no NUL"),
        CString::new(format!("--exit-fd={}", exit_r.as_raw_fd())).expect("no NUL"),
    ];
    if !host_loopback {
        args.push(c"--disable-host-loopback".to_owned());
    }
    // As root, slirp4netns confines itself (a mount namespace of its own, capabilities
    // dropped). Unprivileged it runs as the user, who is not root in the build's namespace,
    // where its own sandboxing cannot start.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        args.push(c"--enable-sandbox".to_owned());
    }
    args.push(CString::new(pid.trim()).unwrap_or_default());
    args.push(c"tap0".to_owned());
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: a null-terminated array of valid C strings that outlive the call.
    unsafe { libc::execv(program.as_ptr(), argv.as_ptr()) };
    eprintln!(
        "guixie sandbox: executing {}: {}",
        program.to_string_lossy(),
        io::Error::last_os_error()
    );
    127
}
