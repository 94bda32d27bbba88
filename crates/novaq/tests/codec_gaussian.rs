//! Rate-distortion sanity on i.i.d. Gaussian weights: the 2-bit mode must not beat the
//! Shannon bound (2^-4 = 0.0625 relative MSE) — that would mean the accounting is wrong — and
//! must stay close to it.

use novaq::Tensor;
use novaq::codec::rng::Rng;
use novaq::codec::{Mode, Options, compress};

fn gaussian(rows: usize, cols: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let data = (0..rows * cols).map(|_| rng.normal()).collect();
    Tensor::new("blk.0.ffn_up.weight", vec![rows, cols], data)
}

fn relative_mse(rows: usize, cols: usize, mode: Mode) -> f64 {
    let tensor = gaussian(rows, cols, 5);
    let mut options = Options::new(mode);
    options.outlier_fraction = 0.0;
    options.train_vectors = 1 << 15;
    options.rounds = 2;
    options.kmeans_iterations = 8;
    compress(&[tensor], &options).tensors[0].relative_mse
}

#[test]
fn two_bit_gaussian_sits_just_above_the_shannon_bound() {
    let err = relative_mse(512, 1024, Mode::Additive { books: 2, dim: 8 });
    assert!((0.0625..0.10).contains(&err), "relative MSE {err}");
}

#[test]
fn more_bits_less_error() {
    let two = relative_mse(128, 512, Mode::Additive { books: 2, dim: 8 });
    let three = relative_mse(128, 512, Mode::Additive { books: 3, dim: 8 });
    let q4 = relative_mse(128, 512, Mode::Scalar { bits: 4 });
    let q8 = relative_mse(128, 512, Mode::Scalar { bits: 8 });
    assert!(
        two > three && three > q4 && q4 > q8,
        "{two} {three} {q4} {q8}"
    );
    assert!(q8 < 1e-4, "q8 {q8}");
}
