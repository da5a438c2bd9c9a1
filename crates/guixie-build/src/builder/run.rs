//! One sandboxed run of a derivation's builder: the inputs' closure, a build user, the build
//! area laid out and handed over, the helper supervised, and its end interpreted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use guixie_formats::derivation::Derivation;
use guixie_formats::StorePath;
use guixie_store::PathInfoQuery;

use super::layout::{layout, LayoutRequest};
use super::outputs::{hand_over, SandboxRun};
use super::supervise::{supervise, Limits, Run, Stop};
use super::{drv_err, BuildError, BuildEvent, Builder};

use crate::sandbox::NAME_SERVICE_FILES;

impl Builder<'_> {
    /// Runs the builder in the sandbox; on success the outputs are in the returned build area.
    pub(super) fn run_sandboxed(
        &self,
        drv_path: &StorePath,
        drv: &Derivation,
        outputs: &BTreeMap<String, StorePath>,
        outputs_of: &BTreeMap<StorePath, BTreeMap<String, StorePath>>,
        progress: &(dyn Fn(BuildEvent<'_>) + Sync),
        trace: Option<&super::check::Trace>,
    ) -> Result<SandboxRun, BuildError> {
        let sd = self.store.store_dir().clone();
        let shown = sd.display(drv_path);
        // Inputs: the used outputs of input derivations and the input sources, with closures.
        let mut direct = Vec::new();
        for (input, used) in &drv.input_drvs {
            let outs = &outputs_of[input];
            for o in used {
                let p = outs.get(o).ok_or_else(|| {
                    drv_err(
                        &shown,
                        format!("input {} has no output {o}", sd.display(input)),
                    )
                })?;
                direct.push(p.clone());
            }
        }
        direct.extend(drv.input_srcs.iter().cloned());
        let closure = self.store.closure(&direct)?;
        if let Some(p) = direct.iter().find(|p| !closure.contains(p)) {
            return Err(drv_err(
                &shown,
                format!("input {} is not valid", sd.display(p)),
            ));
        }
        let fixed = drv.fixed_output().cloned();
        let build_user = crate::build_user::running_as_root()
            .then(crate::build_user::BuildUser::acquire)
            .transpose()
            .map_err(|e| BuildError::Sandbox {
                drv: shown.clone(),
                message: format!("no build user: {e}"),
            })?;
        if fixed.is_some() && build_user.is_none() {
            crate::slirp::check_tun_usable().map_err(|message| BuildError::Sandbox {
                drv: shown.clone(),
                message,
            })?;
        }
        let area = self.store.build_area()?;
        let name_service_files: Vec<PathBuf> = NAME_SERVICE_FILES
            .iter()
            .map(PathBuf::from)
            .filter(|f| f.exists())
            .collect();
        let laid_out = layout(&LayoutRequest {
            drv,
            outputs,
            closure: &closure,
            store_dir: &sd,
            real_store: self.store.real_store_dir(),
            area: &area,
            options: &self.options,
            build_user: build_user.as_ref().map(|u| (u.uid, u.gid)),
            name_service_files: &name_service_files,
        })
        .map_err(|m| drv_err(&shown, m))?;
        let io =
            |what: &Path, e: std::io::Error| BuildError::Io(format!("{}: {e}", what.display()));
        for dir in
            std::iter::once(laid_out.spec.root.as_path()).chain(laid_out.writable_host_dirs())
        {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let mut laid_out = laid_out;
        laid_out.spec.traced = matches!(trace, Some(super::check::Trace::Strace { .. }));
        if let Some(super::check::Trace::Inside(inside)) = trace {
            laid_out.spec.inputs.extend(inside.inputs.iter().cloned());
            laid_out.spec.writable_dirs.push(inside.exchange.clone());
            laid_out.spec.debugger = inside.debugger;
            laid_out.spec.env.extend(
                inside
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())),
            );
            if let Some((tool, tool_args)) = inside.wrap.split_first() {
                let spec = &mut laid_out.spec;
                let mut args: Vec<Vec<u8>> =
                    tool_args.iter().map(|a| a.as_bytes().to_vec()).collect();
                args.push(std::mem::replace(
                    &mut spec.builder,
                    tool.as_bytes().to_vec(),
                ));
                args.append(&mut spec.args);
                spec.args = args;
            }
        }
        let writable = laid_out.spec.writable_dirs.clone();
        // What the build can see, by its paths inside: what it declared (the inputs'
        // closure, its toolchain's view), its writable directories and their links.
        let visible: Vec<PathBuf> = laid_out
            .spec
            .inputs
            .iter()
            .map(|(_, inside)| inside.clone())
            .chain(
                laid_out
                    .spec
                    .symlinks
                    .iter()
                    .map(|(inside, _)| inside.clone()),
            )
            .chain(writable.iter().map(|(_, inside)| inside.clone()))
            .collect();
        let (host_store, host_build) = (laid_out.host_store.clone(), laid_out.host_build.clone());
        for (name, contents) in &laid_out.build_files {
            let f = host_build.join(name);
            std::fs::write(&f, contents).map_err(|e| io(&f, e))?;
        }
        hand_over(&writable, build_user.as_ref())
            .map_err(|e| BuildError::Io(format!("preparing the build directories: {e}")))?;
        let spec_path = area.join("spec.json");
        std::fs::write(
            &spec_path,
            serde_json::to_vec(&laid_out.spec).expect("spec serialises"),
        )
        .map_err(|e| io(&spec_path, e))?;
        let log = self.log_path(drv_path)?;
        let limits = Limits {
            timeout: self.options.timeout,
            max_silent: self.options.max_silent,
            max_output_size: self.options.max_output_size,
        };
        let (status, stopped) = supervise(
            &Run {
                helper: &self.options.helper,
                spec_path: &spec_path,
                log: &log,
                measured: &area.join("w"),
                build_user: laid_out.spec.build_user,
                echo: self.options.echo_log,
                limits,
                drv_path,
                trace,
            },
            self.clock.as_ref(),
            progress,
        )?;
        let log_shown = log.display().to_string();
        if let Some(stop) = stopped {
            self.discard(&area);
            let (what, seconds) = match stop {
                Stop::Timeout => ("--timeout", self.options.timeout.as_secs()),
                Stop::Silent => ("--max-silent-time", self.options.max_silent.as_secs()),
                Stop::TooLarge => {
                    return Err(BuildError::TooLarge {
                        drv: shown,
                        limit: self.options.max_output_size,
                        log: log_shown,
                    })
                }
            };
            return Err(BuildError::TimedOut {
                drv: shown,
                seconds,
                what,
                log: log_shown,
            });
        }
        if status.code() == Some(crate::sandbox::SETUP_FAILED) {
            self.discard(&area);
            return Err(BuildError::Sandbox {
                drv: shown,
                message: setup_failure(&log),
            });
        }
        if !status.success() {
            let kept = if self.options.keep_failed {
                // Left for inspection harmless, and the invoking user's (not the build user's).
                let me = (
                    rustix::process::geteuid().as_raw(),
                    rustix::process::getegid().as_raw(),
                );
                guixie_store::safe_fs::defuse_tree(&host_build, Some(me))?;
                Some(host_build.clone())
            } else {
                self.discard(&area);
                None
            };
            return Err(BuildError::Failed {
                drv: shown,
                status: status.code().unwrap_or(-1),
                log: log_shown,
                kept,
            });
        }
        let mut candidates: Vec<StorePath> = closure.iter().cloned().collect();
        candidates.extend(outputs.values().cloned());
        Ok(SandboxRun {
            area,
            inside_store: host_store,
            candidates,
            fixed,
            log,
            visible,
            _build_user: build_user,
        })
    }
}

/// Why the helper could not set the sandbox up: it says so on its stderr, which went to the log.
fn setup_failure(log: &Path) -> String {
    use std::io::Read;
    let mut why = String::new();
    if let Ok(f) = std::fs::File::open(log) {
        let _ = flate2::read::GzDecoder::new(f)
            .take(4096)
            .read_to_string(&mut why);
    }
    why.trim().to_owned()
}
