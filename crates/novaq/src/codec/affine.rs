//! Group-wise affine 4-bit integers: each group of 32 (or 64) weights on a 16-level grid from its
//! minimum to its maximum (`w = d · q + m`, q ∈ [0, 15]), the grid's step and origin in 8 bits
//! of a unit per row. The SIMD kernel ([`crate::kernel::BlockMatrix`]) reads it directly.
//!
//! A group's step and origin are rounded to the row's 8-bit grids, then the neighbouring
//! grid points (one step either way for each) are tried and the pair with the least squared
//! error kept: the rounded pair is not always the best once the values are re-rounded to it.
//! A source that was itself stored as min-and-step 4-bit groups of 32 (GGUF `Q4_1`) lands on
//! its own levels to within that 8-bit rounding.

use crate::format::blob::{AffineTensor, f16_bits, f16_value};
use crate::tensor::Tensor;
use rayon::prelude::*;

const LEVELS: f32 = 15.0;

/// `group`: weights per group, 32 or 64 ([`AffineTensor::GROUPS`]).
pub fn encode(tensor: &Tensor, group: usize) -> AffineTensor {
    assert!(
        AffineTensor::GROUPS.contains(&group),
        "affine groups are 32 or 64 weights"
    );
    let (rows, cols) = (tensor.rows(), tensor.cols());
    let groups = cols.div_ceil(group);
    let row_bytes = groups * group / 2;
    let mut row_units = vec![0u16; rows];
    let mut steps = vec![0u8; rows * groups];
    let mut offsets = vec![0i8; rows * groups];
    let mut values = vec![0u8; rows * row_bytes];
    row_units
        .par_iter_mut()
        .zip(steps.par_chunks_mut(groups))
        .zip(offsets.par_chunks_mut(groups))
        .zip(values.par_chunks_mut(row_bytes))
        .enumerate()
        .for_each(|(r, (((row_unit, steps), offsets), values))| {
            let row = tensor.row(r);
            let ranges: Vec<(f32, f32)> = row.chunks(group).map(finite_range).collect();
            // The largest step, or more when an origin needs it (origins reach −8 and
            // +127/16 units); rounded up (and capped at f16's largest), so every group's step
            // and origin fit within 255 and ±128 parts.
            let unit = ranges.iter().fold(0f32, |a, &(lo, hi)| {
                a.max((hi - lo) / LEVELS)
                    .max(-lo / 8.0)
                    .max(lo / (127.0 / 16.0))
            });
            *row_unit = f16_ceil(unit);
            // Fit against the unit the decoder will read.
            let unit = f16_value(*row_unit);
            for (g, (weights, &(lo, hi))) in row.chunks(group).zip(&ranges).enumerate() {
                let mut best = (f64::INFINITY, 0u8, 0i8);
                let offset0 = ratio(lo, unit, 16.0, f32::round);
                for offset in (offset0 - 1..=offset0 + 1).filter_map(|o| i8::try_from(o).ok()) {
                    let origin = AffineTensor::grid_of(unit, 0, offset).1;
                    // The least step whose grid from this origin reaches the group's maximum,
                    // and its neighbours.
                    let step0 = ratio((hi - origin) / LEVELS, unit, 255.0, f32::ceil);
                    for step in (step0 - 1..=step0 + 1).filter_map(|s| u8::try_from(s).ok()) {
                        let grid = AffineTensor::grid_of(unit, step, offset);
                        let error = weights
                            .iter()
                            .filter(|w| w.is_finite())
                            .map(|&w| {
                                let e = w - (grid.0 * level(w, grid) + grid.1);
                                f64::from(e * e)
                            })
                            .sum::<f64>();
                        if error < best.0 {
                            best = (error, step, offset);
                        }
                    }
                }
                let (_, step, offset) = best;
                steps[g] = step;
                offsets[g] = offset;
                let grid = AffineTensor::grid_of(unit, step, offset);
                for (i, &w) in weights.iter().enumerate() {
                    let c = g * group + i;
                    let q = level(w, grid) as u8;
                    values[c / 2] |= if c.is_multiple_of(2) { q } else { q << 4 };
                }
            }
        });
    AffineTensor {
        rows,
        cols,
        group,
        row_units,
        steps,
        offsets,
        values,
    }
}

/// `value / whole` in `parts`ths, rounded by `round` (0 when `whole` is 0).
fn ratio(value: f32, whole: f32, parts: f32, round: fn(f32) -> f32) -> i32 {
    if whole > 0.0 {
        round(value / whole * parts) as i32
    } else {
        0
    }
}

/// Smallest and largest finite weight of a group (`(0, 0)` when none is finite): one NaN or
/// infinity must not spoil the grid of its group or the scales of its row.
fn finite_range(weights: &[f32]) -> (f32, f32) {
    let finite = weights.iter().copied().filter(|w| w.is_finite());
    let lo = finite.clone().fold(f32::INFINITY, f32::min);
    let hi = finite.fold(f32::NEG_INFINITY, f32::max);
    if lo <= hi { (lo, hi) } else { (0.0, 0.0) }
}

