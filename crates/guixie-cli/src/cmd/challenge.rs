use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use guixie_attest::Envelope;
use guixie_formats::signing::PublicKey;
use guixie_log::FileLog;

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

/// For each target output: which builders attested which NAR hash.
type Findings = BTreeMap<String, BTreeMap<String, String>>;

pub fn run(ctx: &Context, args: ChallengeArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    let mut dirs = vec![super::evidence::log_dir(&store)];
    dirs.extend(args.logs.iter().cloned());
    // output path -> builder key -> NAR hash
    let mut findings: Findings = BTreeMap::new();
    for (i, dir) in dirs.iter().enumerate() {
        // Our own log may not exist yet; other builders' logs are only read.
        let log = if i == 0 {
            FileLog::open(dir)?
        } else {
            FileLog::open_read_only(dir)?
        };
        for i in 0..log.size() {
            let Ok(env) = Envelope::parse(&log.entry(i)?) else {
                continue;
            };
            let Ok(st) = env.statement() else { continue };
            // Only statements signed by the builder they name count.
            let Ok(builder) = PublicKey::parse(&st.predicate.builder) else {
                continue;
            };
            if env.verify(std::slice::from_ref(&builder), 1).is_err() {
                continue;
            }
            let p = &st.predicate;
            for out in p.outputs.values() {
                if args
                    .targets
                    .iter()
                    .any(|t| *t == p.derivation.path || *t == out.path)
                {
                    findings
                        .entry(out.path.clone())
                        .or_default()
                        .insert(builder.to_string(), out.nar_hash.clone());
                }
            }
        }
    }
    let mut differ = false;
    let mut report = Vec::new();
    for (path, by_builder) in &findings {
        let distinct: std::collections::BTreeSet<&String> = by_builder.values().collect();
        let verdict = match (by_builder.len(), distinct.len()) {
            (1, _) => "only one builder",
            (_, 1) => "agree",
            _ => {
                differ = true;
                "differ"
            }
        };
        if !ctx.json {
            println!("{path}: {verdict}");
            for (builder, hash) in by_builder {
                println!("  {hash}  {}", builder.split(':').next().unwrap_or(builder));
            }
        }
        report.push(
            serde_json::json!({"path": path, "verdict": verdict, "attestations": by_builder}),
        );
    }
    if findings.is_empty() {
        eprintln!(
            "guixie: no attestation found for {} in {} log(s)",
            args.targets.join(", "),
            dirs.len()
        );
    }
    if ctx.json {
        print_json(&serde_json::Value::Array(report))?;
    }
    Ok(if differ {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
