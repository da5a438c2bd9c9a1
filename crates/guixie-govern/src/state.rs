//! The governance state and its rotation rule.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guixie_dsse::Envelope;
use serde::{Deserialize, Serialize};

use crate::key::{check_name, MemberKey};
use crate::{GovError, MAX_MEMBERS, MAX_STATE_BYTES, STATE_PAYLOAD_TYPE};

/// The signed document: what members sign when they agree who the members are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovState {
    /// The instance's name; every proposal and vote names it, so none is replayed on another.
    pub instance: String,
    /// 1 for the first state; each rotation adds one.
    pub version: u64,
    /// How many distinct members must sign a change.
    pub threshold: u32,
    /// Seconds since the epoch after which this state is refused: a frozen instance is seen.
    pub expires: i64,
    /// Members' public keys, `name:base64`.
    pub members: Vec<String>,
}

/// A checked state: its document, its members' keys and the envelope that carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub doc: GovState,
    pub members: Vec<MemberKey>,
    pub envelope: Envelope,
}

impl State {
    /// Reads a signed state and checks it is well formed (signatures are counted by
    /// [`State::genesis`] and [`State::successor`]).
    pub fn parse(bytes: &[u8]) -> Result<State, GovError> {
        let envelope =
            Envelope::parse(bytes, MAX_STATE_BYTES).map_err(|source| GovError::Envelope {
                what: "governance state",
                source,
            })?;
        State::from_envelope(envelope)
    }

    pub fn from_envelope(envelope: Envelope) -> Result<State, GovError> {
        if envelope.payload_type != STATE_PAYLOAD_TYPE {
            return Err(GovError::PayloadType {
                what: "governance state",
                expected: STATE_PAYLOAD_TYPE,
                found: envelope.payload_type.chars().take(80).collect(),
            });
        }
        let doc: GovState =
            serde_json::from_slice(&envelope.payload).map_err(|e| GovError::Malformed {
                what: "governance state",
                reason: format!("{e}"),
            })?;
        let members = doc.validate()?;
        Ok(State {
            doc,
            members,
            envelope,
        })
    }

    /// The first state of an instance: at least its own threshold of its own members signed.
    pub fn genesis(bytes: &[u8], now: i64) -> Result<State, GovError> {
        let state = State::parse(bytes)?;
        if state.doc.version != 1 {
            return Err(GovError::Invalid(format!(
                "a first governance state has version 1, not {}",
                state.doc.version
            )));
        }
        state.require(&state.members_signing(&state.envelope), "version 1")?;
        state.check_fresh(now)?;
        Ok(state)
    }

    /// Version N+1 after this version N: at least threshold(N) distinct keys of N and
    /// threshold(N+1) distinct keys of N+1 signed it. `extra_old_approvals` are keys of N
    /// that approved the same bytes elsewhere (their aye votes on a membership proposal that
    /// carries it). Expiry is checked only for the final state of a chain, as in TUF: an
    /// expired intermediate state can still be rotated away from.
    pub fn successor(
        &self,
        next: State,
        extra_old_approvals: &[[u8; 32]],
    ) -> Result<State, GovError> {
        if next.doc.instance != self.doc.instance {
            return Err(GovError::WrongInstance {
                expected: self.doc.instance.clone(),
                found: next.doc.instance,
            });
        }
        if next.doc.version != self.doc.version + 1 {
            return Err(GovError::NotNext {
                trusted: self.doc.version,
                found: next.doc.version,
            });
        }
        let mut old = self.members_signing(&next.envelope);
        for key in extra_old_approvals {
            if self.member(key).is_some() && !old.contains(key) {
                old.push(*key);
            }
        }
        self.require(&old, &format!("version {}", self.doc.version))?;
        next.require(
            &next.members_signing(&next.envelope),
            &format!("version {}", next.doc.version),
        )?;
        Ok(next)
    }

    /// Walks a chain of signed states from this one; the last must not have expired.
    pub fn update(&self, chain: &[&[u8]], now: i64) -> Result<State, GovError> {
        let mut current = self.clone();
        for bytes in chain {
            current = current.successor(State::parse(bytes)?, &[])?;
        }
        current.check_fresh(now)?;
        Ok(current)
    }

    pub fn check_fresh(&self, now: i64) -> Result<(), GovError> {
        if now >= self.doc.expires {
            return Err(GovError::Expired {
                version: self.doc.version,
                expires: self.doc.expires,
                now,
            });
        }
        Ok(())
    }

    pub fn member(&self, key: &[u8; 32]) -> Option<&MemberKey> {
        self.members.iter().find(|m| &m.key == key)
    }

    /// This state's members whose keys signed `envelope`, each once, whatever key id a
    /// signature claims.
    pub fn members_signing(&self, envelope: &Envelope) -> Vec<[u8; 32]> {
        self.members
            .iter()
            .filter(|m| envelope.is_signed_by(&m.key))
            .map(|m| m.key)
            .collect()
    }

    /// "2 of 3 members (alice, bob, carol)".
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        format!(
            "{} of {} members ({})",
            self.threshold(),
            self.members.len(),
            names.join(", ")
        )
    }

    pub fn threshold(&self) -> usize {
        self.doc.threshold as usize
    }

    /// The state's name: SHA-256 of its signed bytes (what operators compare out of band).
    pub fn digest(&self) -> String {
        crate::sha256_hex(&self.envelope.signed_message())
    }

    fn require(&self, signers: &[[u8; 32]], whose: &str) -> Result<(), GovError> {
        if signers.len() < self.threshold() {
            return Err(GovError::BelowThreshold {
                whose: format!("{whose}'s members"),
                required: self.threshold(),
                found: signers.len(),
            });
        }
        Ok(())
    }
}

impl GovState {
    /// Checks the document on its own: its name, distinct members and keys, a threshold
    /// between 1 and the number of members.
    pub fn validate(&self) -> Result<Vec<MemberKey>, GovError> {
        check_name("instance name", &self.instance)?;
        if self.version == 0 {
            return Err(GovError::Invalid("governance versions start at 1".into()));
        }
        if self.members.is_empty() || self.members.len() > MAX_MEMBERS {
            return Err(GovError::Invalid(format!(
                "{} members: a state has 1 to {MAX_MEMBERS}",
                self.members.len()
            )));
        }
        let mut keys: Vec<MemberKey> = Vec::new();
        for text in &self.members {
            let key = MemberKey::parse(text)?;
            if let Some(same) = keys.iter().find(|k| k.key == key.key) {
                return Err(GovError::Invalid(format!(
                    "members {:?} and {:?} have the same key: a key is one member",
                    same.name, key.name
                )));
            }
            if keys.iter().any(|k| k.name == key.name) {
                return Err(GovError::Invalid(format!(
                    "two members are named {:?}",
                    key.name
                )));
            }
            keys.push(key);
        }
        if self.threshold == 0 || self.threshold as usize > keys.len() {
            return Err(GovError::Invalid(format!(
                "threshold {} of {} members: it must be between 1 and the number of members",
                self.threshold,
                keys.len()
            )));
        }
        Ok(keys)
    }

    /// The unsigned envelope members sign.
    pub fn to_envelope(&self) -> Envelope {
        Envelope::new(
            STATE_PAYLOAD_TYPE,
            serde_json::to_vec(self).expect("states serialise"),
        )
    }
}
