//! Quality of a candidate model (e.g. a compressed one) against its reference: perplexity,
//! KL divergence of the next-token distributions, and agreement of their top choices.

use alloc::vec::Vec;

use crate::linear::Linear;
use crate::math::log_sum_exp;
use crate::model::{ForwardError, Model};
use crate::sample::{Sampler, argmax};

/// Both models' behaviour on the same token sequences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Positions scored (every token after the first of each sequence).
    pub positions: usize,
    pub reference_perplexity: f64,
    pub candidate_perplexity: f64,
    /// Candidate over reference perplexity: 1.0 means no loss.
    pub perplexity_ratio: f64,
    /// Mean over positions of KL(reference ‖ candidate), in nats.
    pub mean_kl_divergence: f64,
    /// Share of positions where both models rank the same token first.
    pub top1_agreement: f64,
}

/// Runs both models over every sequence and compares their next-token predictions.
///
/// Each sequence restarts from position 0; sequences longer than a model's context are an
/// error.
pub fn compare<R: Linear, C: Linear>(
    reference: &mut Model<R>,
    candidate: &mut Model<C>,
    sequences: &[Vec<u32>],
) -> Result<Comparison, ForwardError> {
    let mut positions = 0usize;
    let (mut ref_nll, mut cand_nll, mut kl_sum) = (0.0f64, 0.0f64, 0.0f64);
    let mut agree = 0usize;
    for seq in sequences {
        reference.reset();
        candidate.reset();
        for (pos, pair) in seq.windows(2).enumerate() {
            let (token, next) = (pair[0], pair[1] as usize);
            let p = reference.forward(token, pos)?;
            let q = candidate.forward(token, pos)?;
            let (p_lse, q_lse) = (log_sum_exp(p), log_sum_exp(q));
            ref_nll += p_lse - p[next] as f64;
            cand_nll += q_lse - q[next] as f64;
            // KL(p‖q) = Σ p_i (log p_i − log q_i) with log-probabilities from the logits.
            kl_sum += p
                .iter()
                .zip(q)
                .map(|(&pl, &ql)| {
                    let log_p = pl as f64 - p_lse;
                    let log_q = ql as f64 - q_lse;
                    libm::exp(log_p) * (log_p - log_q)
                })
                .sum::<f64>();
            agree += usize::from(argmax(p) == argmax(q));
            positions += 1;
        }
    }
    let n = positions.max(1) as f64;
    let reference_perplexity = libm::exp(ref_nll / n);
    let candidate_perplexity = libm::exp(cand_nll / n);
    Ok(Comparison {
        positions,
        reference_perplexity,
        candidate_perplexity,
        perplexity_ratio: candidate_perplexity / reference_perplexity,
        mean_kl_divergence: kl_sum / n,
        top1_agreement: agree as f64 / n,
    })
}

/// Perplexity of one model over the sequences: `exp(mean negative log-likelihood)`.
pub fn perplexity<W: Linear>(
    model: &mut Model<W>,
    sequences: &[Vec<u32>],
) -> Result<f64, ForwardError> {
    let (mut nll, mut positions) = (0.0f64, 0usize);
    for seq in sequences {
        model.reset();
        for (pos, pair) in seq.windows(2).enumerate() {
            let logits = model.forward(pair[0], pos)?;
            nll += log_sum_exp(logits) - logits[pair[1] as usize] as f64;
            positions += 1;
        }
    }
    Ok(libm::exp(nll / positions.max(1) as f64))
}

/// Generates `count` evaluation sequences of `len` tokens by sampling the model itself from
/// `start` (typically BOS) with temperature 1 and a fixed seed: text the model finds natural, so
/// the comparison measures how far a candidate drifts from it, without needing a corpus.
pub fn sample_sequences<W: Linear>(
    model: &mut Model<W>,
    start: u32,
    count: usize,
    len: usize,
    seed: u64,
) -> Result<Vec<Vec<u32>>, ForwardError> {
    let mut sampler = Sampler::top_p(1.0, 1.0, seed);
    let mut sequences = Vec::with_capacity(count);
    for _ in 0..count {
        model.reset();
        let mut seq = Vec::with_capacity(len);
        seq.push(start);
        while seq.len() < len {
            let pos = seq.len() - 1;
            let logits = model.forward(seq[pos], pos)?;
            seq.push(sampler.sample(logits));
        }
        sequences.push(seq);
    }
    Ok(sequences)
}
