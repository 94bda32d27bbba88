//! `ohms novaq sensitivity`: each kind of matrix (a layer role across all layers: q, k, v, …,
//! and the embedding) compressed alone, the rest left exact, and the model's predictions
//! compared with the source's. The KL divergence per million weights says where extra bits
//! buy the most quality; it is how the modes' presets were chosen.

use super::eval::scoring_sequences;
use super::{SensitivityArgs, print_json, source};
use anyhow::{Context, anyhow, bail};
use novaq::Tensor;
use novaq::codec::plan::kind_of;
use novaq::codec::{Mode, Options, compress, is_quantizable};
use ohms_llm::eval::compare;
use ohms_llm::load::load_model;
use rayon::prelude::*;
use serde::Serialize;

#[derive(Serialize)]
struct Report {
    mode: String,
    positions: usize,
    /// Most sensitive per weight first.
    kinds: Vec<KindReport>,
}

#[derive(Serialize)]
struct KindReport {
    kind: String,
    tensors: usize,
    weights: usize,
    /// `‖W − Ŵ‖² / ‖W‖²` over all the kind's tensors.
    relative_mse: f64,
    mean_kl_divergence: f64,
    kl_per_million_weights: f64,
    perplexity_ratio: f64,
    top1_agreement: f64,
}

pub fn run(args: &SensitivityArgs) -> anyhow::Result<()> {
    let mode = Mode::parse(&args.mode, None).map_err(|e| anyhow!(e))?;
    let source = source::open(&args.source)?;
    let metadata = source.metadata;
    let tensors = source.tensors;
    let mut reference = load_model(&metadata, tensors.clone())
        .with_context(|| format!("cannot build a model from {}", args.source.display()))?;
    let sequences = scoring_sequences(&args.scoring, &args.source, &metadata, &mut reference)?;
    drop(reference);
    let mut kinds: Vec<String> = tensors
        .iter()
        .filter(|t| is_quantizable(t, mode))
        .map(|t| kind_of(&t.name))
        .collect();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        bail!(
            "{} has no matrix {mode} can compress",
            args.source.display()
        );
    }
    let mut reports = kinds
        .par_iter()
        .map(|kind| -> anyhow::Result<KindReport> {
            let members: Vec<Tensor> = tensors
                .iter()
                .filter(|t| kind_of(&t.name) == *kind && is_quantizable(t, mode))
                .cloned()
                .collect();
            let decoded = decode_all(&members, mode);
            let (mut err, mut norm) = (0f64, 0f64);
            for (t, d) in members.iter().zip(&decoded) {
                for (&a, &b) in t.data.iter().zip(d) {
                    err += ((a - b) as f64).powi(2);
                    norm += (a as f64).powi(2);
                }
            }
            let mut candidate_tensors = tensors.clone();
            for (t, d) in members.iter().zip(decoded) {
                if let Some(slot) = candidate_tensors.iter_mut().find(|c| c.name == t.name) {
                    slot.data = d;
                }
            }
            let mut reference = load_model(&metadata, tensors.clone())?;
            let mut candidate = load_model(&metadata, candidate_tensors)?;
            let c = compare(&mut reference, &mut candidate, &sequences)
                .map_err(|e| anyhow!("evaluating {kind}: {e}"))?;
            let weights: usize = members.iter().map(Tensor::numel).sum();
            Ok(KindReport {
                kind: kind.clone(),
                tensors: members.len(),
                weights,
                relative_mse: if norm > 0.0 { err / norm } else { err },
                mean_kl_divergence: c.mean_kl_divergence,
                kl_per_million_weights: c.mean_kl_divergence / (weights as f64 / 1e6),
                perplexity_ratio: c.perplexity_ratio,
                top1_agreement: c.top1_agreement,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    reports.sort_by(|a, b| {
        b.kl_per_million_weights
            .total_cmp(&a.kl_per_million_weights)
    });
    let report = Report {
        mode: mode.to_string(),
        positions: sequences.iter().map(|s| s.len() - 1).sum(),
        kinds: reports,
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "each kind alone in {} over {} positions, most sensitive per weight first",
        report.mode, report.positions
    );
    println!(
        "{:<28} {:>11} {:>10} {:>9} {:>11} {:>9} {:>6}",
        "kind", "weights", "rel. MSE", "KL", "KL/M wts", "ppl ×", "top-1"
    );
    for k in &report.kinds {
        println!(
            "{:<28} {:>11} {:>10.5} {:>9.4} {:>11.5} {:>9.4} {:>6.3}",
            k.kind,
            k.weights,
            k.relative_mse,
            k.mean_kl_divergence,
            k.kl_per_million_weights,
            k.perplexity_ratio,
            k.top1_agreement
        );
    }
    Ok(())
}

/// The tensors as `mode` reconstructs them (additive modes fit without calibration).
fn decode_all(members: &[Tensor], mode: Mode) -> Vec<Vec<f32>> {
    let compressed = compress(members, &Options::new(mode));
    (0..compressed.tensors.len())
        .map(|i| compressed.decoded(i))
        .collect()
}
