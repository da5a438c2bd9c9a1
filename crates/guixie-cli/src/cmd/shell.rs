//! `guixie shell PKG|FILE.scm|STORE-PATH… [-- CMD ARGS]` and `guixie run STORE-PATH/bin/X`:
//! programs of the store run with their search paths set and the store's files at the logical
//! store directory (through `guixie-sandbox --view`), so every `/gnu/store/…` file name inside
//! them resolves. `--container` runs them in the build sandbox instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use guixie_formats::StorePath;
use guixie_lang::SearchPath;
use guixie_store::{LocalStore, PathInfoQuery};

use crate::Context;

#[derive(Args)]
pub struct ShellArgs {
    /// Packages (names on the load path), `.scm` files, or store paths.
    #[arg(value_name = "PKG")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub flags: super::build::BuildFlags,
    /// Enter this profile too (repeatable), e.g. `~/.guixie-profile`.
    #[arg(short = 'p', long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<PathBuf>,
    /// Clear the environment first (keeping HOME, USER, LOGNAME, TERM, TZ, DISPLAY,
    /// XAUTHORITY and PAGER).
    #[arg(long)]
    pub pure: bool,
    /// Run in the build sandbox: only the packages' closure, the current directory and a
    /// private /tmp; no network but loopback (implies --pure).
    #[arg(long, short = 'C')]
    pub container: bool,
    /// Report what the environment lacks (a shell whose start-up files reset PATH, packages
    /// that give no program) instead of entering it.
    #[arg(long)]
    pub check: bool,
    /// The command to run (default: $SHELL, else /bin/sh).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Variables a package's directories are added to, as Guix's packages declare them.
const SEARCH_PATHS: &[(&str, &str)] = &[
    ("PATH", "bin"),
    ("PATH", "sbin"),
    ("C_INCLUDE_PATH", "include"),
    ("CPLUS_INCLUDE_PATH", "include"),
    ("LIBRARY_PATH", "lib"),
    ("PKG_CONFIG_PATH", "lib/pkgconfig"),
    ("GUILE_LOAD_PATH", "share/guile/site/3.0"),
    ("GUILE_LOAD_COMPILED_PATH", "lib/guile/3.0/site-ccache"),
    ("MANPATH", "share/man"),
    ("INFOPATH", "share/info"),
    ("XDG_DATA_DIRS", "share"),
];

/// What `--pure` keeps.
const KEPT: &[&str] = &[
    "HOME",
    "USER",
    "LOGNAME",
    "TERM",
    "TZ",
    "DISPLAY",
    "XAUTHORITY",
    "PAGER",
];

pub fn run(ctx: &Context, args: ShellArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let (packages, declared) = packages(ctx, &store, &args)?;
    let pure = args.pure || args.container;
    let env = environment(&store, &packages, &declared, pure);
    let command = match args.command.split_first() {
        Some((c, rest)) => (c.clone(), rest.to_vec()),
        None => (
            std::env::var("SHELL")
                .ok()
                .filter(|s| !s.is_empty() && !args.container)
                .unwrap_or_else(|| "/bin/sh".into()),
            vec![],
        ),
    };
    if args.check {
        return check(&store, &packages, &env);
    }
    if args.container {
        let program = command.0;
        let status = guixie_build::container::run_in_container(
            &store,
            &guixie_build::container::ContainerRequest {
                packages: &packages,
                program,
                args: command.1,
                env,
                cwd: std::env::current_dir()?,
                tools: &[],
                exchange: None,
                debugger: false,
                stdout: None,
                network: Default::default(),
            },
        )
        .context("running the container")?;
        return Ok(exit_code(status));
    }
    exec_in_view(&store, &env, &command.0, &command.1)
}

/// `guixie run STORE-PATH/bin/X [ARGS]`: `guixie shell STORE-PATH -- STORE-PATH/bin/X ARGS`.
pub fn run_program(ctx: &Context, program: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    let (path, logical) = program_in_store(&store, program)?;
    let env = environment(&store, &[path], &[], false);
    exec_in_view(&store, &env, &logical, args)
}

/// The valid store item `program` lies in, and `program` as a logical path.
pub(super) fn program_in_store(
    store: &LocalStore,
    program: &str,
) -> anyhow::Result<(StorePath, String)> {
    let path = store
        .parse_user_path(program)
        .with_context(|| format!("{program} is not a file in the store"))?;
    if !store.is_valid(&path)? {
        anyhow::bail!(
            "{} is not valid in this store (build or substitute it first)",
            store.store_dir().display(&path)
        );
    }
    let logical = logical_file(store, program, &path);
    Ok((path, logical))
}

/// `program` as a logical path, however the user wrote it (a physical path into the store).
fn logical_file(store: &LocalStore, program: &str, path: &StorePath) -> String {
    let real = store.real_path(path);
    match Path::new(program).strip_prefix(&real) {
        Ok(rest) if !rest.as_os_str().is_empty() => Path::new(&store.store_dir().display(path))
            .join(rest)
            .display()
            .to_string(),
        _ => program.to_owned(),
    }
}

/// The outputs of the targets (built or substituted as needed), then of the profiles.
fn packages(
    ctx: &Context,
    store: &Arc<LocalStore>,
    args: &ShellArgs,
) -> anyhow::Result<(Vec<StorePath>, Vec<SearchPath>)> {
    let mut out = Vec::new();
    let mut declared = Vec::new();
    let mut to_build = Vec::new();
    for t in &args.targets {
        if let Some(p) = super::build::item_target(store, t)? {
            out.push(p);
            continue;
        }
        // Packages and files are evaluated here, for the search paths they declare.
        match ctx.evaluate_target(store, t, None)? {
            Some(evaluated) => {
                for e in evaluated {
                    declared.extend(e.search_paths);
                    to_build.push(e.drv_path);
                }
            }
            None => to_build.push(t.clone()),
        }
    }
    if !to_build.is_empty() {
        let build = super::build::BuildArgs {
            targets: to_build,
            attr: None,
            check: false,
            trace: None,
            quiet: false,
            flags: args.flags.clone(),
        };
        for outputs in super::build::build_targets(ctx, store, &build)? {
            out.extend(outputs.into_values());
        }
    }
    for profile in &args.profiles {
        let (items, paths) = crate::cmd::package::profile_packages(store, profile)?;
        out.extend(items);
        declared.extend(paths);
    }
    if out.is_empty() {
        anyhow::bail!("no package named: give packages, .scm files, store paths or -p PROFILE");
    }
    Ok((out, declared))
}

/// The environment: the caller's (or only what `--pure` keeps) with the packages'
/// directories prepended to the search paths (the common ones, and those the packages
/// declare), as logical paths.
pub(super) fn environment(
    store: &LocalStore,
    packages: &[StorePath],
    declared: &[SearchPath],
    pure: bool,
) -> Vec<(String, String)> {
    let sd = store.store_dir();
    let mut env: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| !pure || KEPT.contains(&k.as_str()))
        .collect();
    // (variable, separator, directories), in the order first named.
    let mut specs: Vec<(String, String, Vec<String>)> = Vec::new();
    let common = SEARCH_PATHS
        .iter()
        .map(|(v, d)| (*v, ":", vec![d.to_string()]));
    let declared = declared.iter().map(|sp| {
        (
            sp.variable.as_str(),
            sp.separator.as_str(),
            sp.files.clone(),
        )
    });
    for (variable, separator, dirs) in common.chain(declared) {
        match specs.iter_mut().find(|s| s.0 == variable) {
            Some(s) => {
                for d in dirs {
                    if !s.2.contains(&d) {
                        s.2.push(d);
                    }
                }
            }
            None => specs.push((variable.to_owned(), separator.to_owned(), dirs)),
        }
    }
    for (variable, separator, subs) in &specs {
        let dirs: Vec<String> = packages
            .iter()
            .flat_map(|p| subs.iter().map(move |sub| (p, sub)))
            .filter(|(p, sub)| store.real_path(p).join(sub).is_dir())
            .map(|(p, sub)| format!("{}/{sub}", sd.display(p)))
            .collect();
        if dirs.is_empty() {
            continue;
        }
        let mut value = dirs.join(separator);
        if let Some(old) = env.get(variable).filter(|v| !v.is_empty()) {
            value = format!("{value}{separator}{old}");
        }
        env.insert(variable.clone(), value);
    }
    env.insert(
        "GUIXIE_ENVIRONMENT".into(),
        packages
            .iter()
            .map(|p| sd.display(p))
            .collect::<Vec<_>>()
            .join(" "),
    );
    env.into_iter().collect()
}

