//! `ohms novaq inspect`.

use super::print_json;
use anyhow::Context;
use novaq::format::dir::MANIFEST_FILE;
use novaq::format::{Architecture, CodebookEntry, Codec, Manifest, ShardEntry, TensorEntry};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct Inspection<'a> {
    name: &'a str,
    format: &'a str,
    version: u32,
    mode: &'a str,
    code_bits: f32,
    seed: u64,
    parameters: u64,
    stored_bytes: u64,
    bits_per_weight: f64,
    root_hash: String,
    architecture: &'a Option<Architecture>,
    tokenizer: Option<TokenizerSummary<'a>>,
    codebooks: &'a [CodebookEntry],
    tensors: &'a [TensorEntry],
    shard_size: u64,
    shards: &'a [ShardEntry],
}

/// The tokenizer without its (large) vocabulary.
#[derive(Serialize)]
struct TokenizerSummary<'a> {
    model: &'a str,
    tokens: usize,
    merges: usize,
    bos: Option<u32>,
    eos: Option<u32>,
    chat_template: bool,
}

pub fn run(dir: &Path, json: bool) -> anyhow::Result<()> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let m = Manifest::from_cbor(&bytes).with_context(|| format!("{}", path.display()))?;
    let stored_bytes = m.stored_bytes() + bytes.len() as u64;
    let inspection = Inspection {
        name: &m.name,
        format: &m.format,
        version: m.version,
        mode: &m.compression.mode,
        code_bits: m.compression.code_bits,
        seed: m.compression.seed,
        parameters: m.compression.parameters,
        stored_bytes,
        bits_per_weight: stored_bytes as f64 * 8.0 / m.compression.parameters.max(1) as f64,
        root_hash: Manifest::root_hash(&bytes),
        architecture: &m.architecture,
        tokenizer: m.tokenizer.as_ref().map(|t| TokenizerSummary {
            model: &t.model,
            tokens: t.tokens.len(),
            merges: t.merges.len(),
            bos: t.bos,
            eos: t.eos,
            chat_template: t.chat_template.is_some(),
        }),
        codebooks: &m.codebooks,
        tensors: &m.tensors,
        shard_size: m.shard_size,
        shards: &m.shards,
    };
    if json {
        return print_json(&inspection);
    }
    let i = &inspection;
    println!(
        "{} — {} v{}, mode {} (seed {})",
        i.name, i.format, i.version, i.mode, i.seed
    );
    println!(
        "{} weights in {} bytes: {:.3} bits/weight all-in",
        i.parameters, i.stored_bytes, i.bits_per_weight
    );
    println!("root hash {}", i.root_hash);
    if let Some(a) = i.architecture {
        println!(
            "{}: hidden {}, ffn {}, {} layers, {} heads ({} kv), vocab {}, context {}, rope θ {}, tied embeddings {}",
            a.family,
            a.hidden_size,
            a.intermediate_size,
            a.layers,
            a.heads,
            a.kv_heads,
            a.vocab_size,
            a.context_length,
            a.rope_theta,
            a.tied_embeddings
        );
    }
    if let Some(t) = &i.tokenizer {
        println!(
            "tokenizer {}: {} tokens, {} merges, bos {:?}, eos {:?}, chat template {}",
            t.model, t.tokens, t.merges, t.bos, t.eos, t.chat_template
        );
    }
    for (n, c) in i.codebooks.iter().enumerate() {
        println!(
            "codebook set {n}: {} × 256 × {} at shard {} offset {}",
            c.books, c.dim, c.location.shard, c.location.offset
        );
    }
    for t in i.tensors {
        let codec = match &t.codec {
            Codec::F32 => "f32".to_owned(),
            Codec::Aq {
                books,
                dim,
                codebook,
                outliers,
                rotation,
                ..
            } => format!(
                "aq {books}x{dim} set {codebook}, {outliers} outliers{}",
                if rotation.is_some() { ", rotated" } else { "" }
            ),
            Codec::Scalar { bits, group } => format!("q{bits} groups of {group}"),
            Codec::Affine { group } => format!("q4a groups of {group}"),
        };
        println!(
            "  {:<32} {:>14} {:>6} → {:<32} {:>10} bytes @ shard {} + {}",
            t.name,
            format!("{:?}", t.shape),
            t.source_dtype,
            codec,
            t.location.length,
            t.location.shard,
            t.location.offset
        );
    }
    for (n, s) in i.shards.iter().enumerate() {
        println!("shard {n}: {} bytes sha256 {}", s.size, s.sha256);
    }
    Ok(())
}
