//! What a projection's inputs look like: the second moment `E[x xᵀ]` of the vectors it
//! multiplies, measured by running the uncompressed model. Its diagonal (each column's mean
//! square input) weighs the codebook fit; the whole matrix drives error feedback
//! ([`super::feedback`]), which makes later columns absorb the errors of earlier ones.

use super::linalg::dot;
#[cfg(target_arch = "x86_64")]
use super::linalg::dots_2x2_avx2;
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

/// Samples whose products are summed in f32 before joining the f64 total; bounds the f32
/// partial sums.
const SAMPLE_BLOCK: usize = 256;

/// Running sums of `x xᵀ` over input vectors that arrive in pieces of any size, summed a
/// [`SAMPLE_BLOCK`] at a time, so measuring the moments of many samples needs memory for one
/// block, not for all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct MomentSums {
    cols: usize,
    samples: u64,
    /// Upper triangle (and diagonal) of `Σ x xᵀ`, row-major `cols × cols`.
    sums: Vec<f64>,
    /// Samples not yet summed: fewer than a block.
    pending: Vec<f32>,
}

impl MomentSums {
    pub fn new(cols: usize) -> Self {
        assert!(cols > 0);
        Self {
            cols,
            samples: 0,
            sums: vec![0f64; cols * cols],
            pending: Vec::new(),
        }
    }

    /// Adds `inputs`, `n × cols` row-major. Samples are summed [`SAMPLE_BLOCK`] at a time,
    /// however they arrive: products in f32 within a block, the blocks in f64, in order
    /// (deterministic).
    pub fn add(&mut self, inputs: &[f32]) {
        let cols = self.cols;
        assert!(inputs.len().is_multiple_of(cols));
        self.pending.extend_from_slice(inputs);
        let whole = self.pending.len() / (SAMPLE_BLOCK * cols) * SAMPLE_BLOCK * cols;
        let rest = self.pending.split_off(whole);
        let blocks = std::mem::replace(&mut self.pending, rest);
        self.sum_blocks(&blocks);
    }

    /// Sums `inputs` into the totals, [`SAMPLE_BLOCK`] samples at a time.
    fn sum_blocks(&mut self, inputs: &[f32]) {
        let cols = self.cols;
        for block in inputs.chunks(SAMPLE_BLOCK * cols) {
            let n = block.len() / cols;
            // Transposed: one contiguous run per column, so every entry is one dot product.
            let mut columns = vec![0f32; block.len()];
            for (s, x) in block.chunks_exact(cols).enumerate() {
                for (c, &v) in x.iter().enumerate() {
                    columns[c * n + s] = v;
                }
            }
            self.sums
                .par_chunks_mut(2 * cols)
                .enumerate()
                .for_each(|(pair, rows)| add_products(&columns, n, 2 * pair, rows));
            self.samples += n as u64;
        }
    }

    /// The mean of `x xᵀ` over every sample added.
    pub fn finish(mut self) -> InputMoments {
        let pending = std::mem::take(&mut self.pending);
        self.sum_blocks(&pending);
        let Self {
            cols,
            samples,
            sums: mut matrix,
            ..
        } = self;
        let n = samples.max(1) as f64;
        for i in 0..cols {
            for j in i..cols {
                matrix[i * cols + j] /= n;
            }
            for j in 0..i {
                matrix[i * cols + j] = matrix[j * cols + i];
            }
        }
        InputMoments {
            cols,
            samples,
            matrix,
        }
    }
}

/// Adds to `rows` (one or two rows of the sums, from row `first`) the products of their
/// columns of `columns` (`cols × n`, one contiguous run per column) with every later column:
/// the upper triangle, each entry one `dot::<f32, 8>`, so that the sums do not depend on the
/// instruction set.
fn add_products(columns: &[f32], n: usize, first: usize, rows: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { add_products_avx2(columns, n, first, rows) };
    }
    add_products_portable(columns, n, first, rows)
}

fn add_products_portable(columns: &[f32], n: usize, first: usize, rows: &mut [f64]) {
    let cols = columns.len() / n;
    let column = |c: usize| &columns[c * n..(c + 1) * n];
    for (i, row) in (first..).zip(rows.chunks_exact_mut(cols)) {
        for (j, out) in row.iter_mut().enumerate().skip(i) {
            *out += dot::<f32, 8>(column(i), column(j)) as f64;
        }
    }
}

