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

/// A traced build's comparison with the registered build, in the reports of tools that
/// also trace programs (`program` is then the derivation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildCheck {
    /// Output name → store path.
    pub outputs: std::collections::BTreeMap<String, String>,
    /// Whether the traced run gave the registered outputs bit for bit.
    pub outputs_equal: bool,
    /// Files that differed, when they did not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
    /// Why there was nothing to compare: the build failed, or the traced run did (its
    /// error); `outputs` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Any report guixie writes, told apart by its `schema`.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Build(BuildTrace),
    Valgrind(crate::valgrind::ValgrindReport),
    Gdb(crate::gdb::GdbReport),
    Perf(crate::perf::PerfReport),
    Python(crate::python::PythonReport),
}

impl Report {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Schema {
            schema: String,
        }
        let Schema { schema } =
            serde_json::from_slice(bytes).map_err(|e| format!("not a guixie report: {e}"))?;
        let typed = |e: serde_json::Error| format!("not a valid {schema} report: {e}");
        match schema.as_str() {
            SCHEMA => BuildTrace::parse(bytes).map(Report::Build),
            crate::valgrind::SCHEMA => serde_json::from_slice(bytes)
                .map(Report::Valgrind)
                .map_err(typed),
            crate::gdb::SCHEMA => serde_json::from_slice(bytes)
                .map(Report::Gdb)
                .map_err(typed),
            crate::perf::SCHEMA => serde_json::from_slice(bytes)
                .map(Report::Perf)
                .map_err(typed),
            crate::python::SCHEMA => serde_json::from_slice(bytes)
                .map(Report::Python)
                .map_err(typed),
            other => Err(format!(
                "report schema {other:?}; this guixie reads {SCHEMA:?}, {:?}, {:?}, {:?} and {:?}",
                crate::valgrind::SCHEMA,
                crate::gdb::SCHEMA,
                crate::perf::SCHEMA,
                crate::python::SCHEMA
            )),
        }
    }

    pub fn schema(&self) -> &str {
        match self {
            Report::Build(r) => &r.schema,
            Report::Valgrind(r) => &r.schema,
            Report::Gdb(r) => &r.schema,
            Report::Perf(r) => &r.schema,
            Report::Python(r) => &r.schema,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Report::Build(r) => serde_json::to_value(r),
            Report::Valgrind(r) => serde_json::to_value(r),
            Report::Gdb(r) => serde_json::to_value(r),
            Report::Perf(r) => serde_json::to_value(r),
            Report::Python(r) => serde_json::to_value(r),
        }
        .expect("reports serialise")
    }
}
