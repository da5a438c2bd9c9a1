//! `guixie govern`: an instance's members, proposals and votes (the rules are
//! `guixie-govern`'s; this keeps the files, builds the evidence and signs), and `guixie self`:
//! the generations accepted upgrades made.

mod generations;
pub mod gossip;
mod journal;
pub mod policy;
mod rebuild;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use guixie_formats::signing::SecretKey;
use guixie_govern::proposal::{Change, ExtensionBuild, Proposal, SignedProposal, Vote};
use guixie_govern::{GovState, Rebuild};

use crate::cmd::build::BuildFlags;
use crate::output::print_json;
use crate::Context;

pub use generations::{extension_modules, run_self, SelfCmd};
use journal::{read_capped, Journal};

#[derive(Subcommand)]
pub enum GovernCmd {
    /// Write a governance state for members to sign (unsigned): the members' public keys
    /// (`name:base64`, or files holding one), the threshold, the expiry.
    State(StateArgs),
    /// Add your signature to a governance document (a state, proposal or vote file), in place.
    Sign {
        file: PathBuf,
        #[arg(long, value_name = "SECRET-KEY-FILE")]
        key: PathBuf,
    },
    /// Make this store's instance from its first state (version 1, signed by its quorum).
    Init { state: PathBuf },
    /// Propose a change, signed with your key; it is accepted here and written to --output
    /// for the other members.
    Propose(ProposeArgs),
    /// Vote aye. On an upgrade or an extension, first rebuild its source (--source) in this
    /// store's sandbox; sign only if the output's NAR hash is the proposal's.
    Approve(VoteArgs),
    /// Vote nay.
    Reject(VoteArgs),
    /// Take back a proposal you made that is not decided yet.
    Withdraw {
        index: u64,
        #[arg(long, value_name = "SECRET-KEY-FILE")]
        key: PathBuf,
        /// Where to write the signed withdrawal, for other instances.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Accept proposals and votes other members signed into this instance, and governance
    /// states signed by both the current and the new quorum (the way out of an expired one).
    Submit {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The instance's members, threshold, expiry, proposals and their tallies.
    Status,
    /// Apply an approved proposal. An upgrade or extension is built (--source) and must
    /// have the approved NAR hash; an upgrade becomes a new generation.
    Apply {
        index: u64,
        #[arg(long, value_name = "DIR")]
        source: Option<PathBuf>,
        #[command(flatten)]
        flags: BuildFlags,
    },
    /// Print proposal INDEX's signed document (to send to members).
    Show { index: u64 },
}

#[derive(Args)]
pub struct StateArgs {
    #[arg(long)]
    instance: String,
    #[arg(long, default_value_t = 1)]
    version: u64,
    #[arg(long)]
    threshold: u32,
    #[arg(long = "member", required = true, value_name = "PUBLIC-KEY|FILE")]
    members: Vec<String>,
    /// Days from now until the state expires.
    #[arg(long, default_value_t = 365)]
    expires_in_days: u64,
    #[arg(long, short)]
    output: PathBuf,
}

#[derive(Args)]
pub struct ProposeArgs {
    #[command(subcommand)]
    change: ProposeCmd,
    #[arg(long, global = true, value_name = "SECRET-KEY-FILE")]
    key: Option<PathBuf>,
    /// Where to write the signed proposal.
    #[arg(long, short, global = true)]
    output: Option<PathBuf>,
    #[command(flatten)]
    flags: BuildFlags,
}

#[derive(Subcommand)]
enum ProposeCmd {
    /// Run guixie built from DIR; the expected NAR hash is your own build of it.
    Upgrade {
        #[arg(long)]
        version: String,
        #[arg(long, value_name = "DIR")]
        source: PathBuf,
        /// The version is older than the running one, and the quorum is to approve that.
        #[arg(long)]
        downgrade: bool,
    },
    /// A new governance state (signed by its own quorum).
    Membership { state: PathBuf },
    /// Add the Guile modules package built from DIR as extension NAME, or --remove it.
    Extension {
        name: String,
        #[arg(long, value_name = "DIR", required_unless_present = "remove")]
        source: Option<PathBuf>,
        #[arg(long, conflicts_with = "source")]
        remove: bool,
    },
    /// The trust policy the substituter and the node use once it is applied: a policy file
    /// as `guixie node --policy` takes it (builders' attestation and log keys, witnesses, k).
    TrustPolicy {
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
    },
}

#[derive(Args)]
pub struct VoteArgs {
    /// A proposal file, or the index of a proposal this instance accepted.
    proposal: String,
    #[arg(long, value_name = "SECRET-KEY-FILE")]
    key: PathBuf,
    /// The proposed source tree, for an upgrade or extension.
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,
    /// Where to write the signed vote.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// The vote's round: greater than your last vote's on this proposal [default: the time
    /// in seconds, or one more than your last vote counted here].
    #[arg(long)]
    round: Option<u64>,
    /// Approve a proposal that downgrades guixie (refused without it).
    #[arg(long)]
    downgrade: bool,
    #[command(flatten)]
    flags: BuildFlags,
}

pub fn run(ctx: &Context, cmd: GovernCmd) -> anyhow::Result<ExitCode> {
    let now = ctx.clock().unix_seconds();
    match cmd {
        GovernCmd::State(a) => {
            let doc = GovState {
                instance: a.instance,
                version: a.version,
                threshold: a.threshold,
                expires: i64::try_from(a.expires_in_days)
                    .ok()
                    .and_then(|d| d.checked_mul(86_400))
                    .and_then(|s| now.checked_add(s))
                    .context("--expires-in-days is too large")?,
                members: a
                    .members
                    .iter()
                    .map(|m| key_text(m))
                    .collect::<anyhow::Result<_>>()?,
            };
            doc.validate()?;
            write_document(&a.output, &doc.to_envelope().to_json())?;
            println!("{}", a.output.display());
        }
        GovernCmd::Sign { file, key } => {
            let key = secret_key(&key)?;
            let bytes = read_capped(&file, guixie_govern::MAX_PROPOSAL_BYTES as u64)?;
            let mut envelope =
                guixie_dsse::Envelope::parse(&bytes, guixie_govern::MAX_PROPOSAL_BYTES)
                    .with_context(|| file.display().to_string())?;
            if envelope.payload_type == guixie_govern::VOTE_PAYLOAD_TYPE {
                bail!(
                    "{} is a vote: a vote is one member's, made with `guixie govern approve` or `reject`",
                    file.display()
                );
            }
            if envelope.is_signed_by(key.public().as_bytes()) {
                bail!("{} is already signed by {}", file.display(), key.name());
            }
            envelope.push_signature(key.name(), key.sign_raw(&envelope.signed_message()));
            write_document(&file, &envelope.to_json())?;
            println!("signed {} as {}", file.display(), key.name());
        }
        GovernCmd::Init { state } => {
            let store = ctx.open_store()?;
            let bytes = read_capped(&state, guixie_govern::MAX_STATE_BYTES as u64)?;
            let journal = Journal::create(&store, &bytes, now)
                .with_context(|| state.display().to_string())?;
            let s = &journal.instance.state;
            println!(
                "instance {}: governance version 1, {} of {} members, state {}",
                s.doc.instance,
                s.threshold(),
                s.members.len(),
                s.digest()
            );
        }
        GovernCmd::Propose(a) => return propose(ctx, a, now),
        GovernCmd::Approve(a) => return vote(ctx, a, true, now),
        GovernCmd::Reject(a) => return vote(ctx, a, false, now),
        GovernCmd::Submit { files } => {
            let store = ctx.open_store()?;
            let mut journal = Journal::open(&store)?;
            // Consecutive states are one chain: a lagging instance catches up through states
            // that have expired since, as long as the last is fresh.
            let mut chain: Vec<(PathBuf, Vec<u8>)> = Vec::new();
            let flush = |journal: &mut Journal, chain: &mut Vec<(PathBuf, Vec<u8>)>| {
                if chain.is_empty() {
                    return Ok(());
                }
                let names: Vec<String> =
                    chain.iter().map(|(f, _)| f.display().to_string()).collect();
                let docs: Vec<Vec<u8>> = chain.drain(..).map(|(_, b)| b).collect();
                let v = journal
                    .rotate(&store, &docs, now)
                    .with_context(|| names.join(", "))?;
                println!(
                    "{}: governance version {v} accepted (signed by both quorums)",
                    names.join(", ")
                );
                anyhow::Ok(())
            };
            for file in files {
                let bytes = read_capped(&file, guixie_govern::MAX_PROPOSAL_BYTES as u64)?;
                let kind = guixie_dsse::Envelope::parse(&bytes, guixie_govern::MAX_PROPOSAL_BYTES)
                    .map(|e| e.payload_type)
                    .with_context(|| file.display().to_string())?;
                if kind == guixie_govern::STATE_PAYLOAD_TYPE {
                    chain.push((file, bytes));
                    continue;
                }
                flush(&mut journal, &mut chain)?;
                let what = match kind.as_str() {
                    guixie_govern::PROPOSAL_PAYLOAD_TYPE => journal
                        .propose(&store, &bytes, now)
                        .map(|i| format!("proposal {i} accepted")),
                    guixie_govern::VOTE_PAYLOAD_TYPE => journal
                        .vote(&store, &bytes, now)
                        .map(|(i, s)| format!("vote counted: proposal {i} is {}", s.as_str())),
                    guixie_govern::WITHDRAWAL_PAYLOAD_TYPE => journal
                        .withdraw(&store, &bytes, now)
                        .map(|i| format!("proposal {i} withdrawn")),
                    other => bail!(
                        "{}: a {other:?} document is not a governance state, proposal or vote",
                        file.display()
                    ),
                }
                .with_context(|| file.display().to_string())?;
                println!("{}: {what}", file.display());
            }
            flush(&mut journal, &mut chain)?;
        }
        GovernCmd::Withdraw { index, key, output } => {
            let key = secret_key(&key)?;
            let store = ctx.open_store()?;
            let mut journal = Journal::open(&store)?;
            let proposal = journal
                .instance
                .proposals
                .get(&index)
                .with_context(|| format!("there is no proposal {index}"))?;
            let mut envelope = guixie_govern::proposal::Withdrawal {
                instance: proposal.doc.instance.clone(),
                index,
                proposal: proposal.digest.clone(),
            }
            .to_envelope();
            envelope.push_signature(key.name(), key.sign_raw(&envelope.signed_message()));
            let text = envelope.to_json();
            journal.withdraw(&store, text.as_bytes(), now)?;
            if let Some(out) = &output {
                write_document(out, &text)?;
            }
            println!("proposal {index} withdrawn");
        }
        // Readers take no lock: a `govern status | less` must not stall the node.
        GovernCmd::Status => {
            let store = ctx.open_store()?;
            status::show(ctx, &Journal::read_existing(&store)?, now)?;
        }
        GovernCmd::Apply {
            index,
            source,
            flags,
        } => return apply(ctx, index, source.as_deref(), &flags, now),
        GovernCmd::Show { index } => {
            let store = ctx.open_store()?;
            let instance = Journal::read_existing(&store)?;
            match instance.proposals.get(&index) {
                Some(p) => println!("{}", p.envelope.to_json()),
                None => bail!(
                    "there is no proposal {index} (the next is {})",
                    instance.next_index()
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn propose(ctx: &Context, a: ProposeArgs, now: i64) -> anyhow::Result<ExitCode> {
    let key = secret_key(
        a.key
            .as_deref()
            .context("--key: sign the proposal with your secret key")?,
    )?;
    let store = Arc::new(ctx.open_store()?);
    // What is cheap to check is checked before building; the journal is not locked while
    // a build runs.
    {
        let journal = Journal::open(&store)?;
        let state = &journal.instance.state;
        state.check_fresh(now)?;
        if state.member(key.public().as_bytes()).is_none() {
            bail!(
                "{} is not a member of governance version {}: only members propose",
                key.name(),
                state.doc.version
            );
        }
    }
    let change = match a.change {
        ProposeCmd::Upgrade {
            version,
            source,
            downgrade,
        } => {
            guixie_govern::check_version(&version)?;
            let built = rebuild::rebuild(ctx, &store, &source, None, &a.flags)?;
            eprintln!("built {} with NAR hash {}", built.output, built.nar_hash);
            Change::Upgrade {
                version,
                source: built.source,
                nar_hash: built.nar_hash,
                downgrade,
            }
        }
        ProposeCmd::Membership { state } => Change::Membership {
            state: String::from_utf8(read_capped(&state, guixie_govern::MAX_STATE_BYTES as u64)?)
                .with_context(|| format!("{}: not UTF-8", state.display()))?,
        },
        ProposeCmd::Extension {
            name,
            source: Some(source),
            ..
        } => {
            let built = rebuild::rebuild(ctx, &store, &source, None, &a.flags)?;
            generations::extension_module(&store, &name, &built.output)?;
            Change::Extension {
                name,
                add: Some(ExtensionBuild {
                    source: built.source,
                    nar_hash: built.nar_hash,
                }),
            }
        }
        ProposeCmd::Extension { name, .. } => Change::Extension { name, add: None },
        ProposeCmd::TrustPolicy { policy } => {
            let text = crate::cmd::node::read_policy_text(&policy)?;
            Change::TrustPolicy(
                policy::from_file(&text).with_context(|| policy.display().to_string())?,
            )
        }
    };
    let mut journal = Journal::open(&store)?;
    // A build may have taken long: the time is the time of acceptance.
    let now = ctx.clock().unix_seconds().max(now);
    let proposal = Proposal {
        instance: journal.instance.state.doc.instance.clone(),
        index: journal.instance.next_index(),
        governance_version: journal.instance.state.doc.version,
        state: journal.instance.state.digest(),
        change,
    };
    let mut envelope = proposal.to_envelope();
    envelope.push_signature(key.name(), key.sign_raw(&envelope.signed_message()));
    let text = envelope.to_json();
    let index = journal.propose(&store, text.as_bytes(), now)?;
    if let Some(out) = &a.output {
        write_document(out, &text)?;
    }
    println!("proposal {index} accepted");
    Ok(ExitCode::SUCCESS)
}

/// A proposal's change in a line, for the people who sign it.
fn describe(change: &Change) -> String {
    match change {
        Change::Upgrade {
            version,
            source,
            nar_hash,
            downgrade,
        } => format!(
            "{} to guixie {version} (source {source}, output NAR hash {nar_hash})",
            if *downgrade { "DOWNGRADE" } else { "upgrade" }
        ),
        Change::Membership { state } => match guixie_govern::State::parse(state.as_bytes()) {
            Ok(s) => format!(
                "membership: governance version {}, {}",
                s.doc.version,
                s.summary()
            ),
            Err(e) => format!("membership (its state is invalid: {e})"),
        },
        Change::Extension { name, add: Some(b) } => format!(
            "add extension {name} (source {}, output NAR hash {})",
            b.source, b.nar_hash
        ),
        Change::Extension { name, add: None } => format!("remove extension {name}"),
        Change::TrustPolicy(p) => format!(
            "trust policy: {} of the builders {}",
            p.k,
            p.builders
                .iter()
                .map(|b| format!("{} ({})", b.name, b.attestation_key))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn vote(ctx: &Context, a: VoteArgs, aye: bool, now: i64) -> anyhow::Result<ExitCode> {
    let key = secret_key(&a.key)?;
    let store = Arc::new(ctx.open_store()?);
    let has_instance = journal::dir(&store).join("genesis.json").exists();
    // A proposal file can be voted on anywhere; an index names one this instance accepted.
    let bytes = match a.proposal.parse::<u64>() {
        Ok(index) if !Path::new(&a.proposal).exists() => {
            Journal::open(&store)?.proposal(index)?.into_bytes()
        }
        _ => read_capped(
            Path::new(&a.proposal),
            guixie_govern::MAX_PROPOSAL_BYTES as u64,
        )?,
    };
    let proposal = SignedProposal::parse(&bytes).with_context(|| a.proposal.clone())?;
    eprintln!(
        "proposal {} of instance {}: {}",
        proposal.doc.index,
        proposal.doc.instance,
        describe(&proposal.doc.change)
    );
    if let (
        true,
        Change::Upgrade {
            downgrade: true, ..
        },
        false,
    ) = (aye, &proposal.doc.change, a.downgrade)
    {
        bail!(
            "proposal {} is a downgrade: approve it with --downgrade if you mean it",
            proposal.doc.index
        );
    }
    let mut rebuild = None;
    if let (true, Some((source_hash, expected))) = (aye, proposal.doc.build()) {
        let source = a.source.as_deref().with_context(|| {
            format!(
                "proposal {} is built: --source DIR names your copy of its source (NAR hash {source_hash}), which is rebuilt here before you vouch for it",
                proposal.doc.index
            )
        })?;
        let built = rebuild::rebuild(ctx, &store, source, Some(source_hash), &a.flags)?;
        if let Change::Extension { name, .. } = &proposal.doc.change {
            generations::extension_module(&store, name, &built.output)?;
        }
        if built.nar_hash != expected {
            eprintln!(
                "guixie: your rebuild of proposal {} gives {} with NAR hash {}, but the proposal expects {expected}: not signing",
                proposal.doc.index, built.output, built.nar_hash
            );
            return Ok(ExitCode::FAILURE);
        }
        eprintln!(
            "rebuilt {} with the proposal's NAR hash {expected} (attested as log entry {})",
            built.output, built.log_index
        );
        rebuild = Some(Rebuild {
            nar_hash: built.nar_hash,
            attestation: built.attestation,
        });
    }
    let mut journal = has_instance.then(|| Journal::open(&store)).transpose()?;
    let now = ctx.clock().unix_seconds().max(now);
    let local = journal.as_mut().filter(|j| {
        j.instance.state.doc.instance == proposal.doc.instance
            && j.instance
                .proposals
                .get(&proposal.doc.index)
                .map(|p| &p.digest)
                == Some(&proposal.digest)
    });
    // The voter's clock orders its votes; a vote counted here before is a floor.
    let last = local.as_ref().and_then(|j| {
        j.instance.motions[&proposal.doc.index]
            .rounds
            .iter()
            .find(|(k, _, _)| k == key.public().as_bytes())
            .map(|(_, round, _)| *round)
    });
    let doc = Vote {
        instance: proposal.doc.instance.clone(),
        index: proposal.doc.index,
        proposal: proposal.digest.clone(),
        aye,
        round: a
            .round
            .unwrap_or_else(|| (now.max(0) as u64).max(last.map_or(0, |r| r + 1))),
        rebuild,
    };
    let mut envelope = doc.to_envelope();
    envelope.push_signature(key.name(), key.sign_raw(&envelope.signed_message()));
    let text = envelope.to_json();
    if let Some(out) = &a.output {
        write_document(out, &text)?;
    }
    match local {
        Some(journal) => {
            let (index, status) = journal.vote(&store, text.as_bytes(), now)?;
            println!("vote counted: proposal {index} is {}", status.as_str());
        }
        None if a.output.is_none() => println!("{text}"),
        None => println!(
            "vote written to {}",
            a.output.as_ref().expect("checked").display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn apply(
    ctx: &Context,
    index: u64,
    source: Option<&Path>,
    flags: &BuildFlags,
    now: i64,
) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let key = crate::cmd::evidence::builder_key(ctx, &store)?;
    // What applying it would do, decided before building (cheaply) and again after, under
    // the lock; the build runs without holding it.
    let planned = Journal::open(&store)?.instance.clone().apply(index, now)?;
    let built = match &planned {
        guixie_govern::Effect::Upgrade {
            source: s,
            nar_hash,
            ..
        }
        | guixie_govern::Effect::ExtensionAdded {
            build:
                ExtensionBuild {
                    source: s,
                    nar_hash,
                },
            ..
        } => {
            let dir = source.with_context(|| {
                format!("proposal {index} is built: --source DIR names its source (NAR hash {s})")
            })?;
            let built = rebuild::rebuild(ctx, &store, dir, Some(s), flags)?;
            if &built.nar_hash != nar_hash {
                bail!(
                    "this store's build of proposal {index} is {} with NAR hash {}, not the approved {nar_hash}: not applied",
                    built.output,
                    built.nar_hash
                );
            }
            Some(built.output)
        }
        _ => None,
    };
    let mut journal = Journal::open(&store)?;
    let now = ctx.clock().unix_seconds().max(now);
    let (effect, outcome) = journal.apply(&store, &key, index, now, |effect| {
        if effect != &planned {
            bail!("proposal {index} changed while it was built; apply it again");
        }
        Ok(match (effect, built) {
            (guixie_govern::Effect::Upgrade { version, .. }, Some(output)) => {
                let generation = generations::add(&store, &output)?;
                serde_json::json!({"generation": generation, "version": version, "path": output})
            }
            (guixie_govern::Effect::ExtensionAdded { name, .. }, Some(output)) => {
                generations::set_extension(&store, name, Some(&output))?;
                serde_json::json!({"extension": name, "path": output})
            }
            (guixie_govern::Effect::ExtensionRemoved { name }, _) => {
                generations::set_extension(&store, name, None)?;
                serde_json::json!({"extension": name, "removed": true})
            }
            _ => serde_json::json!({}),
        })
    })?;
    if ctx.json {
        print_json(&outcome)?;
    } else {
        match (&effect, outcome.get("generation")) {
            (guixie_govern::Effect::Upgrade { version, .. }, Some(g)) => {
                println!("proposal {index} applied: guixie {version} is generation {g}")
            }
            (guixie_govern::Effect::ExtensionAdded { name, .. }, _) => println!(
                "proposal {index} applied: package files may now (use-modules (guixie ext {name}))"
            ),
            (guixie_govern::Effect::ExtensionRemoved { name }, _) => {
                println!("proposal {index} applied: extension {name} removed")
            }
            (guixie_govern::Effect::Membership { version }, _) => {
                println!("proposal {index} applied: governance version {version}")
            }
            (guixie_govern::Effect::TrustPolicy(p), _) => println!(
                "proposal {index} applied: substitutes now need {} of {} builders (a running `guixie node` takes it when it starts again)",
                p.k,
                p.builders.len()
            ),
            _ => println!("proposal {index} applied"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn secret_key(path: &Path) -> anyhow::Result<SecretKey> {
    let text = guixie_evidence::keys::read_secret_file(path)?;
    SecretKey::parse(&text).with_context(|| path.display().to_string())
}

/// A public key given as text or as a file holding it.
fn key_text(arg: &str) -> anyhow::Result<String> {
    let text = if Path::new(arg).is_file() {
        String::from_utf8(read_capped(Path::new(arg), 4096)?)?
    } else {
        arg.to_owned()
    };
    let text = text.trim().to_owned();
    guixie_govern::MemberKey::parse(&text)?;
    Ok(text)
}

fn write_document(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, format!("{text}\n")).with_context(|| format!("writing {}", path.display()))
}
