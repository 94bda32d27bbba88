//! What a projection's inputs look like: the second moment `E[x xᵀ]` of the vectors it
//! multiplies, measured by running the uncompressed model. Its diagonal (each column's mean
//! square input) weighs the codebook fit; the whole matrix drives error feedback
//! ([`super::feedback`]), which makes later columns absorb the errors of earlier ones.

use super::linalg::dot;
use crate::rotation::Rotation;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Input moments by tensor name. Projections that read the same input (a layer's q, k and v)
/// may share one value.
pub type Calibration = BTreeMap<String, Arc<InputMoments>>;

/// `E[x xᵀ]` over `samples` input vectors of `cols` values, row-major `cols × cols`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputMoments {
    pub cols: usize,
    pub samples: u64,
    pub matrix: Vec<f64>,
}

/// Columns of the transposed inputs reduced per task; bounds the f32 partial sums.
const SAMPLE_BLOCK: usize = 256;

impl InputMoments {
    /// Moments of `inputs`, `n × cols` row-major. Products are summed in f32 over blocks of
    /// [`SAMPLE_BLOCK`] samples and the blocks in f64, in a fixed order (deterministic).
    pub fn from_inputs(inputs: &[f32], cols: usize) -> Self {
        assert!(cols > 0 && inputs.len().is_multiple_of(cols));
        let n = inputs.len() / cols;
        // Transposed: one contiguous run per column, so every entry is one dot product.
        let mut columns = vec![0f32; inputs.len()];
        for (s, x) in inputs.chunks_exact(cols).enumerate() {
            for (c, &v) in x.iter().enumerate() {
                columns[c * n + s] = v;
            }
        }
        let mut matrix = vec![0f64; cols * cols];
        matrix
            .par_chunks_mut(cols)
            .enumerate()
            .for_each(|(i, row)| {
                let a = &columns[i * n..(i + 1) * n];
                for (j, out) in row.iter_mut().enumerate().skip(i) {
                    let b = &columns[j * n..(j + 1) * n];
                    let sum: f64 = a
                        .chunks(SAMPLE_BLOCK)
                        .zip(b.chunks(SAMPLE_BLOCK))
                        .map(|(x, y)| dot::<f32, 8>(x, y) as f64)
                        .sum();
                    *out = sum / n.max(1) as f64;
                }
            });
        for i in 0..cols {
            for j in 0..i {
                matrix[i * cols + j] = matrix[j * cols + i];
            }
        }
        Self {
            cols,
            samples: n as u64,
            matrix,
        }
    }

    /// The moments of `T x`: `T E[x xᵀ] Tᵀ`, for inputs that a rotated matrix multiplies.
    pub fn rotated(&self, rotation: &Rotation) -> Self {
        let n = self.cols;
        let mut matrix = self.matrix.clone();
        // Rows of E[x xᵀ] rotated give E[x xᵀ] Tᵀ; its transpose (T E[x xᵀ]) rotated row by
        // row gives the result, symmetric again.
        matrix.par_chunks_mut(n).for_each(|row| rotation.apply(row));
        for i in 0..n {
            for j in 0..i {
                matrix.swap(i * n + j, j * n + i);
            }
        }
        matrix.par_chunks_mut(n).for_each(|row| rotation.apply(row));
        Self {
            cols: n,
            samples: self.samples,
            matrix,
        }
    }

    /// Mean square input of each column (the diagonal).
    pub fn power(&self) -> Vec<f32> {
        (0..self.cols)
            .map(|c| self.matrix[c * self.cols + c] as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_moment_of_a_few_vectors() {
        // Samples (1, 2) and (3, -1): E[x xᵀ] = [[5, -0.5], [-0.5, 2.5]].
        let m = InputMoments::from_inputs(&[1.0, 2.0, 3.0, -1.0], 2);
        assert_eq!(m.samples, 2);
        assert_eq!(m.matrix, vec![5.0, -0.5, -0.5, 2.5]);
        assert_eq!(m.power(), vec![5.0, 2.5]);
    }

    #[test]
    fn rotated_moments_are_the_moments_of_rotated_inputs() {
        let cols = 24;
        let inputs: Vec<f32> = (0..cols * 40)
            .map(|i| ((i * 7919 % 61) as f32 - 30.0) / 10.0 + if i % cols == 5 { 4.0 } else { 0.0 })
            .collect();
        let rotation = Rotation::new(cols, 9);
        let mut rotated_inputs = inputs.clone();
        for x in rotated_inputs.chunks_exact_mut(cols) {
            rotation.apply(x);
        }
        let direct = InputMoments::from_inputs(&rotated_inputs, cols);
        let rotated = InputMoments::from_inputs(&inputs, cols).rotated(&rotation);
        for (a, b) in direct.matrix.iter().zip(&rotated.matrix) {
            assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }
}
