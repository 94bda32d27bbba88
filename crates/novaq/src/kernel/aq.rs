//! Look-up-table matrix-vector product for additively quantized matrices.

use crate::format::blob::{AqTensor, f16_value};
use crate::rotation::Rotation;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

const ENTRIES: usize = 256;

#[derive(Debug, Clone)]
pub struct AqMatrix {
    rows: usize,
    cols: usize,
    dim: usize,
    books: usize,
    /// `books × 256 × dim`, shared by every matrix coded against the same set.
    codebooks: Arc<Vec<f32>>,
    scales: Vec<f32>,
    /// Empty, or one multiplier per input column.
    column_scales: Vec<f32>,
    codes: Vec<u8>,
    /// Row of each outlier.
    outlier_rows: Vec<u32>,
    outlier_cols: Vec<u32>,
    outlier_values: Vec<f32>,
    /// The transform the rows were coded in: inputs are rotated before the look-ups.
    rotation: Option<Rotation>,
}

impl AqMatrix {
    /// Panics when `codebooks` does not hold `books × 256 × dim` values.
    pub fn new(tensor: AqTensor, codebooks: Arc<Vec<f32>>) -> Self {
        assert_eq!(
            codebooks.len(),
            tensor.books * ENTRIES * tensor.dim,
            "codebook set does not match the tensor"
        );
        let mut outlier_rows = Vec::with_capacity(tensor.outliers.len());
        for (row, &count) in tensor.outliers.counts.iter().enumerate() {
            outlier_rows.extend(core::iter::repeat_n(row as u32, count as usize));
        }
        Self {
            rows: tensor.rows,
            cols: tensor.cols,
            dim: tensor.dim,
            books: tensor.books,
            codebooks,
            scales: tensor.scales.iter().map(|&s| f16_value(s)).collect(),
            column_scales: tensor.column_scales.iter().map(|&s| f16_value(s)).collect(),
            codes: tensor.codes,
            outlier_rows,
            outlier_cols: tensor.outliers.columns.iter().map(|&c| c as u32).collect(),
            outlier_values: tensor
                .outliers
                .corrections
                .iter()
                .map(|&v| f16_value(v))
                .collect(),
            rotation: tensor.rotation.map(|seed| Rotation::new(tensor.cols, seed)),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn codes_per_row(&self) -> usize {
        self.cols.div_ceil(self.dim) * self.books
    }

    pub fn matvec(&self, x: &[f32], out: &mut [f32]) {
        let rotated: Vec<f32>;
        let x = match &self.rotation {
            Some(rotation) => {
                let mut v = x.to_vec();
                rotation.apply(&mut v);
                rotated = v;
                &rotated[..]
            }
            None => x,
        };
        let (dim, books) = (self.dim, self.books);
        let per_row = self.codes_per_row();
        // table[(piece · books + book) · 256 + code] = x_piece · C_book[code]
        let mut table = vec![0f32; per_row * ENTRIES];
        let mut piece = vec![0f32; dim];
        for (p, tables) in table.chunks_exact_mut(books * ENTRIES).enumerate() {
            let start = p * dim;
            let end = (start + dim).min(self.cols);
            piece.fill(0.0);
            piece[..end - start].copy_from_slice(&x[start..end]);
            if !self.column_scales.is_empty() {
                for (v, s) in piece.iter_mut().zip(&self.column_scales[start..end]) {
                    *v *= s;
                }
            }
            match dim {
                4 => fill_tables::<4>(&self.codebooks, &piece, tables),
                8 => fill_tables::<8>(&self.codebooks, &piece, tables),
                _ => {
                    for (entry, t) in self.codebooks.chunks_exact(dim).zip(tables.iter_mut()) {
                        *t = entry.iter().zip(&piece).map(|(a, b)| a * b).sum();
                    }
                }
            }
        }
        let rows = out
            .iter_mut()
            .zip(self.codes.chunks_exact(per_row))
            .zip(&self.scales);
        if books == 2 {
            // Both books' look-ups of a piece in one step: half the loop overhead.
            for ((o, codes), &scale) in rows {
                let mut sum = 0f32;
                for (t, c) in table.chunks_exact(2 * ENTRIES).zip(codes.chunks_exact(2)) {
                    sum += t[c[0] as usize] + t[ENTRIES + c[1] as usize];
                }
                *o = scale * sum;
            }
        } else {
            for ((o, codes), &scale) in rows {
                let mut sum = 0f32;
                for (t, &code) in table.chunks_exact(ENTRIES).zip(codes) {
                    sum += t[code as usize];
                }
                *o = scale * sum;
            }
        }
        for ((&r, &c), &v) in self
            .outlier_rows
            .iter()
            .zip(&self.outlier_cols)
            .zip(&self.outlier_values)
        {
            out[r as usize] += v * x[c as usize];
        }
    }

    pub fn dequantize(&self) -> Vec<f32> {
        let (dim, books) = (self.dim, self.books);
        let per_row = self.codes_per_row();
        let padded = per_row / books * dim;
        let mut row = vec![0f32; padded];
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for (codes, &scale) in self.codes.chunks_exact(per_row).zip(&self.scales) {
            row.fill(0.0);
            for (piece, codes) in row.chunks_exact_mut(dim).zip(codes.chunks_exact(books)) {
                for (book, &code) in codes.iter().enumerate() {
                    let start = (book * ENTRIES + code as usize) * dim;
                    for (w, &e) in piece.iter_mut().zip(&self.codebooks[start..start + dim]) {
                        *w += e;
                    }
                }
            }
            if self.column_scales.is_empty() {
                out.extend(row[..self.cols].iter().map(|w| w * scale));
            } else {
                out.extend(
                    row[..self.cols]
                        .iter()
                        .zip(&self.column_scales)
                        .map(|(w, c)| w * scale * c),
                );
            }
        }
        for ((&r, &c), &v) in self
            .outlier_rows
            .iter()
            .zip(&self.outlier_cols)
            .zip(&self.outlier_values)
        {
            out[r as usize * self.cols + c as usize] += v;
        }
        if let Some(rotation) = &self.rotation {
            for row in out.chunks_exact_mut(self.cols) {
                rotation.undo(row);
            }
        }
        out
    }

    /// The row scales, as decoded.
    #[cfg(feature = "std")]
    pub(crate) fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Replaces the row scales and the codebook set: tuning ([`crate::codec::tune`]) moves
    /// them while the codes stay.
    #[cfg(feature = "std")]
    pub(crate) fn set_parameters(&mut self, scales: &[f32], codebooks: Arc<Vec<f32>>) {
        assert_eq!(scales.len(), self.rows, "one scale per row");
        assert_eq!(
            codebooks.len(),
            self.codebooks.len(),
            "same codebook layout"
        );
        self.scales.copy_from_slice(scales);
        self.codebooks = codebooks;
    }

    /// The adjoint of [`AqMatrix::dequantize`] in the row scales and the codebook entries:
    /// given `grad = ∂L/∂W` (`rows × cols`, laid out as `dequantize` returns `W`), adds
    /// `∂L/∂scale` into `scale_grad` (one per row) and `∂L/∂entry` into `book_grad`
    /// (`books × 256 × dim`, the set's layout). Outliers and column scales are held fixed.
    #[cfg(feature = "std")]
    pub(crate) fn parameter_gradients(
        &self,
        grad: &[f32],
        scale_grad: &mut [f32],
        book_grad: &mut [f32],
    ) {
        let (dim, books) = (self.dim, self.books);
        let per_row = self.codes_per_row();
        let padded = per_row / books * dim;
        // The padding past `cols` stays zero: it never reaches the decoded matrix.
        let mut g = vec![0f32; padded];
        let mut unscaled = vec![0f32; padded];
        let rows = grad
            .chunks_exact(self.cols)
            .zip(self.codes.chunks_exact(per_row))
            .zip(self.scales.iter().zip(scale_grad.iter_mut()));
        for ((grad_row, codes), (&scale, scale_grad)) in rows {
            g[..self.cols].copy_from_slice(grad_row);
            // `W = W̃ T` row by row (`dequantize` undoes the rotation), so `∂L/∂W̃ = (∂L/∂W) Tᵀ`:
            // each gradient row is rotated like an input.
            if let Some(rotation) = &self.rotation {
                rotation.apply(&mut g[..self.cols]);
            }
            for (v, s) in g.iter_mut().zip(&self.column_scales) {
                *v *= s;
            }
            unscaled.fill(0.0);
            let pieces = unscaled.chunks_exact_mut(dim).zip(g.chunks_exact(dim));
            for ((piece, g_piece), codes) in pieces.zip(codes.chunks_exact(books)) {
                for (book, &code) in codes.iter().enumerate() {
                    let start = (book * ENTRIES + code as usize) * dim;
                    let entry = &self.codebooks[start..start + dim];
                    let entry_grad = &mut book_grad[start..start + dim];
                    for i in 0..dim {
                        piece[i] += entry[i];
                        entry_grad[i] += scale * g_piece[i];
                    }
                }
            }
            *scale_grad += unscaled.iter().zip(&g).map(|(w, g)| w * g).sum::<f32>();
        }
    }

    pub fn resident_bytes(&self) -> usize {
        self.codes.len()
            + 4 * (self.scales.len() + self.column_scales.len())
            + 12 * self.outlier_values.len()
            + self.rotation.as_ref().map_or(0, Rotation::resident_bytes)
    }
}

/// `tables[e] = entry_e · piece` for every codebook entry of `D` values. With the length a
/// constant, the piece stays in locals and each entry is `D` loads and multiply-adds, with no
/// inner loop (the common vector lengths; others take the generic loop).
fn fill_tables<const D: usize>(codebooks: &[f32], piece: &[f32], tables: &mut [f32]) {
    let piece: [f32; D] = piece.try_into().expect("a piece holds D values");
    for (entry, t) in codebooks.chunks_exact(D).zip(tables.iter_mut()) {
        let mut sum = 0f32;
        for (a, b) in entry.iter().zip(&piece) {
            sum += a * b;
        }
        *t = sum;
    }
}
