//! Numeric building blocks of the forward pass.

/// Dot product with eight independent accumulators: breaks the add dependency chain, and sums
/// in a fixed order so results are reproducible. With wasm SIMD the eight accumulators are two
/// `f32x4` (lanes `i` and `4 + i`) and the same sums happen in the same order, so native and
/// canister results are bit-identical. Inlined: attention calls it once per cached position
/// and head.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    let whole = a.len() - a.len() % 8;
    let acc = eight_lane_products(&a[..whole], &b[..whole]);
    let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
    pair_up(acc, tail)
}

/// How [`dot`] adds up its eight accumulators and the tail, in this order.
#[inline(always)]
fn pair_up(acc: [f32; 8], tail: f32) -> f32 {
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
}

/// `acc[i] = Σ_k a[8k + i] · b[8k + i]`; `a.len() == b.len()`, a multiple of 8.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn eight_lane_products(a: &[f32], b: &[f32]) -> [f32; 8] {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn eight_lane_products(a: &[f32], b: &[f32]) -> [f32; 8] {
    use core::arch::wasm32::*;
    assert!(a.len() == b.len() && a.len().is_multiple_of(8));
    let (pa, pb) = (a.as_ptr() as *const v128, b.as_ptr() as *const v128);
    let (mut low, mut high) = (f32x4_splat(0.0), f32x4_splat(0.0));
    for k in 0..a.len() / 8 {
        // SAFETY: vectors 2k and 2k + 1 lie within both slices (length asserted above);
        // wasm loads need no alignment.
        unsafe {
            low = f32x4_add(
                low,
                f32x4_mul(v128_load(pa.add(2 * k)), v128_load(pb.add(2 * k))),
            );
            high = f32x4_add(
                high,
                f32x4_mul(v128_load(pa.add(2 * k + 1)), v128_load(pb.add(2 * k + 1))),
            );
        }
    }
    lanes(low, high)
}

/// The eight accumulators of [`dot`] held as two vectors: lanes `i` and `4 + i`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn lanes(low: core::arch::wasm32::v128, high: core::arch::wasm32::v128) -> [f32; 8] {
    use core::arch::wasm32::f32x4_extract_lane as lane;
    [
        lane::<0>(low),
        lane::<1>(low),
        lane::<2>(low),
        lane::<3>(low),
        lane::<0>(high),
        lane::<1>(high),
        lane::<2>(high),
        lane::<3>(high),
    ]
}

