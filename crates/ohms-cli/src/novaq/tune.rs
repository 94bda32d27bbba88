//! Distillation after coding (`compress --tune-epochs`): the compressed model learns to
//! predict what the source model predicts on the calibration sequences.

use super::source::Source;
use anyhow::anyhow;
use novaq::codec::{Compressed, Options};
use ohms_llm::Config;
use ohms_llm::train::distill::{DistillOptions, distill as run};
use std::time::Instant;

/// Tunes `compressed` on `sequences` for `options.tune_epochs` passes, reporting each pass's
/// mean KL divergence on stderr.
pub fn distill(
    source: &Source,
    compressed: &mut Compressed,
    sequences: &[Vec<u32>],
    options: &Options,
) -> anyhow::Result<()> {
    let has_output = source.tensors.iter().any(|t| t.name == "output.weight");
    let config =
        Config::from_gguf(&source.metadata, has_output).map_err(|e| anyhow!("cannot tune: {e}"))?;
    let tokens: usize = sequences.iter().map(Vec::len).sum();
    eprintln!(
        "distilling over {} sequences ({tokens} tokens), {} passes",
        sequences.len(),
        options.tune_epochs
    );
    let start = Instant::now();
    let tune = DistillOptions {
        epochs: options.tune_epochs,
        batch: options.tune_batch,
        step_size: options.tune_step_size,
        norms: true,
    };
    run(
        &config,
        &source.tensors,
        compressed,
        sequences,
        &tune,
        |epoch, kl| {
            eprintln!(
                "pass {}: mean KL divergence {kl:.4} ({:.0} s)",
                epoch + 1,
                start.elapsed().as_secs_f64()
            );
        },
    )
    .map_err(|e| anyhow!("cannot tune: {e}"))
}
