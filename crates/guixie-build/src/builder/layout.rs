//! The pure layout step: from a derivation, its outputs and its input closure to the sandbox
//! the helper will make (what is mounted where, the builder's environment, the files put in
//! its build directory). Nothing here touches the file system or a namespace, so every rule
//! is unit-tested directly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use guixie_formats::derivation::{Derivation, TOOLCHAIN_ENV};
use guixie_formats::{StoreDir, StorePath};

use super::BuildOptions;
use crate::sandbox::SandboxSpec;

/// Where the build's writable directories are, inside the sandbox.
pub(crate) const BUILD_DIR: &str = "/build";

/// What the layout step needs to know.
pub(crate) struct LayoutRequest<'a> {
    pub drv: &'a Derivation,
    pub outputs: &'a BTreeMap<String, StorePath>,
    /// The closure of the inputs, each valid.
    pub closure: &'a BTreeSet<StorePath>,
    pub store_dir: &'a StoreDir,
    /// Where the store's paths physically are.
    pub real_store: &'a Path,
    /// The build area: its `root/` becomes `/`, `w/store`, `w/build`, `w/tmp` the writable
    /// store directory, `/build` and `/tmp`.
    pub area: &'a Path,
    pub options: &'a BuildOptions,
    pub build_user: Option<(u32, u32)>,
    /// Host files a fixed-output build needs to use its network (those that exist).
    pub name_service_files: &'a [PathBuf],
}

/// The sandbox to make, and the files to write into `/build` first.
#[derive(Debug)]
pub(crate) struct Layout {
    pub spec: SandboxSpec,
    /// `(file name, contents)` for the build directory (`passAsFile`).
    pub build_files: Vec<(String, Vec<u8>)>,
    /// The host side of the build's writable store directory, where its outputs appear.
    pub host_store: PathBuf,
    /// The host side of `/build`.
    pub host_build: PathBuf,
}

impl Layout {
    /// The host side of the writable store directory, `/build` and `/tmp`.
    pub fn writable_host_dirs(&self) -> impl Iterator<Item = &Path> {
        self.spec.writable_dirs.iter().map(|(h, _)| h.as_path())
    }
}

pub(crate) fn layout(req: &LayoutRequest<'_>) -> Result<Layout, String> {
    let sd = req.store_dir;
    let fixed = req.drv.fixed_output().is_some();
    let build_dir = PathBuf::from(BUILD_DIR);
    // What the build may write lives on the store's disk, under `area/w`; the rest of its
    // root is a tmpfs the helper mounts.
    let writable_dirs: Vec<(PathBuf, PathBuf)> = [
        ("store", PathBuf::from(sd.as_str())),
        ("build", build_dir.clone()),
        ("tmp", PathBuf::from("/tmp")),
    ]
    .into_iter()
    .map(|(host, inside)| (req.area.join("w").join(host), inside))
    .collect();
    let real = |p: &StorePath| req.real_store.join(p.to_string());
    let mut inputs: Vec<(PathBuf, PathBuf)> = req
        .closure
        .iter()
        .map(|p| (real(p), PathBuf::from(sd.display(p))))
        .collect();
    let mut symlinks = Vec::new();
    if let Some(toolchain) = req.drv.env.get(TOOLCHAIN_ENV.as_bytes()) {
        // The bootstrap toolchain's `usr/` is the build's /usr (see guixie-trust-root): it
        // must be one of the declared inputs.
        let tc = String::from_utf8_lossy(toolchain);
        let tc = sd
            .parse_path(&tc)
            .ok()
            .filter(|p| req.closure.contains(p))
            .ok_or_else(|| format!("{TOOLCHAIN_ENV} {tc} is not one of the build's inputs"))?;
        inputs.push((real(&tc).join("usr"), PathBuf::from("/usr")));
        for top in ["bin", "sbin", "lib", "lib64"] {
            symlinks.push((PathBuf::from("/").join(top), PathBuf::from("usr").join(top)));
        }
    } else if let Some(shell) = &req.options.shell {
        inputs.push((shell.clone(), PathBuf::from("/bin/sh")));
    }
    // Fixed-output builds get a network (their result is checked against its hash), and
    // need the host's name-service configuration to use it (the resolver is slirp4netns's).
    if fixed {
        for f in req.name_service_files {
            inputs.push((f.clone(), f.clone()));
        }
    }
    let mut env = build_env(req.drv, sd, &build_dir, req.options.cores);
    let build_files = pass_as_files(&mut env, &build_dir);
    let spec = SandboxSpec {
        root: req.area.join("root"),
        inputs,
        symlinks,
        writable_dirs,
        workdir: build_dir,
        builtin_fetch: builtin_fetch(
            req.drv,
            req.outputs,
            sd,
            fixed,
            &req.options.ca_certificates,
        )?,
        builder: req.drv.builder.clone(),
        args: req.drv.args.clone(),
        env,
        network: fixed,
        slirp4netns: req.options.slirp4netns.clone(),
        host_loopback: req.options.host_loopback,
        hostname: "localhost".into(),
        max_processes: req.options.max_processes,
        max_file_size: req.options.max_file_size,
        pids_cgroup: None,
        build_user: req.build_user,
        shm_bytes: req.options.max_output_size.min(64 << 20),
        traced: false,
        debugger: false,
        gateway: None,
    };
    Ok(Layout {
        host_store: req.area.join("w/store"),
        host_build: req.area.join("w/build"),
        spec,
        build_files,
    })
}

