//! `(guixie primitives)`: the Rust procedures the Scheme layer lowers with. Scheme never
//! computes a hash or a store path itself; Rust never interprets Scheme.

use std::collections::{BTreeMap, BTreeSet};

use guile::{Guile, ListIter, Primitive, PrimitiveError, Value};
use guixie_formats::derivation::{Derivation, FixedOutput, Output};
use guixie_formats::{Hash, HashAlgo, StorePath};
use guixie_store::TextItem;

use crate::session::Session;

include!("primitive_names.rs");

pub fn define_all(g: &Guile) {
    g.define_primitive::<AddToStorePrim>();
    g.define_primitive::<BootstrapToolchainPrim>();
    g.define_primitive::<BuildSideModulePrim>();
    g.define_primitive::<DerivationPrim>();
    g.define_primitive::<QueryPathInfoPrim>();
    g.define_primitive::<RustToolchainPrim>();
    g.define_primitive::<StoreDirPrim>();
    g.define_primitive::<ConfigPrim>();
    g.define_primitive::<TextFilePrim>();
}

/// `(%add-to-store name file excluded)` → the store path of a file or tree without the
/// entries named in `excluded` (full names under it), NAR-hashed as `nix-store --add` does;
/// it is copied in with the evaluation's other results.
struct AddToStorePrim;
impl Primitive for AddToStorePrim {
    const NAME: &'static str = "%add-to-store";
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let [name, file, excluded] = args else {
            return Err(err(format!("expected 3 arguments, got {}", args.len())));
        };
        let name = text(*name, "name")?;
        let file = std::path::PathBuf::from(text(*file, "file")?);
        let excluded: guixie_formats::nar::Excluded = list(*excluded, "excluded")?
            .map(|v| text(v, "excluded file").map(std::path::PathBuf::from))
            .collect::<Result<_, _>>()?;
        let path = Session::with_current(|s| {
            guixie_formats::store_path::validate_name(&name).map_err(|e| e.to_string())?;
            if std::fs::symlink_metadata(&file).is_err() {
                return Err("no such file or directory".to_owned());
            }
            // A rejected name that does not come back as the name on disk (one Guile could
            // not decode) would be copied in after all: refuse rather than ignore `select?`.
            if let Some(lost) = excluded
                .iter()
                .find(|p| !p.starts_with(&file) || std::fs::symlink_metadata(p).is_err())
            {
                return Err(format!(
                    "select? rejected {}, which is not a name under {} guixie can leave out",
                    lost.display(),
                    file.display()
                ));
            }
            let fingerprint = crate::cache::tree_fingerprint(&file, &excluded);
            let (nar_hash, _) =
                guixie_formats::nar::hash_path_excluding(&file, HashAlgo::Sha256, &excluded)
                    .map_err(|e| e.to_string())?;
            let path = s
                .store_dir
                .make_source_path(&name, &nar_hash, &BTreeSet::new(), false)
                .map_err(|e| e.to_string())?;
            let abs = s.store_dir.display(&path);
            s.add_pending_file(crate::session::LocalFile {
                path,
                name: name.clone(),
                file: file.clone(),
                excluded,
                fingerprint,
            });
            Ok(abs)
        })
        .map_err(err)?;
        Ok(g.string(&path))
    }
}

/// `(%bootstrap-toolchain packages)` → the store path of the toolchain made from those
/// Debian packages (see `bootstrap`).
struct BootstrapToolchainPrim;
impl Primitive for BootstrapToolchainPrim {
    const NAME: &'static str = "%bootstrap-toolchain";
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let [packages] = args else {
            return Err(err(format!("expected 1 argument, got {}", args.len())));
        };
        let packages: Vec<String> = list(*packages, "packages")?
            .map(|p| text(p, "package"))
            .collect::<Result<_, _>>()?;
        // Copying the trust root into the store is not evaluation: the evaluation's wall-clock
        // alarm is paused meanwhile (and the loader credits the time back to its deadline).
        let paused = PausedAlarm::pause();
        let path = Session::with_current(|s| {
            s.used_toolchain = true;
            let p =
                guixie_trust_root::ensure_toolchain(&s.store, &packages, s.bootstrap_pin.as_ref())?;
            Ok(s.store_dir.display(&p))
        });
        drop(paused);
        let path = path.map_err(|e| err(format!("bootstrap toolchain: {e}")))?;
        Ok(g.string(&path))
    }
}

