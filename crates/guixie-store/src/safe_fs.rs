//! guixie's own work on trees a builder wrote (copying outputs out, deleting build areas,
//! defusing kept failed builds, measuring disk use). Every step is relative to a directory
//! descriptor and never follows a symlink, so a builder, or a process it handed a descriptor
//! to, that swaps a directory for a link while guixie works cannot turn a copy, a chmod or a
//! delete onto host files (the Nix/Lix CVE-2025-46415/46416/52993 class).
//!
//! Only the path handed in is resolved by name; it must be one guixie made and that no
//! builder can write to (a build area's parent, the store's temporary entries).

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::error::StoreError;

/// Deeper trees are refused (NAR nesting is capped at 256 too).
const MAX_DEPTH: usize = 256;

fn err(path: &Path, e: impl Into<io::Error>) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source: e.into(),
    }
}

fn cname(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn split(path: &Path) -> io::Result<(&Path, CString)> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    Ok((parent, cname(name)?))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens a directory guixie made, by path (the last component must not be a symlink).
fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::openat(rfs::CWD, path, DIR_FLAGS, Mode::empty())?)
}

/// Opens `name` in `dir` with `flags` (which include `O_NOFOLLOW`); an entry its builder made
/// unreadable is given `mode` first (it is the builder's own, not the host's).
fn open_own(dir: impl AsFd + Copy, name: &CStr, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
    match rfs::openat(dir, name, flags, Mode::empty()) {
        Err(rustix::io::Errno::ACCESS) => {
            rfs::chmodat(
                dir,
                name,
                Mode::from_raw_mode(mode),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
            Ok(rfs::openat(dir, name, flags, Mode::empty())?)
        }
        r => Ok(r?),
    }
}

/// Opens `name` in `dir` as a directory, never through a link.
fn open_subdir(dir: impl AsFd + Copy, name: &CStr) -> io::Result<OwnedFd> {
    open_own(dir, name, DIR_FLAGS, 0o700)
}

/// Opens a regular file for reading, never through a link and never blocking on a FIFO.
fn open_file(dir: impl AsFd + Copy, name: &CStr) -> io::Result<OwnedFd> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    open_own(dir, name, flags, 0o600)
}

/// The entries of a directory (not `.` and `..`), sorted.
fn entries(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn changed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what} changed while guixie read it"),
    )
}

fn kind_of(dir: impl AsFd, name: &CStr) -> io::Result<FileType> {
    Ok(FileType::from_raw_mode(
        rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
    ))
}

/// Copies the tree at `src` to `dest` (which must not exist) as new files: contents, the
/// executable bit and symlink targets only, no owner, extended attributes or capabilities.
/// No builder ever held a descriptor to the copy.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), StoreError> {
    let (sp, sn) = split(src).map_err(|e| err(src, e))?;
    let (dp, dn) = split(dest).map_err(|e| err(dest, e))?;
    let sfd = open_dir(sp).map_err(|e| err(sp, e))?;
    let dfd = open_dir(dp).map_err(|e| err(dp, e))?;
    copy_at(&sfd, &sn, &dfd, &dn, 0).map_err(|e| err(src, e))
}

fn copy_at(
    src: &OwnedFd,
    name: &CStr,
    dest: &OwnedFd,
    dest_name: &CStr,
    depth: usize,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "directories nested too deeply",
        ));
    }
    match kind_of(src, name)? {
        FileType::Symlink => {
            let target = rfs::readlinkat(src, name, Vec::new())?;
            rfs::symlinkat(target.as_c_str(), dest, dest_name)?;
        }
        FileType::RegularFile => {
            let fd = open_file(src, name)?;
            let st = rfs::fstat(&fd)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(changed("a file"));
            }
            let mode = if st.st_mode & 0o100 != 0 {
                0o700
            } else {
                0o600
            };
            let out = rfs::openat(
                dest,
                dest_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )?;
            let (mut from, mut to) = (File::from(fd), File::from(out));
            io::copy(&mut from, &mut to)?;
        }
        FileType::Directory => {
            let sub = open_subdir(src, name)?;
            rfs::mkdirat(dest, dest_name, Mode::from_raw_mode(0o700))?;
            let dsub = rfs::openat(dest, dest_name, DIR_FLAGS, Mode::empty())?;
            for entry in entries(&sub)? {
                copy_at(&sub, &entry, &dsub, &entry, depth + 1)?;
            }
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is neither a file, a directory nor a symlink",
                    name.to_string_lossy()
                ),
            ))
        }
    }
    Ok(())
}

