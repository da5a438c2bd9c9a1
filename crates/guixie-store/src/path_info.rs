use std::collections::BTreeSet;

use guixie_formats::signing::Signature;
use guixie_formats::{Encoding, Hash, StoreDir, StorePath};

/// What the store knows of a valid path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathInfo {
    pub path: StorePath,
    pub nar_hash: Hash,
    pub nar_size: u64,
    pub references: BTreeSet<StorePath>,
    pub deriver: Option<StorePath>,
    pub signatures: Vec<Signature>,
    /// Seconds since the Unix epoch.
    pub registration_time: i64,
    pub ca: Option<String>,
}

impl PathInfo {
    pub fn to_json(&self, store_dir: &StoreDir) -> serde_json::Value {
        serde_json::json!({
            "path": store_dir.display(&self.path),
            "narHash": self.nar_hash.to_typed_string(Encoding::Nix32),
            "narSize": self.nar_size,
            "references": self.references.iter().map(|r| store_dir.display(r)).collect::<Vec<_>>(),
            "deriver": self.deriver.as_ref().map(|d| store_dir.display(d)),
            "signatures": self.signatures.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "registrationTime": self.registration_time,
            "ca": self.ca,
        })
    }
}
