use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use guixie_formats::hash::{Encoding, Hash, HashAlgo, Hasher};
use guixie_formats::nar;

use crate::output::print_json;
use crate::Context;

#[derive(Subcommand)]
pub enum HashCmd {
    /// Hash the NAR serialisation of a file system tree (like `nix-hash`).
    Path {
        path: PathBuf,
        #[arg(long = "type", value_enum, default_value_t = Algo::Sha256)]
        algo: Algo,
        #[arg(long, value_enum, default_value_t = Form::Sri)]
        to: Form,
    },
    /// Hash a file's contents (like `nix-hash --flat`).
    File {
        file: PathBuf,
        #[arg(long = "type", value_enum, default_value_t = Algo::Sha256)]
        algo: Algo,
        #[arg(long, value_enum, default_value_t = Form::Sri)]
        to: Form,
    },
    /// Convert hashes between encodings; input may be `algo:digest`, SRI or a bare digest.
    Convert {
        #[arg(long, value_enum)]
        to: Form,
        /// Required for bare digests; checked against typed ones.
        #[arg(long = "type", value_enum)]
        algo: Option<Algo>,
        #[arg(required = true)]
        hashes: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl From<Algo> for HashAlgo {
    fn from(a: Algo) -> Self {
        match a {
            Algo::Md5 => HashAlgo::Md5,
            Algo::Sha1 => HashAlgo::Sha1,
            Algo::Sha256 => HashAlgo::Sha256,
            Algo::Sha512 => HashAlgo::Sha512,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Form {
    Nix32,
    Base16,
    Base64,
    Sri,
}

impl From<Form> for Encoding {
    fn from(f: Form) -> Self {
        match f {
            Form::Nix32 => Encoding::Nix32,
            Form::Base16 => Encoding::Base16,
            Form::Base64 => Encoding::Base64,
            Form::Sri => Encoding::Sri,
        }
    }
}

fn hash_json(h: &Hash, nar_size: Option<u64>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "algo": h.algo().name(),
        "base16": h.encode(Encoding::Base16),
        "nix32": h.encode(Encoding::Nix32),
        "base64": h.encode(Encoding::Base64),
        "sri": h.to_sri(),
    });
    if let Some(n) = nar_size {
        v["narSize"] = n.into();
    }
    v
}

pub fn run(ctx: &Context, cmd: HashCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        HashCmd::Path { path, algo, to } => {
            let (h, size) = nar::hash_path(&path, algo.into())?;
            emit(ctx, &h, Some(size), to)
        }
        HashCmd::File { file, algo, to } => {
            let mut f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let mut hasher = Hasher::new(algo.into());
            std::io::copy(&mut f, &mut hasher)
                .with_context(|| format!("reading {}", file.display()))?;
            emit(ctx, &hasher.finish(), None, to)
        }
        HashCmd::Convert { to, algo, hashes } => {
            let mut all = Vec::new();
            for s in &hashes {
                let h =
                    Hash::parse(s, algo.map(Into::into)).with_context(|| format!("hash {s:?}"))?;
                if ctx.json {
                    all.push(hash_json(&h, None));
                } else {
                    println!("{}", h.encode(to.into()));
                }
            }
            if ctx.json {
                print_json(&serde_json::Value::Array(all))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn emit(ctx: &Context, h: &Hash, nar_size: Option<u64>, to: Form) -> anyhow::Result<ExitCode> {
    if ctx.json {
        print_json(&hash_json(h, nar_size))?;
    } else {
        println!("{}", h.encode(to.into()));
    }
    Ok(ExitCode::SUCCESS)
}
