//! Laying out a compressed model as a manifest and shards.

use super::blob::{codebooks_to_bytes, f32s_to_bytes};
use super::{
    Architecture, CodebookEntry, Codec, Compression, FORMAT_NAME, FORMAT_VERSION, Manifest,
    StreamWriter, TensorEntry, TokenizerSpec,
};
use crate::codec::{Compressed, Encoding};

/// Default shard size: 4 MiB.
pub const DEFAULT_SHARD_SIZE: u64 = 4 << 20;

/// What the manifest says about the model beyond its tensors.
#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: Option<Architecture>,
    pub tokenizer: Option<TokenizerSpec>,
}

/// Codebook sets first, then tensors in model order, all into one stream of shards.
pub fn package(
    compressed: &Compressed,
    info: ModelInfo,
    shard_size: u64,
) -> (Manifest, Vec<Vec<u8>>) {
    let mut stream = StreamWriter::new(shard_size);
    let codebooks = compressed
        .codebooks
        .iter()
        .map(|set| CodebookEntry {
            books: set.books as u32,
            dim: set.dim as u32,
            location: stream.append(&codebooks_to_bytes(&set.entries)),
        })
        .collect();
    let tensors = compressed
        .tensors
        .iter()
        .map(|t| {
            let (codec, bytes) = match &t.encoding {
                Encoding::F32(values) => (Codec::F32, f32s_to_bytes(values)),
                Encoding::Additive { tensor, codebook } => (
                    Codec::Aq {
                        books: tensor.books as u32,
                        dim: tensor.dim as u32,
                        codebook: *codebook as u32,
                        outliers: tensor.outliers.len() as u64,
                        column_scales: !tensor.column_scales.is_empty(),
                        rotation: tensor.rotation,
                    },
                    tensor.to_bytes(),
                ),
                Encoding::Scalar(tensor) => (
                    Codec::Scalar {
                        bits: tensor.bits,
                        group: tensor.group as u32,
                    },
                    tensor.to_bytes(),
                ),
                Encoding::Affine(tensor) => (
                    Codec::Affine {
                        group: tensor.group as u32,
                    },
                    tensor.to_bytes(),
                ),
            };
            TensorEntry {
                name: t.name.clone(),
                shape: t.shape.iter().map(|&d| d as u64).collect(),
                source_dtype: t.source_dtype.name().into(),
                codec,
                location: stream.append(&bytes),
            }
        })
        .collect();
    let (shards, table) = stream.finish();
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        name: info.name,
        architecture: info.architecture,
        tokenizer: info.tokenizer,
        compression: Compression {
            mode: compressed.options.mode.to_string(),
            code_bits: compressed.options.mode.code_bits() as f32,
            seed: compressed.options.seed,
            parameters: compressed.tensors.iter().map(|t| t.numel() as u64).sum(),
            source_bytes: compressed
                .tensors
                .iter()
                .map(|t| t.source_dtype.encoded_bytes(t.numel() as u64))
                .sum(),
        },
        codebooks,
        tensors,
        shard_size,
        shards: table,
    };
    (manifest, shards)
}
