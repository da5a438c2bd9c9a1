//! `guixie challenge`: what independent builders say about the same outputs, side by side.
//! From builders' log directories (`--log`), or from the network (`--peer`, `--network`),
//! where each trusted builder's node is asked and only attestations proven in its log count.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use guixie_evidence::{challenge, Verdict};
use guixie_formats::StorePath;
use guixie_log::FileLog;
use guixie_store::{LocalStore, PathInfoQuery};

use super::substitutes::StoreConf;
use crate::output::print_json;
use crate::Context;

#[derive(Args)]
pub struct ChallengeArgs {
    /// Derivations (`.drv` paths) or output paths to compare; none: every path in the store.
    targets: Vec<String>,
    /// Other builders' logs to compare with (directories); the local log is always read.
    #[arg(long = "log", value_name = "DIR", conflicts_with_all = ["peers", "network"])]
    logs: Vec<PathBuf>,
    /// Ask the network: the trust policy's builders, through this peer; repeatable.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    peers: Vec<String>,
    /// Ask the network through the store configuration's `peers`.
    #[arg(long)]
    network: bool,
    /// The trust policy naming the builders to compare (default: the one this store's
    /// quorum applied, else the store configuration's `trust-policy`).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// How long to wait for builders that have not answered, in seconds.
    #[arg(long, default_value_t = 5)]
    decide_within: u64,
}