/// `(%rust-toolchain version nar-hash)` → the store path of that Rust release, whose NAR
/// hash must be the one given (see `guixie_trust_root::rust`).
struct RustToolchainPrim;
impl Primitive for RustToolchainPrim {
    const NAME: &'static str = "%rust-toolchain";
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let [version, hash] = args else {
            return Err(err(format!("expected 2 arguments, got {}", args.len())));
        };
        let version = text(*version, "version")?;
        let hash = text(*hash, "sha256")?;
        let pinned = guixie_formats::Hash::parse(&hash, Some(HashAlgo::Sha256))
            .ok()
            .filter(|h| h.algo() == HashAlgo::Sha256)
            .ok_or_else(|| err(format!("Rust {version}: {hash:?} is not a sha256 NAR hash")))?;
        let paused = PausedAlarm::pause();
        let path = Session::with_current(|s| {
            let p = guixie_trust_root::rust::ensure_rust_toolchain(&s.store, &version, &pinned)?;
            Ok(s.store_dir.display(&p))
        });
        drop(paused);
        let path = path.map_err(|e| err(format!("Rust toolchain: {e}")))?;
        Ok(g.string(&path))
    }
}

/// The process's `ITIMER_REAL` (Guile's sandbox time limit, delivered as `SIGALRM`),
/// stopped while this lives and restarted with what was left of it.
struct PausedAlarm(libc::itimerval);

impl PausedAlarm {
    fn pause() -> PausedAlarm {
        let zero = libc::itimerval {
            it_interval: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            it_value: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
        };
        let mut left = zero;
        // SAFETY: both pointers are to valid, initialised itimervals that outlive the call.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &zero, &mut left) };
        PausedAlarm(left)
    }
}

impl Drop for PausedAlarm {
    fn drop(&mut self) {
        let v = self.0.it_value;
        if v.tv_sec != 0 || v.tv_usec != 0 {
            // SAFETY: a valid itimerval; the old value is not asked for (null is allowed).
            unsafe { libc::setitimer(libc::ITIMER_REAL, &self.0, std::ptr::null_mut()) };
        }
    }
}

/// `(%build-side-module-source '(guixie build utils))` → the module's source text.
struct BuildSideModulePrim;
impl Primitive for BuildSideModulePrim {
    const NAME: &'static str = "%build-side-module-source";
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let [name] = args else {
            return Err(err(format!("expected 1 argument, got {}", args.len())));
        };
        let parts: Vec<String> = list(*name, "module name")?
            .map(|p| {
                p.to_text()
                    .ok_or_else(|| err("module name: expected symbols"))
            })
            .collect::<Result<_, _>>()?;
        let joined = parts.join(" ");
        crate::BUILD_SIDE_MODULES
            .iter()
            .find(|(n, _)| *n == joined)
            .map(|(_, source)| g.string(source))
            .ok_or_else(|| {
                err(format!(
                    "no build-side module ({joined}); there are: {}",
                    crate::BUILD_SIDE_MODULES
                        .iter()
                        .map(|(n, _)| format!("({n})"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ))
            })
    }
}

fn err(msg: impl Into<String>) -> PrimitiveError {
    PrimitiveError::new(msg)
}

fn text(v: Value<'_>, what: &str) -> Result<String, PrimitiveError> {
    v.to_text()
        .ok_or_else(|| err(format!("{what}: expected a string")))
}

fn bytes(v: Value<'_>, what: &str) -> Result<Vec<u8>, PrimitiveError> {
    v.to_bytes()
        .ok_or_else(|| err(format!("{what}: expected a string or bytevector")))
}

fn list<'g>(v: Value<'g>, what: &str) -> Result<ListIter<'g>, PrimitiveError> {
    v.list()
        .ok_or_else(|| err(format!("{what}: expected a list")))
}