/// `builtin:fetchurl` (as Nix's `<nix/fetchurl.nix>` writes it): only for fixed-output
/// derivations, whose download is then checked against the declared hash. Other builders:
/// `None`.
fn builtin_fetch(
    drv: &Derivation,
    outputs: &BTreeMap<String, StorePath>,
    sd: &StoreDir,
    fixed: bool,
    ca_certificates: &Option<String>,
) -> Result<Option<crate::sandbox::BuiltinFetch>, String> {
    if drv.builder != b"builtin:fetchurl" {
        return Ok(None);
    }
    if !fixed {
        return Err("builtin:fetchurl needs a fixed output hash".into());
    }
    let var = |k: &str| {
        drv.env
            .get(k.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let url = var("url").ok_or("builtin:fetchurl: no `url'")?;
    // Guix-style mirror lists travel in `urls` (space-separated); Nix reads `url` alone.
    let mut urls: Vec<String> = var("urls")
        .map(|u| u.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if !urls.contains(&url) {
        urls.insert(0, url);
    }
    let out = outputs
        .get("out")
        .ok_or("builtin:fetchurl: no output `out'")?;
    Ok(Some(crate::sandbox::BuiltinFetch {
        urls,
        out: PathBuf::from(sd.display(out)),
        executable: var("executable").is_some_and(|e| e == "1"),
        unpack: var("unpack").is_some_and(|u| u == "1"),
        ca_certificates: ca_certificates.clone(),
    }))
}

/// The environment Nix gives a builder: defaults, then the derivation's variables, then the
/// build directory variables.
fn build_env(
    drv: &Derivation,
    sd: &StoreDir,
    build_dir: &Path,
    cores: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut env: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        env.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
    };
    set("PATH", "/path-not-set");
    set("HOME", "/homeless-shelter");
    set("NIX_STORE", sd.as_str());
    set("NIX_BUILD_CORES", &cores.max(1).to_string());
    set("NIX_LOG_FD", "2");
    set("TERM", "xterm-256color");
    set("SOURCE_DATE_EPOCH", "1");
    for (k, v) in &drv.env {
        env.insert(k.clone(), v.clone());
    }
    let top = build_dir.to_string_lossy().into_owned();
    for k in ["NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD"] {
        env.insert(k.as_bytes().to_vec(), top.as_bytes().to_vec());
    }
    env.into_iter().collect()
}

/// Nix's `passAsFile`: each named variable is taken out of the environment and written to
/// `.attr-<nix32 sha256 of its name>` in the build directory instead, and `<name>Path`
/// points there. Returns the files to write.
fn pass_as_files(env: &mut Vec<(Vec<u8>, Vec<u8>)>, build_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Some((_, names)) = env.iter().find(|(k, _)| k == b"passAsFile") else {
        return Vec::new();
    };
    let names: Vec<String> = String::from_utf8_lossy(names)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut files = Vec::new();
    for name in names {
        let Some(i) = env.iter().position(|(k, _)| k == name.as_bytes()) else {
            continue;
        };
        let (_, value) = env.remove(i);
        let file = format!(
            ".attr-{}",
            guixie_formats::Hash::digest_of(guixie_formats::HashAlgo::Sha256, name.as_bytes())
                .to_nix32()
        );
        let key = format!("{name}Path").into_bytes();
        let path = build_dir
            .join(&file)
            .to_string_lossy()
            .into_owned()
            .into_bytes();
        match env.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = path,
            None => env.push((key, path)),
        }
        files.push((file, value));
    }
    env.sort();
    files
}

#[cfg(test)]
mod tests;
