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
            let mut m = Merge {
                real_store: store.real_store_dir(),
                conflicts: &mut conflicts,
            };
            m.merge(&real, &entry.path, &root, "", 0)?;
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

/// Trees are merged at most this deep (a link loop stops here).
const MAX_DEPTH: usize = 64;

struct Merge<'a> {
    real_store: &'a Path,
    conflicts: &'a mut Vec<Conflict>,
}

impl Merge<'_> {
    /// Whether `from` is a directory to merge: a directory, or a link to one inside the store
    /// (as Guix's `union-build` follows them); a link out of the store stays a link.
    fn is_dir(&self, from: &Path, kind: std::fs::FileType) -> bool {
        kind.is_dir()
            || (kind.is_symlink()
                && std::fs::canonicalize(from)
                    .is_ok_and(|t| t.starts_with(self.real_store) && t.is_dir()))
    }

    /// Adds the tree at `real` (shown as `logical`) under `dest`, `rel` being where it is
    /// inside the profile.
    fn merge(
        &mut self,
        real: &Path,
        logical: &str,
        dest: &Path,
        rel: &str,
        depth: usize,
    ) -> Result<(), ProfileError> {
        if depth > MAX_DEPTH {
            return Err(ProfileError::Invalid(format!(
                "{logical}: directories nested more than {MAX_DEPTH} deep (a link loop?)"
            )));
        }
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
            if rel.is_empty() && name_s == MANIFEST_FILE {
                // The profile's own.
                self.conflicts.push(Conflict {
                    file: inner_rel,
                    kept: "the profile's manifest".into(),
                    ignored: inner_logical,
                });
                continue;
            }
            let kind = from.symlink_metadata().map_err(io(&from))?.file_type();
            let existing = to.symlink_metadata().ok();
            if self.is_dir(&from, kind) {
                match existing {
                    None => std::fs::create_dir(&to).map_err(io(&to))?,
                    Some(m) if m.is_dir() => {}
                    Some(_) => {
                        self.conflicts.push(Conflict {
                            file: inner_rel,
                            kept: std::fs::read_link(&to)
                                .map(|t| t.display().to_string())
                                .unwrap_or_default(),
                            ignored: inner_logical,
                        });
                        continue;
                    }
                }
                self.merge(&from, &inner_logical, &to, &inner_rel, depth + 1)?;
            } else if let Some(m) = existing {
                self.conflicts.push(Conflict {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, Source};
    use std::sync::Arc;

    #[test]
    fn directory_links_merge_and_conflicts_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let sd = guixie_formats::StoreDir::new("/gnu/store").unwrap();
        let store = LocalStore::open(guixie_store::StoreConfig::new(
            dir.path().join("root"),
            sd.clone(),
            Arc::new(guixie_env::FakeClock::new(0)),
        ))
        .unwrap();
        let tree = |name: &str, build: &dyn Fn(&Path)| {
            let t = dir.path().join(name);
            std::fs::create_dir(&t).unwrap();
            build(&t);
            let info = store.add_path(&t, name, false).unwrap();
            Entry {
                name: name.into(),
                version: None,
                path: sd.display(&info.path),
                source: Source::Path,
                search_paths: vec![],
            }
        };
        // `aa` has bin -> libexec; `zz` a real bin/; both hold `share/x`; `mm` a `manifest`.
        let aa = tree("aa", &|t| {
            std::fs::create_dir_all(t.join("libexec")).unwrap();
            std::fs::write(t.join("libexec/aa"), "a").unwrap();
            std::os::unix::fs::symlink("libexec", t.join("bin")).unwrap();
            std::fs::create_dir(t.join("share")).unwrap();
            std::fs::write(t.join("share/x"), "from aa").unwrap();
        });
        let zz = tree("zz", &|t| {
            std::fs::create_dir_all(t.join("bin")).unwrap();
            std::fs::write(t.join("bin/zz"), "z").unwrap();
            std::fs::create_dir(t.join("share")).unwrap();
            std::fs::write(t.join("share/x"), "from zz").unwrap();
        });
        let mm = tree("mm", &|t| std::fs::create_dir(t.join("manifest")).unwrap());
        let mut m = Manifest::new();
        for e in [zz.clone(), aa.clone(), mm] {
            m.put(e);
        }
        let u = union(&store, &m).unwrap();
        let real = store.real_path(&u.path);
        assert_eq!(
            std::fs::read_link(real.join("bin/aa")).unwrap(),
            Path::new(&format!("{}/bin/aa", aa.path))
        );
        assert_eq!(
            std::fs::read_link(real.join("bin/zz")).unwrap(),
            Path::new(&format!("{}/bin/zz", zz.path))
        );
        // Entries are merged in name order: aa's share/x is kept.
        let files: Vec<&str> = u.conflicts.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(files, ["manifest", "share/x"]);
        assert_eq!(u.conflicts[1].kept, format!("{}/share/x", aa.path));
        assert!(
            Manifest::parse(&std::fs::read_to_string(real.join(MANIFEST_FILE)).unwrap()).is_ok()
        );
        // The profile refers to its packages.
        let info = store.path_info(&u.path).unwrap().unwrap();
        assert_eq!(info.references.len(), 3);
    }
}
