//! After a successful run: the outputs are copied out of the build's reach, checked
//! (escaping symlinks, flat fixed outputs, file types) and registered with their references.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use guixie_formats::derivation::Derivation;
use guixie_formats::{StoreDir, StorePath};
use guixie_store::PathInfoQuery;

use super::{BuildError, BuildEvent, Builder, Realised};

impl Builder<'_> {
    pub(super) fn build_one(
        &self,
        drv_path: &StorePath,
        drv: &Derivation,
        outputs: &BTreeMap<String, StorePath>,
        outputs_of: &BTreeMap<StorePath, BTreeMap<String, StorePath>>,
        progress: &(dyn Fn(BuildEvent<'_>) + Sync),
    ) -> Result<Realised, BuildError> {
        let sd = self.store.store_dir().clone();
        let shown = sd.display(drv_path);
        let run = self.run_sandboxed(drv_path, drv, outputs, outputs_of, progress, None)?;
        let inside_store = match run.stage(outputs) {
            Ok(staged) => staged,
            Err(e) => {
                self.discard(&run.area);
                return Err(e);
            }
        };
        let SandboxRun {
            area,
            candidates,
            fixed,
            log,
            ..
        } = run;
        // Outputs go in after everything the sandbox mounted is gone (the helper has exited,
        // and with it its mount namespace).
        let result = (|| {
            for (name, path) in outputs {
                let tree = inside_store.join(path.to_string());
                if std::fs::symlink_metadata(&tree).is_err() {
                    return Err(BuildError::MissingOutput {
                        drv: shown.clone(),
                        output: name.clone(),
                        path: sd.display(path),
                    });
                }
                let flat = fixed.as_ref().is_some_and(|f| !f.recursive);
                let rel = Path::new(sd.as_str()).join(path.to_string());
                check_output(&tree, &rel, &sd, flat).map_err(|message| BuildError::BadOutput {
                    drv: shown.clone(),
                    path: sd.display(path),
                    message,
                })?;
            }
            // Outputs may refer to each other (`dev` to `out`): register each after the
            // siblings it refers to.
            let siblings: Vec<StorePath> = outputs.values().cloned().collect();
            let mut pending: Vec<(StorePath, BTreeSet<StorePath>)> = Vec::new();
            for path in outputs.values() {
                let tree = inside_store.join(path.to_string());
                let mut refs = self.store.scan_references(&tree, &siblings)?;
                refs.remove(path);
                pending.push((path.clone(), refs));
            }
            let mut registered: BTreeSet<StorePath> = BTreeSet::new();
            while !pending.is_empty() {
                let Some(i) = pending
                    .iter()
                    .position(|(_, refs)| refs.is_subset(&registered))
                else {
                    return Err(BuildError::BadOutput {
                        drv: shown.clone(),
                        path: sd.display(&pending[0].0),
                        message: "outputs refer to each other in a cycle".into(),
                    });
                };
                let (path, _) = pending.remove(i);
                let tree = inside_store.join(path.to_string());
                let expected = fixed.as_ref().map(|f| (&f.hash, f.recursive));
                self.store.register_built(
                    &tree,
                    &path,
                    &candidates,
                    Some(drv_path.clone()),
                    expected,
                )?;
                registered.insert(path);
            }
            Ok(())
        })();
        self.discard(&area);
        result?;
        Ok(Realised::Built { log })
    }
}

/// A finished sandbox run, before its outputs are registered or compared.
pub(super) struct SandboxRun {
    pub area: PathBuf,
    pub inside_store: PathBuf,
    pub candidates: Vec<StorePath>,
    pub fixed: Option<guixie_formats::derivation::FixedOutput>,
    pub log: PathBuf,
    /// What the build could see, by its paths inside the sandbox.
    pub visible: Vec<PathBuf>,
    pub _build_user: Option<crate::build_user::BuildUser>,
}

impl SandboxRun {
    /// Copies the outputs out of the build's reach, once every process of the build is gone:
    /// what is checked and registered is a tree of new files no builder ever held a
    /// descriptor to, without owners, extended attributes or capabilities (CVE-2024-27297).
    /// Returns the directory that holds the copies, by output base name.
    pub fn stage(&self, outputs: &BTreeMap<String, StorePath>) -> Result<PathBuf, BuildError> {
        use std::os::unix::fs::DirBuilderExt;
        let staged = self.area.join("out");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staged)
            .map_err(|e| BuildError::Io(format!("{}: {e}", staged.display())))?;
        for path in outputs.values() {
            let name = path.to_string();
            let built = self.inside_store.join(&name);
            if std::fs::symlink_metadata(&built).is_ok() {
                guixie_store::safe_fs::copy_tree(&built, &staged.join(&name))?;
            }
        }
        Ok(staged)
    }
}

/// Gives the build's writable directories (and what guixie put in them) to the build user,
/// private to it: mode 0700, so no other local user reads, writes or runs anything there.
pub(super) fn hand_over(
    writable: &[(PathBuf, PathBuf)],
    user: Option<&crate::build_user::BuildUser>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (dir, _) in writable {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some(u) = user {
            std::os::unix::fs::lchown(dir, Some(u.uid), Some(u.gid))?;
            for entry in std::fs::read_dir(dir)? {
                std::os::unix::fs::lchown(entry?.path(), Some(u.uid), Some(u.gid))?;
            }
        }
    }
    Ok(())
}

/// Rejects symlinks whose target leaves the store (relative ones resolved lexically from
/// where they are, at any depth), a flat fixed output that is not a regular file, and any
/// file type the store cannot hold. `rel` is `tree`'s path relative to the store directory.
fn check_output(tree: &Path, rel: &Path, sd: &StoreDir, flat: bool) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(tree).map_err(|e| e.to_string())?;
    let ft = meta.file_type();
    if flat && !ft.is_file() {
        return Err("a flat fixed output must be a regular file".into());
    }
    if ft.is_symlink() {
        let target = std::fs::read_link(tree).map_err(|e| e.to_string())?;
        let store = Path::new(sd.as_str());
        let resolved = guixie_store::safe_fs::resolve_link_lexically(rel, &target)
            .map(|p| Path::new("/").join(p));
        if !resolved.is_some_and(|p| p.starts_with(store)) {
            let how = if target.is_absolute() {
                "points outside the store"
            } else {
                "climbs out of the store"
            };
            return Err(format!(
                "symlink {} {how}, to {}",
                rel.display(),
                target.display()
            ));
        }
    } else if ft.is_dir() {
        for e in std::fs::read_dir(tree).map_err(|e| e.to_string())? {
            let e = e.map_err(|e| e.to_string())?;
            check_output(&e.path(), &rel.join(e.file_name()), sd, false)?;
        }
    } else if !ft.is_file() {
        return Err(format!(
            "{} is neither a file, a directory nor a symlink",
            rel.display()
        ));
    }
    Ok(())
}
