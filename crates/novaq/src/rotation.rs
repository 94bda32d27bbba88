//! A fixed random orthogonal transform of a matrix's input space (`no_std + alloc`).
//!
//! Trained weight matrices have heavy tails and a few columns far larger than the rest (they
//! meet the model's large activation channels); vector codebooks spend their entries on those
//! and code the bulk coarsely. Coding `W̃ = W Tᵀ` instead, for an orthogonal `T`, leaves every
//! product unchanged (`W̃ (T x) = W x`) and every error norm unchanged (`‖ΔW̃‖ = ‖ΔW‖`), but
//! spreads each column over all the others: the rows of `W̃` are close to Gaussian, the case the
//! codebooks fit best, and no column stands out.
//!
//! `T = (C_m ⊗ H_b) · D` for `n = m · b` columns, `b` the largest power of two dividing `n`:
//! `D` flips the sign of a pseudo-random half of the columns (from a seed), `H_b` is the
//! normalized Walsh–Hadamard transform on each run of `b` columns, and `C_m` the orthonormal
//! DCT-II across the `m` runs (left out when `m` exceeds [`MAX_MIXED_RUNS`]). Applying it costs
//! `n (log₂ b + m)` additions and multiplications, small next to a matrix-vector product.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::{Add, Mul, Sub};

/// Runs of columns mixed by the DCT: its cost grows with their count.
pub const MAX_MIXED_RUNS: usize = 64;

/// Arithmetic the transform needs, for f32 (the kernel) and f64 (input moments).
pub trait Real:
    Copy + Default + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    fn of(v: f64) -> Self;
    fn negated(self) -> Self;
}

impl Real for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn negated(self) -> Self {
        -self
    }
}

impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn negated(self) -> Self {
        -self
    }
}

/// The transform `T` for vectors of `n` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    n: usize,
    /// Length of each Walsh–Hadamard run (a power of two).
    run: usize,
    /// Columns whose sign `D` flips.
    flipped: Vec<bool>,
    /// `C_m`, row-major `m × m`; empty when the runs are not mixed.
    mix: Vec<f64>,
}

impl Rotation {
    /// The transform for `n` columns drawn from `seed`: the same pair always gives the same one.
    pub fn new(n: usize, seed: u64) -> Self {
        let run = if n == 0 { 1 } else { 1 << n.trailing_zeros() };
        let runs = n / run;
        let flipped = (0..n as u64)
            .map(|i| splitmix64(seed.wrapping_add(i)) >> 63 == 1)
            .collect();
        let mix = if runs > 1 && runs <= MAX_MIXED_RUNS {
            dct_matrix(runs)
        } else {
            Vec::new()
        };
        Self {
            n,
            run,
            flipped,
            mix,
        }
    }

    /// Bytes the transform holds (signs and the run-mixing matrix).
    pub fn resident_bytes(&self) -> usize {
        self.flipped.len() + 8 * self.mix.len()
    }

    /// `v ← T v`. Panics when `v.len()` is not the transform's length.
    pub fn apply<T: Real>(&self, v: &mut [T]) {
        assert_eq!(v.len(), self.n, "vector length must match the rotation");
        for (x, &flip) in v.iter_mut().zip(&self.flipped) {
            if flip {
                *x = x.negated();
            }
        }
        self.hadamard(v);
        self.mix_runs(v, false);
    }

    /// `v ← Tᵀ v`, undoing [`Rotation::apply`].
    pub fn undo<T: Real>(&self, v: &mut [T]) {
        assert_eq!(v.len(), self.n, "vector length must match the rotation");
        self.mix_runs(v, true);
        self.hadamard(v);
        for (x, &flip) in v.iter_mut().zip(&self.flipped) {
            if flip {
                *x = x.negated();
            }
        }
    }

