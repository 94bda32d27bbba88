//! The kernel's matrix-vector product equals dequantize-then-multiply for every codec, after a
//! round trip through the stored bytes.

use novaq::Tensor;
use novaq::codec::rng::Rng;
use novaq::codec::{Calibration, InputMoments, Mode, Options, compress_calibrated};
use novaq::format::write::{ModelInfo, package};
use novaq::kernel::ModelReader;
use std::sync::Arc;

fn random_tensor(name: &str, rows: usize, cols: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    // Heavy-ish tails so outliers are exercised.
    let data = (0..rows * cols)
        .map(|_| {
            let v = rng.normal();
            if rng.below(100) == 0 {
                v * 8.0
            } else {
                v * 0.02
            }
        })
        .collect();
    Tensor::new(name, vec![rows, cols], data)
}

fn check(mode: Mode, rotate: bool) {
    // 101 columns: a ragged last vector (dim 4 and 8) and a ragged last scalar group (and a
    // rotation of signs alone); 96 = 3 · 32 columns: a rotation that mixes runs.
    let tensors = [
        random_tensor("blk.0.attn_q.weight", 48, 101, 1),
        random_tensor("blk.1.attn_q.weight", 16, 96, 2),
    ];
    let mut options = Options::new(mode);
    options.rotate = rotate;
    options.train_vectors = 4096;
    options.rounds = 1;
    options.kmeans_iterations = 3;
    // Input moments for the first tensor (loud columns every 17th): its columns get scales and
    // it is coded with error feedback; the second is coded plainly.
    let mut calibration = Calibration::new();
    let mut rng = Rng::new(4);
    let cols = tensors[0].cols();
    let inputs: Vec<f32> = (0..300 * cols)
        .map(|i| {
            rng.normal()
                * if (i % cols).is_multiple_of(17) {
                    7.0
                } else {
                    1.0
                }
        })
        .collect();
    calibration.insert(
        tensors[0].name.clone(),
        Arc::new(InputMoments::from_inputs(&inputs, cols)),
    );
    let compressed = compress_calibrated(&tensors, &calibration, &options);
    if let novaq::codec::Encoding::Additive { tensor, .. } = &compressed.tensors[0].encoding {
        assert_eq!(tensor.column_scales.len(), tensors[0].cols());
        assert_eq!(tensor.rotation.is_some(), rotate);
    }
    let (manifest, shards) = package(&compressed, ModelInfo::default(), 1000);
    let mut reader =
        ModelReader::new(&manifest, shards.iter().map(Vec::as_slice).collect()).unwrap();
    let mut rng = Rng::new(9);
    for (t, c) in tensors.iter().zip(&compressed.tensors) {
        assert!(c.is_quantized(), "{mode}: {} was left in f32", t.name);
        let m = reader.matrix(&t.name).unwrap();
        assert_eq!((m.rows(), m.cols()), (t.rows(), t.cols()));
        let w = m.dequantize();
        let x: Vec<f32> = (0..t.cols()).map(|_| rng.normal()).collect();
        let mut out = vec![0f32; t.rows()];
        m.matvec(&x, &mut out);
        // Integer matrices multiply the input as quantized to 8 bits per block of 32 (the
        // kernel's own test bounds that rounding); the products must match on that input.
        let input = m.multiplied_input(&x);
        for (r, &o) in out.iter().enumerate() {
            let reference: f32 = w[r * t.cols()..(r + 1) * t.cols()]
                .iter()
                .zip(&input)
                .map(|(a, b)| a * b)
                .sum();
            let scale: f32 = w[r * t.cols()..(r + 1) * t.cols()]
                .iter()
                .zip(&x)
                .map(|(a, b)| (a * b).abs())
                .sum();
            assert!(
                (o - reference).abs() <= 1e-4 * scale.max(1e-6),
                "{mode} {} row {r}: kernel {o} reference {reference}",
                t.name
            );
        }
        // The decoded weights are those the codec measured its error on.
        let err: f64 = t
            .data
            .iter()
            .zip(&w)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let energy: f64 = t.data.iter().map(|&a| (a as f64).powi(2)).sum();
        assert!((err / energy - c.relative_mse).abs() < 1e-9);
    }
}

#[test]
fn additive_two_bit() {
    check(Mode::Additive { books: 2, dim: 8 }, true);
}

#[test]
fn additive_two_bit_unrotated() {
    check(Mode::Additive { books: 2, dim: 8 }, false);
}

#[test]
fn additive_four_bit() {
    check(Mode::Additive { books: 2, dim: 4 }, true);
}

#[test]
fn additive_three_books() {
    check(Mode::Additive { books: 3, dim: 8 }, true);
}

/// Vectors of 16: the kernel's generic table loop (4 and 8 have their own).
#[test]
fn additive_long_vectors() {
    check(Mode::Additive { books: 2, dim: 16 }, true);
}

#[test]
fn scalar_q4() {
    check(Mode::Scalar { bits: 4 }, false);
}

#[test]
fn scalar_q8() {
    check(Mode::Scalar { bits: 8 }, false);
}

#[test]
fn affine_q4() {
    check(Mode::Affine { group: 32 }, false);
}

#[test]
fn affine_q4_groups_of_64() {
    check(Mode::Affine { group: 64 }, false);
}
