//! Choosing the next token from logits: greedy, or temperature and nucleus (top-p) sampling
//! driven by a seeded generator so every run is reproducible.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// SplitMix64: tiny, fast and statistically sound for sampling; seeded explicitly so generation
/// is deterministic (a canister has no ambient randomness anyway). Serializable so a paused
/// generation resumes with the same draws.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// How to pick the next token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Sampler {
    /// The most likely token (lowest id on ties).
    Greedy,
    /// Sample from `softmax(logits / temperature)` restricted to the smallest set of most likely
    /// tokens whose probability reaches `top_p`.
    TopP {
        temperature: f32,
        top_p: f32,
        rng: Rng,
    },
}

impl Sampler {
    pub fn top_p(temperature: f32, top_p: f32, seed: u64) -> Self {
        Self::TopP {
            temperature,
            top_p,
            rng: Rng::new(seed),
        }
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        match self {
            Self::Greedy => argmax(logits),
            Self::TopP {
                temperature,
                top_p,
                rng,
            } => {
                if *temperature <= 0.0 {
                    return argmax(logits);
                }
                sample_top_p(logits, *temperature, *top_p, rng.next_f32())
            }
        }
    }
}

/// Index of the largest logit, the first on ties.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// `(id, weight)` of every token, most likely first, ties by id, so the order (and thus the
/// draw) is deterministic. The weights are non-negative, so their bits order them: one integer
/// key per token sorts SmolLM2's 49,152 tokens in half the time of comparing pairs.
fn most_likely_first(weights: &[f32]) -> Vec<(u32, f32)> {
    let mut keys: Vec<u64> = weights
        .iter()
        .enumerate()
        .map(|(id, w)| (u64::from(!w.to_bits()) << 32) | id as u64)
        .collect();
    keys.sort_unstable();
    keys.iter()
        .map(|&key| (key as u32, weights[key as u32 as usize]))
        .collect()
}

fn sample_top_p(logits: &[f32], temperature: f32, top_p: f32, coin: f32) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f32> = logits
        .iter()
        .map(|&l| libm::expf((l - max) / temperature))
        .collect();
    let total: f32 = weights.iter().sum();
    let probs = most_likely_first(&weights);
    let mut kept = 0;
    let mut mass = 0.0;
    for &(_, p) in &probs {
        kept += 1;
        mass += p / total;
        if mass >= top_p {
            break;
        }
    }
    let nucleus = &probs[..kept];
    let nucleus_total: f32 = nucleus.iter().map(|p| p.1).sum();
    let mut target = coin * nucleus_total;
    for &(id, p) in nucleus {
        if target < p {
            return id;
        }
        target -= p;
    }
    nucleus[kept - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_most_likely_first_and_ties_by_id() {
        let weights = [0.5, 0.0, 1.0, 0.5, 1e-30, 0.25, 1.0, 0.0];
        let mut expected: Vec<(u32, f32)> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (i as u32, w))
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(most_likely_first(&weights), expected);
        let ids: Vec<u32> = expected.iter().map(|p| p.0).collect();
        assert_eq!(ids, [2, 6, 0, 3, 5, 4, 1, 7]);
    }

    #[test]
    fn rng_is_deterministic_and_uniform_enough() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let draws: Vec<f32> = (0..10_000).map(|_| a.next_f32()).collect();
        assert!(draws.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert_eq!(
            draws[..5],
            (0..5).map(|_| b.next_f32()).collect::<Vec<_>>()[..]
        );
        let mean = draws.iter().sum::<f32>() / draws.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn greedy_picks_the_first_maximum() {
        assert_eq!(Sampler::Greedy.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn top_p_never_leaves_the_nucleus_and_follows_probabilities() {
        // Probabilities ∝ e^2, e^1, e^0, e^-10 ≈ 0.665, 0.245, 0.090, 0: top_p 0.95 keeps the
        // first three.
        let logits = [2.0, 1.0, 0.0, -10.0];
        let mut sampler = Sampler::top_p(1.0, 0.95, 7);
        let mut counts = [0u32; 4];
        for _ in 0..20_000 {
            counts[sampler.sample(&logits) as usize] += 1;
        }
        assert_eq!(counts[3], 0);
        let p0 = counts[0] as f32 / 20_000.0;
        let expected = 1.0 / (1.0 + libm::expf(-1.0) + libm::expf(-2.0));
        assert!((p0 - expected).abs() < 0.02, "p0 {p0} vs {expected}");
        // At 0.9 the first two already reach 0.910, so the third is cut.
        let mut narrow = Sampler::top_p(1.0, 0.9, 7);
        assert!((0..2_000).all(|_| narrow.sample(&logits) < 2));
        // Same seed, same draws.
        let mut again = Sampler::top_p(1.0, 0.95, 7);
        let mut first = Sampler::top_p(1.0, 0.95, 7);
        for _ in 0..100 {
            assert_eq!(again.sample(&logits), first.sample(&logits));
        }
    }
}
