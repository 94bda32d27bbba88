//! One matrix through additive quantization: normalize rows and tame the heavy tail before
//! fitting, then (given codes) re-fit row scales and keep the largest errors as outliers.

use super::aq::Codebooks;
use crate::format::blob::{AqTensor, Outliers, f16_bits, f16_value};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Values examined to estimate a quantile; enough for a stable threshold, cheap on big tensors.
const QUANTILE_SAMPLE: usize = 1 << 20;

/// Bound on a column's emphasis relative to the median column: active columns may be coded up
/// to this much finer. Quiet columns are never coded coarser than an unweighted fit would
/// (measured: de-emphasising them costs more perplexity than it buys elsewhere).
const MAX_COLUMN_EMPHASIS: f32 = 8.0;
const MIN_COLUMN_EMPHASIS: f32 = 1.0;

/// A matrix in the units the codebooks see: columns weighted by the activations they meet
/// (when known), each row divided by its RMS, the few largest magnitudes clamped (they become
/// outliers anyway and would otherwise pull codebook entries away from the bulk), and each row
/// padded with zeros to a whole number of vectors.
pub struct Prepared {
    pub rows: usize,
    pub cols: usize,
    pub padded_cols: usize,
    pub row_rms: Vec<f32>,
    /// f16 bits of the decoder's per-column multipliers; empty without activation statistics.
    pub column_scales: Vec<u16>,
    /// The multipliers applied to columns before coding (inverses of the decoder's).
    pub column_emphasis: Vec<f32>,
    /// Magnitude the target is clamped to (in normalized units).
    pub clamp: f32,
    pub target: Vec<f32>,
}

/// `activation_power[c]` is the mean square of the input that meets column `c`, when known.
/// The error of an output is then `Σ_c ΔW_c x_c`, whose expected square weighs column `c` by
/// that power; scaling column `c` by its square root before an unweighted fit minimises it.
pub fn prepare(
    tensor: &Tensor,
    dim: usize,
    outlier_fraction: f64,
    activation_power: Option<&[f32]>,
) -> Prepared {
    let (rows, cols) = (tensor.rows(), tensor.cols());
    let padded_cols = cols.div_ceil(dim) * dim;
    let (column_scales, column_emphasis) = match activation_power {
        Some(power) if power.len() == cols => column_weights(power),
        _ => (Vec::new(), vec![1.0; cols]),
    };
    let row_rms: Vec<f32> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let row = tensor.row(r);
            let ms = row
                .iter()
                .zip(&column_emphasis)
                .map(|(&w, &e)| ((w * e) as f64).powi(2))
                .sum::<f64>()
                / cols as f64;
            if ms > 0.0 { ms.sqrt() as f32 } else { 1.0 }
        })
        .collect();
    let clamp = if outlier_fraction > 0.0 {
        let magnitudes = tensor
            .data
            .iter()
            .enumerate()
            .map(|(i, &w)| (w * column_emphasis[i % cols] / row_rms[i / cols]).abs());
        quantile(magnitudes, tensor.data.len(), 1.0 - outlier_fraction)
    } else {
        f32::INFINITY
    };
    let mut target = vec![0f32; rows * padded_cols];
    target
        .par_chunks_mut(padded_cols)
        .enumerate()
        .for_each(|(r, out)| {
            let inverse = 1.0 / row_rms[r];
            for ((o, &w), &e) in out.iter_mut().zip(tensor.row(r)).zip(&column_emphasis) {
                *o = (w * e * inverse).clamp(-clamp, clamp);
            }
        });
    Prepared {
        rows,
        cols,
        padded_cols,
        row_rms,
        column_scales,
        column_emphasis,
        clamp,
        target,
    }
}

