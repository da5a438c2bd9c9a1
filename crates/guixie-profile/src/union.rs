//! A profile's store item: the union of its packages' trees (real directories, one symlink per
//! file, to the file's logical path) and the manifest. It is content-addressed, and its
//! references are its packages, found in the links it holds.

use std::path::Path;

use guixie_formats::StorePath;
use guixie_store::{LocalStore, PathInfoQuery};

use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::{io, ProfileError};

/// A file two packages both have: the first package's is kept, as Guix keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Relative to the profile.
    pub file: String,
    pub kept: String,
    pub ignored: String,
}

pub struct Union {
    pub path: StorePath,
    pub conflicts: Vec<Conflict>,
}

/// Makes the union of `manifest`'s packages a store item.
pub fn union(store: &LocalStore, manifest: &Manifest) -> Result<Union, ProfileError> {
    let sd = store.store_dir().clone();
    let area = store.build_area()?;
    let root = area.join("profile");
    std::fs::create_dir(&root).map_err(io(&root))?;
    let mut conflicts = Vec::new();
    let result = (|| {
        for entry in &manifest.entries {
            let path = sd
                .parse_path(&entry.path)
                .map_err(|e| ProfileError::Invalid(format!("{}: {e}", entry.path)))?;
            if !store.is_valid(&path)? {
                return Err(ProfileError::Invalid(format!(
                    "{} ({}) is not valid in this store",
                    entry.path, entry.name
                )));
            }
            let real = store.real_path(&path);
            if !real.is_dir() {
                return Err(ProfileError::Invalid(format!(
                    "{} ({}) is a file; a profile holds packages that are directories",
                    entry.path, entry.name
                )));
            }
            merge(&real, &entry.path, &root, "", &mut conflicts)?;
        }
        let manifest_file = root.join(MANIFEST_FILE);
        if manifest_file.symlink_metadata().is_ok() {
            std::fs::remove_file(&manifest_file).map_err(io(&manifest_file))?;
        }
        std::fs::write(&manifest_file, manifest.to_json()).map_err(io(&manifest_file))?;
        Ok(store.add_path(&root, "profile", true)?)
    })();
    let _ = guixie_store::safe_fs::remove_tree(&area);
    Ok(Union {
        path: result?.path,
        conflicts,
    })
}

/// Adds the tree at `real` (shown as `logical`) under `dest`, `rel` being where it is inside
/// the profile.
fn merge(
    real: &Path,
    logical: &str,
    dest: &Path,
    rel: &str,
    conflicts: &mut Vec<Conflict>,
) -> Result<(), ProfileError> {
    let mut names: Vec<_> = std::fs::read_dir(real)
        .map_err(io(real))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io(real))?;
    names.sort();
    for name in names {
        let name_s = name.to_string_lossy().into_owned();
        let (from, to) = (real.join(&name), dest.join(&name));
        let inner_rel = if rel.is_empty() {
            name_s.clone()
        } else {
            format!("{rel}/{name_s}")
        };
        let inner_logical = format!("{logical}/{name_s}");
        let kind = from.symlink_metadata().map_err(io(&from))?.file_type();
        let existing = to.symlink_metadata().ok();
        if kind.is_dir() {
            match existing {
                None => std::fs::create_dir(&to).map_err(io(&to))?,
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    conflicts.push(Conflict {
                        file: inner_rel,
                        kept: std::fs::read_link(&to)
                            .map(|t| t.display().to_string())
                            .unwrap_or_default(),
                        ignored: inner_logical,
                    });
                    continue;
                }
            }
            merge(&from, &inner_logical, &to, &inner_rel, conflicts)?;
        } else if let Some(m) = existing {
            conflicts.push(Conflict {
                file: inner_rel,
                kept: if m.is_dir() {
                    "a directory".into()
                } else {
                    std::fs::read_link(&to)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default()
                },
                ignored: inner_logical,
            });
        } else {
            std::os::unix::fs::symlink(&inner_logical, &to).map_err(io(&to))?;
        }
    }
    Ok(())
}
