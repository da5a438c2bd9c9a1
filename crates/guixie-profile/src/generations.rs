//! A profile link (`~/.guixie-profile`) and its numbered generations beside it
//! (`~/.guixie-profile-3-link` → `/gnu/store/…-profile`), as Nix and Guix lay them out. Every
//! change writes a new link under a temporary name and renames it into place: a crash leaves
//! the old generation or the new one, never a mix. Each generation link is an indirect GC
//! root, so what a live generation holds is kept and a deleted one's is freed.

use std::path::{Path, PathBuf};

use guixie_store::LocalStore;

use crate::{io, ProfileError};

pub struct Profile {
    link: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    pub number: u32,
    /// The profile's store item, a logical store path.
    pub target: String,
    /// When the generation was made (its link's modification time), in Unix seconds.
    pub created: u64,
    pub current: bool,
}

impl Profile {
    /// The profile at `link`; its directory must exist.
    pub fn new(link: impl Into<PathBuf>) -> Result<Profile, ProfileError> {
        let link: PathBuf = link.into();
        let link = std::path::absolute(&link).map_err(io(&link))?;
        if link.file_name().is_none() {
            return Err(ProfileError::Invalid(format!(
                "{}: a profile is a file name",
                link.display()
            )));
        }
        Ok(Profile { link })
    }

    pub fn link(&self) -> &Path {
        &self.link
    }

    /// Holds `<profile>.lock` until dropped: one change of the profile at a time, so two
    /// installs cannot both build on the same generation or take the same number.
    pub fn lock(&self) -> Result<std::fs::File, ProfileError> {
        let path = self.dir().join(format!("{}.lock", self.name()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    fn name(&self) -> String {
        self.link
            .file_name()
            .expect("checked in new")
            .to_string_lossy()
            .into_owned()
    }

    fn dir(&self) -> &Path {
        self.link.parent().unwrap_or(Path::new("/"))
    }

    fn generation_link(&self, n: u32) -> PathBuf {
        self.dir().join(format!("{}-{n}-link", self.name()))
    }

    /// The current generation's number, if the profile exists.
    pub fn current(&self) -> Option<u32> {
        let target = std::fs::read_link(&self.link).ok()?;
        let name = target.file_name()?.to_string_lossy().into_owned();
        name.strip_prefix(&format!("{}-", self.name()))?
            .strip_suffix("-link")?
            .parse()
            .ok()
    }

    /// Every generation, oldest first.
    pub fn generations(&self) -> Result<Vec<Generation>, ProfileError> {
        let prefix = format!("{}-", self.name());
        let current = self.current();
        let mut found = Vec::new();
        let dir = self.dir();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(n) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix("-link"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let Ok(target) = std::fs::read_link(&path) else {
                continue;
            };
            let created = path
                .symlink_metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            found.push(Generation {
                number: n,
                target: target.display().to_string(),
                created,
                current: current == Some(n),
            });
        }
        found.sort_by_key(|g| g.number);
        Ok(found)
    }

    /// Makes `target` (a logical store path) a new generation, roots it, and switches to it.
    pub fn add(&self, store: &LocalStore, target: &str) -> Result<u32, ProfileError> {
        let n = self.generations()?.last().map_or(1, |g| g.number + 1);
        let link = self.generation_link(n);
        replace_link(Path::new(target), &link)?;
        store.add_indirect_root(&link)?;
        self.switch_to(n)?;
        Ok(n)
    }

    /// Points the profile at generation `n`.
    pub fn switch_to(&self, n: u32) -> Result<(), ProfileError> {
        let link = self.generation_link(n);
        if std::fs::read_link(&link).is_err() {
            return Err(ProfileError::Invalid(format!(
                "{}: no generation {n}",
                self.link.display()
            )));
        }
        // Relative, as Nix's and Guix's are: the profile and its generations move together.
        replace_link(
            Path::new(link.file_name().expect("a file name")),
            &self.link,
        )
    }

    /// Switches to the newest generation older than the current one.
    pub fn roll_back(&self) -> Result<u32, ProfileError> {
        let current = self.current().ok_or_else(|| {
            ProfileError::Invalid(format!("{}: no profile to roll back", self.link.display()))
        })?;
        let previous = self
            .generations()?
            .into_iter()
            .map(|g| g.number)
            .filter(|&n| n < current)
            .max()
            .ok_or_else(|| {
                ProfileError::Invalid(format!(
                    "{}: generation {current} is the oldest",
                    self.link.display()
                ))
            })?;
        self.switch_to(previous)?;
        Ok(previous)
    }

    /// Deletes generations (never the current one); what only they held becomes garbage.
    pub fn delete(&self, numbers: &[u32]) -> Result<(), ProfileError> {
        let current = self.current();
        if let Some(c) = numbers.iter().find(|&&n| Some(n) == current) {
            return Err(ProfileError::Invalid(format!(
                "{}: generation {c} is the current one; switch away from it first",
                self.link.display()
            )));
        }
        for &n in numbers {
            let link = self.generation_link(n);
            match std::fs::remove_file(&link) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ProfileError::Invalid(format!(
                        "{}: no generation {n}",
                        self.link.display()
                    )))
                }
                Err(e) => return Err(io(&link)(e)),
            }
        }
        Ok(())
    }
}

/// Makes `link` point at `target`, atomically: a new link under a temporary name, renamed.
fn replace_link(target: &Path, link: &Path) -> Result<(), ProfileError> {
    let temp = link.with_file_name(format!(
        ".{}.{}.tmp",
        link.file_name().expect("a file name").to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp).map_err(io(&temp))?;
    std::fs::rename(&temp, link).map_err(io(link))
}