/// Removes the tree at `path` (store contents or a build area, read-only parts included),
/// never following a symlink. A missing path is not an error.
pub fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let (parent, name) = split(path).map_err(|e| err(path, e))?;
    let pfd = match open_dir(parent) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(parent, e)),
    };
    remove_at(&pfd, &name, 0).map_err(|e| err(path, e))
}

fn remove_at(dir: &OwnedFd, name: &CStr, depth: usize) -> io::Result<()> {
    let kind = match kind_of(dir, name) {
        Ok(k) => k,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if kind == FileType::Directory && depth <= MAX_DEPTH {
        match open_subdir(dir, name) {
            Ok(sub) => {
                rfs::fchmod(&sub, Mode::from_raw_mode(0o700))?;
                for entry in entries(&sub)? {
                    remove_at(&sub, &entry, depth + 1)?;
                }
                return Ok(rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?);
            }
            // Swapped for something else since: remove that instead, never what it names.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {}
            Err(e) => return Err(e),
        }
    }
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Err(rustix::io::Errno::NOENT) => Ok(()),
        r => Ok(r?),
    }
}

/// Makes a tree left for inspection (a kept failed build) harmless: no setuid, setgid or
/// sticky bits, no extended attributes (file capabilities among them), owned by `owner`.
pub fn defuse_tree(path: &Path, owner: Option<(u32, u32)>) -> Result<(), StoreError> {
    let (parent, name) = split(path).map_err(|e| err(path, e))?;
    let pfd = open_dir(parent).map_err(|e| err(parent, e))?;
    defuse_at(&pfd, &name, owner, 0).map_err(|e| err(path, e))
}

fn defuse_at(
    dir: &OwnedFd,
    name: &CStr,
    owner: Option<(u32, u32)>,
    depth: usize,
) -> io::Result<()> {
    let fd = match kind_of(dir, name)? {
        FileType::Symlink => return Ok(()),
        FileType::Directory if depth <= MAX_DEPTH => open_subdir(dir, name)?,
        FileType::Directory => return Ok(()),
        _ => open_file(dir, name)?,
    };
    let st = rfs::fstat(&fd)?;
    if let Some((uid, gid)) = owner {
        rfs::fchown(
            &fd,
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
        )?;
    }
    // After the chown, which clears setuid bits on its own only for some file types.
    rfs::fchmod(&fd, Mode::from_raw_mode(st.st_mode & 0o777))?;
    strip_xattrs(&fd)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        for entry in entries(&fd)? {
            defuse_at(&fd, &entry, owner, depth + 1)?;
        }
    }
    Ok(())
}

/// Removes every extended attribute of an open file.
pub fn strip_xattrs(fd: &OwnedFd) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    let n = match rfs::flistxattr(fd, &mut buf[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in buf[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = CString::new(name).expect("split at NUL");
        match rfs::fremovexattr(fd, name.as_c_str()) {
            Ok(()) | Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Disk space used under `path` (allocated blocks, so sparse files count for what they use);
/// 0 for what cannot be read.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok((parent, name)) = split(path) else {
        return 0;
    };
    open_dir(parent).map_or(0, |p| usage_at(&p, &name, 0))
}

fn usage_at(dir: &OwnedFd, name: &CStr, depth: usize) -> u64 {
    let Ok(st) = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return 0;
    };
    let mut total = st.st_blocks as u64 * 512;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory && depth <= MAX_DEPTH {
        if let Ok(sub) = rfs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
            for entry in entries(&sub).unwrap_or_default() {
                total += usage_at(&sub, &entry, depth + 1);
            }
        }
    }
    total
}

