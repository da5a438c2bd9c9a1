//! An instance's governance as a state machine: fed its first state, then signed proposals,
//! votes and applications in the order they were accepted, it decides what holds. Replaying
//! an instance's journal through it gives the same result on every peer.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::motion::{Motion, Status};
use crate::proposal::{Change, ExtensionBuild, SignedProposal, SignedVote, TrustPolicy};
use crate::state::State;
use crate::{compare_versions, GovError};

#[derive(Clone, Debug)]
pub struct Instance {
    pub state: State,
    /// The guixie version the instance runs (its starting version, then the last upgrade's).
    pub version: String,
    pub proposals: BTreeMap<u64, SignedProposal>,
    pub motions: BTreeMap<u64, Motion>,
    pub extensions: BTreeMap<String, ExtensionBuild>,
    pub trust_policy: Option<TrustPolicy>,
}

/// A counted vote.
#[derive(Clone, Debug)]
pub struct Counted {
    pub index: u64,
    pub status: Status,
    pub envelope: guixie_dsse::Envelope,
}

/// What applying an approved proposal changed, for the caller to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Upgrade {
        version: String,
        source: String,
        nar_hash: String,
    },
    Membership {
        version: u64,
    },
    ExtensionAdded {
        name: String,
        build: ExtensionBuild,
    },
    ExtensionRemoved {
        name: String,
    },
    TrustPolicy(TrustPolicy),
}

impl Instance {
    /// An instance from its first signed state; it runs guixie `version`.
    pub fn new(genesis: &[u8], version: &str, now: i64) -> Result<Self, GovError> {
        Ok(Instance {
            state: State::genesis(genesis, now)?,
            version: version.to_string(),
            proposals: BTreeMap::new(),
            motions: BTreeMap::new(),
            extensions: BTreeMap::new(),
            trust_policy: None,
        })
    }

    /// The index the next proposal must have.
    pub fn next_index(&self) -> u64 {
        self.proposals.keys().next_back().map_or(0, |i| i + 1)
    }

    /// Accepts a signed proposal: for this instance and its current membership, with the
    /// next index, signed by a member, and a change that can apply.
    pub fn propose(&mut self, bytes: &[u8], now: i64) -> Result<u64, GovError> {
        let proposal = SignedProposal::parse(bytes)?;
        self.state.check_fresh(now)?;
        let doc = &proposal.doc;
        self.check_instance(&doc.instance)?;
        let next = self.next_index();
        if doc.index < next {
            return Err(GovError::Refused(format!(
                "proposal {} was already made: a proposal is not accepted twice",
                doc.index
            )));
        }
        if doc.index > next {
            return Err(GovError::Refused(format!(
                "proposal index {} skips ahead: the next proposal is {next}",
                doc.index
            )));
        }
        if doc.governance_version != self.state.doc.version {
            return Err(GovError::Refused(format!(
                "the proposal is for governance version {}, the instance is at version {}",
                doc.governance_version, self.state.doc.version
            )));
        }
        if doc.state != self.state.digest() {
            return Err(GovError::Refused(format!(
                "the proposal names governance state {}, this instance's is {}",
                doc.state,
                self.state.digest()
            )));
        }
        let proposers = self.state.members_signing(&proposal.envelope);
        if proposers.is_empty() {
            return Err(GovError::Refused(format!(
                "proposal {} is not signed by a member of governance version {}",
                doc.index, self.state.doc.version
            )));
        }
        let version = self.state.doc.version;
        for key in &proposers {
            let mine: Vec<&Motion> = self
                .motions
                .values()
                .filter(|m| self.proposals[&m.index].doc.governance_version == version)
                .filter(|m| m.proposers.contains(key))
                .collect();
            let open = mine.iter().filter(|m| m.status == Status::Open).count();
            let unapplied = mine.iter().filter(|m| m.status != Status::Applied).count();
            let name = self.state.member(key).map_or("?", |m| m.name.as_str());
            if open >= crate::MAX_OPEN_PROPOSALS_PER_MEMBER {
                return Err(GovError::Refused(format!(
                    "{name} already has {open} undecided proposals, the most allowed"
                )));
            }
            if unapplied >= crate::MAX_UNAPPLIED_PROPOSALS_PER_MEMBER {
                return Err(GovError::Refused(format!(
                    "{name} has made {unapplied} proposals under governance version {version} that were not applied, the most allowed until the membership changes"
                )));
            }
        }
        self.check_change(&doc.change, now)?;
        let motion = Motion::new(
            doc.index,
            proposal.digest.clone(),
            self.state.threshold(),
            self.state.members.len(),
        );
        let index = doc.index;
        let mut motion = motion;
        motion.proposers = proposers.clone();
        let mut proposal = proposal;
        // Kept as the members signed it, without any other signature.
        proposal.envelope.retain_signed_by(&proposers);
        self.motions.insert(index, motion);
        self.proposals.insert(index, proposal);
        Ok(index)
    }

