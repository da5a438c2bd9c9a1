//! `guixie shell --container`: a command run in the build sandbox, seeing the closure of its
//! packages (at their logical paths), the current directory and a private `/tmp`, with no
//! network but loopback and none of the host's other files, processes or users.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use guixie_formats::StorePath;
use guixie_store::{LocalStore, PathInfoQuery};

use crate::sandbox::{SandboxSpec, NAME_SERVICE_FILES};

pub struct ContainerRequest<'a> {
    /// The packages' outputs; their closure is what the container sees of the store.
    pub packages: &'a [StorePath],
    /// The command's program: an absolute path inside, or a name looked up in the
    /// environment's `PATH` (the packages' `bin/`), then in the toolchain's `/usr/bin`.
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Shared read-write, at the same path inside (read-only when guixie runs as root: the
    /// container's user is then a build user, who cannot write the caller's files).
    pub cwd: PathBuf,
    /// Store items visible besides the packages' closure, not on any search path: the
    /// tools a traced run wraps the command in.
    pub tools: &'a [StorePath],
    /// A host directory shared read-write at [`EXCHANGE_DIR`], where a tool writes what it
    /// found for the caller to read once the command is done.
    pub exchange: Option<&'a Path>,
    /// The command is a debugger: `ptrace` is allowed within the container.
    pub debugger: bool,
    /// Where the command's standard output goes, instead of guixie's.
    pub stdout: Option<&'a std::fs::File>,
    pub network: ContainerNetwork<'a>,
}

/// What the container reaches beyond its own loopback.
#[derive(Clone, Copy, Debug, Default)]
pub enum ContainerNetwork<'a> {
    /// Nothing.
    #[default]
    None,
    /// The outside, through slirp4netns, as fixed-output builds do.
    Full,
    /// Only the caller's gateway: a Unix socket [`GATEWAY_SOCKET`] in this host directory,
    /// reached inside at [`GATEWAY_PROXY`]; the directory is shown read-only.
    Gateway(&'a Path),
}

/// Where [`ContainerRequest::exchange`] appears inside.
pub const EXCHANGE_DIR: &str = "/run/guixie-trace";
/// The gateway socket's name in its directory.
pub const GATEWAY_SOCKET: &str = "gateway.sock";
/// Where the gateway's directory appears inside.
const GATEWAY_DIR: &str = "/run/guixie-gateway";
const GATEWAY_PORT: u16 = 3128;
/// The gateway as an HTTP proxy, for the command's `http_proxy`.
pub const GATEWAY_PROXY: &str = "http://127.0.0.1:3128";

/// Runs the request and returns the command's status.
pub fn run_in_container(
    store: &LocalStore,
    req: &ContainerRequest<'_>,
) -> std::io::Result<ExitStatus> {
    refuse_store_in_reach(store, &req.cwd)?;
    let sd = store.store_dir().clone();
    let toolchain = toolchain_of(store, req.packages);
    let mut wanted = req.packages.to_vec();
    wanted.extend(toolchain.clone());
    wanted.extend(req.tools.iter().cloned());
    let closure = store.closure(&wanted).map_err(std::io::Error::other)?;
    let area = store.build_area().map_err(std::io::Error::other)?;
    let _area = AreaGuard(area.clone());
    let build_user = crate::build_user::running_as_root()
        .then(crate::build_user::BuildUser::acquire)
        .transpose()?;
    let mut inputs: Vec<(PathBuf, PathBuf)> = closure
        .iter()
        .map(|p| (store.real_path(p), PathBuf::from(sd.display(p))))
        .collect();
    let mut symlinks = Vec::new();
    if let Some(tc) = &toolchain {
        // What the packages were built against is their /usr, as in their builds.
        inputs.push((store.real_path(tc).join("usr"), PathBuf::from("/usr")));
        for top in ["bin", "sbin", "lib", "lib64"] {
            symlinks.push((PathBuf::from("/").join(top), PathBuf::from("usr").join(top)));
        }
    }
    let tmp = area.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::create_dir_all(area.join("root"))?;
    let mut writable_dirs = vec![(tmp.clone(), PathBuf::from("/tmp"))];
    if build_user.is_some() {
        inputs.push((req.cwd.clone(), req.cwd.clone()));
        hand_to(&tmp, build_user.as_ref())?;
    } else {
        writable_dirs.push((req.cwd.clone(), req.cwd.clone()));
    }
    if let Some(exchange) = req.exchange {
        hand_to(exchange, build_user.as_ref())?;
        writable_dirs.push((exchange.to_path_buf(), PathBuf::from(EXCHANGE_DIR)));
    }
    let program = resolve(store, req, toolchain.as_ref())?;
    let defaults = crate::BuildOptions::default();
    let mut gateway = None;
    match req.network {
        ContainerNetwork::None => {}
        ContainerNetwork::Full => {
            if build_user.is_none() {
                crate::slirp::check_tun_usable().map_err(std::io::Error::other)?;
            }
            for f in NAME_SERVICE_FILES.iter().map(PathBuf::from) {
                if f.exists() {
                    inputs.push((f.clone(), f));
                }
            }
        }
        ContainerNetwork::Gateway(dir) => {
            inputs.push((dir.to_path_buf(), PathBuf::from(GATEWAY_DIR)));
            gateway = Some(crate::sandbox::GatewaySpec {
                port: GATEWAY_PORT,
                socket: Path::new(GATEWAY_DIR).join(GATEWAY_SOCKET),
            });
        }
    }
    let spec = SandboxSpec {
        root: area.join("root"),
        inputs,
        symlinks,
        writable_dirs,
        workdir: req.cwd.clone(),
        builder: program.into_bytes(),
        args: req.args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: req
            .env
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        network: matches!(req.network, ContainerNetwork::Full),
        slirp4netns: defaults.slirp4netns.clone(),
        host_loopback: false,
        hostname: "guixie-container".into(),
        max_processes: defaults.max_processes,
        pids_cgroup: None,
        max_file_size: defaults.max_file_size,
        build_user: build_user.as_ref().map(|u| (u.uid, u.gid)),
        builtin_fetch: None,
        shm_bytes: 64 << 20,
        traced: false,
        debugger: req.debugger,
        gateway,
    };
    let spec_path = area.join("spec.json");
    std::fs::write(
        &spec_path,
        serde_json::to_vec(&spec).map_err(std::io::Error::other)?,
    )?;
    let mut helper = std::process::Command::new(&defaults.helper);
    helper.arg(&spec_path);
    if let Some(out) = req.stdout {
        helper.stdout(out.try_clone()?);
    }
    helper.status()
}

