//! The bootstrap toolchain: the trust root of every package build.
//!
//! Builds need a shell, coreutils, make, a C compiler and Guile (for the build side of
//! G-expressions). guixie does not bootstrap them from source: it takes them, as Guix takes
//! its bootstrap binaries, from a declared set of the host's Debian packages. The set and
//! their dependency closure (with versions) are written to a manifest, the files are copied
//! into one store item, and that item is named by its NAR hash like any source. Every
//! derivation that builds with it depends on that hash, so a different toolchain gives
//! different derivations, and a pin (the NAR hash a user trusts, which the program's caller
//! passes in; the CLI takes it from `GUIXIE_BOOTSTRAP_SHA256`) refuses any other one. See
//! `docs/bootstrap.md`.
//!
//! Inside the sandbox the item's `usr/` appears at `/usr` (with `/bin`, `/lib`, `/lib64`
//! and `/sbin` linking into it), because Debian's binaries look for their loader, libraries
//! and data there.

pub mod rust;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use guixie_formats::{Hash, HashAlgo, StorePath};
use guixie_store::{LocalStore, PathInfoQuery};

/// Directories of the packages that builds do not need (documentation, translations).
const SKIPPED: &[&str] = &[
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/locale",
    "/usr/share/lintian",
    "/usr/share/bug",
];

/// Links Debian makes with `update-alternatives` or maintainer scripts, not in any package
/// list: (link in usr/bin, target) — made when the target exists and the link does not.
const COMMAND_LINKS: &[(&str, &str)] = &[
    ("sh", "bash"),
    ("cc", "gcc"),
    ("awk", "mawk"),
    ("guile", "guile-3.0"),
    ("guild", "guild-3.0"),
];

#[derive(Debug)]
struct Installed {
    version: String,
    depends: Vec<Vec<String>>,
    /// The virtual packages it provides (e.g. libboost-regex1.74.0 provides
    /// libboost-regex1.74.0-icu72, which libsource-highlight4v5, and so gdb, depends on).
    provides: Vec<String>,
}

