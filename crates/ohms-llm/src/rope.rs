//! Rotary position embeddings.
//!
//! GGUF Llama models rotate *adjacent* pairs `(x[2i], x[2i+1])` of each head: the GGUF
//! converters permute the Q and K projection rows of Hugging Face checkpoints (which rotate
//! `(x[i], x[i + d/2])`) into this order, and llama2.c checkpoints use it natively. Pair `i`
//! turns by `pos · θ^(-2i / rope_dim)`; dimensions past `rope_dim` are left alone.

use alloc::vec::Vec;

/// The cos/sin of every rotated pair at one position.
pub(crate) struct Rotation {
    cos_sin: Vec<(f32, f32)>,
}

impl Rotation {
    pub(crate) fn new(pos: usize, rope_dim: usize, theta: f32) -> Self {
        let cos_sin = (0..rope_dim / 2)
            .map(|i| {
                let freq = libm::pow(theta as f64, -2.0 * i as f64 / rope_dim as f64);
                let angle = pos as f64 * freq;
                (libm::cos(angle) as f32, libm::sin(angle) as f32)
            })
            .collect();
        Self { cos_sin }
    }

    /// Rotates every head of `x` (heads of `head_dim` laid end to end).
    pub(crate) fn apply(&self, x: &mut [f32], head_dim: usize) {
        for head in x.chunks_exact_mut(head_dim) {
            for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(&self.cos_sin) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos - b * sin;
                pair[1] = a * sin + b * cos;
            }
        }
    }

    /// Turns every head of `x` back: the inverse (and transpose) of [`Rotation::apply`].
    #[cfg(feature = "train")]
    pub(crate) fn undo(&self, x: &mut [f32], head_dim: usize) {
        for head in x.chunks_exact_mut(head_dim) {
            for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(&self.cos_sin) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos + b * sin;
                pair[1] = b * cos - a * sin;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity_and_rotation_keeps_norms() {
        let mut x = [1.0, 2.0, 3.0, 4.0];
        Rotation::new(0, 4, 10_000.0).apply(&mut x, 4);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
        Rotation::new(7, 4, 10_000.0).apply(&mut x, 4);
        // First pair turns by 7 rad, second by 7/100 rad.
        let (c, s) = (libm::cosf(7.0), libm::sinf(7.0));
        assert!((x[0] - (c - 2.0 * s)).abs() < 1e-5 && (x[1] - (s + 2.0 * c)).abs() < 1e-5);
        let n2 = x[2] * x[2] + x[3] * x[3];
        assert!((n2 - 25.0).abs() < 1e-4);
    }

    #[test]
    fn dimensions_past_rope_dim_are_untouched() {
        let mut x = [1.0, 0.0, 5.0, 6.0];
        Rotation::new(3, 2, 10_000.0).apply(&mut x, 4);
        assert_eq!(&x[2..], &[5.0, 6.0]);
    }
}
