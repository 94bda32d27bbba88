//! Matrix-vector products straight on stored codes (`no_std + alloc`, runs in wasm32).
//!
//! For additive quantization the input vector is cut into the same `dim`-long pieces as the
//! weight rows; for each piece its dot product with each of the 256 entries of every codebook
//! is computed once (a look-up table of `cols / dim × books × 256` values). Each output is then
//! the sum of `books` table look-ups per piece times the row scale, plus the sparse outliers:
//! `rows · cols · books / dim` look-ups instead of `rows · cols` multiply-adds.
//!
//! Group-wise integer matrices (q8, q4, affine q4) multiply in integers against the input
//! quantized to 8 bits per block of 32 ([`BlockMatrix`]), four rows per SIMD dot product.

mod aq;
mod block;
mod load;

pub use aq::AqMatrix;
pub use block::{BLOCK, BlockInput, BlockMatrix};
pub use load::ModelReader;

use alloc::vec::Vec;

/// A weight matrix `[rows = outputs, cols = inputs]` in one of the stored encodings.
#[derive(Debug, Clone)]
pub struct QuantizedMatrix {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Dense {
        rows: usize,
        cols: usize,
        data: Vec<f32>,
    },
    Aq(AqMatrix),
    Block(BlockMatrix),
}

impl QuantizedMatrix {
    /// A matrix kept in f32 (small tensors the codec leaves uncompressed).
    pub fn dense(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "dense matrix data must be rows × cols"
        );
        Self {
            inner: Inner::Dense { rows, cols, data },
        }
    }

    pub fn rows(&self) -> usize {
        match &self.inner {
            Inner::Dense { rows, .. } => *rows,
            Inner::Aq(m) => m.rows(),
            Inner::Block(m) => m.rows(),
        }
    }

    pub fn cols(&self) -> usize {
        match &self.inner {
            Inner::Dense { cols, .. } => *cols,
            Inner::Aq(m) => m.cols(),
            Inner::Block(m) => m.cols(),
        }
    }

    /// `out = W x`. Panics when `x.len() != cols` or `out.len() != rows`.
    pub fn matvec(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), self.cols(), "input length must equal cols");
        assert_eq!(out.len(), self.rows(), "output length must equal rows");
        match &self.inner {
            Inner::Dense { cols, data, .. } => {
                for (o, row) in out.iter_mut().zip(data.chunks_exact(*cols)) {
                    *o = row.iter().zip(x).map(|(w, v)| w * v).sum();
                }
            }
            Inner::Aq(m) => m.matvec(x, out),
            Inner::Block(m) => m.matvec(x, out),
        }
    }

    /// `x` as [`QuantizedMatrix::matvec`] multiplies it: integer matrices round it to 8 bits
    /// per block of 32 ([`BlockInput`]), the others take it as it is. `matvec` equals the
    /// dequantized matrix times this, to float rounding.
    pub fn multiplied_input(&self, x: &[f32]) -> Vec<f32> {
        match &self.inner {
            Inner::Block(_) => BlockInput::new(x).dequantize(),
            Inner::Dense { .. } | Inner::Aq(_) => x.to_vec(),
        }
    }

    /// All weights, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        match &self.inner {
            Inner::Dense { data, .. } => data.clone(),
            Inner::Aq(m) => m.dequantize(),
            Inner::Block(m) => m.dequantize(),
        }
    }

    /// Bytes the weights occupy in memory while loaded.
    pub fn resident_bytes(&self) -> usize {
        match &self.inner {
            Inner::Dense { data, .. } => data.len() * 4,
            Inner::Aq(m) => m.resident_bytes(),
            Inner::Block(m) => m.resident_bytes(),
        }
    }
}

impl From<AqMatrix> for QuantizedMatrix {
    fn from(m: AqMatrix) -> Self {
        Self {
            inner: Inner::Aq(m),
        }
    }
}

impl From<BlockMatrix> for QuantizedMatrix {
    fn from(m: BlockMatrix) -> Self {
        Self {
            inner: Inner::Block(m),
        }
    }
}