/// [`add_products`] in 2 × 2 tiles of [`dots_2x2_avx2`]. A tile on the diagonal also writes
/// one entry below it, which [`MomentSums::finish`] overwrites.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_products_avx2(columns: &[f32], n: usize, first: usize, rows: &mut [f64]) {
    let cols = columns.len() / n;
    if rows.len() < 2 * cols {
        return add_products_portable(columns, n, first, rows);
    }
    let column = |c: usize| &columns[c * n..(c + 1) * n];
    let (top, bottom) = rows.split_at_mut(cols);
    let a = [column(first), column(first + 1)];
    let mut j = first;
    while j + 1 < cols {
        let [[p00, p01], [p10, p11]] = dots_2x2_avx2(a, [column(j), column(j + 1)]);
        top[j] += p00 as f64;
        top[j + 1] += p01 as f64;
        bottom[j] += p10 as f64;
        bottom[j + 1] += p11 as f64;
        j += 2;
    }
    if j < cols {
        top[j] += dot::<f32, 8>(a[0], column(j)) as f64;
        bottom[j] += dot::<f32, 8>(a[1], column(j)) as f64;
    }
}

impl InputMoments {
    /// Moments of `inputs`, `n × cols` row-major (see [`MomentSums::add`]).
    pub fn from_inputs(inputs: &[f32], cols: usize) -> Self {
        let mut sums = MomentSums::new(cols);
        sums.add(inputs);
        sums.finish()
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
    fn sums_taken_block_by_block_match_the_sums_of_all_inputs() {
        let cols = 5;
        let inputs: Vec<f32> = (0..cols * (2 * SAMPLE_BLOCK + 37))
            .map(|i| ((i * 7919 % 61) as f32 - 30.0) / 10.0)
            .collect();
        let all = InputMoments::from_inputs(&inputs, cols);
        // Two parts, the first added in uneven pieces: the same moments (up to f64 rounding).
        let (first, second) = inputs.split_at(cols * (SAMPLE_BLOCK + 11));
        let mut a = MomentSums::new(cols);
        for piece in first.chunks(cols * 100) {
            a.add(piece);
        }
        a.add(second);
        let merged = a.finish();
        assert_eq!(merged.samples, all.samples);
        for (x, y) in merged.matrix.iter().zip(&all.matrix) {
            assert!((x - y).abs() < 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
        }
        // Symmetric, and nothing added means zero moments.
        assert_eq!(merged.matrix[cols], merged.matrix[1]);
        assert_eq!(MomentSums::new(2).finish().matrix, vec![0.0; 4]);
    }

    #[test]
    fn tiled_products_equal_one_dot_product_per_entry_bit_for_bit() {
        // 7 columns (odd: a last single row and column) of 29 samples (a tail past the lanes).
        let (cols, n) = (7, 29);
        let columns: Vec<f32> = (0..cols * n)
            .map(|i| ((i * 7919 % 97) as f32 - 48.0) / 7.0)
            .collect();
        let column = |c: usize| &columns[c * n..(c + 1) * n];
        let mut expected = vec![0f64; cols * cols];
        for i in 0..cols {
            for j in i..cols {
                expected[i * cols + j] = dot::<f32, 8>(column(i), column(j)) as f64;
            }
        }
        let upper = |sums: &[f64]| -> Vec<f64> {
            (0..cols * cols)
                .map(|e| if e % cols >= e / cols { sums[e] } else { 0.0 })
                .collect()
        };
        let mut dispatched = vec![0f64; cols * cols];
        let mut portable = vec![0f64; cols * cols];
        for (pair, (d, p)) in dispatched
            .chunks_mut(2 * cols)
            .zip(portable.chunks_mut(2 * cols))
            .enumerate()
        {
            add_products(&columns, n, 2 * pair, d);
            add_products_portable(&columns, n, 2 * pair, p);
        }
        assert_eq!(upper(&dispatched), expected);
        assert_eq!(upper(&portable), expected);
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
