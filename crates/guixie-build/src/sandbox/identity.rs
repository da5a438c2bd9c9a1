//! Who the build is: the namespaces it enters and the ids it maps, unprivileged or as root.

use std::io;

use super::{build_root, check, die_with_parent, mount, write_file, SandboxSpec, SETUP_FAILED};

/// Enters the build's namespaces and sets up its identity (see [`super::helper_main`]).
pub(super) fn enter_namespaces(
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
