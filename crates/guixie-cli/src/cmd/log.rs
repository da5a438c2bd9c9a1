use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use data_encoding::{BASE64, HEXLOWER};
use guixie_log::checkpoint;
use guixie_log::merkle::{self, Hash, MemoryTree};
use guixie_log::note::{Note, SignerKey, VerifierKey};
use guixie_log::verifier::ClientState;
use guixie_log::FileLog;

use crate::output::print_json;
use crate::Context;

/// Inputs larger than this are refused.
const MAX_INPUT_BYTES: u64 = 1 << 20;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LogArgs {
    /// A store path or `.drv`: print the log of its last build.
    #[arg(required = true)]
    pub target: Option<String>,
    #[command(subcommand)]
    pub command: Option<LogCmd>,
}

#[derive(Subcommand)]
pub enum LogCmd {
    /// Append a file's bytes as one entry of the local log.
    Append { file: PathBuf },
    /// Print the latest signed checkpoint of the local log.
    Checkpoint,
    /// Print the local log's verifier key (`name+id+key`).
    Key,
    /// Print the inclusion proof of entry INDEX (in the tree of --size, default the latest).
    ProveInclusion {
        index: u64,
        #[arg(long)]
        size: Option<u64>,
    },
    /// Print the consistency proof between two sizes of the local log.
    ProveConsistency { size1: u64, size2: u64 },
    /// Merkle root of leaves given as one hex string a line (an empty line is an empty leaf).
    Root {
        #[arg(long)]
        leaves: PathBuf,
    },
    /// Exit 0 if the inclusion proof is valid, 1 if not.
    VerifyInclusion(VerifyInclusionArgs),
    /// Exit 0 if the consistency proof is valid, 1 if not.
    VerifyConsistency(VerifyConsistencyArgs),
}

#[derive(Args)]
pub struct VerifyInclusionArgs {
    #[arg(long)]
    leaf_hash: String,
    #[arg(long)]
    index: u64,
    #[arg(long)]
    size: u64,
    #[arg(long)]
    root: String,
    /// Comma-separated hashes (hex or base64); empty for an empty proof.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    proof: String,
}

#[derive(Args)]
pub struct VerifyConsistencyArgs {
    #[arg(long)]
    size1: u64,
    #[arg(long)]
    size2: u64,
    #[arg(long)]
    root1: String,
    #[arg(long)]
    root2: String,
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    proof: String,
}

#[derive(Subcommand)]
pub enum NoteCmd {
    /// Exit 0 if a signature by one of the keys verifies, 1 if not.
    Verify {
        file: PathBuf,
        #[arg(long = "key", required = true, value_name = "VKEY")]
        keys: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum CheckpointCmd {
    /// Make a witness key (type 0x04, tlog-cosignature/v1): writes the private key to FILE
    /// (mode 0600) and prints the verifier key.
    WitnessKey {
        name: String,
        #[arg(long, value_name = "FILE")]
        secret_key_file: PathBuf,
    },
    /// Add this witness's cosignature (timestamped now) to a checkpoint; prints the result.
    Cosign {
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        witness_key_file: PathBuf,
    },
    /// Exit 0 if the checkpoint is signed by the log (and enough witnesses), 1 if not.
    Verify {
        file: PathBuf,
        #[arg(long, value_name = "VKEY")]
        log_key: String,
        #[arg(long = "witness-key", value_name = "VKEY")]
        witness_keys: Vec<String>,
        /// How many witness cosignatures are required.
        #[arg(long, default_value_t = 0)]
        witnesses: usize,
        /// Remember accepted checkpoints here; a newer one then needs --proof (consistency).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        proof: String,
    },
}

pub fn parse_hash(s: &str, what: &str) -> anyhow::Result<Hash> {
    let s = s.trim();
    let bytes = if s.len() == 64 {
        HEXLOWER
            .decode(s.to_ascii_lowercase().as_bytes())
            .with_context(|| format!("{what}: not hex"))?
    } else {
        BASE64
            .decode(s.as_bytes())
            .with_context(|| format!("{what}: neither 64 hex digits nor base64"))?
    };
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("{what}: {} bytes, expected 32", b.len()))
}

fn parse_proof(s: &str) -> anyhow::Result<Vec<Hash>> {
    if s.trim().is_empty() {
        return Ok(vec![]);
    }
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() > merkle::MAX_PROOF_HASHES {
        bail!(
            "proof has {} hashes; at most {} are possible",
            parts.len(),
            merkle::MAX_PROOF_HASHES
        );
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, h)| parse_hash(h, &format!("proof hash {}", i + 1)))
        .collect()
}

fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    guixie_store::safe_fs::read_capped(path, MAX_INPUT_BYTES)
        .with_context(|| format!("reading {}", path.display()))
}

fn hex(h: &Hash) -> String {
    HEXLOWER.encode(h)
}

/// The local log lives beside the store (see `evidence::log_dir`), signed with `log.key`
/// (made on first use; its name, the log's origin, from $GUIXIE_LOG_ORIGIN).
fn log_dir(ctx: &Context) -> anyhow::Result<PathBuf> {
    Ok(super::evidence::log_dir(&ctx.open_store()?))
}

pub fn log_key(ctx: &Context, dir: &Path) -> anyhow::Result<SignerKey> {
    let origin = std::env::var("GUIXIE_LOG_ORIGIN").unwrap_or_else(|_| "guixie.local/log".into());
    Ok(guixie_evidence::keys::log_key(dir, &origin, ctx.rng())?)
}

fn invalid(reason: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("guixie: invalid: {reason}");
    Ok(ExitCode::FAILURE)
}

fn valid(ctx: &Context, what: &str) -> anyhow::Result<ExitCode> {
    if ctx.json {
        print_json(&serde_json::json!({"valid": true}))?;
    } else {
        println!("valid: {what}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(ctx: &Context, cmd: LogCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        LogCmd::Append { file } => {
            let data = read_capped(&file)?;
            let dir = log_dir(ctx)?;
            let mut log = FileLog::open(&dir)?;
            let index = log.append_batch(&[&data])?;
            let leaf = merkle::leaf_hash(&data);
            if ctx.json {
                print_json(
                    &serde_json::json!({"index": index, "leafHash": hex(&leaf), "size": log.size()}),
                )?;
            } else {
                println!("{index}");
            }
        }
        LogCmd::Checkpoint => {
            let dir = log_dir(ctx)?;
            let key = log_key(ctx, &dir)?;
            // Only durable entries: FileLog's size is the size recorded after fsync.
            print!(
                "{}",
                guixie_evidence::checkpoint(&FileLog::open(&dir)?, &key)?
            );
        }
        LogCmd::Key => println!("{}", log_key(ctx, &log_dir(ctx)?)?.verifier()),
        LogCmd::ProveInclusion { index, size } => {
            let log = FileLog::open(&log_dir(ctx)?)?;
            let size = size.unwrap_or(log.size());
            let proof = log.inclusion_proof(index, size)?;
            let (leaf, root) = (log.leaf_hash(index)?, log.root(size)?);
            if ctx.json {
                print_json(
                    &serde_json::json!({"index": index, "size": size, "leafHash": hex(&leaf), "root": hex(&root), "proof": proof.iter().map(hex).collect::<Vec<_>>()}),
                )?;
            } else {
                for h in &proof {
                    println!("{}", hex(h));
                }
            }
        }
        LogCmd::ProveConsistency { size1, size2 } => {
            let log = FileLog::open(&log_dir(ctx)?)?;
            let proof = log.consistency_proof(size1, size2)?;
            if ctx.json {
                print_json(
                    &serde_json::json!({"size1": size1, "size2": size2, "root1": hex(&log.root(size1)?), "root2": hex(&log.root(size2)?), "proof": proof.iter().map(hex).collect::<Vec<_>>()}),
                )?;
            } else {
                for h in &proof {
                    println!("{}", hex(h));
                }
            }
        }
        LogCmd::Root { leaves } => {
            let text =
                String::from_utf8(read_capped(&leaves)?).context("leaves file is not UTF-8")?;
            let mut tree = MemoryTree::new();
            for (i, line) in text.lines().enumerate() {
                let data = HEXLOWER
                    .decode(line.trim().to_ascii_lowercase().as_bytes())
                    .with_context(|| format!("{} line {}: not hex", leaves.display(), i + 1))?;
                tree.push_leaf_hash(merkle::leaf_hash(&data));
            }
            let root = merkle::root(&tree, tree.size()).expect("in memory");
            if ctx.json {
                print_json(&serde_json::json!({"size": tree.size(), "root": hex(&root)}))?;
            } else {
                println!("{}", hex(&root));
            }
        }
        LogCmd::VerifyInclusion(a) => {
            let (leaf, root, proof) = (
                parse_hash(&a.leaf_hash, "--leaf-hash")?,
                parse_hash(&a.root, "--root")?,
                parse_proof(&a.proof)?,
            );
            return match merkle::verify_inclusion(&leaf, a.index, a.size, &proof, &root) {
                Ok(()) => valid(
                    ctx,
                    &format!("entry {} is in the tree of size {}", a.index, a.size),
                ),
                Err(e) => invalid(e),
            };
        }
        LogCmd::VerifyConsistency(a) => {
            let (r1, r2, proof) = (
                parse_hash(&a.root1, "--root1")?,
                parse_hash(&a.root2, "--root2")?,
                parse_proof(&a.proof)?,
            );
            return match merkle::verify_consistency(a.size1, a.size2, &r1, &r2, &proof) {
                Ok(()) => valid(
                    ctx,
                    &format!(
                        "the tree of size {} extends the tree of size {}",
                        a.size2, a.size1
                    ),
                ),
                Err(e) => invalid(e),
            };
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_keys(keys: &[String]) -> anyhow::Result<Vec<VerifierKey>> {
    keys.iter()
        .map(|k| VerifierKey::parse(k).map_err(anyhow::Error::from))
        .collect()
}

pub fn note(ctx: &Context, cmd: NoteCmd) -> anyhow::Result<ExitCode> {
    let NoteCmd::Verify { file, keys } = cmd;
    let keys = parse_keys(&keys)?;
    let note = match Note::parse(&read_capped(&file)?) {
        Ok(n) => n,
        Err(e) => return invalid(format!("{}: {e}", file.display())),
    };
    match note.verify(&keys) {
        Ok(signers) => valid(
            ctx,
            &format!(
                "signed by {}",
                signers
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => invalid(format!("{}: {e}", file.display())),
    }
}

pub fn checkpoint(ctx: &Context, cmd: CheckpointCmd) -> anyhow::Result<ExitCode> {
    let (file, log_key, witness_keys, witnesses, state, proof) = match cmd {
        CheckpointCmd::WitnessKey {
            name,
            secret_key_file,
        } => {
            let key = guixie_evidence::keys::new_witness_key(&secret_key_file, &name, ctx.rng())?;
            println!("{}", key.verifier());
            return Ok(ExitCode::SUCCESS);
        }
        CheckpointCmd::Cosign {
            file,
            witness_key_file,
        } => {
            let text = guixie_evidence::keys::read_secret_file(&witness_key_file)?;
            let key =
                SignerKey::parse(&text).with_context(|| witness_key_file.display().to_string())?;
            let now = ctx.clock().unix_seconds().max(0) as u64;
            print!(
                "{}",
                checkpoint::cosign(&read_capped(&file)?, &key, now)
                    .with_context(|| file.display().to_string())?
            );
            return Ok(ExitCode::SUCCESS);
        }
        CheckpointCmd::Verify {
            file,
            log_key,
            witness_keys,
            witnesses,
            state,
            proof,
        } => (file, log_key, witness_keys, witnesses, state, proof),
    };
    let log_key = VerifierKey::parse(&log_key)?;
    let witness_keys = parse_keys(&witness_keys)?;
    let bytes = read_capped(&file)?;
    let Some(state_path) = state else {
        return match checkpoint::verify(&bytes, &log_key, &witness_keys, witnesses) {
            Ok(v) => valid(
                ctx,
                &format!(
                    "{} at size {} ({} witness cosignature(s))",
                    v.checkpoint.origin,
                    v.checkpoint.size,
                    v.witnesses.len()
                ),
            ),
            Err(e) => invalid(format!("{}: {e}", file.display())),
        };
    };
    let mut state = ClientState::load(&state_path)?;
    let proof = parse_proof(&proof)?;
    let outcome = state.accept(&bytes, &log_key, &witness_keys, witnesses, |from, to| {
        if proof.is_empty() {
            Err(format!(
                "pass --proof (`guixie log prove-consistency {from} {to}` on the log)"
            ))
        } else {
            Ok(proof)
        }
    });
    // Evidence is kept whatever the outcome.
    state
        .save(&state_path)
        .with_context(|| state_path.display().to_string())?;
    match outcome {
        Ok(a) => valid(ctx, &format!("{a:?}")),
        Err(e) => invalid(e),
    }
}