fn installed_packages() -> Result<BTreeMap<String, Installed>, String> {
    let out = Command::new("dpkg-query")
        .args([
            "-W",
            "-f=${Package}\t${Version}\t${Depends}, ${Pre-Depends}\t${db:Status-Status}\t${Provides}\n",
        ])
        .output()
        .map_err(|e| {
            format!("running dpkg-query (the toolchain comes from Debian packages): {e}")
        })?;
    if !out.status.success() {
        return Err(format!(
            "dpkg-query failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut packages = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, version, depends, status, provides] = fields.as_slice() else {
            continue;
        };
        if *status != "installed" {
            continue;
        }
        let depends = depends
            .split(',')
            .map(|alternatives| {
                alternatives
                    .split('|')
                    .filter_map(|a| {
                        let n = a.trim().split([' ', '(', ':']).next().unwrap_or("");
                        (!n.is_empty()).then(|| n.to_owned())
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|alts| !alts.is_empty())
            .collect();
        packages.insert(
            name.to_string(),
            Installed {
                version: version.to_string(),
                depends,
                provides: provides
                    .split(',')
                    .filter_map(|p| {
                        let n = p.trim().split([' ', '(']).next().unwrap_or("");
                        (!n.is_empty()).then(|| n.to_owned())
                    })
                    .collect(),
            },
        );
    }
    Ok(packages)
}

/// The dependency closure of `roots` among installed packages, sorted, with versions.
fn closure(roots: &[String]) -> Result<BTreeMap<String, String>, String> {
    let installed = installed_packages()?;
    let mut found = BTreeMap::new();
    let mut todo: Vec<String> = roots.to_vec();
    for r in roots {
        if !installed.contains_key(r) {
            return Err(format!(
                "bootstrap package {r:?} is not installed (apt-get install {r})"
            ));
        }
    }
    while let Some(p) = todo.pop() {
        if found.contains_key(&p) {
            continue;
        }
        let Some(info) = installed.get(&p) else {
            continue;
        };
        found.insert(p.clone(), info.version.clone());
        for alternatives in &info.depends {
            // The first alternative that is installed satisfies the dependency; else the
            // first installed package (by name) that provides one of them.
            if let Some(a) = alternatives.iter().find(|a| installed.contains_key(*a)) {
                todo.push(a.clone());
            } else if let Some((provider, _)) = installed
                .iter()
                .find(|(_, i)| alternatives.iter().any(|a| i.provides.contains(a)))
            {
                todo.push(provider.clone());
            }
        }
    }
    Ok(found)
}

fn manifest(packages: &BTreeMap<String, String>) -> String {
    let mut m = String::from("guixie bootstrap toolchain, format 1\n");
    for (name, version) in packages {
        m.push_str(&format!("{name} {version}\n"));
    }
    m
}

fn package_files(name: &str) -> Result<Vec<PathBuf>, String> {
    let info = Path::new("/var/lib/dpkg/info");
    for list in [format!("{name}.list"), format!("{name}:amd64.list")] {
        if let Ok(text) = std::fs::read_to_string(info.join(&list)) {
            return Ok(text.lines().map(PathBuf::from).collect());
        }
    }
    Err(format!("no file list for Debian package {name}"))
}

/// Where a packaged file lives under `/usr` (Debian's merged /usr), or None to leave it out.
fn usr_location(p: &Path) -> Option<PathBuf> {
    let s = p.to_str()?;
    if ["/bin", "/sbin", "/lib64", "/lib"].contains(&s) {
        return None;
    }
    let mapped = ["/bin", "/sbin", "/lib64", "/lib"]
        .iter()
        .find_map(|top| {
            s.strip_prefix(top)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                .map(|rest| format!("/usr{top}{rest}"))
        })
        .unwrap_or_else(|| s.to_owned());
    if !mapped.starts_with("/usr/") {
        return None;
    }
    if SKIPPED
        .iter()
        .any(|d| mapped == *d || mapped.starts_with(&format!("{d}/")))
    {
        return None;
    }
    Some(PathBuf::from(mapped))
}

fn copy_entry(host: &Path, at: &Path) -> Result<(), String> {
    let ctx = |e: std::io::Error| format!("{}: {e}", host.display());
    let meta = std::fs::symlink_metadata(host).map_err(ctx)?;
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).map_err(ctx)?;
    }
    if std::fs::symlink_metadata(at).is_ok() {
        return Ok(());
    }
    if meta.is_dir() {
        std::fs::create_dir_all(at).map_err(ctx)?;
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(host).map_err(ctx)?;
        // Alternatives (/etc/alternatives/…) resolve to the file they stand for.
        let target = if target.starts_with("/etc/") {
            std::fs::canonicalize(host).map_err(ctx)?
        } else {
            target
        };
        std::os::unix::fs::symlink(&target, at).map_err(ctx)?;
    } else if meta.is_file() {
        std::fs::copy(host, at).map_err(ctx)?;
    }
    Ok(())
}

/// The toolchain's store path: made from the host's packages the first time (or when their
/// versions change), then found again through a record keyed by the manifest.
/// The toolchains a user trusts: their NAR hashes (the base toolchain and the variants that
/// build systems extend with their tools, such as cmake's), and where the pin came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolchainPin {
    pub nar_hashes: Vec<Hash>,
    /// e.g. `GUIXIE_BOOTSTRAP_SHA256`.
    pub source: String,
}

pub fn ensure_toolchain(
    store: &LocalStore,
    roots: &[String],
    pin: Option<&ToolchainPin>,
) -> Result<StorePath, String> {
    let packages = closure(roots)?;
    let manifest = manifest(&packages);
    // The links made are part of what the record stands for: a new one makes a new item.
    let links: Vec<String> = COMMAND_LINKS
        .iter()
        .map(|(l, t)| format!("{l}>{t}"))
        .collect();
    let key = Hash::digest_of(
        HashAlgo::Sha256,
        format!("{manifest}\0{}", links.join(" ")).as_bytes(),
    )
    .to_hex();
    let records = store.state_dir().join("bootstrap");
    let record = records.join(&key);
    if let Ok(text) = std::fs::read_to_string(&record) {
        if let Ok(path) = store.store_dir().parse_path(text.trim()) {
            if store.is_valid(&path).map_err(|e| e.to_string())? {
                return check_pinned(store, roots, path, pin);
            }
        }
    }
    let area = store.build_area().map_err(|e| e.to_string())?;
    let tree = area.join("toolchain");
    let result = assemble(&tree, &packages, &manifest).and_then(|()| {
        store
            .add_path(&tree, "bootstrap-toolchain", false)
            .map_err(|e| e.to_string())
    });
    let _ = std::fs::remove_dir_all(&area);
    let info = result?;
    std::fs::create_dir_all(&records).map_err(|e| format!("{}: {e}", records.display()))?;
    std::fs::write(&record, store.store_dir().display(&info.path))
        .map_err(|e| format!("{}: {e}", record.display()))?;
    // One root per set of package names (the base, the build tools' variant): a host upgrade
    // moves it to the new item rather than keep every old one alive.
    let mut names: Vec<&str> = roots.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let set = Hash::digest_of(HashAlgo::Sha256, names.join(" ").as_bytes()).to_hex();
    store
        .add_root(&format!("bootstrap-toolchain-{}", &set[..16]), &info.path)
        .map_err(|e| e.to_string())?;
    check_pinned(store, roots, info.path, pin)
}

/// A fingerprint of the host's package database: the toolchain can change only when it does.
pub fn host_packages_fingerprint() -> Option<String> {
    let meta = std::fs::metadata(DPKG_STATUS).ok()?;
    use std::os::unix::fs::MetadataExt;
    let text = format!(
        "{}\0{}\0{}\0{}",
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    Some(Hash::digest_of(HashAlgo::Sha256, text.as_bytes()).to_hex())
}

/// Where the dpkg database is.
const DPKG_STATUS: &str = "/var/lib/dpkg/status";

fn check_pinned(
    store: &LocalStore,
    roots: &[String],
    path: StorePath,
    pin: Option<&ToolchainPin>,
) -> Result<StorePath, String> {
    let Some(pin) = pin else {
        return Ok(path);
    };
    let info = store
        .path_info(&path)
        .map_err(|e| e.to_string())?
        .ok_or("the bootstrap toolchain vanished from the store")?;
    if !pin.nar_hashes.contains(&info.nar_hash) {
        return Err(format!(
            "the host's bootstrap toolchain of {} has NAR hash {} but {} pins {}; \
             the host's packages changed (see docs/bootstrap.md)",
            roots.join(" "),
            info.nar_hash.to_nix32(),
            pin.source,
            pin.nar_hashes
                .iter()
                .map(Hash::to_nix32)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(path)
}

fn assemble(
    tree: &Path,
    packages: &BTreeMap<String, String>,
    manifest: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(tree.join("usr/bin")).map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    for name in packages.keys() {
        for host in package_files(name)? {
            let Some(at) = usr_location(&host) else {
                continue;
            };
            if !seen.insert(at.clone()) || std::fs::symlink_metadata(&host).is_err() {
                continue;
            }
            copy_entry(&host, &tree.join(at.strip_prefix("/").expect("absolute")))?;
        }
    }
    let bin = tree.join("usr/bin");
    for (link, target) in COMMAND_LINKS {
        if bin.join(target).exists() && std::fs::symlink_metadata(bin.join(link)).is_err() {
            std::os::unix::fs::symlink(target, bin.join(link)).map_err(|e| e.to_string())?;
        }
    }
    let doc = tree.join("usr/share/guixie-bootstrap");
    std::fs::create_dir_all(&doc).map_err(|e| e.to_string())?;
    std::fs::write(doc.join("manifest"), manifest).map_err(|e| e.to_string())
}
