//! The tally of one proposal, with pallet-collective's semantics: one vote per member per
//! proposal index; voting the same way again is refused, switching is allowed; approved when
//! the ayes reach the threshold, disapproved as soon as they no longer can.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::GovError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Open,
    Approved,
    Disapproved,
    Applied,
    /// The membership changed before it was decided: its voters are no longer the members.
    Outdated,
    /// Its proposer took it back before it was decided.
    Withdrawn,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Approved => "approved",
            Status::Disapproved => "disapproved",
            Status::Applied => "applied",
            Status::Outdated => "outdated",
            Status::Withdrawn => "withdrawn",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Motion {
    pub index: u64,
    pub digest: String,
    pub threshold: usize,
    pub members: usize,
    pub ayes: Vec<[u8; 32]>,
    pub nays: Vec<[u8; 32]>,
    /// The members who signed the proposal.
    pub proposers: Vec<[u8; 32]>,
    /// Per voter: the round of its last vote and how many votes it cast.
    pub rounds: Vec<([u8; 32], u64, u32)>,
    pub status: Status,
}

impl Motion {
    pub fn new(index: u64, digest: String, threshold: usize, members: usize) -> Self {
        Motion {
            index,
            digest,
            threshold,
            members,
            ayes: Vec::new(),
            nays: Vec::new(),
            proposers: Vec::new(),
            rounds: Vec::new(),
            status: Status::Open,
        }
    }

    /// Records `voter`'s vote of `round` (the caller checked membership) and returns the new
    /// status.
    pub fn vote(
        &mut self,
        voter: [u8; 32],
        voter_name: &str,
        aye: bool,
        round: u64,
    ) -> Result<Status, GovError> {
        if self.status != Status::Open {
            return Err(GovError::Refused(format!(
                "proposal {} is {}: no more votes are counted",
                self.index,
                self.status.as_str()
            )));
        }
        let previous = self.rounds.iter().position(|(k, _, _)| k == &voter);
        if let Some(i) = previous {
            let (_, last, count) = self.rounds[i];
            if round <= last {
                return Err(GovError::Refused(format!(
                    "{voter_name}'s vote of round {round} on proposal {} is not after its vote of round {last}: a replayed or reordered vote",
                    self.index
                )));
            }
            if count >= crate::MAX_VOTES_PER_MEMBER {
                return Err(GovError::Refused(format!(
                    "{voter_name} has voted {count} times on proposal {}, the most allowed",
                    self.index
                )));
            }
        }
        let (same, other) = if aye {
            (&mut self.ayes, &mut self.nays)
        } else {
            (&mut self.nays, &mut self.ayes)
        };
        if same.contains(&voter) {
            return Err(GovError::Refused(format!(
                "{voter_name} already voted {} on proposal {}",
                if aye { "aye" } else { "nay" },
                self.index
            )));
        }
        other.retain(|k| k != &voter);
        same.push(voter);
        match previous {
            Some(i) => {
                self.rounds[i].1 = round;
                self.rounds[i].2 += 1;
            }
            None => self.rounds.push((voter, round, 1)),
        }
        self.status = if self.ayes.len() >= self.threshold {
            Status::Approved
        } else if self.members.saturating_sub(self.nays.len()) < self.threshold {
            Status::Disapproved
        } else {
            Status::Open
        };
        Ok(self.status)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} ({} aye, {} nay, {} needed of {})",
            self.status.as_str(),
            self.ayes.len(),
            self.nays.len(),
            self.threshold,
            self.members
        )
    }
}
