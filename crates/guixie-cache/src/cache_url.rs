//! A binary cache's address (`http(s)://` or `file://`, Nix's layout) and reading and writing
//! the files under it.

use std::io::Read;
use std::path::{Path, PathBuf};

/// One binary cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheUrl {
    Http(String),
    File(PathBuf),
}

impl CacheUrl {
    pub fn parse(url: &str) -> Result<CacheUrl, String> {
        let url = url.trim_end_matches('/');
        if let Some(dir) = url.strip_prefix("file://") {
            return Ok(CacheUrl::File(PathBuf::from(dir)));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(CacheUrl::Http(url.to_owned()));
        }
        Err(format!(
            "substitute URL {url:?}: only http://, https:// and file:// are supported"
        ))
    }

    pub fn shown(&self) -> String {
        match self {
            CacheUrl::Http(u) => u.clone(),
            CacheUrl::File(d) => format!("file://{}", d.display()),
        }
    }

    /// `name` under the cache (a narinfo, a NAR), or `None` when the cache has no such file.
    pub fn open(
        &self,
        agent: &ureq::Agent,
        name: &str,
    ) -> Result<Option<Box<dyn Read + Send>>, String> {
        // Names come from narinfos the caller checked; a URL field may still try to climb.
        if name.split('/').any(|c| c == ".." || c.is_empty()) || name.starts_with('/') {
            return Err(format!("{}: refusing the file name {name:?}", self.shown()));
        }
        match self {
            CacheUrl::File(dir) => match std::fs::File::open(dir.join(name)) {
                Ok(f) => Ok(Some(Box::new(f))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{}/{name}: {e}", self.shown())),
            },
            CacheUrl::Http(base) => match agent.get(&format!("{base}/{name}")).call() {
                Ok(r) => Ok(Some(Box::new(r.into_reader()))),
                Err(ureq::Error::Status(404 | 403, _)) => Ok(None),
                // ureq's errors name the URL themselves.
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

impl CacheUrl {
    /// Stores `file` as `name` under the cache: written beside and renamed into place in a
    /// directory, `PUT` over HTTP (as Nix's HTTP binary cache store uploads).
    pub fn put(
        &self,
        agent: &ureq::Agent,
        name: &str,
        file: &Path,
        content_type: &str,
    ) -> Result<(), String> {
        if name.split('/').any(|c| c == ".." || c.is_empty()) || name.starts_with('/') {
            return Err(format!("{}: refusing the file name {name:?}", self.shown()));
        }
        match self {
            CacheUrl::File(dir) => {
                let err = |e: std::io::Error| format!("{}/{name}: {e}", self.shown());
                // Directories under the cache are made, never followed: a link planted there
                // (a shared or someone else's disk) cannot send the write elsewhere.
                // The cache's own directory is the user's to name, links and all.
                std::fs::create_dir_all(dir).map_err(err)?;
                let mut parent = dir.clone();
                let components: Vec<&str> = name.split('/').collect();
                for c in &components[..components.len() - 1] {
                    parent.push(c);
                    match std::fs::create_dir(&parent) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(err(e)),
                    }
                    let meta = std::fs::symlink_metadata(&parent).map_err(err)?;
                    if !meta.is_dir() {
                        return Err(format!(
                            "{}/{name}: {} is not a directory of the cache (a link?)",
                            self.shown(),
                            parent.display()
                        ));
                    }
                }
                // A fresh name made with O_EXCL, renamed over the destination (rename
                // replaces a link; it never writes through one).
                let mut temp = tempfile::NamedTempFile::new_in(&parent).map_err(err)?;
                let mut from = std::fs::File::open(file).map_err(err)?;
                std::io::copy(&mut from, temp.as_file_mut())
                    .and_then(|_| temp.as_file().sync_all())
                    .map_err(err)?;
                temp.persist(parent.join(components[components.len() - 1]))
                    .map(drop)
                    .map_err(|e| err(e.error))
            }
            CacheUrl::Http(base) => {
                let f =
                    std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                agent
                    .put(&format!("{base}/{name}"))
                    .set("Content-Type", content_type)
                    .set("Content-Length", &len.to_string())
                    .send(f)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The HTTP client caches are reached with: connections reused, and a cache that stops
/// answering gives up rather than hanging (as Nix's `connect-timeout` and
/// `stalled-download-timeout`).
pub fn http_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(20))
        .timeout_read(std::time::Duration::from_secs(120))
        .timeout_write(std::time::Duration::from_secs(120))
        .build()
}