/// `(%query-path-info path)` → `#f` if `path` is not valid, else
/// `(nar-hash nar-size (reference ...) deriver-or-#f)`, the hash in Nix's `sha256:` form.
struct QueryPathInfoPrim;
impl Primitive for QueryPathInfoPrim {
    const NAME: &'static str = "%query-path-info";
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let [path] = args else {
            return Err(err(format!("expected 1 argument, got {}", args.len())));
        };
        let path = text(*path, "path")?;
        type Info = (String, u64, Vec<String>, Option<String>);
        let info: Option<Info> = Session::with_current(|s| {
            use guixie_store::PathInfoQuery;
            let p = s.store_dir.parse_path(&path).map_err(|e| e.to_string())?;
            let Some(info) = s.store.path_info(&p).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            Ok(Some((
                info.nar_hash
                    .to_typed_string(guixie_formats::Encoding::Nix32),
                info.nar_size,
                info.references
                    .iter()
                    .map(|r| s.store_dir.display(r))
                    .collect(),
                info.deriver.as_ref().map(|d| s.store_dir.display(d)),
            )))
        })
        .map_err(|e| err(format!("query-path-info {path:?}: {e}")))?;
        let Some((hash, size, refs, deriver)) = info else {
            return Ok(g.bool(false));
        };
        let refs = g.list_with(&refs, |r| g.string(r));
        let deriver = deriver
            .map(|d| g.string(&d))
            .unwrap_or_else(|| g.bool(false));
        Ok(g.list(&[g.string(&hash), g.int(size as i64), refs, deriver]))
    }
}

struct StoreDirPrim;
impl Primitive for StoreDirPrim {
    const NAME: &'static str = "%store-dir";
    fn call<'g>(g: &'g Guile, _: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let dir = Session::with_current(|s| Ok(s.store_dir.as_str().to_owned())).map_err(err)?;
        Ok(g.string(&dir))
    }
}

/// `(%guixie-config)` → `(version state-directory)`, for `(guix config)`.
struct ConfigPrim;
impl Primitive for ConfigPrim {
    const NAME: &'static str = "%guixie-config";
    fn call<'g>(g: &'g Guile, _: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let state = Session::with_current(|s| Ok(s.store.state_dir().display().to_string()))
            .map_err(err)?;
        Ok(g.list(&[g.string(env!("CARGO_PKG_VERSION")), g.string(&state)]))
    }
}

/// `(%text-file name contents references)` → the store path of a text file, as Nix's
/// `builtins.toFile` computes it; the file is written with the evaluation's other results.
struct TextFilePrim;
impl Primitive for TextFilePrim {
    const NAME: &'static str = "%text-file";
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let [name, contents, refs] = args else {
            return Err(err(format!("expected 3 arguments, got {}", args.len())));
        };
        let name = text(*name, "name")?;
        let contents = bytes(*contents, "contents")?;
        let refs: Vec<String> = list(*refs, "references")?
            .map(|r| text(r, "reference"))
            .collect::<Result<_, _>>()?;
        let path = Session::with_current(|s| {
            let references = refs
                .iter()
                .map(|r| s.store_dir.parse_path(r).map_err(|e| e.to_string()))
                .collect::<Result<BTreeSet<_>, _>>()?;
            s.references_available(&references)?;
            let h = Hash::digest_of(HashAlgo::Sha256, &contents);
            let path = s
                .store_dir
                .make_text_path(&name, &h, &references)
                .map_err(|e| e.to_string())?;
            let abs = s.store_dir.display(&path);
            s.add_pending(path, TextItem::text(&name, contents.clone(), references));
            Ok(abs)
        })
        .map_err(|e| err(format!("text file {name:?}: {e}")))?;
        Ok(g.string(&path))
    }
}

