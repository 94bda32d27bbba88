//! The one operation a transformer needs from a weight matrix: a matrix-vector product.

use alloc::vec::Vec;

/// A `[rows, cols]` weight matrix, applied as `out = W · x`.
pub trait Linear {
    /// Output features.
    fn rows(&self) -> usize;
    /// Input features.
    fn cols(&self) -> usize;
    /// `out[r] = Σ_c W[r][c] · x[c]`; `x.len() == cols()`, `out.len() == rows()`.
    fn matvec(&self, x: &[f32], out: &mut [f32]);
}

/// A dense row-major f32 matrix: the uncompressed reference.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl DenseMatrix {
    /// `None` when `data` is not `rows × cols` long.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Option<Self> {
        (rows.checked_mul(cols) == Some(data.len())).then_some(Self { rows, cols, data })
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }
}

impl Linear for DenseMatrix {
    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn matvec(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), self.cols, "matvec input width");
        assert_eq!(out.len(), self.rows, "matvec output height");
        for (o, row) in out.iter_mut().zip(self.data.chunks_exact(self.cols)) {
            *o = crate::math::dot(row, x);
        }
    }
}

impl Linear for novaq::kernel::QuantizedMatrix {
    fn rows(&self) -> usize {
        novaq::kernel::QuantizedMatrix::rows(self)
    }

    fn cols(&self) -> usize {
        novaq::kernel::QuantizedMatrix::cols(self)
    }

    fn matvec(&self, x: &[f32], out: &mut [f32]) {
        novaq::kernel::QuantizedMatrix::matvec(self, x, out)
    }
}
