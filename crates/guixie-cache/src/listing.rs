//! `/<hash32>.ls`: the JSON listing of a path's NAR that Nix reads for `nix store ls` on a
//! binary cache (`{"version":1,"root":{…}}`), built while the NAR streams past.

use std::io::{self, Read};

use guixie_formats::nar::NarHandler;
use guixie_formats::StorePath;
use guixie_store::Store;
use serde_json::{json, Map, Value};

/// The listing of `path`, or an error if its NAR cannot be produced or parsed.
pub fn listing(store: &dyn Store, path: &StorePath) -> io::Result<Value> {
    let mut tree = Tree { root: None };
    guixie_store::parse_nar(store, path, &mut tree)
        .map_err(|e| io::Error::other(e.to_string()))?
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(json!({"version": 1, "root": tree.root.unwrap_or(Value::Null)}))
}

struct Tree {
    root: Option<Value>,
}

impl Tree {
    /// Puts `node` at `path` (components joined with `/`, empty for the root).
    fn put(&mut self, path: &[u8], node: Value) -> io::Result<()> {
        if path.is_empty() {
            self.root = Some(node);
            return Ok(());
        }
        let mut at = self
            .root
            .as_mut()
            .ok_or_else(|| io::Error::other("an entry before its directory"))?;
        let parts: Vec<String> = path
            .split(|&b| b == b'/')
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let (last, dirs) = parts.split_last().expect("not empty");
        for d in dirs {
            at = at
                .get_mut("entries")
                .and_then(|e| e.get_mut(d.as_str()))
                .ok_or_else(|| io::Error::other("an entry outside its directory"))?;
        }
        let entries = at
            .get_mut("entries")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| io::Error::other("an entry in a non-directory"))?;
        entries.insert(last.clone(), node);
        Ok(())
    }
}

impl NarHandler for Tree {
    fn directory(&mut self, path: &[u8]) -> io::Result<()> {
        self.put(path, json!({"type": "directory", "entries": Map::new()}))
    }
    fn symlink(&mut self, path: &[u8], target: &[u8]) -> io::Result<()> {
        self.put(
            path,
            json!({"type": "symlink", "target": String::from_utf8_lossy(target)}),
        )
    }
    fn file(
        &mut self,
        path: &[u8],
        executable: bool,
        size: u64,
        _: &mut dyn Read,
    ) -> io::Result<()> {
        let mut node = json!({"type": "regular", "size": size});
        if executable {
            node["executable"] = json!(true);
        }
        self.put(path, node)
    }
}
