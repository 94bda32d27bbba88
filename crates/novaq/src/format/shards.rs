//! Cutting the blob stream into shards, reading blobs back, and checking shard integrity.

use super::FormatError;
use super::manifest::{Location, Manifest, ShardEntry};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

/// File name of shard `index` inside a model directory.
pub fn shard_file_name(index: usize) -> String {
    format!("shard-{index:05}.bin")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// Appends blobs to one byte stream cut into shards of a fixed size.
#[derive(Debug)]
pub struct StreamWriter {
    shard_size: u64,
    shards: Vec<Vec<u8>>,
}

impl StreamWriter {
    pub fn new(shard_size: u64) -> Self {
        assert!(shard_size > 0, "shard size must be positive");
        Self {
            shard_size,
            shards: Vec::new(),
        }
    }

    pub fn shard_size(&self) -> u64 {
        self.shard_size
    }

    /// Appends `bytes` and returns where they start.
    pub fn append(&mut self, mut bytes: &[u8]) -> Location {
        if self
            .shards
            .last()
            .is_none_or(|s| s.len() as u64 == self.shard_size)
        {
            self.shards.push(Vec::new());
        }
        let location = Location {
            shard: (self.shards.len() - 1) as u32,
            offset: self.shards.last().map_or(0, |s| s.len() as u64),
            length: bytes.len() as u64,
        };
        while !bytes.is_empty() {
            let shard = self.shards.last_mut().expect("a shard was opened above");
            let room = (self.shard_size - shard.len() as u64) as usize;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            shard.extend_from_slice(now);
            bytes = rest;
            if !bytes.is_empty() {
                self.shards.push(Vec::new());
            }
        }
        location
    }

    /// The shards and their table entries.
    pub fn finish(self) -> (Vec<Vec<u8>>, Vec<ShardEntry>) {
        let table = self
            .shards
            .iter()
            .map(|s| ShardEntry {
                size: s.len() as u64,
                sha256: sha256_hex(s),
            })
            .collect();
        (self.shards, table)
    }
}

/// The shards of one model, for reading blobs.
#[derive(Debug, Clone)]
pub struct ShardSet<'a> {
    shard_size: u64,
    shards: Vec<&'a [u8]>,
}

impl<'a> ShardSet<'a> {
    /// Shards in table order; sizes are checked against the manifest (hashes are [`verify`]'s job).
    pub fn new(manifest: &Manifest, shards: Vec<&'a [u8]>) -> Result<Self, FormatError> {
        if shards.len() != manifest.shards.len() {
            return Err(FormatError::MissingShard {
                shard: shards.len().min(manifest.shards.len()),
            });
        }
        for (i, (bytes, entry)) in shards.iter().zip(&manifest.shards).enumerate() {
            if bytes.len() as u64 != entry.size {
                return Err(FormatError::ShardSize {
                    shard: i,
                    expected: entry.size,
                    found: bytes.len() as u64,
                });
            }
        }
        Ok(Self {
            shard_size: manifest.shard_size,
            shards,
        })
    }

    /// The bytes of the blob at `location`.
    pub fn read(&self, location: &Location) -> Result<Vec<u8>, FormatError> {
        let out_of_range = || FormatError::OutOfRange {
            shard: location.shard,
            offset: location.offset,
            length: location.length,
        };
        let mut out = Vec::with_capacity(location.length as usize);
        let mut shard = location.shard as usize;
        let mut offset = location.offset as usize;
        while (out.len() as u64) < location.length {
            let bytes = self.shards.get(shard).ok_or_else(out_of_range)?;
            let available = bytes.get(offset..).ok_or_else(out_of_range)?;
            let want = (location.length as usize - out.len()).min(available.len());
            if want == 0 {
                return Err(out_of_range());
            }
            out.extend_from_slice(&available[..want]);
            shard += 1;
            offset = 0;
        }
        debug_assert!(self.shard_size > 0);
        Ok(out)
    }
}

/// Checks a whole model: the manifest against `expected_root` (when given), then every
/// shard's size and SHA-256 against the manifest. `shards[i]` is `None` when shard `i` is
/// missing. Returns the parsed manifest; the error names the first failing shard.
pub fn verify(
    manifest_bytes: &[u8],
    expected_root: Option<&str>,
    shards: &[Option<&[u8]>],
) -> Result<Manifest, FormatError> {
    if let Some(expected) = expected_root {
        let found = Manifest::root_hash(manifest_bytes);
        if found != expected.trim() {
            return Err(FormatError::RootHash {
                expected: expected.trim().into(),
                found,
            });
        }
    }
    let manifest = Manifest::from_cbor(manifest_bytes)?;
    for (i, entry) in manifest.shards.iter().enumerate() {
        let bytes = shards
            .get(i)
            .copied()
            .flatten()
            .ok_or(FormatError::MissingShard { shard: i })?;
        if bytes.len() as u64 != entry.size {
            return Err(FormatError::ShardSize {
                shard: i,
                expected: entry.size,
                found: bytes.len() as u64,
            });
        }
        if sha256_hex(bytes) != entry.sha256 {
            return Err(FormatError::ShardHash { shard: i });
        }
    }
    Ok(manifest)
}
