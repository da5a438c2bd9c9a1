//! A short-lived node that asks the network what each trusted builder attests about some
//! output paths, for `guixie challenge`: it connects to the given peers, surveys a bounded
//! number of paths at a time, and returns once every path is reported. It serves nothing (no
//! log, no NARs) and fetches nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use guixie_env::Clock;
use guixie_log::verifier::ClientState;
use guixie_node::message::Response;
use guixie_node::node::{Config, Survey};
use guixie_node::{Local, Node, Output, Policy};
use libp2p::Multiaddr;

use crate::transport::{self, P2pError, Wire};

/// Paths surveyed at once: each asks every claimant of every builder's log.
const SURVEYS_IN_FLIGHT: usize = 16;

pub struct SurveyOptions {
    pub policy: Policy,
    pub peers: Vec<Multiaddr>,
    /// A fresh identity each run: the survey is not the store's node.
    pub identity: [u8; 32],
    /// How long each path waits for builders that have not answered.
    pub decide_within: Duration,
    /// The views of the builders' logs to start from (and check new checkpoints against).
    pub logs: ClientState,
    pub clock: Arc<dyn Clock>,
}

/// What came back: a survey per path asked (in the order asked), the logs convicted on the
/// way, and the views of the logs after.
pub struct SurveyResult {
    pub surveys: Vec<Survey>,
    pub convicted: Vec<(String, String)>,
    pub logs: ClientState,
}

/// Serves nothing.
struct Nothing;

impl Local for Nothing {
    fn own_logs(&self) -> Vec<String> {
        vec![]
    }
    fn checkpoints(&self) -> Vec<String> {
        vec![]
    }
    fn attestations(&self, _: &str, _: Option<u64>, _: bool) -> Result<Response, String> {
        Err("this node keeps no log".into())
    }
    fn have(&self, _: &[u8; 32]) -> Option<u64> {
        None
    }
    fn range(&self, _: &[u8; 32], _: u64, _: u64) -> Result<Vec<u8>, String> {
        Err("this node holds no NARs".into())
    }
}

/// Surveys the output paths with these hash parts.
pub fn survey(opts: SurveyOptions, hash_parts: Vec<String>) -> Result<SurveyResult, P2pError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(survey_async(opts, hash_parts))
}

async fn survey_async(
    opts: SurveyOptions,
    hash_parts: Vec<String>,
) -> Result<SurveyResult, P2pError> {
    let mut swarm = transport::build_swarm(opts.identity, false)?;
    for addr in &opts.peers {
        swarm.dial(addr.clone()).map_err(transport::p2p)?;
    }
    let mut config = Config::new(opts.policy);
    config.collect_timeout_ms = opts.decide_within.as_millis() as u64;
    let mut node = Node::new(config, Nothing, opts.logs);
    let clock = opts.clock;
    let now = || clock.monotonic().as_millis() as u64;
    let mut wire = Wire::default();
    // Each path once, in the order asked.
    let mut order = BTreeMap::new();
    for (i, h) in hash_parts.iter().enumerate() {
        order.entry(h.clone()).or_insert(i);
    }
    let mut queue: VecDeque<String> = hash_parts
        .iter()
        .enumerate()
        .filter(|(i, h)| order[*h] == *i)
        .map(|(_, h)| h.clone())
        .collect();
    let wanted = queue.len();
    let mut in_flight = 0;
    let mut done: Vec<Survey> = Vec::new();
    let mut convicted = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while done.len() < wanted {
        while in_flight < SURVEYS_IN_FLIGHT {
            let Some(h) = queue.pop_front() else { break };
            node.survey(&h, now());
            in_flight += 1;
        }
        tokio::select! {
            event = swarm.select_next_some() => {
                wire.on_swarm_event(&mut node, &mut swarm, event, now());
            }
            _ = tick.tick() => node.tick(now()),
        }
        while let Some(output) = node.poll() {
            match output {
                Output::Send { to, id, request } => {
                    wire.send(&mut node, &mut swarm, &to, id, request, now())
                }
                Output::Surveyed(s) => {
                    in_flight -= 1;
                    done.push(*s);
                }
                Output::Failed { hash_part, reason } => {
                    return Err(P2pError::Libp2p(format!("{hash_part}: {reason}")))
                }
                Output::Convicted { origin, detail } => convicted.push((origin, detail)),
                Output::Decided { .. }
                | Output::Fetching { .. }
                | Output::Write { .. }
                | Output::Fetched { .. } => {}
            }
        }
    }
    done.sort_by_key(|s| order[&s.hash_part]);
    Ok(SurveyResult {
        surveys: done,
        convicted,
        logs: node.state().clone(),
    })
}