    /// Normalized Walsh–Hadamard transform of each run (its own inverse).
    fn hadamard<T: Real>(&self, v: &mut [T]) {
        if self.run == 1 {
            return;
        }
        let scale = T::of(1.0 / libm::sqrt(self.run as f64));
        for block in v.chunks_exact_mut(self.run) {
            let mut half = 1;
            while half < self.run {
                for pair in block.chunks_exact_mut(2 * half) {
                    let (a, b) = pair.split_at_mut(half);
                    for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                        let (s, d) = (*x + *y, *x - *y);
                        *x = s;
                        *y = d;
                    }
                }
                half *= 2;
            }
            for x in block.iter_mut() {
                *x = *x * scale;
            }
        }
    }

    /// Multiplies the runs by `C_m` (or `C_mᵀ`): value `j` of every run mixes with value `j`
    /// of the others.
    fn mix_runs<T: Real>(&self, v: &mut [T], transposed: bool) {
        if self.mix.is_empty() {
            return;
        }
        let runs = self.n / self.run;
        // C (or Cᵀ) in the vector's precision: converted once per call, not once per product.
        let mix: Vec<T> = (0..runs * runs)
            .map(|i| {
                let (k, g) = (i / runs, i % runs);
                T::of(if transposed {
                    self.mix[g * runs + k]
                } else {
                    self.mix[i]
                })
            })
            .collect();
        // Run by run of the output, so the innermost loop runs along contiguous values (it
        // vectorizes); each value still sums its products in the order of the runs.
        let mut mixed = vec![T::default(); self.n];
        for (out, row) in mixed.chunks_exact_mut(self.run).zip(mix.chunks_exact(runs)) {
            for (&c, run) in row.iter().zip(v.chunks_exact(self.run)) {
                for (o, &x) in out.iter_mut().zip(run) {
                    *o = *o + c * x;
                }
            }
        }
        v.copy_from_slice(&mixed);
    }
}

/// Orthonormal DCT-II: `C[k][j] = s_k cos(π (j + ½) k / m)`, `s_0 = √(1/m)`, else `√(2/m)`.
fn dct_matrix(m: usize) -> Vec<f64> {
    let mut c = vec![0f64; m * m];
    for k in 0..m {
        let s = libm::sqrt(if k == 0 { 1.0 } else { 2.0 } / m as f64);
        for j in 0..m {
            c[k * m + j] =
                s * libm::cos(core::f64::consts::PI * (j as f64 + 0.5) * k as f64 / m as f64);
        }
    }
    c
}

/// SplitMix64: a well-mixed 64-bit value from a counter (portable, no state).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(n: usize) -> Vec<f64> {
        (0..n).map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.3).collect()
    }

    fn norm(v: &[f64]) -> f64 {
        v.iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    #[test]
    fn undo_inverts_apply_and_norms_are_kept() {
        // Power of two, mixed runs (576 = 9 · 64, 1536 = 3 · 512), odd, too many runs to mix.
        for n in [64, 576, 1536, 45, 2 * 97, 1] {
            let r = Rotation::new(n, 7);
            let x = vector(n);
            let mut y = x.clone();
            r.apply(&mut y);
            assert!(
                (norm(&y) - norm(&x)).abs() < 1e-9 * norm(&x).max(1.0),
                "n = {n}"
            );
            r.undo(&mut y);
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() < 1e-12, "n = {n}");
            }
        }
    }

    #[test]
    fn products_are_unchanged_when_both_sides_rotate() {
        let r = Rotation::new(576, 3);
        let (w, x) = (
            vector(576),
            vector(576).iter().rev().copied().collect::<Vec<_>>(),
        );
        let (mut wr, mut xr) = (w.clone(), x.clone());
        r.apply(&mut wr);
        r.apply(&mut xr);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        assert!((dot(&w, &x) - dot(&wr, &xr)).abs() < 1e-9);
    }

    #[test]
    fn a_spike_is_spread_over_every_column() {
        // One large column (an activation channel's weight) becomes n values of equal size
        // order: the point of rotating.
        let n = 576;
        let r = Rotation::new(n, 1);
        let mut v = vec![0f32; n];
        v[100] = 1.0;
        r.apply(&mut v);
        let largest = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(largest < 3.0 / (n as f32).sqrt(), "largest {largest}");
        assert!(v.iter().filter(|x| x.abs() > 1e-6).count() > n * 3 / 4);
    }

    #[test]
    fn the_seed_decides_the_signs() {
        let (a, b) = (Rotation::new(64, 1), Rotation::new(64, 2));
        assert_eq!(a, Rotation::new(64, 1));
        assert_ne!(a, b);
        let flips = a.flipped.iter().filter(|&&f| f).count();
        assert!((16..=48).contains(&flips), "{flips} of 64 flipped");
    }
}
