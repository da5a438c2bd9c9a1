//! Canonical form of store contents: owner-writable bits off, no setuid/setgid/sticky, mode
//! 0444 or 0555, mtime 1 (the Unix epoch plus one second, as Nix does), everything fsynced.

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{io_err, StoreError};

/// When a canonicalised tree is made durable.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Each file and directory is fsynced now.
    Now,
    /// The caller makes the whole file system durable at once (`syncfs`) before registering.
    Later,
}

/// Canonicalises the tree at `path` bottom-up and makes it durable.
pub fn canonicalise(path: &Path) -> Result<(), StoreError> {
    canonicalise_tree(path, Durable::Now)
}

pub fn canonicalise_tree(path: &Path, durable: Durable) -> Result<(), StoreError> {
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err(path))? {
            canonicalise_tree(&entry.map_err(io_err(path))?.path(), durable)?;
        }
        if durable == Durable::Now {
            File::open(path)
                .and_then(|d| d.sync_all())
                .map_err(io_err(path))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o555)).map_err(io_err(path))?;
    } else if ft.is_file() {
        let exec = meta.permissions().mode() & 0o100 != 0;
        if durable == Durable::Now {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(io_err(path))?;
        }
        fs::set_permissions(
            path,
            fs::Permissions::from_mode(if exec { 0o555 } else { 0o444 }),
        )
        .map_err(io_err(path))?;
    } else if !ft.is_symlink() {
        return Err(StoreError::Io {
            path: path.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file, directory or symlink",
            ),
        });
    }
    set_mtime_one(path)
}

pub fn set_mtime_one(path: &Path) -> Result<(), StoreError> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| StoreError::Io {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let times = [
        libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        },
    ];
    // SAFETY: `c` is a valid NUL-terminated path and `times` has the two entries utimensat reads.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(StoreError::Io {
            path: path.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// fsync a directory so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
