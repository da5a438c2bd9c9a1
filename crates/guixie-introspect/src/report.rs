//! A traced build's report, as it is kept in the store: which derivation, whether the traced
//! run's outputs equal the registered ones, the tool's report, and the hermeticity verdict.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hermetic::Violation;
use crate::strace::StraceReport;

pub const SCHEMA: &str = "guixie.build-trace/1";

/// Largest report read back (a report names each file once).
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildTrace {
    pub schema: String,
    pub tool: String,
    pub derivation: String,
    /// Output name → store path.
    pub outputs: BTreeMap<String, String>,
    /// Whether the traced run gave the registered outputs bit for bit.
    pub outputs_equal: bool,
    /// Files that differed, when they did not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
    pub strace: StraceReport,
    /// Files read or executed outside what the build could declare.
    pub violations: Vec<Violation>,
}

impl BuildTrace {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let report: BuildTrace =
            serde_json::from_slice(bytes).map_err(|e| format!("not a build trace report: {e}"))?;
        if report.schema != SCHEMA {
            return Err(format!(
                "report schema {:?}; this guixie reads {SCHEMA:?}",
                report.schema
            ));
        }
        Ok(report)
    }
}
