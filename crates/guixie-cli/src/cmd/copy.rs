//! `guixie copy --to URL | --from URL PATH…`: store paths and their closures to and from
//! binary caches (`file://` directories in Nix's layout, `http(s)://`), with no server needed
//! for a directory.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use guixie_cache::substitute::CacheUrl;

use super::publish::CompressionArg;
use super::substitutes::{Show, SubstituteArgs};
use crate::Context;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("direction").required(true).args(["to", "from"])))]
pub struct CopyArgs {
    /// Write the paths and their closures to this cache (a `file://` directory, or
    /// `http(s)://` by PUT).
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// Make the paths and their closures valid here from this cache; each narinfo must be
    /// signed by a trusted key (`--trusted-key`, or the store configuration's).
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// Sign the narinfos written with this secret key (with --to).
    #[arg(long, value_name = "SECRET-KEY-FILE", requires = "to")]
    key: Option<std::path::PathBuf>,
    /// How NARs are compressed (with --to).
    #[arg(long, value_enum, default_value_t = CompressionArg::Zstd)]
    compression: CompressionArg,
    /// A key narinfos must be signed with (`name:base64`), with --from; repeatable.
    #[arg(long = "trusted-key", value_name = "NAME:PUBKEY")]
    trusted_keys: Vec<String>,
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
}

pub fn run(ctx: &Context, args: CopyArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let sd = guixie_store::PathInfoQuery::store_dir(store.as_ref()).clone();
    let paths = args
        .paths
        .iter()
        .map(|p| store.parse_user_path(p))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(to) = &args.to {
        let dest = CacheUrl::parse(to).map_err(anyhow::Error::msg)?;
        let key = args
            .key
            .as_deref()
            .map(super::narinfo::read_key_file)
            .transpose()?;
        let compression = args.compression.into();
        let copied =
            guixie_cache::copy::copy_to(store.as_ref(), &dest, &paths, key.as_ref(), compression)
                .map_err(anyhow::Error::msg)?;
        if !ctx.json {
            for p in &copied.written {
                eprintln!("copied {} to {to}", sd.display(p));
            }
        }
        eprintln!(
            "{} paths written, {} already there",
            copied.written.len(),
            copied.present
        );
        return Ok(ExitCode::SUCCESS);
    }
    let from = args.from.clone().expect("clap requires --to or --from");
    let substitutes = SubstituteArgs {
        substitute_urls: vec![from.clone()],
        trusted_keys: args.trusted_keys.clone(),
        // From the cache named, nothing else.
        no_network: true,
        ..SubstituteArgs::default()
    };
    let show = if ctx.json { Show::Json } else { Show::Lines };
    let substituter = substitutes
        .substituter(ctx, show)?
        .expect("one cache named");
    if !substituter
        .substitute(store.as_ref(), &paths)
        .map_err(anyhow::Error::msg)?
    {
        anyhow::bail!("{from} does not have every path asked for");
    }
    Ok(ExitCode::SUCCESS)
}