    /// Whether `change` can apply to the instance as it is now.
    fn check_change(&self, change: &Change, now: i64) -> Result<(), GovError> {
        match change {
            Change::Upgrade {
                version, downgrade, ..
            } => {
                crate::check_version(version)?;
                match compare_versions(version, &self.version) {
                    core::cmp::Ordering::Equal => {
                        return Err(GovError::Refused(format!(
                            "version {version} is the running one: there is nothing to upgrade"
                        )))
                    }
                    core::cmp::Ordering::Less if !downgrade => {
                        return Err(GovError::Refused(format!(
                            "version {version} is older than the running {}: a downgrade must be proposed as one",
                            self.version
                        )))
                    }
                    _ => {}
                }
            }
            Change::Membership { state } => {
                // Every current member counted as approving: this checks all but the votes.
                let everyone: Vec<[u8; 32]> = self.state.members.iter().map(|m| m.key).collect();
                self.state
                    .successor(State::parse(state.as_bytes())?, &everyone)?
                    .check_fresh(now)?;
            }
            Change::Extension { name, add: None } => {
                if !self.extensions.contains_key(name) {
                    return Err(GovError::Refused(format!(
                        "extension {name:?} is not installed: there is nothing to remove"
                    )));
                }
            }
            Change::Extension { .. } | Change::TrustPolicy(_) => {}
        }
        Ok(())
    }

