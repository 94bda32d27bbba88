//! Matrix-vector product for group-wise 8- and 4-bit integer matrices.

use crate::format::blob::{ScalarTensor, f16_value};
use alloc::vec::Vec;

#[derive(Debug, Clone)]
pub struct ScalarMatrix {
    rows: usize,
    cols: usize,
    bits: u32,
    group: usize,
    scales: Vec<f32>,
    values: Vec<u8>,
}

impl ScalarMatrix {
    pub fn new(tensor: ScalarTensor) -> Self {
        Self {
            rows: tensor.rows,
            cols: tensor.cols,
            bits: tensor.bits,
            group: tensor.group,
            scales: tensor.scales.iter().map(|&s| f16_value(s)).collect(),
            values: tensor.values,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn groups_per_row(&self) -> usize {
        self.cols.div_ceil(self.group)
    }

    /// Integer value of weight `i` of the padded row-major matrix.
    fn level(&self, i: usize) -> f32 {
        if self.bits == 8 {
            self.values[i] as i8 as f32
        } else {
            let byte = self.values[i / 2];
            let nibble = if i.is_multiple_of(2) {
                byte & 15
            } else {
                byte >> 4
            };
            nibble as f32 - 8.0
        }
    }

    pub fn matvec(&self, x: &[f32], out: &mut [f32]) {
        let groups = self.groups_per_row();
        let padded = groups * self.group;
        for (r, o) in out.iter_mut().enumerate() {
            let mut total = 0f32;
            for g in 0..groups {
                let start = g * self.group;
                let end = (start + self.group).min(self.cols);
                let base = r * padded;
                let sum: f32 = if self.bits == 8 {
                    self.values[base + start..base + end]
                        .iter()
                        .zip(&x[start..end])
                        .map(|(&q, v)| q as i8 as f32 * v)
                        .sum()
                } else {
                    (start..end).map(|c| self.level(base + c) * x[c]).sum()
                };
                total += self.scales[r * groups + g] * sum;
            }
            *o = total;
        }
    }

    pub fn dequantize(&self) -> Vec<f32> {
        let groups = self.groups_per_row();
        let padded = groups * self.group;
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            for c in 0..self.cols {
                let scale = self.scales[r * groups + c / self.group];
                out.push(scale * self.level(r * padded + c));
            }
        }
        out
    }

    pub fn resident_bytes(&self) -> usize {
        self.values.len() + 4 * self.scales.len()
    }
}
