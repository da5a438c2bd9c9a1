//! Two reports of one kind compared: what one has that the other lacks, section by section,
//! by content (never by pid, which differs from run to run). The first question when two
//! builders' outputs of one derivation disagree: which files, execs or probes differ.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::report::Report;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReportDiff {
    /// Sections with differences only, in the reports' order.
    pub sections: Vec<Section>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Section {
    pub name: &'static str,
    /// In the first report only, then in the second only; each sorted.
    pub only_first: Vec<String>,
    pub only_second: Vec<String>,
}

impl ReportDiff {
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    fn compare(&mut self, name: &'static str, a: BTreeSet<String>, b: BTreeSet<String>) {
        let only_first: Vec<String> = a.difference(&b).cloned().collect();
        let only_second: Vec<String> = b.difference(&a).cloned().collect();
        if !only_first.is_empty() || !only_second.is_empty() {
            self.sections.push(Section {
                name,
                only_first,
                only_second,
            });
        }
    }

    fn scalar(&mut self, name: &'static str, a: String, b: String) {
        self.compare(name, BTreeSet::from([a]), BTreeSet::from([b]));
    }
}

/// Compares two reports of the same schema.
pub fn diff(a: &Report, b: &Report) -> Result<ReportDiff, String> {
    let mut d = ReportDiff::default();
    match (a, b) {
        (Report::Build(a), Report::Build(b)) => {
            d.scalar("derivation", a.derivation.clone(), b.derivation.clone());
            let outputs =
                |r: &crate::BuildTrace| r.outputs.iter().map(|(k, v)| format!("{k} {v}")).collect();
            d.compare("outputs", outputs(a), outputs(b));
            let verdict = |r: &crate::BuildTrace| {
                format!(
                    "outputs {}, trace {}, {} violations",
                    if r.outputs_equal { "equal" } else { "differ" },
                    if r.strace.complete {
                        "complete"
                    } else {
                        "incomplete"
                    },
                    r.violations.len()
                )
            };
            d.scalar("verdict", verdict(a), verdict(b));
            let (x, y) = (&a.strace, &b.strace);
            let execs = |r: &crate::StraceReport| {
                r.execs
                    .iter()
                    .map(|e| {
                        let argv: String = e.argv.join(" ").chars().take(300).collect();
                        format!("{} [{argv}]", e.path)
                    })
                    .collect()
            };
            d.compare("execs", execs(x), execs(y));
            d.compare("read", x.read.clone(), y.read.clone());
            d.compare("written", x.written.clone(), y.written.clone());
            d.compare("deleted", x.deleted.clone(), y.deleted.clone());
            let probes = |r: &crate::StraceReport| {
                r.failed_probes
                    .iter()
                    .map(|(p, e)| format!("{p} ({e})"))
                    .collect()
            };
            d.compare("failed probes", probes(x), probes(y));
            let connects = |r: &crate::StraceReport| {
                r.connects
                    .iter()
                    .map(|c| format!("{} ({})", c.address, c.result))
                    .collect()
            };
            d.compare("connects", connects(x), connects(y));
            let violations = |r: &crate::BuildTrace| {
                r.violations
                    .iter()
                    .map(|v| format!("{} {}", v.how, v.path))
                    .collect()
            };
            d.compare("violations", violations(a), violations(b));
        }
        (Report::Valgrind(a), Report::Valgrind(b)) => {
            d.scalar("program", a.program.clone(), b.program.clone());
            d.scalar(
                "exit code",
                format!("{:?}", a.exit_code),
                format!("{:?}", b.exit_code),
            );
            let errors = |r: &crate::valgrind::ValgrindReport| {
                r.memchecks()
                    .flat_map(|m| m.errors.iter().chain(&m.leaks))
                    .map(|e| {
                        let at = e.stack.iter().map(|f| f.describe()).collect::<Vec<_>>();
                        format!("{} at {}", e.kind, at.join(" < "))
                    })
                    .collect()
            };
            d.compare("memcheck errors", errors(a), errors(b));
            d.scalar(
                "instructions",
                format!("{:?}", a.instructions),
                format!("{:?}", b.instructions),
            );
        }
        (Report::Gdb(a), Report::Gdb(b)) => {
            d.scalar("program", a.program.clone(), b.program.clone());
            d.scalar(
                "ending",
                serde_json::to_string(&a.ending).unwrap_or_default(),
                serde_json::to_string(&b.ending).unwrap_or_default(),
            );
            let stacks = |r: &crate::gdb::GdbReport| {
                r.threads
                    .iter()
                    .map(|t| {
                        let at = t.frames.iter().map(|f| f.describe()).collect::<Vec<_>>();
                        format!("thread {}: {}", t.id, at.join(" < "))
                    })
                    .collect()
            };
            d.compare("backtraces", stacks(a), stacks(b));
        }
        (Report::Perf(a), Report::Perf(b)) => {
            // Timings and samples differ from run to run: only what is deterministic.
            d.scalar("program", a.program.clone(), b.program.clone());
            d.scalar(
                "exit code",
                format!("{:?}", a.exit_code),
                format!("{:?}", b.exit_code),
            );
        }
        (Report::Python(a), Report::Python(b)) => {
            d.scalar("program", a.program.clone(), b.program.clone());
            d.scalar(
                "exit code",
                format!("{:?}", a.exit_code),
                format!("{:?}", b.exit_code),
            );
            // A function's calls, over every process: what ran differently.
            let calls = |r: &crate::python::PythonReport| {
                let mut total: std::collections::BTreeMap<String, u64> = Default::default();
                for p in &r.processes {
                    for f in &p.functions {
                        *total
                            .entry(format!("{} ({}:{})", f.name, f.file, f.line))
                            .or_default() += f.calls;
                    }
                }
                total
                    .into_iter()
                    .map(|(f, n)| format!("{f} ×{n}"))
                    .collect()
            };
            d.compare("calls", calls(a), calls(b));
            let http = |r: &crate::python::PythonReport| {
                r.http
                    .iter()
                    .flat_map(|h| h.unrecorded.iter().map(|u| format!("unrecorded {u}")))
                    .collect()
            };
            d.compare("http", http(a), http(b));
        }
        _ => {
            return Err(format!(
                "the reports are of different kinds ({} and {}); diff compares two of one kind",
                a.schema(),
                b.schema()
            ))
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gdb::{Ending, GdbReport, Thread};

    fn crash(function: &str) -> Report {
        Report::Gdb(GdbReport {
            schema: crate::gdb::SCHEMA.into(),
            tool: "/gnu/store/x-gdb".into(),
            program: "/gnu/store/y-crash/bin/crash".into(),
            args: vec![],
            ending: Ending::Signal {
                name: "SIGSEGV".into(),
                description: "Segmentation fault".into(),
                thread: Some(1),
            },
            threads: vec![Thread {
                id: 1,
                name: None,
                lwp: Some(7),
                frames: vec![crate::gdb::Frame {
                    level: 0,
                    address: None,
                    function: function.into(),
                    file: Some("c.c".into()),
                    line: Some(2),
                    library: None,
                }],
            }],
            omitted_threads: 0,
            crashed: None,
            build: None,
        })
    }

    #[test]
    fn equal_reports_have_no_difference_and_others_name_theirs() {
        assert!(diff(&crash("deref"), &crash("deref")).unwrap().is_empty());
        let d = diff(&crash("deref"), &crash("follow")).unwrap();
        assert_eq!(d.sections.len(), 1);
        assert_eq!(d.sections[0].name, "backtraces");
        assert_eq!(d.sections[0].only_first, ["thread 1: deref (c.c:2)"]);
        assert_eq!(d.sections[0].only_second, ["thread 1: follow (c.c:2)"]);
    }
}