    /// Counts a signed vote; returns the proposal's index, its status after the vote, and the
    /// vote as it is to be kept (the voter's signature alone).
    pub fn vote(&mut self, bytes: &[u8], now: i64) -> Result<Counted, GovError> {
        let vote = SignedVote::parse(bytes)?;
        self.state.check_fresh(now)?;
        let doc = &vote.doc;
        let proposal = self.named_proposal("vote", &doc.instance, doc.index, &doc.proposal)?;
        let voters = self.state.members_signing(&vote.envelope);
        let voter = match voters.as_slice() {
            [one] => *one,
            [] => {
                return Err(GovError::Refused(format!(
                    "the vote on proposal {} is not signed by a member of governance version {}",
                    doc.index, self.state.doc.version
                )))
            }
            _ => {
                return Err(GovError::Refused(format!(
                    "the vote on proposal {} is signed by {} members: a vote is one member's, with that member's own rebuild",
                    doc.index,
                    voters.len()
                )))
            }
        };
        if doc.aye {
            if let Some((_, expected)) = proposal.doc.build() {
                match &doc.rebuild {
                    None => {
                        return Err(GovError::Refused(format!(
                            "an aye on proposal {} must carry the voter's rebuild of it",
                            doc.index
                        )))
                    }
                    Some(r) if r.nar_hash != expected => {
                        return Err(GovError::Refused(format!(
                            "the voter's rebuild has NAR hash {}, the proposal expects {expected}: an aye counts only for the same output",
                            r.nar_hash
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        let name = self.state.member(&voter).map_or("?", |m| m.name.as_str());
        let motion = self
            .motions
            .get_mut(&doc.index)
            .expect("one motion a proposal");
        let status = motion.vote(voter, name, doc.aye, doc.round)?;
        let mut envelope = vote.envelope;
        envelope.retain_signed_by(&[voter]);
        Ok(Counted {
            index: doc.index,
            status,
            envelope,
        })
    }

    /// Takes back an undecided proposal, signed by a member who signed it; returns the
    /// withdrawal as it is to be kept (that member's signature alone).
    pub fn withdraw(
        &mut self,
        bytes: &[u8],
        now: i64,
    ) -> Result<(u64, guixie_dsse::Envelope), GovError> {
        let (doc, mut envelope) = crate::proposal::Withdrawal::parse(bytes)?;
        self.state.check_fresh(now)?;
        self.named_proposal("withdrawal", &doc.instance, doc.index, &doc.proposal)?;
        let proposers = &self.motions[&doc.index].proposers;
        let by: Vec<[u8; 32]> = self
            .state
            .members_signing(&envelope)
            .into_iter()
            .filter(|k| proposers.contains(k))
            .collect();
        if by.is_empty() {
            return Err(GovError::Refused(format!(
                "proposal {} is withdrawn only by a member who proposed it",
                doc.index
            )));
        }
        let motion = self
            .motions
            .get_mut(&doc.index)
            .expect("one motion a proposal");
        if motion.status != Status::Open {
            return Err(GovError::Refused(format!(
                "proposal {} is {}: only an undecided proposal is withdrawn",
                doc.index,
                motion.status.as_str()
            )));
        }
        motion.status = Status::Withdrawn;
        envelope.retain_signed_by(&by[..1]);
        Ok((doc.index, envelope))
    }

    /// Applies an approved proposal and returns what changed.
    pub fn apply(&mut self, index: u64, now: i64) -> Result<Effect, GovError> {
        self.state.check_fresh(now)?;
        let motion = self
            .motions
            .get(&index)
            .ok_or_else(|| GovError::Refused(format!("there is no proposal {index}")))?;
        if motion.status != Status::Approved {
            return Err(GovError::Refused(format!(
                "proposal {index} is {}: only an approved proposal is applied",
                motion.summary()
            )));
        }
        let ayes = motion.ayes.clone();
        let proposal = &self.proposals[&index].doc;
        if proposal.state != self.state.digest() {
            return Err(GovError::Refused(format!(
                "proposal {index} was approved under governance version {}; the instance is at version {}: propose it again",
                proposal.governance_version, self.state.doc.version
            )));
        }
        let change = proposal.change.clone();
        self.check_change(&change, now)?;
        let effect = match change.clone() {
            Change::Upgrade {
                version,
                source,
                nar_hash,
                ..
            } => {
                self.version = version.clone();
                Effect::Upgrade {
                    version,
                    source,
                    nar_hash,
                }
            }
            Change::Membership { state } => {
                let next = self
                    .state
                    .successor(State::parse(state.as_bytes())?, &ayes)?;
                self.set_state(next, Some(index));
                Effect::Membership {
                    version: self.state.doc.version,
                }
            }
            Change::Extension {
                name,
                add: Some(build),
            } => {
                self.extensions.insert(name.clone(), build.clone());
                Effect::ExtensionAdded { name, build }
            }
            Change::Extension { name, add: None } => {
                self.extensions.remove(&name);
                Effect::ExtensionRemoved { name }
            }
            Change::TrustPolicy(policy) => {
                self.trust_policy = Some(policy.clone());
                Effect::TrustPolicy(policy)
            }
        };
        self.motions.get_mut(&index).expect("checked").status = Status::Applied;
        // What an applied change replaced, others approved before it no longer describe: an
        // older upgrade, another build of the same extension, an older trust policy.
        let superseded: Vec<u64> = self
            .motions
            .values()
            .filter(|m| m.status == Status::Approved)
            .filter(|m| same_subject(&self.proposals[&m.index].doc.change, &change))
            .map(|m| m.index)
            .collect();
        for i in superseded {
            self.motions.get_mut(&i).expect("listed").status = Status::Outdated;
        }
        Ok(effect)
    }

    /// Rotates to a state signed, in its own envelope, by both quorums (TUF's way): the way
    /// out of an expired state, since no proposal is made under one. The new state must be
    /// fresh.
    ///
    /// `chain` holds the states from the next version on; intermediate ones may have expired
    /// (a peer that lagged behind catches up), the last must not.
    pub fn rotate(&mut self, chain: &[&[u8]], now: i64) -> Result<u64, GovError> {
        if chain.is_empty() {
            return Err(GovError::Refused("no state to rotate to".into()));
        }
        let next = self.state.update(chain, now)?;
        self.set_state(next, None);
        Ok(self.state.doc.version)
    }

    /// A new membership: proposals not yet applied were decided (or are being decided) by
    /// the old one, so they are outdated.
    fn set_state(&mut self, next: State, applying: Option<u64>) {
        self.state = next;
        for m in self.motions.values_mut() {
            let undone = matches!(m.status, Status::Open | Status::Approved);
            if undone && Some(m.index) != applying {
                m.status = Status::Outdated;
            }
        }
    }

    /// The proposal a vote or withdrawal names by instance, index and digest.
    fn named_proposal(
        &self,
        what: &str,
        instance: &str,
        index: u64,
        digest: &str,
    ) -> Result<&SignedProposal, GovError> {
        self.check_instance(instance)?;
        let proposal = self
            .proposals
            .get(&index)
            .ok_or_else(|| GovError::Refused(format!("there is no proposal {index}")))?;
        if proposal.digest != digest {
            return Err(GovError::Refused(format!(
                "the {what} is for another proposal than number {index} (digest {digest}, not {})",
                proposal.digest
            )));
        }
        Ok(proposal)
    }

    fn check_instance(&self, name: &str) -> Result<(), GovError> {
        if name != self.state.doc.instance {
            return Err(GovError::WrongInstance {
                expected: self.state.doc.instance.clone(),
                found: name.to_string(),
            });
        }
        Ok(())
    }
}

/// Whether two changes are about the same thing (so applying one outdates the other).
fn same_subject(a: &Change, b: &Change) -> bool {
    match (a, b) {
        (Change::Upgrade { .. }, Change::Upgrade { .. }) => true,
        (Change::TrustPolicy(_), Change::TrustPolicy(_)) => true,
        (Change::Extension { name: x, .. }, Change::Extension { name: y, .. }) => x == y,
        _ => false,
    }
}
