//! perf's account of a program run: `perf stat`'s software counters (CSV, `-x ,`) and the
//! samples of `perf record`, which the caller folds into a flame graph.

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "guixie.perf-report/1";

/// Software counters: what the kernel counts without a PMU (hardware counters such as
/// cycles and instructions need one, which virtual machines often lack).
pub const SOFTWARE_EVENTS: &[&str] = &[
    "task-clock",
    "context-switches",
    "cpu-migrations",
    "page-faults",
    "minor-faults",
    "major-faults",
];

/// Sampling frequency of `perf record`, in Hz.
pub const SAMPLE_HZ: u32 = 999;

pub fn stat_args(csv_file: &str) -> Vec<String> {
    vec![
        "stat".into(),
        "-x".into(),
        ",".into(),
        "-o".into(),
        csv_file.into(),
        "-e".into(),
        SOFTWARE_EVENTS.join(","),
        "--".into(),
    ]
}

/// `perf record` with call graphs; without a PMU it samples the `cpu-clock` software event.
pub fn record_args(data_file: &str) -> Vec<String> {
    vec![
        "record".into(),
        "-q".into(),
        "-F".into(),
        SAMPLE_HZ.to_string(),
        "-g".into(),
        "-o".into(),
        data_file.into(),
        "--".into(),
    ]
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerfReport {
    pub schema: String,
    pub tool: String,
    pub program: String,
    pub args: Vec<String>,
    pub exit_code: Option<i32>,
    /// Whether the machine has a PMU (hardware counters); when not, only software counters
    /// are given and samples are taken on the `cpu-clock` timer.
    pub pmu: bool,
    pub counters: Vec<Counter>,
    /// Samples `perf record` took, and the flame graph (an SVG store item) made of them.
    pub samples: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flamegraph: Option<String>,
    /// For a traced build (`guixie build --trace=perf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<crate::report::BuildCheck>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counter {
    pub event: String,
    /// `None` when perf could not count it (`<not supported>`, `<not counted>`).
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

/// Reads `perf stat -x ,` output: `value,unit,event,run time,percentage,…` per line;
/// comments and blank lines are skipped. Only the events asked for are kept.
pub fn parse_stat_csv(csv: &str) -> Vec<Counter> {
    csv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut fields = l.split(',');
            let value = fields.next()?;
            let unit = fields.next()?;
            let event = fields.next()?;
            // perf may decorate an event with a modifier (`task-clock:u`).
            let base = event.split(':').next()?;
            SOFTWARE_EVENTS.contains(&base).then(|| Counter {
                event: base.to_owned(),
                value: value.trim().parse().ok(),
                unit: unit.to_owned(),
            })
        })
        .collect()
}

/// The number of samples in `perf script`'s default output: each starts with a header line
/// (not indented) naming the event.
pub fn count_samples(script_line: &str) -> bool {
    !script_line.is_empty() && !script_line.starts_with([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// perf 6.1's `stat -x ,` of a small program, recorded.
    const STAT: &str = "# started on Thu Dec  3 07:12:25 2026\n\n\
        30.07,msec,task-clock,30071484,100.00,0.974,CPUs utilized\n\
        2,,context-switches,30071484,100.00,66.508,/sec\n\
        0,,cpu-migrations,30071484,100.00,0.000,/sec\n\
        56,,page-faults,30071484,100.00,1.862,K/sec\n\
        0,,major-faults,30071484,100.00,0.000,/sec\n\
        56,,minor-faults,30071484,100.00,1.862,K/sec\n\
        <not supported>,,cycles,0,100.00,,\n";

    #[test]
    fn the_software_counters_are_read_and_others_left_out() {
        let c = parse_stat_csv(STAT);
        assert_eq!(c.len(), 6);
        assert_eq!(c[0].event, "task-clock");
        assert_eq!(c[0].value, Some(30.07));
        assert_eq!(c[0].unit, "msec");
        assert_eq!(c[3].value, Some(56.0));
        let odd = parse_stat_csv("<not counted>,,page-faults:u,0,0,,\ngarbage\n");
        assert_eq!(odd.len(), 1);
        assert_eq!(odd[0].value, None);
    }

    #[test]
    fn sample_headers_are_the_unindented_lines() {
        assert!(count_samples(
            "busy 20883 44498.966443:    1001001 cpu-clock:pppH: "
        ));
        assert!(!count_samples("\t    1139 fib+0x0 (/tmp/busy)"));
        assert!(!count_samples(""));
    }
}
