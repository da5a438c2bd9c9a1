use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use guixie_formats::narinfo::{NarInfo, MAX_NARINFO_BYTES};
use guixie_formats::signing::{PublicKey, SecretKey};
use guixie_formats::{Encoding, StoreDir};

use super::store_dir_of;
use crate::output::print_json;
use crate::Context;

#[derive(Subcommand)]
pub enum NarinfoCmd {
    /// Print a narinfo in canonical form (or as JSON).
    Show { file: PathBuf },
    /// Sign a narinfo's fingerprint; prints the signed narinfo (or rewrites FILE with --in-place).
    Sign {
        file: PathBuf,
        /// Secret key file, as written by `guixie key generate` or `nix-store --generate-binary-cache-key`.
        #[arg(long, value_name = "SECRETKEYFILE")]
        key: PathBuf,
        #[arg(long, short = 'i')]
        in_place: bool,
    },
    /// Exit 0 if a signature verifies with one of the keys (`name:base64`), 1 if none does.
    Verify {
        file: PathBuf,
        #[arg(long = "key", value_name = "NAME:PUBKEY", required = true)]
        keys: Vec<String>,
    },
}

fn read_narinfo(ctx: &Context, file: &Path) -> anyhow::Result<(NarInfo, StoreDir)> {
    let bytes = guixie_store::safe_fs::read_capped(file, MAX_NARINFO_BYTES as u64)
        .with_context(|| format!("reading narinfo {}", file.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", file.display()))?;
    let inside = text
        .lines()
        .find_map(|l| l.strip_prefix("StorePath:"))
        .and_then(|p| store_dir_of(p.trim()));
    let sd = ctx.store_dir_or(inside)?;
    let info = NarInfo::parse(&text, &sd).with_context(|| file.display().to_string())?;
    Ok((info, sd))
}

/// A secret key file (Nix's `name:base64`), which must be private to us.
pub fn read_key_file(path: &Path) -> anyhow::Result<SecretKey> {
    let text = guixie_evidence::keys::read_secret_file(path)?;
    SecretKey::parse(&text).with_context(|| format!("key file {}", path.display()))
}

pub fn run(ctx: &Context, cmd: NarinfoCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NarinfoCmd::Show { file } => {
            let (info, sd) = read_narinfo(ctx, &file)?;
            if ctx.json {
                print_json(&serde_json::json!({
                    "storePath": sd.display(&info.store_path),
                    "files": info.files.iter().map(|f| serde_json::json!({
                        "url": f.url,
                        "compression": f.compression,
                        "fileHash": f.file_hash.as_ref().map(|h| h.to_typed_string(Encoding::Nix32)),
                        "fileSize": f.file_size,
                    })).collect::<Vec<_>>(),
                    "guixSignature": info.guix_signature.as_ref().map(|g| g.host.clone()),
                    "narHash": info.nar_hash.to_typed_string(Encoding::Nix32),
                    "narSize": info.nar_size,
                    "references": info.references.iter().map(|r| sd.display(r)).collect::<Vec<_>>(),
                    "deriver": info.deriver.as_ref().map(|d| sd.display(d)),
                    "system": info.system,
                    "signatures": info.signatures.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    "ca": info.ca,
                    "fingerprint": info.fingerprint(&sd).ok(),
                }))?;
            } else {
                print!("{}", info.to_text(&sd));
            }
            Ok(ExitCode::SUCCESS)
        }
        NarinfoCmd::Sign {
            file,
            key,
            in_place,
        } => {
            let (mut info, sd) = read_narinfo(ctx, &file)?;
            let key = read_key_file(&key)?;
            info.sign(&sd, &key)?;
            let text = info.to_text(&sd);
            if in_place {
                let tmp = file.with_extension("narinfo.tmp");
                std::fs::write(&tmp, &text)
                    .with_context(|| format!("writing {}", tmp.display()))?;
                std::fs::rename(&tmp, &file)
                    .with_context(|| format!("replacing {}", file.display()))?;
            } else {
                print!("{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        NarinfoCmd::Verify { file, keys } => {
            let (info, sd) = read_narinfo(ctx, &file)?;
            let keys = keys
                .iter()
                .map(|k| PublicKey::parse(k).with_context(|| format!("--key {k:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for k in &keys {
                if info.verify(&sd, k)? {
                    if !ctx.json {
                        println!("valid: signed by {}", k.name());
                    } else {
                        print_json(&serde_json::json!({"valid": true, "key": k.name()}))?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let names: Vec<&str> = info.signatures.iter().map(|s| s.name()).collect();
            eprintln!(
                "guixie: {}: no signature verifies with the given key(s) (signatures present: {})",
                file.display(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            );
            if ctx.json {
                print_json(&serde_json::json!({"valid": false}))?;
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