impl Prepared {
    /// The target before clamping (what error feedback codes, row by row).
    pub fn unclamped(&self, tensor: &Tensor) -> Vec<f32> {
        let mut target = vec![0f32; self.rows * self.padded_cols];
        target
            .par_chunks_mut(self.padded_cols)
            .enumerate()
            .for_each(|(r, out)| {
                let inverse = 1.0 / self.row_rms[r];
                for ((o, &w), &e) in out.iter_mut().zip(tensor.row(r)).zip(&self.column_emphasis) {
                    *o = w * e * inverse;
                }
            });
        target
    }

    /// Per row, the columns kept exact: those beyond the clamp, at most 255 (the largest), none
    /// when a column index would not fit in 16 bits.
    pub fn outlier_columns(&self, unclamped: &[f32]) -> Vec<Vec<u16>> {
        if !self.clamp.is_finite() || self.cols > u16::MAX as usize + 1 {
            return vec![Vec::new(); self.rows];
        }
        unclamped
            .par_chunks(self.padded_cols)
            .map(|row| {
                largest_beyond(&row[..self.cols], |_| 1.0, self.clamp)
                    .into_iter()
                    .map(|c| c as u16)
                    .collect()
            })
            .collect()
    }
}

/// Builds the stored tensor from codes found with error feedback: row scales are the RMS the
/// rows were normalized by (a re-fit would undo the compensation), and the kept values become
/// f16 corrections in the source's units.
pub fn finalize_with_corrections(
    prepared: &Prepared,
    books: &Codebooks,
    codes: Vec<u8>,
    corrections: &[Vec<(u16, f32)>],
) -> AqTensor {
    let scales: Vec<u16> = prepared.row_rms.iter().map(|&r| f16_bits(r)).collect();
    let mut outliers = Outliers::default();
    for (row, kept) in corrections.iter().enumerate() {
        let s = f16_value(scales[row]);
        outliers.counts.push(kept.len() as u8);
        for &(c, v) in kept {
            outliers.columns.push(c);
            outliers
                .corrections
                .push(f16_bits(s * v / prepared.column_emphasis[c as usize]));
        }
    }
    AqTensor {
        rows: prepared.rows,
        cols: prepared.cols,
        dim: books.dim,
        books: books.books,
        scales,
        column_scales: prepared.column_scales.clone(),
        codes,
        outliers,
        rotation: None,
    }
}

