//! Row-major matrix products on both cores, for the sequence-level passes.

use rayon::prelude::*;

/// A `rows × cols` operand: a slice and its row and column strides, so a transposed view costs
/// nothing.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `rows × cols` matrix.
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix data matches its shape");
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, without copying.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// Output rows (or columns) each task takes at least: below this, splitting costs more than
/// it saves.
const MIN_TASK_ROWS: usize = 16;

/// The output matrix of a product, shared by tasks that each write their own rows or columns.
struct Output(*mut f32);

// SAFETY: tasks write disjoint parts of the output (see `matmul`), and `matmul` holds the only
// borrow of it until every task has finished.
unsafe impl Sync for Output {}

/// `c = a · b` (`accumulate`: `c += a · b`); `c` is row-major `a.rows × b.cols`.
///
/// Each task computes a block of rows or of columns of `c`, and packs (copies into its
/// kernel's layout) the part of the other operand that block needs: all of `b` for a block of
/// rows, all of `a` for a block of columns. The split is over whichever of `c`'s dimensions
/// makes the copied operand the smaller one: a projection of 128 positions through a
/// 576 × 1,536 matrix splits over columns and copies the 74 K activations per task rather than
/// the 885 K weights. Every entry of `c` sums the same products in the same order either way.
pub(crate) fn matmul(a: View<'_>, b: View<'_>, c: &mut [f32], accumulate: bool) {
    assert_eq!(a.cols, b.rows, "inner dimensions agree");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(c.len(), m * n, "output matches the product's shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    // The last element each operand is read at, so the unchecked kernel stays in bounds.
    assert!(
        (m - 1) * a.row_stride + (k - 1) * a.col_stride < a.data.len(),
        "left operand in bounds"
    );
    assert!(
        (k - 1) * b.row_stride + (n - 1) * b.col_stride < b.data.len(),
        "right operand in bounds"
    );
    let split_rows = m >= n;
    let extent = if split_rows { m } else { n };
    let task_len = extent
        .div_ceil(4 * rayon::current_num_threads())
        .max(MIN_TASK_ROWS);
    let beta = if accumulate { 1.0 } else { 0.0 };
    let output = Output(c.as_mut_ptr());
    let output = &output;
    (0..extent.div_ceil(task_len))
        .into_par_iter()
        .for_each(|task| {
            let first = task * task_len;
            let len = task_len.min(extent - first);
            let (rows, cols) = if split_rows { (len, n) } else { (m, len) };
            let (a_offset, b_offset, c_offset) = if split_rows {
                (first * a.row_stride, 0, first * n)
            } else {
                (0, first * b.col_stride, first)
            };
            debug_assert!(c_offset + (rows - 1) * n + cols <= m * n);
            // SAFETY: the asserts above bound every element sgemm reads from `a` and `b`; the
            // task writes the `rows × cols` block of `c` at `c_offset` (row stride `n`), inside
            // `c` and disjoint from every other task's block.
            unsafe {
                matrixmultiply::sgemm(
                    rows,
                    k,
                    cols,
                    1.0,
                    a.data.as_ptr().add(a_offset),
                    a.row_stride as isize,
                    a.col_stride as isize,
                    b.data.as_ptr().add(b_offset),
                    b.row_stride as isize,
                    b.col_stride as isize,
                    beta,
                    output.0.add(c_offset),
                    n as isize,
                    1,
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_and_transposed_views_match_the_naive_product() {
        // Tall (split over rows) and wide (split over columns), each in several tasks.
        for (m, k, n) in [(70, 13, 9), (9, 13, 70), (40, 5, 40)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5) % 13) as f32 * 0.5 - 3.0)
                .collect();
            let expected = naive(&a, &b, m, k, n);
            let mut c = vec![1f32; m * n];
            matmul(View::new(&a, m, k), View::new(&b, k, n), &mut c, false);
            assert_eq!(c, expected, "{m} × {k} × {n}");
            // Aᵀ and Bᵀ stored as their own row-major matrices, viewed transposed again.
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let mut c2 = expected.clone();
            matmul(
                View::new(&at, k, m).t(),
                View::new(&bt, n, k).t(),
                &mut c2,
                true,
            );
            let doubled: Vec<f32> = expected.iter().map(|v| 2.0 * v).collect();
            assert_eq!(c2, doubled, "{m} × {k} × {n}, transposed");
        }
    }
}
