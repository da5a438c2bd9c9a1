use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use guixie_evidence::{challenge, Verdict};
use guixie_log::FileLog;
use guixie_store::PathInfoQuery;

use crate::output::print_json;
use crate::Context;

#[derive(Args)]
pub struct ChallengeArgs {
    /// Derivations (`.drv` paths) or output paths to compare.
    #[arg(required = true)]
    targets: Vec<String>,
    /// Other builders' logs to compare with (directories); the local log is always read.
    #[arg(long = "log", value_name = "DIR")]
    logs: Vec<PathBuf>,
}

pub fn run(ctx: &Context, args: ChallengeArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    let own = super::evidence::log_dir(&store);
    // Our own log may not exist yet; other builders' logs are only read.
    let mut logs = vec![FileLog::open(&own)?];
    for dir in &args.logs {
        logs.push(FileLog::open_read_only(dir)?);
    }
    // Attestations name logical paths; accept the physical ones and base names too.
    let sd = store.store_dir();
    let targets: Vec<String> = args
        .targets
        .iter()
        .map(|t| match store.parse_user_path(t) {
            Ok(p) => sd.display(&p),
            Err(_) => t.clone(),
        })
        .collect();
    let findings = challenge(&logs, &targets)?;
    let mut report = Vec::new();
    for f in &findings {
        if !ctx.json {
            println!("{}: {}", f.path, f.verdict.as_str());
            for (builder, hash) in &f.attestations {
                println!("  {hash}  {}", builder.split(':').next().unwrap_or(builder));
            }
        }
        report.push(serde_json::json!({
            "path": f.path,
            "verdict": f.verdict.as_str(),
            "attestations": f.attestations,
        }));
    }
    if findings.is_empty() {
        eprintln!(
            "guixie: no attestation found for {} in {} log(s)",
            args.targets.join(", "),
            logs.len()
        );
    }
    if ctx.json {
        print_json(&serde_json::Value::Array(report))?;
    }
    let differ = findings.iter().any(|f| f.verdict == Verdict::Differ);
    Ok(if differ {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
