//! The Rust toolchain: the trust root of the cargo build system, declared and pinned like the
//! bootstrap toolchain. Debian's rustc is too old for guixie, so it comes from rustup's
//! installation of one release (e.g. 1.95.0). rustup lists the files each component
//! installed in `lib/rustlib/manifest-<component>-<host>`; the store item holds exactly the
//! files of `rustc`, `cargo` and the host's standard library under `bin/`, `lib/` and
//! `libexec/` (no documentation), and a manifest naming the release. The same release gives
//! the same files on every machine, so the item's NAR hash can be written in a recipe: the
//! recipe names the release and that hash, and any other tree is refused. See
//! `docs/bootstrap.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use guixie_formats::{Hash, StorePath};
use guixie_store::{LocalStore, PathInfoQuery};

/// The host (and only) target.
pub const HOST: &str = "x86_64-unknown-linux-gnu";

/// The components builds need, as rustup names them.
const COMPONENTS: &[&str] = &["rustc", "cargo", "rust-std"];

/// The directories of a component's files that builds use.
const KEPT: &[&str] = &["bin/", "lib/", "libexec/"];

/// The store path of Rust `version` whose NAR hash is `pinned`: found in the store if it is
/// there (the host is not looked at), else assembled from the host's rustup installation of
/// that release, added, and refused unless its NAR hash is the pinned one.
pub fn ensure_rust_toolchain(
    store: &LocalStore,
    version: &str,
    pinned: &Hash,
) -> Result<StorePath, String> {
    check_version_syntax(version)?;
    let name = format!("rust-toolchain-{version}");
    let expected = store
        .store_dir()
        .make_source_path(&name, pinned, &std::collections::BTreeSet::new(), false)
        .map_err(|e| e.to_string())?;
    if store.is_valid(&expected).map_err(|e| e.to_string())? {
        return Ok(expected);
    }
    let sysroot = find_sysroot(version)?;
    let area = store.build_area().map_err(|e| e.to_string())?;
    let tree = area.join("rust");
    // Hashed before it is added: a tree nobody pinned never becomes a store path.
    let result = assemble(&sysroot, version, &tree).and_then(|()| {
        let (hash, _) = guixie_formats::nar::hash_path(&tree, guixie_formats::HashAlgo::Sha256)
            .map_err(|e| e.to_string())?;
        if hash != *pinned {
            return Err(format!(
                "the Rust {version} installed at {} has NAR hash {} but the recipe pins {}; \
                     it is not the release the recipe was written for (see docs/bootstrap.md)",
                sysroot.display(),
                hash.to_sri(),
                pinned.to_sri()
            ));
        }
        store
            .add_path(&tree, &name, false)
            .map_err(|e| e.to_string())
    });
    let _ = std::fs::remove_dir_all(&area);
    let info = result?;
    if info.path != expected {
        return Err(format!(
            "{}: the tree changed while it was added",
            sysroot.display()
        ));
    }
    // One root per pin: two recipes pinning the same release differently keep both.
    let root = format!("{name}-{}", &pinned.to_hex()[..16]);
    store
        .add_root(&root, &info.path)
        .map_err(|e| e.to_string())?;
    Ok(info.path)
}

fn check_version_syntax(version: &str) -> Result<(), String> {
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(format!(
            "Rust release {version:?}: expected a version such as 1.95.0"
        ))
    }
}

/// rustup's installation of `version`: `$GUIXIE_RUST_SYSROOT` if set, else the rustup
/// toolchain named for the release or the default one, whichever is that release.
fn find_sysroot(version: &str) -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("GUIXIE_RUST_SYSROOT") {
        candidates.push(PathBuf::from(dir));
    } else {
        let rustup_home = std::env::var_os("RUSTUP_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")));
        if let Some(home) = rustup_home {
            for channel in [version, "stable"] {
                candidates.push(home.join("toolchains").join(format!("{channel}-{HOST}")));
            }
        }
    }
    let mut found = Vec::new();
    for dir in &candidates {
        match release_of(dir) {
            Some(release) if release == version => return Ok(dir.clone()),
            Some(release) => found.push(format!("{} is {release}", dir.display())),
            None => {}
        }
    }
    Err(format!(
        "Rust {version} is not installed ({}); install it with `rustup toolchain install \
         {version} --profile minimal` or set GUIXIE_RUST_SYSROOT to its directory",
        if found.is_empty() {
            "no rustup toolchain found".to_owned()
        } else {
            found.join(", ")
        }
    ))
}

/// The release `rustc -vV` of a sysroot reports.
fn release_of(sysroot: &Path) -> Option<String> {
    let out = Command::new(sysroot.join("bin/rustc"))
        .arg("-vV")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("release: "))
        .map(str::to_owned)
}

fn assemble(sysroot: &Path, version: &str, tree: &Path) -> Result<(), String> {
    let mut manifest = format!("guixie Rust toolchain, format 1\nrelease {version}\nhost {HOST}\n");
    for component in COMPONENTS {
        let list = sysroot
            .join("lib/rustlib")
            .join(format!("manifest-{component}-{HOST}"));
        let text = std::fs::read_to_string(&list).map_err(|e| {
            format!(
                "{}: {e} (rustup's list of the {component} component's files)",
                list.display()
            )
        })?;
        manifest.push_str(&format!("component {component}\n"));
        for line in text.lines() {
            if let Some(dir) = line.strip_prefix("dir:") {
                // Whole directories (rust-docs lists one) are not copied; one the build
                // needs would leave a tree the recipe's author pinned without it.
                if KEPT.iter().any(|k| dir.starts_with(k)) {
                    return Err(format!(
                        "{}: the component installs the directory {dir:?} whole, which guixie does not copy",
                        list.display()
                    ));
                }
                continue;
            }
            let Some(file) = line.strip_prefix("file:") else {
                continue;
            };
            if !KEPT.iter().any(|k| file.starts_with(k)) {
                continue;
            }
            // rustup writes relative names; anything else is not a file of this tree.
            if Path::new(file)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(format!("{}: unexpected file name {file:?}", list.display()));
            }
            copy_file(&sysroot.join(file), &tree.join(file))?;
        }
    }
    let doc = tree.join("share/guixie-rust");
    std::fs::create_dir_all(&doc).map_err(|e| e.to_string())?;
    std::fs::write(doc.join("manifest"), manifest).map_err(|e| e.to_string())
}

fn copy_file(host: &Path, at: &Path) -> Result<(), String> {
    let ctx = |e: std::io::Error| format!("{}: {e}", host.display());
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).map_err(ctx)?;
    }
    let meta = std::fs::symlink_metadata(host).map_err(ctx)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(host).map_err(ctx)?;
        std::os::unix::fs::symlink(target, at).map_err(ctx)
    } else {
        std::fs::copy(host, at).map(|_| ()).map_err(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_plain_releases() {
        assert!(check_version_syntax("1.95.0").is_ok());
        for bad in ["", "1.95", "stable", "1.95.0-beta", "../1.95.0", "1..0"] {
            assert!(check_version_syntax(bad).is_err(), "{bad:?}");
        }
    }
}
