use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use guixie_attest::Envelope;
use guixie_formats::signing::PublicKey;

use crate::output::print_json;
use crate::Context;

#[derive(Subcommand)]
pub enum AttestCmd {
    /// Print the statement of a DSSE envelope (signatures not checked).
    Show { file: PathBuf },
    /// Exit 0 if at least --threshold distinct trusted keys signed the envelope, 1 if not.
    Verify {
        file: PathBuf,
        #[arg(long = "key", required = true, value_name = "NAME:PUBKEY")]
        keys: Vec<String>,
        #[arg(long, default_value_t = 1)]
        threshold: usize,
    },
}

pub fn run(ctx: &Context, cmd: AttestCmd) -> anyhow::Result<ExitCode> {
    let file = match &cmd {
        AttestCmd::Show { file } | AttestCmd::Verify { file, .. } => file.clone(),
    };
    let len = std::fs::metadata(&file)
        .with_context(|| format!("opening {}", file.display()))?
        .len();
    if len > guixie_attest::MAX_ENVELOPE_BYTES as u64 {
        anyhow::bail!(
            "{}: {len} bytes is more than the 1 MiB allowed",
            file.display()
        );
    }
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let envelope = match Envelope::parse(&bytes) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("guixie: invalid: {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    match cmd {
        AttestCmd::Show { .. } => {
            let st = envelope
                .statement()
                .with_context(|| file.display().to_string())?;
            print_json(&serde_json::to_value(&st)?)?;
            Ok(ExitCode::SUCCESS)
        }
        AttestCmd::Verify {
            keys, threshold, ..
        } => {
            let keys = keys
                .iter()
                .map(|k| PublicKey::parse(k).with_context(|| format!("--key {k:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            match envelope.verify(&keys, threshold) {
                Ok((st, signers)) => {
                    if ctx.json {
                        print_json(
                            &serde_json::json!({"valid": true, "signers": signers.iter().map(|k| k.name()).collect::<Vec<_>>(), "statement": st}),
                        )?;
                    } else {
                        println!(
                            "valid: signed by {}",
                            signers
                                .iter()
                                .map(|k| k.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("guixie: invalid: {}: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
