use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use guixie_formats::signing::SecretKey;

use crate::output::print_json;
use crate::Context;

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Generate an Ed25519 key pair named NAME (e.g. `cache.example.org-1`). Without file
    /// options, prints the secret key line then the public key line.
    Generate {
        name: String,
        /// Write the secret key here (mode 0600; must not exist).
        #[arg(long, value_name = "FILE", requires = "public_key_file")]
        secret_key_file: Option<PathBuf>,
        /// Write the public key here.
        #[arg(long, value_name = "FILE", requires = "secret_key_file")]
        public_key_file: Option<PathBuf>,
    },
    /// Print the public key of a secret key file.
    Public { secret_key_file: PathBuf },
}

pub fn run(ctx: &Context, cmd: KeyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCmd::Generate {
            name,
            secret_key_file,
            public_key_file,
        } => {
            if let (Some(sec), Some(public)) = (secret_key_file, public_key_file) {
                let key = guixie_evidence::keys::new_secret_key(&sec, &name, ctx.rng())?;
                std::fs::write(&public, key.public().to_string())
                    .with_context(|| format!("writing {}", public.display()))?;
            } else {
                let key = SecretKey::from_seed(&name, &ctx.rng().bytes32())?;
                if ctx.json {
                    print_json(
                        &serde_json::json!({"secretKey": key.to_string(), "publicKey": key.public().to_string()}),
                    )?;
                } else {
                    println!("{key}");
                    println!("{}", key.public());
                }
            }
        }
        KeyCmd::Public { secret_key_file } => {
            let key = super::narinfo::read_key_file(&secret_key_file)?;
            println!("{}", key.public());
        }
    }
    Ok(ExitCode::SUCCESS)
}
