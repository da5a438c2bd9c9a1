//! What a profile holds and where each package came from (so `upgrade` can ask again).

use serde::{Deserialize, Serialize};

/// The file name of the manifest inside a profile's store item.
pub const MANIFEST_FILE: &str = "manifest";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Sorted by name, one entry per name.
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub version: Option<String>,
    /// The package's output, a logical store path.
    pub path: String,
    pub source: Source,
    /// What the package declares its environment sets (`native-search-paths`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_paths: Vec<SearchPath>,
}

/// An environment variable set from directories of a profile's packages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPath {
    pub variable: String,
    pub files: Vec<String>,
    pub separator: String,
}

/// How a package was named when it was installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// A package name, looked up on the load path.
    Package { name: String },
    /// A `.scm` file (absolute), and the variable asked for if any.
    File { file: String, attr: Option<String> },
    /// A store path given as it is (never upgraded).
    Path,
}

impl Manifest {
    pub fn new() -> Manifest {
        Manifest {
            version: 1,
            entries: Vec::new(),
        }
    }

    /// Adds `entry`, replacing the entry of the same name.
    pub fn put(&mut self, entry: Entry) {
        self.entries.retain(|e| e.name != entry.name);
        self.entries.push(entry);
        self.entries.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Removes the entry named `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.name != name);
        self.entries.len() != before
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest serialises") + "\n"
    }

    pub fn parse(text: &str) -> Result<Manifest, crate::ProfileError> {
        let m: Manifest = serde_json::from_str(text)
            .map_err(|e| crate::ProfileError::Invalid(format!("profile manifest: {e}")))?;
        if m.version != 1 {
            return Err(crate::ProfileError::Invalid(format!(
                "profile manifest version {} (this guixie reads 1)",
                m.version
            )));
        }
        Ok(m)
    }
}

/// `hello-1.0` → (`hello`, `1.0`): the version starts at the last `-` followed by a digit.
pub fn split_name(name: &str) -> (String, Option<String>) {
    match name
        .rmatch_indices('-')
        .find(|(i, _)| name[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
    {
        Some((i, _)) => (name[..i].to_owned(), Some(name[i + 1..].to_owned())),
        None => (name.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_split_as_guix_does() {
        assert_eq!(
            split_name("hello-1.0"),
            ("hello".into(), Some("1.0".into()))
        );
        assert_eq!(
            split_name("gcc-toolchain-12.3"),
            ("gcc-toolchain".into(), Some("12.3".into()))
        );
        assert_eq!(split_name("libgreet"), ("libgreet".into(), None));
    }

    #[test]
    fn one_entry_per_name_in_order_and_a_round_trip() {
        let mut m = Manifest::new();
        let e = |name: &str, path: &str| Entry {
            name: name.into(),
            version: None,
            path: path.into(),
            source: Source::Path,
            search_paths: vec![],
        };
        m.put(e("zed", "/gnu/store/a-zed"));
        m.put(e("hello", "/gnu/store/b-hello"));
        m.put(e("hello", "/gnu/store/c-hello"));
        assert_eq!(m.entries.len(), 2);
        assert_eq!(m.entries[0].path, "/gnu/store/c-hello");
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
        assert!(m.remove("zed") && !m.remove("zed"));
        assert!(Manifest::parse("{\"version\": 2, \"entries\": []}").is_err());
    }
}