/// One attention head over `scores.len()` cached positions: `scores[t] = q · k_t · scale`,
/// softmax, then `out = Σ_t scores[t] · v_t` (`keys` and `values` start at the head's offset,
/// positions `stride` apart). The same sums as [`dot`] and [`weighted_sum`] in the same order;
/// with wasm SIMD a 64-wide head (SmolLM2's) keeps the query and the output in registers for
/// the whole sweep instead of reloading them at every position.
pub(crate) fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let head_dim = q.len();
    assert_eq!(out.len(), head_dim, "one output per query value");
    if let Some(last) = scores.len().checked_sub(1) {
        assert!(
            keys.len() >= last * stride + head_dim && values.len() >= last * stride + head_dim,
            "keys and values hold every position"
        );
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if head_dim == 64 {
        // SAFETY: the lengths asserted above.
        unsafe { simd_head::attend_64(q, keys, values, stride, scale, scores, out) };
        return;
    }
    for (t, score) in scores.iter_mut().enumerate() {
        *score = dot(q, &keys[t * stride..][..head_dim]) * scale;
    }
    softmax(scores);
    weighted_sum(out, scores, values, stride);
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_head {
    use core::arch::wasm32::*;

    /// Vectors of a 64-wide head.
    const VECTORS: usize = 16;

    /// # Safety
    /// `q` and `out` hold 64 values; `keys` and `values` hold `(scores.len() − 1) · stride + 64`.
    #[inline(never)]
    pub(super) unsafe fn attend_64(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        stride: usize,
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        // SAFETY (all loads and stores below): offsets within the lengths the caller promised.
        let load = |p: *const f32, i: usize| unsafe { v128_load(p.add(4 * i) as *const v128) };
        let q: [v128; VECTORS] = core::array::from_fn(|i| load(q.as_ptr(), i));
        for (t, score) in scores.iter_mut().enumerate() {
            let k = unsafe { keys.as_ptr().add(t * stride) };
            // As `dot`: lanes i and 4 + i of each 8 accumulate in order, then pair up.
            let (mut low, mut high) = (f32x4_splat(0.0), f32x4_splat(0.0));
            for i in 0..VECTORS / 2 {
                low = f32x4_add(low, f32x4_mul(q[2 * i], load(k, 2 * i)));
                high = f32x4_add(high, f32x4_mul(q[2 * i + 1], load(k, 2 * i + 1)));
            }
            // A 64-wide dot has no tail: `dot` adds an empty sum there.
            let tail: f32 = [0f32; 0].iter().sum();
            *score = super::pair_up(super::lanes(low, high), tail) * scale;
        }
        super::softmax(scores);
        let mut acc = [f32x4_splat(0.0); VECTORS];
        for (t, &w) in scores.iter().enumerate() {
            let v = unsafe { values.as_ptr().add(t * stride) };
            let w = f32x4_splat(w);
            for (i, a) in acc.iter_mut().enumerate() {
                *a = f32x4_add(*a, f32x4_mul(w, load(v, i)));
            }
        }
        for (i, a) in acc.iter().enumerate() {
            unsafe { v128_store(out.as_mut_ptr().add(4 * i) as *mut v128, *a) };
        }
    }
}

/// `out[i] = Σ_t weights[t] · values[t · stride + i]` for `i < out.len()`: attention's weighted
/// sum of cached values (`values` starts at the head's offset), summed over `t` in order.
pub(crate) fn weighted_sum(out: &mut [f32], weights: &[f32], values: &[f32], stride: usize) {
    let dim = out.len();
    if let Some(last) = weights.len().checked_sub(1) {
        assert!(
            values.len() >= last * stride + dim,
            "values hold every position"
        );
    }
    weighted_sum_columns(out, weights, values, stride);
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn weighted_sum_columns(out: &mut [f32], weights: &[f32], values: &[f32], stride: usize) {
    out.fill(0.0);
    for (t, &w) in weights.iter().enumerate() {
        for (o, &v) in out.iter_mut().zip(&values[t * stride..]) {
            *o += w * v;
        }
    }
}

/// Four output columns at a time, each kept in a register over all positions (instead of
/// loading and storing the output at every position); the same sums in the same order.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn weighted_sum_columns(out: &mut [f32], weights: &[f32], values: &[f32], stride: usize) {
    use core::arch::wasm32::*;
    let whole = out.len() - out.len() % 4;
    for c in (0..whole).step_by(4) {
        let mut acc = f32x4_splat(0.0);
        for (t, &w) in weights.iter().enumerate() {
            // SAFETY: `weighted_sum` asserted `values` reaches column `out.len() - 1` of the
            // last position, so columns c..c + 4 of every position are in bounds.
            let v = unsafe { v128_load(values.as_ptr().add(t * stride + c) as *const v128) };
            acc = f32x4_add(acc, f32x4_mul(f32x4_splat(w), v));
        }
        // SAFETY: c + 4 <= whole <= out.len().
        unsafe { v128_store(out.as_mut_ptr().add(c) as *mut v128, acc) };
    }
    for (i, o) in out.iter_mut().enumerate().skip(whole) {
        *o = 0.0;
        for (t, &w) in weights.iter().enumerate() {
            *o += w * values[t * stride + i];
        }
    }
}

/// `out = x / rms(x) · weight`, with `rms(x) = sqrt(mean(x²) + eps)`.
pub(crate) fn rms_norm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let mean_square = dot(x, x) / x.len() as f32;
    let scale = 1.0 / libm::sqrtf(mean_square + eps);
    for ((o, &xi), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = xi * scale * w;
    }
}