/// The f16 bits of the least f16 at or above `v ≥ 0`, at most f16's largest finite value.
fn f16_ceil(v: f32) -> u16 {
    const F16_MAX: u16 = 0x7bff;
    let bits = f16_bits(v.min(65_504.0));
    if f16_value(bits) < v && bits < F16_MAX {
        bits + 1
    } else {
        bits
    }
}

/// The grid level nearest `w` on the grid `(step, origin)`.
fn level(w: f32, (step, origin): (f32, f32)) -> f32 {
    if step > 0.0 {
        ((w - origin) / step).round().clamp(0.0, LEVELS)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::SourceDType;

    fn tensor(rows: usize, cols: usize, data: Vec<f32>) -> Tensor {
        Tensor {
            name: "t".into(),
            shape: vec![rows, cols],
            source_dtype: SourceDType::F32,
            data,
        }
    }

    /// Rows of 4-bit min-and-step groups of 32, as GGUF Q4_1 stores them.
    fn q4_1_rows(rows: usize, cols: usize) -> Vec<f32> {
        let mut data = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                let g = c / 32;
                let (d, m) = (0.01 + 0.003 * (r + g) as f32, -0.05 - 0.01 * g as f32);
                data.push(d * ((c * 7 + r) % 16) as f32 + m);
            }
        }
        data
    }

    fn worst_error(data: &[f32], stored: &AffineTensor) -> f32 {
        let decoded = crate::kernel::BlockMatrix::from_affine(stored).dequantize();
        data.iter()
            .zip(&decoded)
            .fold(0f32, |a, (x, y)| a.max((x - y).abs()))
    }

    #[test]
    fn a_q4_1_source_keeps_its_levels() {
        let data = q4_1_rows(2, 96);
        let stored = encode(&tensor(2, 96, data.clone()), 32);
        // Within a small part of one 4-bit step (0.01 to 0.019).
        let worst = worst_error(&data, &stored);
        assert!(worst < 0.001, "worst error {worst}");
    }

    #[test]
    fn a_ragged_row_round_trips_within_half_a_step() {
        // 70 columns: the last group holds 6 weights and pads to 32.
        let data = q4_1_rows(2, 70);
        let stored = encode(&tensor(2, 70, data.clone()), 32);
        assert_eq!(stored.byte_len(), 2 * 2 + 2 * 2 * 3 + 2 * 3 * 16);
        let parsed = AffineTensor::from_bytes(&stored.to_bytes(), 2, 70, 32).unwrap();
        assert_eq!(parsed, stored);
        let largest_step = (0..2)
            .flat_map(|r| (0..3).map(move |g| (r, g)))
            .map(|(r, g)| stored.grid(r, g).0)
            .fold(0f32, f32::max);
        let worst = worst_error(&data, &stored);
        assert!(worst <= largest_step / 2.0 + 1e-4, "worst error {worst}");
        assert!(AffineTensor::from_bytes(&stored.to_bytes()[1..], 2, 70, 32).is_err());
    }

    #[test]
    fn non_finite_weights_spoil_nothing_else() {
        let mut data: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) * 0.01).collect();
        data[3] = f32::NAN;
        data[40] = f32::INFINITY;
        data[41] = f32::NEG_INFINITY;
        let stored = encode(&tensor(1, 64, data.clone()), 32);
        let decoded = crate::kernel::BlockMatrix::from_affine(&stored).dequantize();
        assert!(decoded.iter().all(|v| v.is_finite()), "{decoded:?}");
        // The first group's finite weights keep their grid.
        for c in (0..32).filter(|&c| c != 3) {
            assert!((decoded[c] - data[c]).abs() < 0.011, "column {c}");
        }
    }

    #[test]
    fn groups_far_from_zero_are_covered_to_their_maximum() {
        // A narrow group far from zero beside a wide one: its origin (in 16ths of the row's
        // unit, here set by that origin) may miss its minimum by half a sixteenth, but the
        // grid still reaches its maximum.
        let data: Vec<f32> = (0..64)
            .map(|c| {
                if c < 32 {
                    100.0 + 0.001 * c as f32
                } else {
                    (c as f32 - 48.0) * 2.0
                }
            })
            .collect();
        let stored = encode(&tensor(1, 64, data.clone()), 32);
        let decoded = crate::kernel::BlockMatrix::from_affine(&stored).dequantize();
        let origin_step = f16_value(stored.row_units[0]) / 16.0;
        for g in 0..2 {
            let step = stored.grid(0, g).0;
            for c in g * 32..(g + 1) * 32 {
                let error = (decoded[c] - data[c]).abs();
                assert!(
                    error <= (step / 2.0).max(origin_step / 2.0) + 1e-3,
                    "column {c}: {error}"
                );
            }
        }
    }

    #[test]
    fn constant_and_zero_rows_decode_exactly() {
        let stored = encode(&tensor(2, 32, [vec![0.0; 32], vec![0.5; 32]].concat()), 32);
        let decoded = crate::kernel::BlockMatrix::from_affine(&stored).dequantize();
        assert!(decoded[..32].iter().all(|&v| v == 0.0));
        assert!(
            decoded[32..].iter().all(|&v| (v - 0.5).abs() < 1e-3),
            "{decoded:?}"
        );
    }
}