/// Column emphasis `√(power / median power)`, bounded, and the decoder's f16 inverse of it
/// (the emphasis actually used is the exact inverse of the stored value). The median, not the
/// mean, is the reference because a few channels carry most of the activation energy.
fn column_weights(power: &[f32]) -> (Vec<u16>, Vec<f32>) {
    let mut sorted: Vec<f32> = power.iter().copied().filter(|p| p.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let scales: Vec<u16> = power
        .iter()
        .map(|&p| {
            let emphasis = if median > 0.0 && p.is_finite() {
                (p / median)
                    .sqrt()
                    .clamp(MIN_COLUMN_EMPHASIS, MAX_COLUMN_EMPHASIS)
            } else {
                1.0
            };
            f16_bits(1.0 / emphasis)
        })
        .collect();
    let emphasis = scales.iter().map(|&s| 1.0 / f16_value(s)).collect();
    (scales, emphasis)
}

/// The `q`-quantile of `count` values, estimated on a strided sample. The stride is coprime
/// with 2 and 3 so that it walks through every column of matrices whose widths are products of
/// them (all transformer widths) instead of sampling a few columns only.
fn quantile(values: impl Iterator<Item = f32>, count: usize, q: f64) -> f32 {
    let mut stride = count.div_ceil(QUANTILE_SAMPLE).max(1);
    while stride > 1 && (stride.is_multiple_of(2) || stride.is_multiple_of(3)) {
        stride += 1;
    }
    let mut sample: Vec<f32> = values.step_by(stride).collect();
    if sample.is_empty() {
        return f32::INFINITY;
    }
    let at = ((sample.len() as f64 * q) as usize).min(sample.len() - 1);
    *sample.select_nth_unstable_by(at, f32::total_cmp).1
}

/// Columns of `row` whose magnitude times `weight(column)` exceeds `threshold`: at most 255 per
/// row (what an outlier count byte holds), the largest, in column order.
fn largest_beyond(row: &[f32], weight: impl Fn(usize) -> f32, threshold: f32) -> Vec<usize> {
    let mut picked: Vec<(usize, f32)> = row
        .iter()
        .enumerate()
        .map(|(c, &v)| (c, (v * weight(c)).abs()))
        .filter(|&(_, m)| m > threshold)
        .collect();
    if picked.len() > u8::MAX as usize {
        picked.sort_by(|a, b| b.1.total_cmp(&a.1));
        picked.truncate(u8::MAX as usize);
        picked.sort_by_key(|p| p.0);
    }
    picked.into_iter().map(|(c, _)| c).collect()
}

/// Builds the stored tensor from codes: row scales re-fitted by least squares against the
/// clamped target, then the `outlier_fraction` of weights with the largest remaining error
/// stored as f16 corrections (at most 255 per row, none when a column index would not fit
/// in 16 bits).
pub fn finalize(
    tensor: &Tensor,
    prepared: &Prepared,
    books: &Codebooks,
    codes: Vec<u8>,
    outlier_fraction: f64,
) -> AqTensor {
    let (rows, cols, dim) = (prepared.rows, prepared.cols, books.dim);
    let codes_per_row = prepared.padded_cols / dim * books.books;
    let reconstruct_row = |r: usize| {
        let mut q = vec![0f32; prepared.padded_cols];
        for (piece, c) in q
            .chunks_exact_mut(dim)
            .zip(codes[r * codes_per_row..(r + 1) * codes_per_row].chunks_exact(books.books))
        {
            books.accumulate(c, piece);
        }
        q.truncate(cols);
        q
    };
    // Scale and error of every row.
    let fitted: Vec<(u16, Vec<f32>)> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let q = reconstruct_row(r);
            let t = &prepared.target[r * prepared.padded_cols..r * prepared.padded_cols + cols];
            let qq: f64 = q.iter().map(|&v| (v as f64) * (v as f64)).sum();
            let tq: f64 = q.iter().zip(t).map(|(&a, &b)| a as f64 * b as f64).sum();
            let gain = if qq > 0.0 && tq > 0.0 { tq / qq } else { 1.0 };
            let scale = f16_bits(prepared.row_rms[r] * gain as f32);
            let s = f16_value(scale);
            // Errors in the source's units, with the decoder's column multipliers applied.
            let errors = tensor
                .row(r)
                .iter()
                .zip(&q)
                .zip(&prepared.column_emphasis)
                .map(|((&w, &v), &e)| w - s * v / e)
                .collect();
            (scale, errors)
        })
        .collect();
    // Outliers are the largest errors as the fit weighed them (emphasised columns count more).
    let emphasis = &prepared.column_emphasis;
    let threshold = if outlier_fraction > 0.0 && cols <= u16::MAX as usize + 1 {
        let magnitudes = fitted
            .iter()
            .flat_map(|(_, e)| e.iter().zip(emphasis).map(|(v, w)| (v * w).abs()));
        quantile(magnitudes, rows * cols, 1.0 - outlier_fraction)
    } else {
        f32::INFINITY
    };
    let per_row: Vec<Vec<(u16, u16)>> = fitted
        .par_iter()
        .map(|(_, errors)| {
            largest_beyond(errors, |c| emphasis[c], threshold)
                .into_iter()
                .map(|c| (c as u16, f16_bits(errors[c])))
                .collect()
        })
        .collect();
    let mut outliers = Outliers::default();
    for row in &per_row {
        outliers.counts.push(row.len() as u8);
        for &(c, v) in row {
            outliers.columns.push(c);
            outliers.corrections.push(v);
        }
    }
    AqTensor {
        rows,
        cols,
        dim,
        books: books.books,
        scales: fitted.iter().map(|(s, _)| *s).collect(),
        column_scales: prepared.column_scales.clone(),
        codes,
        outliers,
        rotation: None,
    }
}
