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
                Err(e) => Err(format!("{base}/{name}: {e}")),
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
                let dest = dir.join(name);
                let err = |e: std::io::Error| format!("{}/{name}: {e}", self.shown());
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(err)?;
                }
                let temp = dest.with_extension(format!("tmp-{}", std::process::id()));
                std::fs::copy(file, &temp)
                    .and_then(|_| std::fs::File::open(&temp)?.sync_all())
                    .and_then(|()| std::fs::rename(&temp, &dest))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&temp);
                        err(e)
                    })
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
                    .map_err(|e| format!("{base}/{name}: {e}"))
            }
        }
    }
}