/// Removes the container's area (its `/tmp` among it) however the run ends.
struct AreaGuard(PathBuf);

impl Drop for AreaGuard {
    fn drop(&mut self) {
        let _ = guixie_store::safe_fs::remove_tree(&self.0);
    }
}

/// The current directory is shared with the container: it must not hold the store (its
/// database, its keys, its items) nor lie inside it, or the command could rewrite them.
fn refuse_store_in_reach(store: &LocalStore, cwd: &Path) -> std::io::Result<()> {
    let cwd = std::fs::canonicalize(cwd)?;
    for part in [store.real_store_dir(), store.state_dir()] {
        let Ok(part) = std::fs::canonicalize(part) else {
            continue;
        };
        if part.starts_with(&cwd) || cwd.starts_with(&part) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "the current directory {} would share the store ({}) with the container; \
                     run it from a directory that neither holds the store nor lies in it",
                    cwd.display(),
                    part.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The program as an absolute path inside the container.
fn resolve(
    store: &LocalStore,
    req: &ContainerRequest<'_>,
    toolchain: Option<&StorePath>,
) -> std::io::Result<String> {
    if req.program.contains('/') {
        return Ok(req.program.clone());
    }
    let sd = store.store_dir();
    let path = req
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    for dir in path.split(':') {
        let Ok((p, rest)) = sd.parse_path_with_rest(dir) else {
            continue;
        };
        let real = store
            .real_path(&p)
            .join(rest.trim_start_matches('/'))
            .join(&req.program);
        if real.is_file() {
            return Ok(format!("{dir}/{}", req.program));
        }
    }
    if let Some(tc) = toolchain {
        if store
            .real_path(tc)
            .join("usr/bin")
            .join(&req.program)
            .is_file()
        {
            return Ok(format!("/usr/bin/{}", req.program));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!(
            "{}: no such program in the environment's packages",
            req.program
        ),
    ))
}

/// The bootstrap toolchain the packages were built with (recorded in their derivations), if
/// it is in the store.
fn toolchain_of(store: &LocalStore, packages: &[StorePath]) -> Option<StorePath> {
    let sd = store.store_dir();
    packages.iter().find_map(|p| {
        let drv = store.path_info(p).ok()??.deriver?;
        let derivation = guixie_store::read_derivation(store, &drv).ok()?;
        // A deriver is a cache's word (Nix's signatures do not cover it): believed only for
        // a derivation here that does produce this path.
        if !derivation.output_paths().ok()?.values().any(|o| o == p) {
            return None;
        }
        let tc = derivation
            .env
            .get(guixie_formats::derivation::TOOLCHAIN_ENV.as_bytes())?;
        let tc = sd.parse_path(&String::from_utf8_lossy(tc)).ok()?;
        store.is_valid(&tc).ok()?.then_some(tc)
    })
}

fn hand_to(dir: &Path, user: Option<&crate::build_user::BuildUser>) -> std::io::Result<()> {
    if let Some(u) = user {
        std::os::unix::fs::chown(dir, Some(u.uid), Some(u.gid))?;
    }
    Ok(())
}
