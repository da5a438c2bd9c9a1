//! The build's root file system.

use std::io;
use std::path::{Path, PathBuf};

use super::{check, cstr, path_c, SandboxSpec};

pub(super) fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    mount_with(src, target, fstype, flags, None)
}

pub(super) fn mount_with(
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

pub(super) fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

pub(super) fn bind_read_only(root: &Path, host: &Path, at: &Path) -> io::Result<()> {
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

/// The build's root: a tmpfs with the inputs bind-mounted read-only, the writable
/// directories, mount points, `/etc` files and device nodes; read-only itself.
pub(super) fn build_root(spec: &SandboxSpec) -> io::Result<()> {
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
