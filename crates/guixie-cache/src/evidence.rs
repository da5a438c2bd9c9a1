//! The evidence a peer needs beside a binary: `/checkpoint` (the log's signed size and root)
//! and `/attestations/<hash32>` (every signed statement about a path, each with its inclusion
//! proof in the tree of the current size). The log is opened read-only for each request.

use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use guixie_log::note::SignerKey;
use guixie_log::FileLog;
use serde_json::{json, Value};

use crate::text;

/// Where the store's transparency log is and the key its checkpoints are signed with.
pub struct Evidence {
    pub log_dir: PathBuf,
    pub log_key: Option<SignerKey>,
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn checkpoint(evidence: &Evidence) -> Response {
    let (Some(key), Ok(log)) = (
        &evidence.log_key,
        FileLog::open_read_only(&evidence.log_dir),
    ) else {
        return text(StatusCode::NOT_FOUND, "no log\n", Some(60));
    };
    match guixie_evidence::checkpoint(&log, key) {
        // Checkpoints grow: never cached long.
        Ok(cp) => text(StatusCode::OK, &cp, Some(10)),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "checkpoint failed\n",
            None,
        ),
    }
}

pub fn attestations(evidence: &Evidence, hash_part: &str) -> Response {
    let Ok(log) = FileLog::open_read_only(&evidence.log_dir) else {
        return text(StatusCode::NOT_FOUND, "no log\n", Some(60));
    };
    match collect(&log, hash_part) {
        Ok(v) => {
            let mut r = text(StatusCode::OK, &v.to_string(), Some(10));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "log unreadable\n", None),
    }
}

/// The statements whose derivation or an output has `hash_part`, in log order.
fn collect(log: &FileLog, hash_part: &str) -> Result<Value, guixie_log::LogError> {
    let size = log.size();
    let mut found = Vec::new();
    for index in guixie_evidence::entries_about(log, hash_part)? {
        let entry = log.entry(index)?;
        let proof = log.inclusion_proof(index, size)?;
        found.push(json!({
            "index": index,
            "leafHash": hex(&log.leaf_hash(index)?),
            "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
            "envelope": serde_json::from_slice::<Value>(&entry).unwrap_or(Value::Null),
            // The bytes the leaf hash is of: a client recomputes it from these.
            "entry": String::from_utf8_lossy(&entry),
        }));
    }
    let root = if size > 0 {
        hex(&log.root(size)?)
    } else {
        String::new()
    };
    Ok(json!({"size": size, "root": root, "attestations": found}))
}
