use std::io::Read;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use guixie_trust::{decide, Case};

use crate::output::print_json;
use crate::Context;

/// Larger cases are refused before parsing.
const MAX_CASE_BYTES: u64 = 16 << 20;

#[derive(Subcommand)]
pub enum TrustCmd {
    /// Apply the k-of-n acceptance rule to CASE.json (`-`: standard input) and print the
    /// decision as JSON: `{"trusted_builders": [..], "k": K, "attestations": [{"builder": ..,
    /// "output": .., "proof_ok": true}]}`. See docs/trust.md.
    Decide { case: String },
    /// Print this store's entry for a trust policy (`{"name", "attestation_key", "log_key"}`),
    /// making the builder and log keys if they do not exist yet.
    Identity {
        /// The name others' policies know this builder by.
        #[arg(long)]
        name: String,
    },
}

pub fn run(ctx: &Context, cmd: TrustCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TrustCmd::Identity { name } => {
            let store = ctx.open_store()?;
            let builder = super::evidence::builder_key(ctx, &store)?;
            let log = super::log::log_key(ctx, &super::evidence::log_dir(&store))?;
            print_json(&serde_json::json!({
                "name": name,
                "attestation_key": builder.public().to_string(),
                "log_key": log.verifier().to_string(),
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        TrustCmd::Decide { case } => {
            let mut text = String::new();
            let reader: Box<dyn Read> = if case == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(std::fs::File::open(&case).with_context(|| case.clone())?)
            };
            reader
                .take(MAX_CASE_BYTES + 1)
                .read_to_string(&mut text)
                .with_context(|| case.clone())?;
            if text.len() as u64 > MAX_CASE_BYTES {
                anyhow::bail!("{case}: more than {MAX_CASE_BYTES} bytes");
            }
            let parsed: Case =
                serde_json::from_str(&text).with_context(|| format!("{case}: not a trust case"))?;
            print_json(&serde_json::to_value(decide(&parsed))?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
