//! Runs NOVAQ's matrix-vector kernel inside a canister and counts its instructions, next to a
//! plain f32 matvec of the same matrix dequantized: the cost an agent canister pays per weight
//! matrix, measured where it will be paid.
//!
//! Load a compressed model with `put_manifest` and `put_shard_chunk` (messages are capped at
//! 2 MiB), then `measure` one tensor per call (each call stays far below the instruction limit).

use std::cell::RefCell;

use candid::CandidType;
use ic_cdk::api::performance_counter;
use novaq::format::{Codec, Manifest};
use novaq::kernel::{ModelReader, QuantizedMatrix};
use serde::Deserialize;

#[derive(Default)]
struct LoadedModel {
    manifest: Vec<u8>,
    shards: Vec<Vec<u8>>,
}

thread_local! {
    static MODEL: RefCell<LoadedModel> = RefCell::default();
}

#[derive(CandidType, Deserialize)]
struct Measurement {
    rows: u64,
    cols: u64,
    codec: String,
    /// Instructions of the kernel's matvec on the codes.
    quantized_instructions: u64,
    /// Instructions of a plain f32 matvec of the dequantized matrix.
    dense_instructions: u64,
    /// Largest |difference| between the two results, relative to the largest |result|.
    max_relative_difference: f64,
}

#[ic_cdk::update]
fn put_manifest(bytes: Vec<u8>) -> Result<(), String> {
    Manifest::from_cbor(&bytes).map_err(|err| format!("manifest: {err}"))?;
    MODEL.with(|m| {
        *m.borrow_mut() = LoadedModel {
            manifest: bytes,
            shards: vec![],
        }
    });
    Ok(())
}

/// Appends `bytes` to shard `shard`; shards arrive in order, each in one or more chunks.
#[ic_cdk::update]
fn put_shard_chunk(shard: u32, bytes: Vec<u8>) -> Result<(), String> {
    MODEL.with(|m| {
        let shards = &mut m.borrow_mut().shards;
        match shard as usize {
            next if next == shards.len() => shards.push(bytes),
            last if last + 1 == shards.len() => shards[last].extend_from_slice(&bytes),
            other => {
                return Err(format!(
                    "shard {other} out of order: {} shards so far",
                    shards.len()
                ));
            }
        }
        Ok(())
    })
}

/// The tensors of the loaded model that are weight matrices (two or more dimensions).
#[ic_cdk::query]
fn matrices() -> Result<Vec<String>, String> {
    MODEL.with(|m| {
        let manifest = Manifest::from_cbor(&m.borrow().manifest).map_err(|err| err.to_string())?;
        Ok(manifest
            .tensors
            .iter()
            .filter(|t| t.shape.len() >= 2)
            .map(|t| t.name.clone())
            .collect())
    })
}

#[ic_cdk::update]
fn measure(tensor: String) -> Result<Measurement, String> {
    MODEL.with(|m| {
        let model = m.borrow();
        let manifest = Manifest::from_cbor(&model.manifest).map_err(|err| err.to_string())?;
        let codec = match manifest
            .tensor(&tensor)
            .map_err(|err| err.to_string())?
            .codec
        {
            Codec::F32 => "f32".to_string(),
            Codec::Aq { books, dim, .. } => format!("aq {books}x{dim}"),
            Codec::Scalar { bits, group } => format!("q{bits} group {group}"),
        };
        let shards = model.shards.iter().map(Vec::as_slice).collect();
        let mut reader = ModelReader::new(&manifest, shards).map_err(|err| err.to_string())?;
        let quantized = reader.matrix(&tensor).map_err(|err| err.to_string())?;
        let (rows, cols) = (quantized.rows(), quantized.cols());
        let dense = QuantizedMatrix::dense(rows, cols, quantized.dequantize());
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();

        let (quantized_out, quantized_instructions) = counted(|| matvec(&quantized, &x));
        let (dense_out, dense_instructions) = counted(|| matvec(&dense, &x));
        let scale = dense_out
            .iter()
            .fold(0f32, |a, v| a.max(v.abs()))
            .max(f32::MIN_POSITIVE);
        let difference = quantized_out
            .iter()
            .zip(&dense_out)
            .fold(0f32, |a, (q, d)| a.max((q - d).abs()));
        Ok(Measurement {
            rows: rows as u64,
            cols: cols as u64,
            codec,
            quantized_instructions,
            dense_instructions,
            max_relative_difference: f64::from(difference / scale),
        })
    })
}

fn matvec(matrix: &QuantizedMatrix, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; matrix.rows()];
    matrix.matvec(x, &mut out);
    out
}

/// The result of `f` and the instructions it executed.
fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let start = performance_counter(0);
    let result = f();
    (result, performance_counter(0) - start)
}
