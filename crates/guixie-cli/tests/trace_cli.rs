//! `guixie build --trace=strace` (issue 14): the targets are built, then rebuilt under strace
//! from outside the sandbox; the report is a store item, judged from outside: hello's gcc
//! exec tree with no hermeticity violation, a build reading the host's CPU description
//! flagged (the detector's positive control), and the sandbox's denials holding under the
//! tracer.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn at(root: &Path) -> std::process::Command {
    let mut c = guixie();
    c.arg("--store").arg(root);
    c
}

/// The report of a traced build, by the path it printed.
fn report(root: &Path, printed: &str) -> serde_json::Value {
    let path = printed.lines().next().expect("a report path").to_owned();
    assert!(path.ends_with("-strace.json"), "{printed}");
    serde_json::from_slice(&ok(at(root).args(["report", "json"]).arg(&path))).unwrap()
}

#[test]
fn hello_under_strace_shows_gccs_exec_tree_and_no_violation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hello.scm");
    let printed = ok_str(at(&root).args(["build", "--trace=strace", hello]));
    let r = report(&root, &printed);
    assert_eq!(r["schema"], "guixie.build-trace/1");
    assert_eq!(r["outputs_equal"], true, "{r}");
    assert_eq!(r["violations"], serde_json::json!([]), "{r}");
    // Every line understood, every path resolved: the verdict covers the whole build.
    assert_eq!(r["strace"]["complete"], true, "{r}");
    assert_eq!(r["strace"]["unparsed_lines"], 0);
    assert_eq!(r["strace"]["unresolved"], 0);
    let execs: Vec<&str> = r["strace"]["execs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for tool in ["/cc1", "/as", "/ld", "/make"] {
        assert!(
            execs.iter().any(|e| e.ends_with(tool)),
            "{tool} in {execs:?}"
        );
    }
    // cc1 runs under cc, which runs under make: a tree, not a list.
    let procs = r["strace"]["processes"].as_array().unwrap();
    let by_pid = |pid: &serde_json::Value| procs.iter().find(|p| &p["pid"] == pid).unwrap();
    let cc1 = procs
        .iter()
        .find(|p| p["argv"][0].as_str().is_some_and(|a| a.ends_with("/cc1")))
        .unwrap();
    let cc = by_pid(&cc1["parent"]);
    assert_eq!(cc["argv"][0], "cc", "{cc}");
    assert_eq!(by_pid(&cc["parent"])["argv"][0], "make");
    // Nothing is read from the build's own outputs before they exist, and what it wrote
    // is in the report.
    let out = r["outputs"]["out"].as_str().unwrap();
    assert!(r["strace"]["written"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str() == Some(&format!("{out}/bin/hello"))));
    let shown = ok_str(at(&root).args(["report", "show"]).arg(printed.trim()));
    assert!(
        shown.contains("hermetic") && shown.contains("cc1"),
        "{shown}"
    );
    // The traced rebuild is attested, its evidence naming the report by its SHA-256.
    let report_file = root.join(printed.trim().trim_start_matches('/'));
    let sum = ok_str(std::process::Command::new("sha256sum").arg(&report_file));
    let digest = sum.split_whitespace().next().unwrap().to_owned();
    let entries = fs::read_to_string(root.join("var/guixie/log/entries")).unwrap();
    let last = &entries[entries.rfind("{\"payloadType\"").unwrap()..];
    let envelope = dir.path().join("last.json");
    fs::write(&envelope, last.trim_end()).unwrap();
    let st: serde_json::Value = serde_json::from_slice(&ok(at(&root)
        .args(["--json", "attest", "show"])
        .arg(&envelope)))
    .unwrap();
    let evidence = st["predicate"]["evidence"].as_array().unwrap();
    assert!(
        evidence
            .iter()
            .any(|e| e["kind"] == "strace-report" && e["sha256"] == digest.as_str()),
        "{st}"
    );
}

#[test]
fn a_build_reading_the_hosts_cpu_description_is_flagged_and_denials_hold_under_the_tracer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    // Positive control: /proc/cpuinfo is visible in the sandbox but declared by no one.
    let nosy = dir.path().join("nosy.scm");
    fs::write(
        &nosy,
        "(derivation \"nosy\" \"/bin/sh\" (list \"-c\" \"cat /proc/cpuinfo > /dev/null; echo x > $out\"))\n",
    )
    .unwrap();
    let out = at(&root)
        .args(["build", "--trace=strace"])
        .arg(&nosy)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a violation fails the command");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let r = report(&root, &printed);
    assert_eq!(
        r["violations"],
        serde_json::json!([{"path": "/proc/cpuinfo", "how": "read"}]),
        "{r}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 HERMETICITY VIOLATIONS"));

    // Under the tracer the build still cannot read a host file or reach the network.
    let secret = dir.path().join("host-secret");
    fs::write(&secret, "secret").unwrap();
    let probe = dir.path().join("probe.scm");
    fs::write(
        &probe,
        format!(
            "(derivation \"probe\" \"/bin/sh\" (list \"-c\" \"mkdir $out; \
             cat {s} > $out/leak 2>/dev/null || echo denied > $out/leak; \
             nc -w 1 10.0.2.2 80 < /dev/null > /dev/null 2>&1 && echo reached > $out/net || echo unreachable > $out/net\"))\n",
            s = secret.display()
        ),
    )
    .unwrap();
    let printed = ok_str(at(&root).args(["build", "--trace=strace"]).arg(&probe));
    let r = report(&root, &printed);
    assert_eq!(r["outputs_equal"], true);
    let real = |name: &str| {
        let p = r["outputs"]["out"]
            .as_str()
            .unwrap()
            .trim_start_matches('/');
        fs::read_to_string(root.join(p).join(name)).unwrap()
    };
    assert_eq!(real("leak"), "denied\n");
    assert_eq!(real("net"), "unreachable\n");
    assert_eq!(
        r["strace"]["failed_probes"][secret.to_str().unwrap()],
        "ENOENT",
        "{r}"
    );
    let connects = r["strace"]["connects"].as_array().unwrap();
    assert!(
        !connects.is_empty() && connects.iter().all(|c| c["result"] != "ok"),
        "{connects:?}"
    );
}
