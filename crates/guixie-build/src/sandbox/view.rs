//! The store as its programs expect to find it: `guixie-sandbox --view REAL LOGICAL PROGRAM
//! ARGS…` runs PROGRAM with the store's files at their logical directory (`/gnu/store`), the
//! rest of the host's file system as it is, as nix-user-chroot and nix-portable do. No
//! privilege is needed: unprivileged, a user namespace maps the caller to itself.
//!
//! When the logical directory exists on the host and is empty, the store is mounted over it;
//! when it holds another store (Guix System's), the view is refused rather than hide it.
//! Otherwise the new root is a tmpfs in which every directory on the way to the store shows
//! the host's entries (bind mounts) but the next step, and the store is at its place: the
//! process chroots into it.
//! That root is made under a temporary directory the helper removes once the program has
//! exited; nothing is created on the host's `/`.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::root::mount;
use super::{check, cstr, path_c, write_file};

/// Exit status when the view could not be set up (the program's own statuses pass through).
pub const VIEW_FAILED: i32 = 126;

/// The program's process, for the signal handler.
static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(std::sync::atomic::Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// `--view REAL LOGICAL PROGRAM ARGS…`; never returns.
pub fn view_main(args: &[OsString]) -> ! {
    let fail = |e: io::Error| -> ! {
        eprintln!("guixie: cannot show the store at its logical directory: {e}");
        std::process::exit(VIEW_FAILED)
    };
    let [real, logical, program, rest @ ..] = args else {
        fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: guixie-sandbox --view REAL LOGICAL PROGRAM [ARGS…]",
        ))
    };
    let (real, logical) = (PathBuf::from(real), PathBuf::from(logical));
    if !logical.is_absolute() || logical.parent().is_none_or(|p| p == Path::new("/")) {
        fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a store directory like /gnu/store",
                logical.display()
            ),
        ))
    }
    let same = std::fs::canonicalize(&logical)
        .ok()
        .zip(std::fs::canonicalize(&real).ok())
        .is_some_and(|(a, b)| a == b);
    if same {
        fail(exec(program, rest))
    }
    // Mounted over when it exists and is empty; otherwise made in a new root (never on the
    // host's disk). A host store there (Guix System's) is never hidden.
    let occupied = std::fs::read_dir(&logical).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        fail(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} holds another store on this host, which the view would hide; \
                 use a store whose root is / to share it, or --container",
                logical.display()
            ),
        ))
    }
    let new_root = if logical.is_dir() {
        None
    } else {
        match make_temp_dir() {
            Ok(d) => Some(d),
            Err(e) => fail(e),
        }
    };
    // SAFETY: fork in this single-threaded helper.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(io::Error::last_os_error())
    }
    if pid > 0 {
        CHILD.store(pid, std::sync::atomic::Ordering::SeqCst);
        // Ctrl-C and Ctrl-\ reach the program itself (same process group); what is sent to
        // this process alone (a `kill`, a hang-up) is passed on, so the program can clean up
        // and this process can remove the root afterwards.
        // SAFETY: `forward` only calls the async-signal-safe `kill`.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
            for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
                libc::signal(
                    sig,
                    forward as extern "C" fn(libc::c_int) as libc::sighandler_t,
                );
            }
        }
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
            if rc == pid || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        if let Some(d) = &new_root {
            let _ = std::fs::remove_dir(d);
        }
        if libc::WIFSIGNALED(status) {
            // Die of the same signal, so the caller sees what happened.
            let sig = libc::WTERMSIG(status);
            // SAFETY: restoring the default action and raising a signal on ourselves.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::raise(sig);
            }
            std::process::exit(128 + sig)
        }
        std::process::exit(libc::WEXITSTATUS(status))
    }
    super::die_with_parent();
    let entered = enter(&real, &logical, new_root.as_deref());
    match entered {
        Ok(()) => fail(exec(program, rest)),
        Err(e) => fail(e),
    }
}

fn make_temp_dir() -> io::Result<PathBuf> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    for n in 0..100u32 {
        let d = base.join(format!("guixie-view-{}-{n}", std::process::id()));
        match std::fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", d.display()))),
        }
    }
    Err(io::Error::other("no temporary directory name is free"))
}

fn enter(real: &Path, logical: &Path, new_root: Option<&Path>) -> io::Result<()> {
    // SAFETY: getuid, getgid and geteuid have no preconditions.
    let (uid, gid, euid) = unsafe { (libc::getuid(), libc::getgid(), libc::geteuid()) };
    let flags = if euid == 0 {
        libc::CLONE_NEWNS
    } else {
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS
    };
    // SAFETY: this child of the single-threaded helper is single-threaded.
    check(
        unsafe { libc::unshare(flags) },
        "unshare (user namespaces may be disabled on this machine)",
    )?;
    if euid != 0 {
        write_file("/proc/self/setgroups", "deny")?;
        write_file("/proc/self/uid_map", &format!("{uid} {uid} 1\n"))?;
        write_file("/proc/self/gid_map", &format!("{gid} {gid} 1\n"))?;
    }
    // Nothing mounted here propagates back to the host.
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE)?;
    let Some(root) = new_root else {
        return mount(Some(real), logical, None, libc::MS_BIND | libc::MS_REC);
    };
    let cwd = std::env::current_dir()?;
    mount(Some(Path::new("tmpfs")), root, Some("tmpfs"), 0)?;
    // Each directory on the way to the store shows the host's entries but the next step.
    let mut host_dir = PathBuf::from("/");
    let mut new_dir = root.to_path_buf();
    for step in logical.strip_prefix("/").unwrap_or(logical).components() {
        if host_dir.is_dir() && std::fs::symlink_metadata(&host_dir).is_ok_and(|m| m.is_dir()) {
            mirror(&host_dir, &new_dir, step.as_os_str())?;
        }
        host_dir.push(step);
        new_dir.push(step);
        std::fs::create_dir_all(&new_dir)?;
    }
    let inside = root.join(logical.strip_prefix("/").unwrap_or(logical));
    std::fs::create_dir_all(&inside)?;
    mount(Some(real), &inside, None, libc::MS_BIND | libc::MS_REC)?;
    let root_c = path_c(root)?;
    // SAFETY: a valid C string.
    check(unsafe { libc::chroot(root_c.as_ptr()) }, "chroot")?;
    // The program starts where the user was.
    std::env::set_current_dir(&cwd).or_else(|_| std::env::set_current_dir("/"))
}

/// Bind-mounts every entry of `host` but `skip` into `new` (links copied as links).
fn mirror(host: &Path, new: &Path, skip: &std::ffi::OsStr) -> io::Result<()> {
    for entry in std::fs::read_dir(host)? {
        let entry = entry?;
        if entry.file_name() == skip {
            continue;
        }
        let (from, at) = (entry.path(), new.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &at)?;
        } else {
            if kind.is_dir() {
                std::fs::create_dir(&at)?;
            } else {
                std::fs::File::create(&at)?;
            }
            mount(Some(&from), &at, None, libc::MS_BIND | libc::MS_REC)?;
        }
    }
    Ok(())
}

/// Replaces this process with `program` (looked up in `PATH` when it has no `/`).
fn exec(program: &OsString, args: &[OsString]) -> io::Error {
    let prog = match cstr(program.as_bytes()) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut argv = vec![prog.clone()];
    for a in args {
        match cstr(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(e) => return e,
        }
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: `ptrs` is a null-terminated array of valid C strings that outlive the call.
    unsafe { libc::execvp(prog.as_ptr(), ptrs.as_ptr()) };
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{}: {e}", Path::new(program).display()))
}
