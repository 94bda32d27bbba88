//! Distillation: tuning a compressed model so that its predictions match the source model's.
//!
//! Step by step, the source model scores a few token sequences (its log-probabilities after
//! every position, scored when a step needs them and not kept, so memory does not grow with
//! the number of sequences), the compressed model runs the same sequences, the gradient of
//! `KL(source ‖ compressed)` flows back to every decoded matrix ([`super::backward`]), and
//! [`Tuner`] moves the row scales and codebook entries (and, if asked, the norms' gains) by
//! Adam steps. The codes never change, so neither does the size of the model.

use super::{Params, backward, forward, kl_divergence, log_softmax_rows};
use crate::config::Config;
use crate::load::LoadError;
use novaq::Tensor;
use novaq::codec::Compressed;
use novaq::codec::tune::Tuner;
use rayon::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct DistillOptions {
    /// Passes over the sequences.
    pub epochs: usize,
    /// Sequences whose gradients add up to one step.
    pub batch: usize,
    /// Size of the first step, as a share of each parameter array's mean absolute value; it
    /// falls linearly to a tenth of that by the last step.
    pub step_size: f32,
    /// Tune the norms' gains too.
    pub norms: bool,
}

/// Tunes `compressed` (compressed from `sources`, the model `config` describes) on
/// `sequences`; `on_epoch(epoch, mean_kl)` hears the mean KL divergence over each epoch's
/// positions, measured before each step. Writes the tuned parameters back into `compressed`.
pub fn distill(
    config: &Config,
    sources: &[Tensor],
    compressed: &mut Compressed,
    sequences: &[Vec<u32>],
    options: &DistillOptions,
    mut on_epoch: impl FnMut(usize, f64),
) -> Result<(), LoadError> {
    let vocab = config.vocab_size;
    let index: BTreeMap<&str, usize> = compressed
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let teacher = Params::from_tensors(config, sources)?;
    let mut tuner = Tuner::new(compressed, options.norms);
    let tuned = tuner.tensors();
    let mut student = Params::assemble(config, |name| {
        let &i = index.get(name)?;
        tuner.decoded(i).or_else(|| Some(compressed.decoded(i)))
    })?;
    let mut grads = student.clone();
    let batch = options.batch.max(1);
    let steps_per_epoch = sequences.len().div_ceil(batch);
    let total_steps = (options.epochs * steps_per_epoch).max(1);
    let mut step = 0;
    for epoch in 0..options.epochs {
        let (mut kl_sum, mut positions) = (0f64, 0usize);
        for chunk in sequences.chunks(batch) {
            grads.zero();
            let batch_positions: usize = chunk.iter().map(Vec::len).sum();
            for tokens in chunk {
                let target = log_softmax_rows(&forward(config, &teacher, tokens).logits, vocab);
                let tape = forward(config, &student, tokens);
                let scale = 1.0 / batch_positions as f32;
                let (kl, d_logits) = kl_divergence(&tape.logits, &target, vocab, scale);
                backward(config, &student, &tape, &d_logits, &mut grads);
                kl_sum += kl;
            }
            positions += batch_positions;
            let progress = step as f32 / total_steps as f32;
            let step_size = options.step_size * (1.0 - 0.9 * progress);
            {
                let named = grads.named_mut();
                let by_tensor: BTreeMap<usize, &[f32]> = named
                    .iter()
                    .filter_map(|(name, g)| Some((*index.get(name.as_str())?, &g[..])))
                    .collect();
                tuner.step(|i| by_tensor.get(&i).copied(), step_size);
            }
            student
                .named_mut()
                .into_par_iter()
                .for_each(|(name, values)| {
                    if let Some(&i) = index.get(name.as_str())
                        && tuned.contains(&i)
                    {
                        *values = tuner.decoded(i).expect("tuned tensors decode");
                    }
                });
            step += 1;
        }
        on_epoch(epoch, kl_sum / positions.max(1) as f64);
    }
    tuner.finish(compressed, sources);
    Ok(())
}