/// Where a symlink at `link` (relative to the store directory: `<hash>-<name>/a/b`) with
/// `target` points, resolved lexically; `None` when a relative target climbs out of the store
/// directory. Absolute targets are returned as given, normalised.
pub fn resolve_link_lexically(link: &Path, target: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut parts: Vec<&OsStr> = Vec::new();
    let base = if target.is_absolute() {
        None
    } else {
        link.parent()
    };
    let from_base = base.into_iter().flat_map(|b| b.components());
    for c in from_base.chain(target.components()) {
        match c {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(n) => parts.push(n),
        }
    }
    let mut out = PathBuf::from(if target.is_absolute() { "/" } else { "" });
    out.extend(parts);
    Some(out)
}

/// Reads a whole file of at most `limit` bytes from one descriptor, reading no more than
/// `limit + 1` whatever the file is (a FIFO, a device, a file that grows meanwhile).
pub fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {limit} bytes allowed"),
        ));
    }
    Ok(bytes)
}

/// Opens a file a sandboxed program wrote in a directory guixie made, without following a
/// link, and only if it is a regular file: a program that put a link or a FIFO there in its
/// place gets an error, not a host file read.
pub fn open_written(path: &Path) -> io::Result<File> {
    let (parent, name) = split(path)?;
    let dir = open_dir(parent)?;
    let fd = open_file(&dir, &name)?;
    if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(File::from(fd))
}

/// [`read_capped`] of [`open_written`]'s file.
pub fn read_capped_written(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_written(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {limit} bytes allowed"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_written_file_is_read_only_when_it_is_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.xml");
        std::fs::write(&file, b"<x/>").unwrap();
        assert_eq!(read_capped_written(&file, 10).unwrap(), b"<x/>");
        assert!(read_capped_written(&file, 2).is_err());
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"host").unwrap();
        let link = dir.path().join("link.xml");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(read_capped_written(&link, 10).is_err());
        let fifo = dir.path().join("fifo.xml");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(read_capped_written(&fifo, 10).is_err());
    }

    #[test]
    fn relative_links_resolve_lexically_and_may_not_climb_out() {
        let r = |l: &str, t: &str| resolve_link_lexically(Path::new(l), Path::new(t));
        assert_eq!(r("h-x/bin/sh", "bash"), Some("h-x/bin/bash".into()));
        assert_eq!(
            r("h-x/bin/sh", "../../h-y/bin/sh"),
            Some("h-y/bin/sh".into())
        );
        assert_eq!(r("h-x/bin/sh", "../../../etc/passwd"), None);
        assert_eq!(r("h-x/a/b/c/l", "../../../../../x"), None);
        assert_eq!(r("h-x", "h-y"), Some("h-y".into()));
        assert_eq!(r("h-x", ".."), None);
        assert_eq!(r("h-x/l", "/etc/../etc/passwd"), Some("/etc/passwd".into()));
    }

    #[test]
    fn copy_drops_modes_and_attributes_and_remove_never_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("keep"), "host file").unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), "data").unwrap();
        std::fs::set_permissions(src.join("sub/f"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        std::os::unix::fs::symlink(&victim, src.join("link")).unwrap();
        std::fs::set_permissions(src.join("sub"), std::fs::Permissions::from_mode(0o500)).unwrap();
        let dest = dir.path().join("dest");
        copy_tree(&src, &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("sub/f")).unwrap(), b"data");
        let mode = std::fs::metadata(dest.join("sub/f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o700);
        assert_eq!(std::fs::read_link(dest.join("link")).unwrap(), victim);
        remove_tree(&src).unwrap();
        remove_tree(&dest).unwrap();
        assert!(!src.exists() && !dest.exists());
        assert_eq!(std::fs::read(victim.join("keep")).unwrap(), b"host file");
    }
}
