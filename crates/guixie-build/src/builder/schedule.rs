//! Scheduling: the closure of the targets in dependency order, and `-j N` workers that start
//! each derivation once all its inputs are done.

use std::collections::{BTreeMap, BTreeSet};

use guixie_formats::derivation::Derivation;
use guixie_formats::StorePath;
use guixie_store::PathInfoQuery;

use super::cgroup::SessionCgroup;
use super::{BuildError, BuildEvent, Builder};

impl Builder<'_> {
    /// The derivations to realise for `targets`, dependencies first.
    pub fn plan(&self, targets: &[StorePath]) -> Result<Vec<(StorePath, Derivation)>, BuildError> {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        // Iterative post-order DFS: deep graphs do not exhaust the stack.
        let mut stack: Vec<(StorePath, bool)> =
            targets.iter().rev().map(|t| (t.clone(), false)).collect();
        let mut loaded: BTreeMap<StorePath, Derivation> = BTreeMap::new();
        while let Some((p, expanded)) = stack.pop() {
            if done.contains(&p) {
                continue;
            }
            if expanded {
                done.insert(p.clone());
                let drv = loaded.remove(&p).expect("loaded when expanded");
                order.push((p, drv));
                continue;
            }
            let drv = self.load(&p)?;
            stack.push((p.clone(), true));
            for input in drv.input_drvs.keys().rev() {
                if !done.contains(input) {
                    stack.push((input.clone(), false));
                }
            }
            loaded.insert(p, drv);
        }
        Ok(order)
    }

    /// Realises `targets` and everything they need, `jobs` builds at a time (a derivation
    /// starts once all its inputs are done); returns each target's outputs. On a failure,
    /// running builds finish, nothing new starts, and the first error is returned.
    pub fn realise(
        &self,
        targets: &[StorePath],
        progress: impl Fn(BuildEvent<'_>) + Sync,
    ) -> Result<Vec<BTreeMap<String, StorePath>>, BuildError> {
        // Inputs and build areas must not be collected while we build.
        let _gc = self.store.gc_guard()?;
        // Nothing to do when every target's outputs are valid: no closure to look at, and no
        // .drv to read when the store recorded its outputs.
        let recorded = self.store.derivation_outputs(targets)?;
        let mut target_outputs = Vec::with_capacity(targets.len());
        // A recorded .drv is valid (the record lives and dies with it); others are checked.
        let mut all: Vec<StorePath> = Vec::new();
        for (t, known) in targets.iter().zip(recorded) {
            target_outputs.push(match known {
                Some(outputs) => outputs,
                None => {
                    all.push(t.clone());
                    self.output_paths(t, &self.load(t)?)?
                }
            });
        }
        all.extend(target_outputs.iter().flat_map(|o| o.values().cloned()));
        if self.store.are_valid(&all)?.into_iter().all(|v| v) {
            return Ok(target_outputs);
        }
        // The targets' outputs straight from a substitute source: their closure comes with
        // them, and nothing else of the graph is needed.
        let wanted: Vec<StorePath> = target_outputs
            .iter()
            .flat_map(|o| o.values().cloned())
            .collect();
        if self.try_substitute(&wanted)? && self.store.are_valid(&all)?.into_iter().all(|v| v) {
            return Ok(target_outputs);
        }
        let plan = self.plan(targets)?;
        progress(BuildEvent::Planned {
            derivations: plan.len(),
        });
        let jobs = self.options.jobs.max(1) as u64;
        let _cgroup = SessionCgroup::join(jobs * self.options.max_processes + 64);
        let index: BTreeMap<&StorePath, usize> =
            plan.iter().enumerate().map(|(i, (p, _))| (p, i)).collect();
        let mut waiting_on: Vec<usize> = vec![0; plan.len()];
        let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); plan.len()];
        for (i, (_, drv)) in plan.iter().enumerate() {
            for input in drv.input_drvs.keys() {
                waiting_on[i] += 1;
                dependants[index[input]].push(i);
            }
        }
        let ready: Vec<usize> = (0..plan.len())
            .rev()
            .filter(|&i| waiting_on[i] == 0)
            .collect();
        let state = std::sync::Mutex::new(Schedule {
            ready,
            waiting_on,
            outputs_of: BTreeMap::new(),
            running: 0,
            finished: 0,
            errors: Vec::new(),
        });
        let wake = std::sync::Condvar::new();
        let total = plan.len();
        std::thread::scope(|scope| {
            for _ in 0..self.options.jobs.max(1) {
                scope.spawn(|| loop {
                    let (i, inputs) = {
                        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if (!st.errors.is_empty() && !self.options.keep_going)
                                || st.finished == total
                            {
                                return;
                            }
                            if let Some(i) = st.ready.pop() {
                                st.running += 1;
                                // Only this derivation's inputs: copying everything would make
                                // a large graph quadratic.
                                let inputs = plan[i]
                                    .1
                                    .input_drvs
                                    .keys()
                                    .filter_map(|d| {
                                        st.outputs_of.get(d).map(|o| (d.clone(), o.clone()))
                                    })
                                    .collect::<BTreeMap<_, _>>();
                                break (i, inputs);
                            }
                            if st.running == 0 {
                                return;
                            }
                            st = wake.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    let (drv_path, drv) = &plan[i];
                    let result = self.realise_one(drv_path, drv, &inputs, &progress);
                    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                    st.running -= 1;
                    match result {
                        Ok((outputs, outcome)) => {
                            progress(BuildEvent::Finished {
                                drv: drv_path,
                                derivation: drv,
                                outputs: &outputs,
                                outcome: &outcome,
                            });
                            st.outputs_of.insert(drv_path.clone(), outputs);
                            st.finished += 1;
                            for &d in &dependants[i] {
                                st.waiting_on[d] -= 1;
                                if st.waiting_on[d] == 0 {
                                    st.ready.push(d);
                                }
                            }
                        }
                        Err(e) => {
                            // Whatever depends on it never becomes ready; with
                            // --keep-going everything else still builds.
                            progress(BuildEvent::Failed {
                                drv: drv_path,
                                error: &e,
                            });
                            st.errors.push(e);
                        }
                    }
                    wake.notify_all();
                });
            }
        });
        let st = state.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut errors = st.errors;
        match errors.len() {
            0 => {}
            1 => return Err(errors.remove(0)),
            _ => return Err(BuildError::Several(errors)),
        }
        Ok(targets.iter().map(|t| st.outputs_of[t].clone()).collect())
    }
}

/// The scheduler's shared state.
struct Schedule {
    ready: Vec<usize>,
    waiting_on: Vec<usize>,
    outputs_of: BTreeMap<StorePath, BTreeMap<String, StorePath>>,
    running: usize,
    finished: usize,
    errors: Vec<BuildError>,
}