pub fn run(ctx: &Context, args: ChallengeArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    let targets: Vec<String> = if args.targets.is_empty() {
        // Derivations are not built outputs: their outputs, where present, are listed.
        store
            .valid_paths()?
            .iter()
            .filter(|p| !p.name().ends_with(".drv"))
            .map(|p| store.store_dir().display(p))
            .collect()
    } else {
        // Attestations name logical paths; accept the physical ones and base names too.
        args.targets
            .iter()
            .map(|t| match store.parse_user_path(t) {
                Ok(p) => store.store_dir().display(&p),
                Err(_) => t.clone(),
            })
            .collect()
    };
    let verdicts = if args.network || !args.peers.is_empty() {
        network::challenge(ctx, &store, &args, &targets)?
    } else {
        from_logs(ctx, &store, &args, &targets)?
    };
    summarise(ctx, &verdicts);
    Ok(if verdicts.contains(&Verdict::Differing) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn from_logs(
    ctx: &Context,
    store: &LocalStore,
    args: &ChallengeArgs,
    targets: &[String],
) -> anyhow::Result<Vec<Verdict>> {
    let own = super::evidence::log_dir(store);
    // Our own log may not exist yet; other builders' logs are only read.
    let mut logs = vec![FileLog::open(&own)?];
    for dir in &args.logs {
        logs.push(FileLog::open_read_only(dir)?);
    }
    let mut findings = challenge(&logs, targets)?;
    // An output path no log attests is unknown (a `.drv` stands for outputs it may not name).
    for t in targets {
        if !t.ends_with(".drv") && !findings.iter().any(|f| f.path == *t) {
            findings.push(guixie_evidence::Finding {
                path: t.clone(),
                verdict: Verdict::Unknown,
                attestations: Default::default(),
            });
        }
    }
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
    if findings.iter().all(|f| f.verdict == Verdict::Unknown) {
        eprintln!(
            "guixie: no attestation found for {} in {} log(s)",
            if args.targets.is_empty() {
                "any path of the store".to_owned()
            } else {
                args.targets.join(", ")
            },
            logs.len()
        );
    }
    if ctx.json {
        print_json(&serde_json::Value::Array(report))?;
    }
    Ok(findings.iter().map(|f| f.verdict).collect())
}

/// Counts, as `guix challenge` does, on stderr (stdout stays the report).
fn summarise(ctx: &Context, verdicts: &[Verdict]) {
    if ctx.json || verdicts.len() < 2 {
        return;
    }
    let count = |v: Verdict| verdicts.iter().filter(|x| **x == v).count();
    let pct = |n: usize| 100.0 * n as f64 / verdicts.len() as f64;
    eprintln!("{} store items were analysed:", verdicts.len());
    for v in [
        Verdict::Identical,
        Verdict::Differing,
        Verdict::OnlyOneBuilder,
        Verdict::Unknown,
    ] {
        let n = count(v);
        eprintln!("  - {n} ({:.1}%) {}", pct(n), v.as_str());
    }
}

mod network {
    use super::*;
    use guixie_node::node::Survey;

    /// Asks every builder of the trust policy about each output of `targets`.
    pub fn challenge(
        ctx: &Context,
        store: &LocalStore,
        args: &ChallengeArgs,
        targets: &[String],
    ) -> anyhow::Result<Vec<Verdict>> {
        let conf = StoreConf::read(&ctx.store_root()?)?;
        let policy = crate::cmd::node::chosen_policy(
            store,
            args.policy.as_deref(),
            conf.trust_policy.as_deref(),
        )?
        .context("asking the network needs a trust policy naming the builders (--policy)")?;
        let mut peers = args.peers.clone();
        if args.network {
            peers.extend(conf.peers);
        }
        anyhow::ensure!(
            !peers.is_empty(),
            "no peer to ask: give --peer, or `peers =` in the store configuration"
        );
        let peers = crate::cmd::node::parse_multiaddrs(&peers)?;
        let outputs = outputs_of(store, targets)?;
        let logs_file = store.state_dir().join("node").join("logs.json");
        let logs = guixie_log::verifier::ClientState::load(&logs_file)?;
        let result = guixie_p2p::survey::survey(
            guixie_p2p::survey::SurveyOptions {
                policy,
                peers,
                identity: ctx.rng().bytes32(),
                decide_within: Duration::from_secs(args.decide_within),
                logs,
                clock: ctx.clock(),
            },
            outputs.iter().map(|p| p.hash_part().to_owned()).collect(),
        )?;
        for (origin, detail) in &result.convicted {
            eprintln!("guixie: the log {origin} is excluded: {detail}");
        }
        let mut report = Vec::new();
        let mut verdicts = Vec::new();
        let surveys: std::collections::BTreeMap<&str, &Survey> = result
            .surveys
            .iter()
            .map(|s| (s.hash_part.as_str(), s))
            .collect();
        for path in &outputs {
            let survey = surveys
                .get(path.hash_part())
                .context("the survey lost a path")?;
            let shown = store.store_dir().display(path);
            let local = store.path_info(path)?.map(|i| i.nar_hash.to_string());
            let verdict = verdict(local.as_deref(), survey);
            verdicts.push(verdict);
            if ctx.json {
                report.push(json(&shown, local.as_deref(), verdict, survey));
            } else {
                print_text(&shown, local.as_deref(), verdict, survey);
            }
        }
        if ctx.json {
            print_json(&serde_json::Value::Array(report))?;
        }
        Ok(verdicts)
    }

    /// The output paths named: a `.drv` in the store stands for its outputs.
    fn outputs_of(store: &LocalStore, targets: &[String]) -> anyhow::Result<Vec<StorePath>> {
        let mut outputs: Vec<StorePath> = Vec::new();
        for t in targets {
            let path = store
                .store_dir()
                .parse_path(t)
                .with_context(|| format!("{t:?}: not a store path"))?;
            if !path.name().ends_with(".drv") {
                outputs.push(path);
            } else if store.is_valid(&path)? {
                let drv = guixie_store::read_derivation(store, &path)?;
                outputs.extend(drv.outputs.into_values().filter_map(|o| o.path));
            }
            // A `.drv` this store does not hold names no output it could ask about.
        }
        let mut seen = std::collections::BTreeSet::new();
        outputs.retain(|p| seen.insert(p.clone()));
        Ok(outputs)
    }

    /// Identical when at least two sources (the local store, builders) give one NAR hash;
    /// differing when they give more than one, or one builder attests two outputs.
    fn verdict(local: Option<&str>, survey: &Survey) -> Verdict {
        let mut hashes: Vec<String> = local.map(canonical).into_iter().collect();
        let attesting = survey.builders.iter().filter(|b| !b.outputs.is_empty());
        for b in attesting.clone() {
            hashes.extend(b.outputs.iter().map(|o| canonical(&o.nar_hash)));
        }
        let distinct: std::collections::BTreeSet<&String> = hashes.iter().collect();
        let equivocating = survey.builders.iter().any(|b| {
            let mine: std::collections::BTreeSet<String> =
                b.outputs.iter().map(|o| canonical(&o.nar_hash)).collect();
            mine.len() > 1
        });
        match (attesting.count(), distinct.len()) {
            (0, _) => Verdict::Unknown,
            (_, d) if d > 1 || equivocating => Verdict::Differing,
            (1, _) if local.is_none() => Verdict::OnlyOneBuilder,
            _ => Verdict::Identical,
        }
    }

    /// One spelling of a hash (attestations may use base16 or SRI as well as Nix32).
    fn canonical(h: &str) -> String {
        guixie_formats::hash::Hash::parse(h, None)
            .map(|h| h.to_string())
            .unwrap_or_else(|_| h.to_owned())
    }

    fn json(path: &str, local: Option<&str>, verdict: Verdict, s: &Survey) -> serde_json::Value {
        serde_json::json!({
            "path": path,
            "verdict": verdict.as_str(),
            "local": local,
            "builders": s.builders.iter().map(|b| serde_json::json!({
                "name": b.name,
                "reached": b.reached,
                "answered": b.answered,
                "nar_hashes": b.outputs.iter().map(|o| &o.nar_hash).collect::<Vec<_>>(),
                "unproven": b.unproven,
            })).collect::<Vec<_>>(),
            "decision": s.decision,
        })
    }

    fn print_text(path: &str, local: Option<&str>, verdict: Verdict, s: &Survey) {
        println!("{path}: {}", verdict.as_str());
        let width = s.builders.iter().map(|b| b.name.len()).max().unwrap_or(0);
        let width = width.max("local".len());
        if let Some(h) = local {
            println!("  {:width$}  {h}", "local");
        }
        for b in &s.builders {
            let what = if !b.reached {
                "(no peer keeps its log)".to_owned()
            } else if b.outputs.is_empty() && !b.answered {
                "(no answer)".to_owned()
            } else if b.outputs.is_empty() {
                "(no attestation)".to_owned()
            } else {
                let hashes: Vec<&str> = b.outputs.iter().map(|o| o.nar_hash.as_str()).collect();
                let mut line = hashes.join(" ");
                if hashes.len() > 1 {
                    line.push_str("  (equivocates)");
                }
                line
            };
            let unproven = match b.unproven {
                0 => String::new(),
                n => format!("  ({n} without a valid proof, not counted)"),
            };
            println!("  {:width$}  {what}{unproven}", b.name);
        }
        let d = &s.decision;
        println!(
            "  k-of-n: {} ({})",
            serde_json::to_string(&d.result).unwrap_or_default(),
            d.reason
        );
    }
}
