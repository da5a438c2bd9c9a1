//! Introspection of builds and programs: the tools' raw output turned into reports with a
//! versioned JSON schema (`docs/introspection.md`). Pure: the builder runs the tools and
//! hands their output here; nothing in this crate reads files or runs processes.

pub mod diff;
pub mod gdb;
pub mod hermetic;
pub mod http_recording;
pub mod path;
pub mod perf;
pub mod python;
pub mod report;
pub mod strace;
pub mod syscall;
pub mod valgrind;

pub use hermetic::{Allowed, Violation};
pub use report::BuildTrace;
pub use strace::{StraceReport, TraceOptions};
