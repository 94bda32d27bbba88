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
    /// Greedy at temperature 0, else nucleus sampling seeded with `seed`.
    pub fn for_params(temperature: f32, top_p: f32, seed: u64) -> Self {
        if temperature == 0.0 {
            Self::Greedy
        } else {
            Self::top_p(temperature, top_p, seed)
        }
    }

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

/// `(id, weight)` of every token whose weight is at least `floor`, most likely first, ties by
/// id, so the order (and thus the draw) is deterministic. The weights are non-negative, so their
/// bits order them: one integer key per token sorts in half the time of comparing pairs.
fn most_likely_first(weights: &[f32], floor: f32) -> Vec<(u32, f32)> {
    let mut keys: Vec<u64> = weights
        .iter()
        .enumerate()
        .filter(|(_, w)| **w >= floor)
        .map(|(id, w)| (u64::from(!w.to_bits()) << 32) | id as u64)
        .collect();
    keys.sort_unstable();
    keys.iter()
        .map(|&key| (key as u32, weights[key as u32 as usize]))
        .collect()
}

/// Weight buckets: a non-negative f32's exponent and top three mantissa bits, which order
/// like the weights (`weights ≤ 1` here, so 1,024 buckets cover them).
const BUCKET_SHIFT: u32 = 20;
const BUCKETS: usize = 1024;

/// The least weight whose bucket and all heavier ones hold at least `goal` of the mass: only
/// those tokens need sorting (a few hundred of SmolLM2's 49,152 instead of all of them).
fn nucleus_floor(weights: &[f32], goal: f32) -> f32 {
    let mut mass = [0f32; BUCKETS];
    for &w in weights {
        mass[((w.to_bits() >> BUCKET_SHIFT) as usize).min(BUCKETS - 1)] += w;
    }
    let mut cumulative = 0f32;
    for (bucket, &m) in mass.iter().enumerate().rev() {
        cumulative += m;
        if cumulative >= goal {
            return f32::from_bits((bucket as u32) << BUCKET_SHIFT);
        }
    }
    0.0
}

/// The smallest prefix of the tokens, most likely first, whose probability reaches `top_p`.
fn nucleus(weights: &[f32], total: f32, top_p: f32) -> Vec<(u32, f32)> {
    let reaching = |probs: &[(u32, f32)]| {
        let mut mass = 0.0;
        probs.iter().position(|&(_, p)| {
            mass += p / total;
            mass >= top_p
        })
    };
    // The tokens at or above the floor are a prefix of the full order; when their sums reach
    // `top_p` (they do unless rounding disagrees) the nucleus is the same as from all tokens.
    let floor = nucleus_floor(weights, top_p * total);
    let mut probs = most_likely_first(weights, floor);
    let kept = match reaching(&probs) {
        Some(last) => last + 1,
        None if floor == 0.0 => probs.len(),
        None => {
            probs = most_likely_first(weights, 0.0);
            reaching(&probs).map_or(probs.len(), |last| last + 1)
        }
    };
    probs.truncate(kept);
    probs
}

fn sample_top_p(logits: &[f32], temperature: f32, top_p: f32, coin: f32) -> u32 {
    let max = crate::math::max_of(logits);
    let weights: Vec<f32> = logits
        .iter()
        .map(|&l| crate::math::exp((l - max) / temperature))
        .collect();
    let total: f32 = weights.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        // NaN logits (or none finite) leave no distribution to draw from: the most likely
        // token instead of a trap.
        return argmax(logits);
    }
    let kept = nucleus(&weights, total, top_p);
    let kept_total: f32 = kept.iter().map(|p| p.1).sum();
    let mut target = coin * kept_total;
    for &(id, p) in &kept {
        if target < p {
            return id;
        }
        target -= p;
    }
    kept[kept.len() - 1].0
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
        assert_eq!(most_likely_first(&weights, 0.0), expected);
        assert_eq!(most_likely_first(&weights, 0.5), expected[..4]);
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
    fn the_nucleus_from_the_heaviest_buckets_is_the_nucleus_from_all_tokens() {
        let mut rng = Rng::new(3);
        for case in 0..200 {
            let n = 1 + case * 37 % 3000;
            let weights: Vec<f32> = (0..n)
                .map(|i| match i % 5 {
                    0 => 0.0,
                    1 => 1.0,
                    _ => crate::math::exp(-20.0 * rng.next_f32()),
                })
                .collect();
            let total: f32 = weights.iter().sum();
            let top_p = [0.1, 0.5, 0.9, 0.999, 1.0][case % 5];
            let all = most_likely_first(&weights, 0.0);
            let mut mass = 0.0;
            let kept = all
                .iter()
                .position(|&(_, p)| {
                    mass += p / total;
                    mass >= top_p
                })
                .map_or(all.len(), |last| last + 1);
            assert_eq!(nucleus(&weights, total, top_p), all[..kept], "case {case}");
        }
    }

    #[test]
    fn top_p_falls_back_to_the_most_likely_token_without_a_distribution() {
        let mut sampler = Sampler::top_p(0.8, 0.9, 1);
        assert_eq!(sampler.sample(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(sampler.sample(&[f32::NEG_INFINITY; 3]), 0);
        assert_eq!(sampler.sample(&[0.5, f32::NAN, 2.0]), 2);
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
