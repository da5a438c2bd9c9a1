//! `verify`: re-hash every valid path and compare with the database.

use guixie_formats::nar;

use super::LocalStore;
use crate::error::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyProblem {
    Missing {
        path: String,
    },
    Modified {
        path: String,
        expected: String,
        actual: String,
    },
    Unreadable {
        path: String,
        error: String,
    },
}

impl VerifyProblem {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            VerifyProblem::Missing { path } => {
                serde_json::json!({"path": path, "problem": "missing"})
            }
            VerifyProblem::Modified {
                path,
                expected,
                actual,
            } => {
                serde_json::json!({"path": path, "problem": "modified", "expected": expected, "actual": actual})
            }
            VerifyProblem::Unreadable { path, error } => {
                serde_json::json!({"path": path, "problem": "unreadable", "error": error})
            }
        }
    }
}

impl std::fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyProblem::Missing { path } => {
                write!(f, "{path}: missing from the store directory")
            }
            VerifyProblem::Modified {
                path,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{path}: contents changed (NAR hash {actual}, expected {expected})"
                )
            }
            VerifyProblem::Unreadable { path, error } => write!(f, "{path}: cannot read: {error}"),
        }
    }
}

impl LocalStore {
    /// Checks every valid path; returns the number checked and the problems found.
    pub fn verify(&self) -> Result<(usize, Vec<VerifyProblem>), StoreError> {
        let entries = self.db()?.all_hashes(&self.store_dir)?;
        let mut problems = Vec::new();
        for (path, expected, size) in &entries {
            let real = self.real_path(path);
            let shown = self.store_dir.display(path);
            if std::fs::symlink_metadata(&real).is_err() {
                problems.push(VerifyProblem::Missing { path: shown });
                continue;
            }
            match nar::hash_path(&real, expected.algo()) {
                Ok((actual, actual_size)) if actual == *expected && actual_size == *size => {}
                Ok((actual, _)) => problems.push(VerifyProblem::Modified {
                    path: shown,
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                }),
                Err(e) => problems.push(VerifyProblem::Unreadable {
                    path: shown,
                    error: e.to_string(),
                }),
            }
        }
        Ok((entries.len(), problems))
    }
}
