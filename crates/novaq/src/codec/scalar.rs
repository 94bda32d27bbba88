//! Group-wise scalar baselines: q8 (`w = s · q`, q ∈ [−127, 127]) and q4 (`w = s · q`,
//! q ∈ [−8, 7], the scale chosen so the largest-magnitude weight of the group lands on −8).

use crate::format::blob::{ScalarTensor, f16_bits, f16_value};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Weights per scale: q8 spreads one f16 scale over 64 weights (8.25 bits per weight), q4 over
/// 32 (4.5 bits per weight), where the coarser grid needs the tighter range.
pub const fn group_size(bits: u32) -> usize {
    if bits >= 8 { 64 } else { 32 }
}

pub fn encode(tensor: &Tensor, bits: u32) -> ScalarTensor {
    let (rows, cols) = (tensor.rows(), tensor.cols());
    let group_len = group_size(bits);
    let groups = cols.div_ceil(group_len);
    let padded = groups * group_len;
    let per_row_bytes = padded * bits as usize / 8;
    let mut scales = vec![0u16; rows * groups];
    let mut values = vec![0u8; rows * per_row_bytes];
    scales
        .par_chunks_mut(groups)
        .zip(values.par_chunks_mut(per_row_bytes))
        .enumerate()
        .for_each(|(r, (scales, values))| {
            let row = tensor.row(r);
            for (g, scale_out) in scales.iter_mut().enumerate() {
                let start = g * group_len;
                let group = &row[start..(start + group_len).min(cols)];
                let extreme = group
                    .iter()
                    .copied()
                    .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
                let scale = if bits == 8 {
                    extreme.abs() / 127.0
                } else {
                    extreme / -8.0
                };
                *scale_out = f16_bits(scale);
                // Quantize against the scale the decoder will read.
                let stored = f16_value(*scale_out);
                let inverse = if stored != 0.0 { 1.0 / stored } else { 0.0 };
                for (i, &w) in group.iter().enumerate() {
                    let c = start + i;
                    if bits == 8 {
                        values[c] = ((w * inverse).round().clamp(-127.0, 127.0) as i8) as u8;
                    } else {
                        let q = ((w * inverse).round().clamp(-8.0, 7.0) + 8.0) as u8;
                        values[c / 2] |= if c.is_multiple_of(2) { q } else { q << 4 };
                    }
                }
                if bits == 4 {
                    // Padding decodes to zero: nibble 8 is q = 0.
                    for c in start + group.len()..start + group_len {
                        values[c / 2] |= if c.is_multiple_of(2) { 8 } else { 8 << 4 };
                    }
                }
            }
        });
    ScalarTensor {
        rows,
        cols,
        bits,
        group: group_len,
        scales,
        values,
    }
}
