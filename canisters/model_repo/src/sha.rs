//! SHA-256 whose state is plain data, so hashing a shard can stop at the end of one message
//! and continue in the next (or after an upgrade): the state is stored with the upload.

use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;

const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A SHA-256 in progress: the chaining state, the bytes hashed so far and the tail of fewer
/// than 64 bytes not yet compressed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Sha256State {
    state: [u32; 8],
    length: u64,
    #[serde(with = "serde_bytes")]
    tail: Vec<u8>,
}

impl Default for Sha256State {
    fn default() -> Self {
        Self {
            state: INITIAL,
            length: 0,
            tail: Vec::new(),
        }
    }
}

impl Sha256State {
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len() as u64;
        if !self.tail.is_empty() {
            let take = (64 - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() < 64 {
                return;
            }
            let block = *GenericArray::from_slice(&self.tail);
            sha2::compress256(&mut self.state, &[block]);
            self.tail.clear();
        }
        let whole = bytes.len() / 64 * 64;
        let (blocks, rest) = bytes.split_at(whole);
        for block in blocks.chunks_exact(64) {
            sha2::compress256(&mut self.state, &[*GenericArray::from_slice(block)]);
        }
        self.tail.extend_from_slice(rest);
    }

    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.length.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        let len = self.tail.len() + 1;
        let zeros = if len <= 56 { 56 - len } else { 120 - len };
        pad.extend(std::iter::repeat_n(0u8, zeros));
        pad.extend_from_slice(&bits.to_be_bytes());
        self.update(&pad);
        debug_assert!(self.tail.is_empty());
        let mut out = [0u8; 32];
        for (i, word) in self.state.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    pub fn finish_hex(self) -> String {
        hex(&self.finish())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::Storable;
    use ohms_ops::Cbor;
    use sha2::{Digest, Sha256};

    #[test]
    fn matches_sha2_whatever_the_pieces() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 10_000] {
            let expected = hex(&Sha256::digest(&data[..len]));
            for piece in [1, 7, 64, 100, 4096] {
                let mut state = Sha256State::default();
                for part in data[..len].chunks(piece) {
                    state.update(part);
                    // Stored and read back between pieces, as across messages.
                    let stored = Cbor(state).to_bytes().into_owned();
                    state = Cbor::<Sha256State>::from_bytes(stored.into()).0;
                }
                assert_eq!(state.finish_hex(), expected, "len {len} piece {piece}");
            }
        }
    }
}
