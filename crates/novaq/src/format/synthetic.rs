//! Synthetic models in the OHMS format: pseudo-random shard bytes under a manifest a model
//! repository accepts. For what stores, moves and verifies models (tests, upload benchmarks),
//! where the bytes need not be a trained network.

use super::manifest::{
    Architecture, Compression, FORMAT_NAME, FORMAT_VERSION, Manifest, ShardEntry,
};
use super::shards::sha256_hex;
use alloc::vec;
use alloc::vec::Vec;

/// The shape of stories260K (a small Llama), for manifests that need an architecture.
pub fn small_llama() -> Architecture {
    Architecture {
        family: "llama".into(),
        hidden_size: 64,
        intermediate_size: 172,
        layers: 5,
        heads: 8,
        kv_heads: 4,
        vocab_size: 512,
        context_length: 512,
        rope_dim: 8,
        rope_theta: 10_000.0,
        norm_eps: 1e-5,
        tied_embeddings: true,
    }
}

/// `len` pseudo-random bytes (xorshift32 from `seed`): the same seed gives the same bytes.
pub fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A manifest (q8-labelled, no tensors) whose shard table describes `shards`, cut from one
/// stream at `shard_size`.
pub fn manifest_for(shards: &[Vec<u8>], shard_size: u64) -> Manifest {
    let total: u64 = shards.iter().map(|s| s.len() as u64).sum();
    Manifest {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        name: "synthetic".into(),
        architecture: Some(small_llama()),
        tokenizer: None,
        compression: Compression {
            mode: "q8".into(),
            code_bits: 8.0,
            seed: 1,
            parameters: total,
            source_bytes: total * 4,
        },
        codebooks: vec![],
        tensors: vec![],
        shard_size,
        shards: shards
            .iter()
            .map(|s| ShardEntry {
                size: s.len() as u64,
                sha256: sha256_hex(s),
            })
            .collect(),
    }
}

/// A synthetic model of `total` bytes in shards of `shard_size`: its manifest's CBOR bytes and
/// the shards.
pub fn model(total: usize, shard_size: usize, seed: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
    let stream = bytes(total, seed);
    let shards: Vec<Vec<u8>> = stream.chunks(shard_size).map(<[u8]>::to_vec).collect();
    (manifest_for(&shards, shard_size as u64).to_cbor(), shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_model_verifies_against_its_manifest() {
        let (manifest, shards) = model(10_000, 4_096, 7);
        let manifest = Manifest::from_cbor(&manifest).unwrap();
        assert_eq!(manifest.shards.len(), 3);
        assert_eq!(shards[2].len(), 10_000 - 2 * 4_096);
        for (entry, shard) in manifest.shards.iter().zip(&shards) {
            assert_eq!(entry.sha256, sha256_hex(shard));
        }
        assert_eq!(bytes(16, 7), bytes(16, 7));
        assert_ne!(bytes(16, 7), bytes(16, 8));
    }
}
