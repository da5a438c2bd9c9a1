//! Members' keys in Nix's `name:base64` form (what `guixie key generate` writes).

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;

use data_encoding::BASE64;

use crate::{GovError, MAX_NAME_BYTES};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberKey {
    pub name: String,
    pub key: [u8; 32],
}

impl MemberKey {
    pub fn parse(text: &str) -> Result<Self, GovError> {
        MemberKey::parse_as("member key", text)
    }

    /// As [`MemberKey::parse`], naming the key `what` in errors.
    pub fn parse_as(what: &str, text: &str) -> Result<Self, GovError> {
        let shown: String = text.chars().take(80).collect();
        let bad = |reason: String| GovError::Invalid(format!("{what} {shown:?}: {reason}"));
        let (name, b64) = text
            .split_once(':')
            .ok_or_else(|| bad("not of the form NAME:BASE64".into()))?;
        check_name(&format!("{what} name"), name)?;
        let bytes = BASE64
            .decode(b64.as_bytes())
            .map_err(|e| bad(format!("{e}")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: alloc::vec::Vec<u8>| bad(format!("{} bytes, expected 32", b.len())))?;
        let point = ed25519_dalek::VerifyingKey::from_bytes(&key)
            .map_err(|_| bad("not a valid Ed25519 point".into()))?;
        // A small-order key verifies no strict signature: it would count as a member who can
        // never sign.
        if point.is_weak() {
            return Err(bad(
                "a weak (small-order) key, which can sign nothing".into()
            ));
        }
        Ok(MemberKey {
            name: name.to_owned(),
            key,
        })
    }

    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, BASE64.encode(&self.key))
    }
}

/// Names (of instances, members, extensions) are short and plain: letters, digits, `-`, `_`
/// and `.`, so they are safe in file names and messages.
pub fn check_name(what: &str, name: &str) -> Result<(), GovError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(GovError::Invalid(format!(
            "{what} {:?}: 1 to {MAX_NAME_BYTES} letters, digits, '-', '_' or '.', not starting with '.'",
            name.chars().take(80).collect::<String>()
        )))
    }
}
