//! The compression report: what was spent and what was lost, with stable JSON field names.

use crate::codec::{Compressed, Encoding};
use crate::format::Manifest;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompressionReport {
    pub name: String,
    pub mode: String,
    pub seed: u64,
    /// Weights in all tensors.
    pub parameters: u64,
    /// Weights in tensors that were quantized (the rest stay f32).
    pub quantized_parameters: u64,
    /// Shards plus manifest.
    pub stored_bytes: u64,
    pub manifest_bytes: u64,
    pub source_bytes: u64,
    /// All-in: every stored byte (codes, codebooks, scales, outliers and their indices, f32
    /// tensors, manifest with tokenizer) × 8 / parameters.
    pub bits_per_weight: f64,
    /// Shard bytes only (no manifest) × 8 / parameters.
    pub tensor_bits_per_weight: f64,
    pub compression_ratio_vs_f32: f64,
    pub compression_ratio_vs_source: f64,
    /// Unweighted mean over quantized tensors of `‖W − Ŵ‖² / ‖W‖²`.
    pub relative_mse_mean: f64,
    pub relative_mse_max: f64,
    pub cosine_min: f64,
    pub codebook_sets: usize,
    pub outliers: u64,
    pub shards: usize,
    pub root_hash: String,
    pub seconds: f64,
    pub weights_per_second: f64,
    pub tensors: Vec<TensorReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorReport {
    pub name: String,
    pub shape: Vec<usize>,
    pub codec: String,
    pub source_dtype: String,
    pub relative_mse: f64,
    pub cosine: f64,
    pub stored_bytes: u64,
}

impl CompressionReport {
    pub fn new(
        compressed: &Compressed,
        manifest: &Manifest,
        manifest_bytes: u64,
        root_hash: String,
        seconds: f64,
    ) -> Self {
        let parameters = manifest.compression.parameters;
        let shard_bytes = manifest.stored_bytes();
        let stored_bytes = shard_bytes + manifest_bytes;
        let quantized: Vec<_> = compressed
            .tensors
            .iter()
            .filter(|t| t.is_quantized())
            .collect();
        let mean = |f: &dyn Fn(f64, f64) -> f64, init: f64| {
            quantized.iter().fold(init, |acc, t| f(acc, t.relative_mse))
        };
        let relative_mse_mean = if quantized.is_empty() {
            0.0
        } else {
            mean(&|a, b| a + b, 0.0) / quantized.len() as f64
        };
        let tensors = compressed
            .tensors
            .iter()
            .zip(&manifest.tensors)
            .map(|(t, entry)| TensorReport {
                name: t.name.clone(),
                shape: t.shape.clone(),
                codec: codec_name(&t.encoding),
                source_dtype: t.source_dtype.name().into(),
                relative_mse: t.relative_mse,
                cosine: t.cosine,
                stored_bytes: entry.location.length,
            })
            .collect();
        let p = parameters.max(1) as f64;
        Self {
            name: manifest.name.clone(),
            mode: manifest.compression.mode.clone(),
            seed: manifest.compression.seed,
            parameters,
            quantized_parameters: quantized.iter().map(|t| t.numel() as u64).sum(),
            stored_bytes,
            manifest_bytes,
            source_bytes: manifest.compression.source_bytes,
            bits_per_weight: stored_bytes as f64 * 8.0 / p,
            tensor_bits_per_weight: shard_bytes as f64 * 8.0 / p,
            compression_ratio_vs_f32: parameters as f64 * 4.0 / stored_bytes as f64,
            compression_ratio_vs_source: manifest.compression.source_bytes as f64
                / stored_bytes as f64,
            relative_mse_mean,
            relative_mse_max: mean(&f64::max, 0.0),
            cosine_min: quantized.iter().map(|t| t.cosine).fold(1.0, f64::min),
            codebook_sets: manifest.codebooks.len(),
            outliers: compressed
                .tensors
                .iter()
                .map(|t| match &t.encoding {
                    Encoding::Additive { tensor, .. } => tensor.outliers.len() as u64,
                    _ => 0,
                })
                .sum(),
            shards: manifest.shards.len(),
            root_hash,
            seconds,
            weights_per_second: parameters as f64 / seconds.max(1e-9),
            tensors,
        }
    }
}

fn codec_name(encoding: &Encoding) -> String {
    match encoding {
        Encoding::F32(_) => "f32".into(),
        Encoding::Additive { tensor, .. } => format!("aq{}x{}", tensor.books, tensor.dim),
        Encoding::Scalar(t) => format!("q{}g{}", t.bits, t.group),
        Encoding::Affine(t) => format!("q4ag{}", t.group),
    }
}

/// How close a compressed language model's predictions stay to the original's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Tokens scored (predictions compared).
    pub tokens: usize,
    pub perplexity_source: f64,
    pub perplexity_compressed: f64,
    /// Compressed perplexity / source perplexity.
    pub perplexity_ratio: f64,
    /// Mean over positions of KL(source ‖ compressed) of the next-token distributions, in nats.
    pub mean_kl_divergence: f64,
    /// Share of positions where both models' most likely next token agree.
    pub top1_agreement: f64,
}
