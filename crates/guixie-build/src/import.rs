//! Importing `.drv` files another tool wrote (`nix-instantiate`, another guixie) from a
//! directory that holds them and their inputs, such as Nix's store directory. Every file is
//! added the way its path says it was made: `.drv` files and `builtins.toFile` sources as text
//! (content + references), other sources as NAR-hashed paths. The recomputed path must equal
//! the file's name, or the import stops.

use std::collections::BTreeSet;
use std::path::Path;

use guixie_formats::derivation::Derivation;
use guixie_formats::StorePath;
use guixie_store::{LocalStore, PathInfoQuery, TextItem, MAX_DERIVATION_SIZE};

use crate::builder::BuildError;

fn err(what: &Path, message: impl Into<String>) -> BuildError {
    BuildError::Derivation {
        drv: what.display().to_string(),
        message: message.into(),
    }
}

/// Imports the `.drv` at `file` and everything it needs from the same directory; returns its
/// store path.
pub fn import_drv_closure(store: &LocalStore, file: &Path) -> Result<StorePath, BuildError> {
    let dir = file.parent().ok_or_else(|| err(file, "has no directory"))?;
    let base = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let top = StorePath::from_base_name(&base)
        .map_err(|e| err(file, format!("not a store path name: {e}")))?;
    let mut done = BTreeSet::new();
    import_one(store, dir, &top, &mut done)?;
    Ok(top)
}

/// The path the contents gave must be the one the file is named after.
fn same_path(
    file: &Path,
    got: &StorePath,
    named: &StorePath,
    sd: &guixie_formats::StoreDir,
) -> Result<(), BuildError> {
    if got != named {
        return Err(err(
            file,
            format!("its contents give {}, not its own name", sd.display(got)),
        ));
    }
    Ok(())
}

fn import_one(
    store: &LocalStore,
    dir: &Path,
    path: &StorePath,
    done: &mut BTreeSet<StorePath>,
) -> Result<(), BuildError> {
    if done.contains(path) || store.is_valid(path)? {
        return Ok(());
    }
    let sd = store.store_dir().clone();
    let file = dir.join(path.to_string());
    if path.name().ends_with(".drv") {
        let bytes = guixie_store::safe_fs::read_capped(&file, MAX_DERIVATION_SIZE)
            .map_err(|e| err(&file, e.to_string()))?;
        let drv = Derivation::parse(&bytes, &sd).map_err(|e| err(&file, e.to_string()))?;
        for input in drv.input_drvs.keys().chain(drv.input_srcs.iter()) {
            import_one(store, dir, input, done)?;
        }
        // Parsing accepts only the canonical form, so this writes the file's own bytes.
        let name = path.name().strip_suffix(".drv").expect("checked above");
        let (got, item) =
            TextItem::derivation(name, &drv, &sd).map_err(|e| err(&file, e.to_string()))?;
        same_path(&file, &got, path, &sd)?;
        store.add_texts(&[item])?;
    } else {
        // A source: text (`builtins.toFile`, no references here) or NAR-hashed (`nix-store --add`).
        let meta = std::fs::symlink_metadata(&file).map_err(|e| err(&file, e.to_string()))?;
        let as_text = meta
            .is_file()
            .then(|| std::fs::read(&file).ok())
            .flatten()
            .and_then(|bytes| {
                let h = guixie_formats::Hash::digest_of(guixie_formats::HashAlgo::Sha256, &bytes);
                (sd.make_text_path(path.name(), &h, []).ok()? == *path).then_some(bytes)
            });
        let info = match as_text {
            Some(bytes) => store.add_text(path.name(), &bytes, &BTreeSet::new())?,
            None => store.add_path(&file, path.name(), false)?,
        };
        same_path(&file, &info.path, path, &sd)?;
    }
    done.insert(path.clone());
    Ok(())
}