/// Replaces this process with `guixie-sandbox --view … program args`.
fn exec_in_view(
    store: &LocalStore,
    env: &[(String, String)],
    program: &str,
    args: &[String],
) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let helper = guixie_build::BuildOptions::default().helper;
    let mut cmd = std::process::Command::new(&helper);
    cmd.arg("--view")
        .arg(store.real_store_dir())
        .arg(store.store_dir().as_str())
        .arg(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    let e = cmd.exec();
    Err(anyhow::anyhow!("{}: {e}", helper.display()))
}

/// `--check`: whether the user's shell keeps the environment's PATH, and which packages give
/// no program.
fn check(
    store: &LocalStore,
    packages: &[StorePath],
    env: &[(String, String)],
) -> anyhow::Result<ExitCode> {
    let sd = store.store_dir();
    let mut fine = true;
    for p in packages {
        let real = store.real_path(p);
        if !real.join("bin").is_dir() && !real.join("sbin").is_dir() {
            println!("{}: no bin/ (it gives no program)", sd.display(p));
        }
    }
    let want = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
    let out = std::process::Command::new(&shell)
        .args(["-i", "-c", "printf %s \"$PATH\""])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {shell}"))?;
    let got = String::from_utf8_lossy(&out.stdout);
    let first = want.split(':').next().unwrap_or("");
    if !first.is_empty() && !got.split(':').any(|d| d == first) {
        fine = false;
        println!(
            "{shell}'s start-up files reset PATH (it is {got:?} inside): the packages' programs \
             are not found by name; set PATH in them only for login shells"
        );
    }
    if fine {
        println!(
            "the environment is complete: {} packages, PATH starts with {first}",
            packages.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

pub(super) fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
