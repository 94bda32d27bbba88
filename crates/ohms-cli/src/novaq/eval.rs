//! `ohms novaq eval`: the compressed model against its source, on the same tokens.

use super::{EvalArgs, ScoringArgs, print_json, source};
use anyhow::{Context, anyhow, bail};
use novaq::format::dir;
use novaq::kernel::QuantizedMatrix;
use novaq::read::Metadata;
use novaq::report::EvalReport;
use ohms_llm::eval::{compare, sample_sequences};
use ohms_llm::load::{load_model, load_novaq};
use ohms_llm::{Model, Tokenizer};
use std::path::Path;

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let files = dir::read_verified(&args.dir)?;
    let source = source::open(&args.source)?;
    let metadata = source.metadata;
    let mut reference = load_model(&metadata, source.tensors)
        .with_context(|| format!("cannot build a model from {}", args.source.display()))?;
    let mut candidate = compressed_model(&files)?;
    let sequences = scoring_sequences(&args.scoring, &args.source, &metadata, &mut reference)?;
    let c = compare(&mut reference, &mut candidate, &sequences)
        .map_err(|e| anyhow!("evaluation failed: {e}"))?;
    let report = EvalReport {
        tokens: c.positions,
        perplexity_source: c.reference_perplexity,
        perplexity_compressed: c.candidate_perplexity,
        perplexity_ratio: c.perplexity_ratio,
        mean_kl_divergence: c.mean_kl_divergence,
        top1_agreement: c.top1_agreement,
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} positions: perplexity {:.4} → {:.4} (ratio {:.4}), mean KL {:.5} nats, top-1 agreement {:.4}",
        report.tokens,
        report.perplexity_source,
        report.perplexity_compressed,
        report.perplexity_ratio,
        report.mean_kl_divergence,
        report.top1_agreement
    );
    Ok(())
}

/// The compressed model with every projection multiplying straight on its stored codes.
fn compressed_model(files: &dir::ModelFiles) -> anyhow::Result<Model<QuantizedMatrix>> {
    load_novaq(&files.manifest, files.shard_slices())
        .map_err(|e| anyhow!("cannot run the compressed model: {e}"))
}

/// The sequences `args` asks for: the first tokens of a text, or sequences sampled from the
/// reference model with a fixed seed.
pub fn scoring_sequences(
    args: &ScoringArgs,
    path: &Path,
    metadata: &Metadata,
    reference: &mut Model<ohms_llm::DenseMatrix>,
) -> anyhow::Result<Vec<Vec<u32>>> {
    if args.sequence_length < 2 {
        bail!("--sequence-length must be at least 2");
    }
    Ok(match &args.text {
        Some(text_path) => {
            let text = std::fs::read_to_string(text_path)
                .with_context(|| format!("cannot read {}", text_path.display()))?;
            let tokenizer =
                Tokenizer::from_gguf(metadata).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            let tokens: Vec<u32> = tokenizer
                .encode(&text)
                .into_iter()
                .take(args.tokens)
                .collect();
            if tokens.len() < 2 {
                bail!("{} yields fewer than 2 tokens", text_path.display());
            }
            tokens
                .chunks(args.sequence_length)
                .filter(|c| c.len() >= 2)
                .map(<[u32]>::to_vec)
                .collect()
        }
        None => {
            let start = Tokenizer::from_gguf(metadata)
                .ok()
                .and_then(|t| t.bos)
                .unwrap_or(1);
            sample_sequences(
                reference,
                start,
                args.sequences,
                args.sequence_length,
                args.seed,
            )
            .map_err(|e| anyhow!("sampling evaluation sequences: {e}"))?
        }
    })
}