/// In-place softmax, shifted by the maximum for stability.
/// The largest value (NaNs skipped; −∞ for none), by plain comparisons: the IC charges 18
/// instructions for `f32.max`.
pub(crate) fn max_of(x: &[f32]) -> f32 {
    x.iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

pub(crate) fn softmax(x: &mut [f32]) {
    let max = max_of(x);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = exp(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `e^x` in a few float operations and no calls, so loops over it vectorise (libm's `expf`
/// costs far more IC instructions; this is within 2.5e-7 of it, relatively, on [−87, 88]).
/// `2^n · e^r` with `n = round(x / ln 2)` (the 1.5 · 2²³ rounding trick, which also leaves `n`
/// in the low bits), `r = x − n ln 2` in two parts, `e^r` by its Taylor series to `r⁷`
/// (`|r| ≤ ln 2 / 2`). Inputs are clamped to [−87, 88], where `2^n` stays a normal float
/// (so `e^x` below −87 is `e^−87`, about 1.6e-38, not smaller).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUNDING: f32 = 12_582_912.0;
    const LN2_HIGH: f32 = 0.693_145_75;
    const LN2_LOW: f32 = 1.428_606_8e-6;
    // Comparisons, not `clamp` (`f32.min`/`f32.max` cost 18 each on the IC), and NaN passes.
    #[allow(clippy::manual_clamp)]
    let x = if x < -87.0 {
        -87.0
    } else if x > 88.0 {
        88.0
    } else {
        x
    };
    let shifted = x * core::f32::consts::LOG2_E + ROUNDING;
    let n = shifted - ROUNDING;
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDING.to_bits()) as i32;
    let r = (x - n * LN2_HIGH) - n * LN2_LOW;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    f32::from_bits((n_bits.wrapping_add(127) << 23) as u32) * p
}

/// `log Σ exp(x)`, computed stably in f64 (evaluation sums many of these).
pub(crate) fn log_sum_exp(x: &[f32]) -> f64 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = x.iter().map(|&v| libm::exp(v as f64 - max)).sum();
    max + libm::log(sum)
}

/// SiLU, `x · σ(x)`.
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_for_all_tail_lengths() {
        for n in 0..20 {
            let a: alloc::vec::Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 2.0).collect();
            let b: alloc::vec::Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "n = {n}");
        }
    }

    #[test]
    fn weighted_sum_adds_each_column_over_positions() {
        // Three positions of stride 7, six columns read from offset 1 (a ragged last vector).
        let values: alloc::vec::Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let weights = [0.5, -1.0, 2.0];
        let mut out = [9.0f32; 6];
        weighted_sum(&mut out, &weights, &values[1..], 7);
        for (i, &o) in out.iter().enumerate() {
            let expected: f32 = (0..3).map(|t| weights[t] * values[1 + t * 7 + i]).sum();
            assert_eq!(o, expected, "column {i}");
        }
        weighted_sum(&mut out, &[], &[], 7);
        assert_eq!(out, [0.0; 6]);
    }

    #[test]
    fn exp_matches_libm_within_its_bound() {
        let mut worst = 0f32;
        for i in -87_000..88_000 {
            let x = i as f32 / 1000.0 + 0.000_37;
            let (ours, libm) = (exp(x), libm::expf(x));
            worst = worst.max((ours - libm).abs() / libm);
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(-87.0) > 0.0 && exp(1000.0).is_finite());
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = [1.0, 3.0, 2.0, -50.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[2] && x[2] > x[0] && x[3] < 1e-20);
        assert!((log_sum_exp(&[0.0, 0.0]) - libm::log(2.0)).abs() < 1e-12);
    }
}
