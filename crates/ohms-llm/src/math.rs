//! Numeric building blocks of the forward pass.

/// Dot product with eight independent accumulators: breaks the add dependency chain so the
/// compiler vectorises it, and sums in a fixed order so results are reproducible.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
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
pub(crate) fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `log Σ exp(x)`, computed stably in f64 (evaluation sums many of these).
pub(crate) fn log_sum_exp(x: &[f32]) -> f64 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = x.iter().map(|&v| libm::exp(v as f64 - max)).sum();
    max + libm::log(sum)
}

/// SiLU, `x · σ(x)`.
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + libm::expf(-x))
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
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = [1.0, 3.0, 2.0, -50.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[2] && x[2] > x[0] && x[3] < 1e-20);
        assert!((log_sum_exp(&[0.0, 0.0]) - libm::log(2.0)).abs() < 1e-12);
    }
}