/// `(%derivation name system builder args env-vars input-drvs input-srcs outputs fixed)`
/// → `(drv-file . ((output . path) ...))`. `input-drvs` is `((drv-file output ...) ...)`,
/// `fixed` is `#f` or `(algo hash recursive?)`.
struct DerivationPrim;
impl Primitive for DerivationPrim {
    const NAME: &'static str = "%derivation";
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let [name, system, builder, argv, env, input_drvs, input_srcs, outputs, fixed] = args
        else {
            return Err(err(format!("expected 9 arguments, got {}", args.len())));
        };
        let name = text(*name, "name")?;
        let ctx = |e: String| err(format!("derivation {name:?}: {e}"));
        let mut drv = Derivation {
            system: bytes(*system, "system")?,
            builder: bytes(*builder, "builder")?,
            ..Default::default()
        };
        for a in list(*argv, "args")? {
            drv.args.push(bytes(a, "args")?);
        }
        for pair in list(*env, "env-vars")? {
            let (Some(k), Some(v)) = (pair.car(), pair.cdr()) else {
                return Err(ctx("env-vars: expected (name . value) pairs".into()));
            };
            let k = bytes(k, "environment variable name")?;
            if drv
                .env
                .insert(k.clone(), bytes(v, "environment variable value")?)
                .is_some()
            {
                return Err(ctx(format!(
                    "environment variable {:?} given twice",
                    String::from_utf8_lossy(&k)
                )));
            }
        }
        drv.env
            .entry(b"name".to_vec())
            .or_insert_with(|| name.clone().into_bytes());
        let fixed = if fixed.is_false() {
            None
        } else {
            list(*fixed, "fixed output")?;
            match fixed.list_array() {
                Some([algo, hash, recursive]) => {
                    let algo = HashAlgo::parse(&text(algo, "hash algorithm")?)
                        .map_err(|e| ctx(e.to_string()))?;
                    let hash = Hash::parse(&text(hash, "hash")?, Some(algo))
                        .map_err(|e| ctx(format!("hash: {e}")))?;
                    Some(FixedOutput {
                        recursive: recursive.is_true(),
                        hash,
                    })
                }
                _ => return Err(ctx("fixed output: expected (algo hash recursive?)".into())),
            }
        };
        let outputs = list(*outputs, "outputs")?;
        if outputs.is_empty() {
            return Err(ctx("a derivation needs at least one output".into()));
        }
        for o in outputs {
            let o = text(o, "output name")?;
            let output = Output {
                path: None,
                fixed: fixed.clone(),
            };
            if drv.outputs.insert(o.clone(), output).is_some() {
                return Err(ctx(format!("output {o:?} given twice")));
            }
        }
        let mut drv_inputs: Vec<(String, Vec<String>)> = Vec::new();
        for entry in list(*input_drvs, "input derivations")? {
            let mut items = list(entry, "input derivation")?;
            let first = items
                .next()
                .ok_or_else(|| ctx("empty input derivation entry".into()))?;
            let outs = items
                .map(|o| text(o, "input output name"))
                .collect::<Result<_, _>>()?;
            drv_inputs.push((text(first, "input derivation")?, outs));
        }
        let srcs: Vec<String> = list(*input_srcs, "input sources")?
            .map(|s| text(s, "input source"))
            .collect::<Result<_, _>>()?;

        let (drv_path, out_paths) =
            Session::with_current(|s| lower(s, &name, drv, drv_inputs, srcs)).map_err(ctx)?;
        let out_paths: Vec<(String, String)> = out_paths.into_iter().collect();
        let outs = g.list_with(&out_paths, |(o, p)| g.cons(g.string(o), g.string(p)));
        Ok(g.cons(g.string(&drv_path), outs))
    }
}

/// Completes the derivation (inputs, output paths), queues its `.drv` for the store and
/// returns its path and output paths.
fn lower(
    s: &mut Session,
    name: &str,
    mut drv: Derivation,
    inputs: Vec<(String, Vec<String>)>,
    srcs: Vec<String>,
) -> Result<(String, BTreeMap<String, String>), String> {
    let sd = s.store_dir.clone();
    for (path, outs) in inputs {
        let p = sd.parse_path(&path).map_err(|e| e.to_string())?;
        if !p.name().ends_with(".drv") {
            return Err(format!("input {path} is not a derivation"));
        }
        drv.input_drvs.entry(p).or_default().extend(outs);
    }
    for src in srcs {
        drv.input_srcs
            .insert(sd.parse_path(&src).map_err(|e| e.to_string())?);
    }
    let references: BTreeSet<StorePath> = drv.references();
    s.references_available(&references)?;
    let collision = s.collision;
    drv.fill_output_paths(&sd, collision, &mut |p| s.modulo_of(p))
        .map_err(|e| e.to_string())?;
    let (drv_path, item) = TextItem::derivation(name, &drv, &sd).map_err(|e| e.to_string())?;
    let own_hash = drv
        .hash_modulo(&sd, false, collision, &mut |p| s.modulo_of(p))
        .map_err(|e| e.to_string())?;
    s.remember_modulo(drv_path.clone(), own_hash);
    let outputs = item
        .derivation_outputs()
        .iter()
        .map(|(o, p)| (o.clone(), sd.display(p)))
        .collect();
    let abs = sd.display(&drv_path);
    s.add_pending(drv_path, item);
    Ok((abs, outputs))
}
