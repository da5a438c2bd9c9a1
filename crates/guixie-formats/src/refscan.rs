//! Reference scanning: which of a set of candidate store paths occur (by their 32-character
//! hash part) in a byte stream, e.g. the NAR of a build output. Streams in chunks; a hash
//! split across two chunks is still found.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};

use crate::nixbase32;
use crate::store_path::{StorePath, HASH_PART_LEN};

pub struct RefScanner {
    candidates: HashMap<[u8; HASH_PART_LEN], StorePath>,
    found: BTreeSet<StorePath>,
    tail: Vec<u8>,
}

impl RefScanner {
    pub fn new<'a>(candidates: impl IntoIterator<Item = &'a StorePath>) -> Self {
        let candidates = candidates
            .into_iter()
            .map(|p| {
                let mut k = [0u8; HASH_PART_LEN];
                k.copy_from_slice(p.hash_part().as_bytes());
                (k, p.clone())
            })
            .collect();
        RefScanner {
            candidates,
            found: BTreeSet::new(),
            tail: Vec::with_capacity(2 * HASH_PART_LEN),
        }
    }

    pub fn scan(&mut self, data: &[u8]) {
        if self.candidates.is_empty() {
            return;
        }
        // Windows that straddle the previous chunk and this one.
        let head = &data[..data.len().min(HASH_PART_LEN - 1)];
        let mut boundary = std::mem::take(&mut self.tail);
        boundary.extend_from_slice(head);
        self.search(&boundary);
        self.search(data);
        let keep = HASH_PART_LEN - 1;
        if data.len() >= keep {
            boundary.clear();
            boundary.extend_from_slice(&data[data.len() - keep..]);
        } else {
            let start = boundary.len().saturating_sub(keep);
            boundary.drain(..start);
        }
        self.tail = boundary;
    }

    fn search(&mut self, s: &[u8]) {
        // Nix's scan: check a window right to left; a non-Nix32 byte at offset j rules out every
        // window that contains it, so jump past it.
        let mut i = 0;
        while i + HASH_PART_LEN <= s.len() {
            match (0..HASH_PART_LEN)
                .rev()
                .find(|&j| !nixbase32::is_digit(s[i + j]))
            {
                Some(j) => i += j + 1,
                None => {
                    if let Some(p) = self.candidates.get(&s[i..i + HASH_PART_LEN]) {
                        self.found.insert(p.clone());
                    }
                    i += 1;
                }
            }
        }
    }

    pub fn found(&self) -> &BTreeSet<StorePath> {
        &self.found
    }

    pub fn into_found(self) -> BTreeSet<StorePath> {
        self.found
    }
}

impl Write for RefScanner {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.scan(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references_across_chunk_boundaries() {
        let a = StorePath::from_base_name("00bgd045z0d4icpbc2yyz4gx48ak44la-a").unwrap();
        let b = StorePath::from_base_name("11bgd045z0d4icpbc2yyz4gx48ak44la-b").unwrap();
        let c = StorePath::from_base_name("22bgd045z0d4icpbc2yyz4gx48ak44la-c").unwrap();
        let text = format!("xx /nix/store/{a}/bin and {}-b...", b.hash_part());
        for split in 0..text.len() {
            let mut s = RefScanner::new([&a, &b, &c]);
            let (x, y) = text.as_bytes().split_at(split);
            s.scan(x);
            s.scan(y);
            assert_eq!(
                s.found(),
                &BTreeSet::from([a.clone(), b.clone()]),
                "split {split}"
            );
        }
        // Byte-by-byte feeding still works.
        let mut s = RefScanner::new([&a, &b, &c]);
        for byte in text.as_bytes() {
            s.scan(std::slice::from_ref(byte));
        }
        assert_eq!(s.found().len(), 2);
    }
}
