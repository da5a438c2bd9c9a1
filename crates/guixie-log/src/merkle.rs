//! RFC 6962 / RFC 9162 Merkle tree hashing, proof generation over any source of subtree
//! hashes, and proof verification. Indices are 0-based.

use sha2::{Digest, Sha256};
use thiserror::Error;

pub type Hash = [u8; 32];

/// Proofs longer than this cannot belong to a tree of at most 2^63 leaves.
pub const MAX_PROOF_HASHES: usize = 63;

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Largest power of two strictly less than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Where subtree hashes come from: `perfect(level, index)` is the root of the complete
/// subtree of 2^level leaves starting at leaf index·2^level (level 0: leaf hashes).
pub trait NodeSource {
    type Error;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// MTH(D[start:end]) for the ranges RFC 6962's recursion produces (start aligned to the
/// largest power of two not above end - start).
pub fn range_hash<S: NodeSource>(src: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return src.perfect(n.trailing_zeros(), start / n);
    }
    let k = split_point(n);
    let left = range_hash(src, start, start + k)?;
    let right = range_hash(src, start + k, end)?;
    Ok(node_hash(&left, &right))
}

pub fn root<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        Ok(empty_root())
    } else {
        range_hash(src, 0, size)
    }
}

/// RFC 6962 §2.1.1 PATH(index, D[0:size]); `index < size`.
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    path(src, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<S: NodeSource>(
    src: &S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(src, m, start, start + k, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        path(src, m - k, start + k, end, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

/// RFC 6962 §2.1.2 PROOF(size1, D[0:size2]); `0 < size1 ≤ size2`.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    if size1 > 0 && size1 < size2 {
        subproof(src, size1, 0, size2, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof<S: NodeSource>(
    src: &S,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_hash(src, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(src, m, start, start + k, whole, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("proof has {len} hashes; at most {MAX_PROOF_HASHES} are possible")]
    TooLong { len: usize },
    #[error("proof has the wrong number of hashes for this index and size")]
    WrongLength,
    #[error("proof does not lead to the expected root")]
    RootMismatch,
    #[error("first size {size1} is larger than second size {size2}")]
    SizesReversed { size1: u64, size2: u64 },
    #[error("a consistency proof between equal sizes must be empty and the roots equal")]
    EqualSizes,
    #[error("a consistency proof from the empty tree must be empty")]
    FromEmpty,
}

/// RFC 9162 §2.1.3.2: verifies that `leaf` is at `index` in the tree of `size` with `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooLong { len: proof.len() });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: verifies that the tree of `size2` with `root2` extends the tree of
/// `size1` with `root1`.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesReversed { size1, size2 });
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooLong { len: proof.len() });
    }
    if size1 == size2 {
        return if proof.is_empty() && root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::EqualSizes)
        };
    }
    if size1 == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::FromEmpty)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(*root1);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *root1 || sr != *root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// An in-memory tree of leaf hashes, for tests and `guixie log root --leaves`.
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        MemoryTree {
            levels: vec![Vec::new()],
        }
    }

    pub fn push_leaf_hash(&mut self, h: Hash) {
        self.levels[0].push(h);
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let n = self.levels[level].len();
            let parent = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }

    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }
}

impl Default for MemoryTree {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeSource for MemoryTree {
    type Error = std::convert::Infallible;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        Ok(self.levels[level as usize][index as usize])
    }
}
