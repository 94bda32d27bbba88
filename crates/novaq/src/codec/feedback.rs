//! Error feedback (the GPTQ idea applied to vectors): a matrix is coded one block of `dim`
//! columns at a time, and the error each block leaves is pushed onto the columns not yet coded,
//! in the proportions that cancel its effect on the outputs best for the measured inputs.
//!
//! With `H` the inputs' second moment (in the coded units) and `H⁻¹ = UᵀU`, `U` upper
//! triangular, coding block `S` with error `δ` (one row) is compensated optimally by
//! `W[:, R] −= δ U_SS⁻¹ U_SR` for the columns `R` after it, and the block's own cost is
//! `‖δ U_SS⁻¹‖²`. Codes are therefore searched with the block's codebook entries (and target)
//! multiplied by `U_SS⁻¹`, which is the matching diagonal block of `V = U⁻¹`, `H = V Vᵀ`.

use super::aq::{BeamEncoder, Codebooks, decode};
use super::linalg::dot;
use super::moments::InputMoments;
use rayon::prelude::*;

/// Weight of padding columns (they are never decoded) relative to the mean diagonal.
const PADDING_WEIGHT: f64 = 1e-6;

/// The factors error feedback needs for one matrix of `cols` columns coded in vectors of `dim`.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorFeedback {
    /// Padded width: a whole number of vectors.
    pub cols: usize,
    pub dim: usize,
    /// `U`, row-major `cols × cols` (upper triangle used).
    u: Vec<f32>,
    /// `U_SS⁻¹` of every block `S`, row-major `dim × dim` each.
    blocks: Vec<f32>,
    /// `H` itself (damped, in coded units), row-major `cols × cols`: what [`refine`] measures
    /// the output error with. Kept only when asked for (it is as large as `u`).
    h: Option<Vec<f32>>,
}

impl ErrorFeedback {
    /// Factors for a matrix whose column `c` was multiplied by `emphasis[c]` before coding and
    /// padded to `padded` columns (`padded % dim == 0`). `damping` (a share of the mean
    /// diagonal) is added to the diagonal: it keeps `H` well conditioned and stops the
    /// compensation from fitting directions the calibration saw too little of. `keep_moments`
    /// keeps `H` itself for [`refine`]. `None` if the moments do not match.
    pub fn new(
        moments: &InputMoments,
        emphasis: &[f32],
        padded: usize,
        dim: usize,
        damping: f64,
        keep_moments: bool,
    ) -> Option<Self> {
        let cols = moments.cols;
        if emphasis.len() != cols || padded < cols || !padded.is_multiple_of(dim) {
            return None;
        }
        // H' = D⁻¹ H D⁻¹ in coded units, damped; padding columns nearly weightless.
        let n = padded;
        let mean_diag = (0..cols)
            .map(|c| moments.matrix[c * cols + c] / (emphasis[c] as f64).powi(2))
            .sum::<f64>()
            / cols as f64;
        let mean_diag = if mean_diag > 0.0 && mean_diag.is_finite() {
            mean_diag
        } else {
            1.0
        };
        // Reversed order (index n−1−i): the lower Cholesky factor K of the reversed matrix
        // gives V = J K J, upper triangular with H' = V Vᵀ.
        let mut k = vec![0f64; n * n];
        for i in 0..n {
            let a = n - 1 - i;
            for j in 0..n {
                let b = n - 1 - j;
                if a < cols && b < cols {
                    k[i * n + j] =
                        moments.matrix[a * cols + b] / (emphasis[a] as f64 * emphasis[b] as f64);
                }
            }
            k[i * n + i] += if a < cols { damping } else { PADDING_WEIGHT } * mean_diag;
        }
        let h = keep_moments.then(|| {
            (0..n * n)
                .map(|at| k[(n - 1 - at / n) * n + (n - 1 - at % n)] as f32)
                .collect::<Vec<f32>>()
        });
        if !cholesky_lower_in_place(&mut k, n) {
            return None;
        }
        let k_inverse = lower_inverse(&k, n);
        // U = J K⁻¹ J.
        let mut u = vec![0f32; n * n];
        for a in 0..n {
            for b in a..n {
                u[a * n + b] = k_inverse[(n - 1 - a) * n + (n - 1 - b)] as f32;
            }
        }
        // U_SS⁻¹ = V_SS = (J K J)_SS.
        let mut blocks = vec![0f32; n * dim];
        for s in 0..n / dim {
            for i in 0..dim {
                for j in 0..dim {
                    let (a, b) = (s * dim + i, s * dim + j);
                    blocks[s * dim * dim + i * dim + j] = k[(n - 1 - a) * n + (n - 1 - b)] as f32;
                }
            }
        }
        Some(Self {
            cols: n,
            dim,
            u,
            blocks,
            h,
        })
    }

    fn block(&self, s: usize) -> &[f32] {
        &self.blocks[s * self.dim * self.dim..(s + 1) * self.dim * self.dim]
    }
}

/// `H = K Kᵀ` in place (row-major: K in the lower triangle, the upper one zeroed). `false` when
/// not positive definite.
fn cholesky_lower_in_place(a: &mut [f64], n: usize) -> bool {
    for i in 0..n {
        let (done, rest) = a.split_at_mut(i * n);
        let row = &mut rest[..n];
        for j in 0..i {
            let kj = &done[j * n..j * n + j + 1];
            let s = row[j] - dot::<f64, 4>(&row[..j], &kj[..j]);
            row[j] = s / kj[j];
        }
        let d = row[i] - dot::<f64, 4>(&row[..i], &row[..i]);
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        row[i] = d.sqrt();
        row[i + 1..].iter_mut().for_each(|v| *v = 0.0);
    }
    true
}

/// Inverse of a lower-triangular `k` (row-major), column by column in parallel.
fn lower_inverse(k: &[f64], n: usize) -> Vec<f64> {
    let columns: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|j| {
            // x = K⁻¹ e_j, nonzero from row j on.
            let mut x = vec![0f64; n - j];
            x[0] = 1.0 / k[j * n + j];
            for i in j + 1..n {
                let s = dot::<f64, 4>(&k[i * n + j..i * n + i], &x[..i - j]);
                x[i - j] = -s / k[i * n + i];
            }
            x
        })
        .collect();
    let mut inverse = vec![0f64; n * n];
    for (j, x) in columns.into_iter().enumerate() {
        for (t, v) in x.into_iter().enumerate() {
            inverse[(j + t) * n + j] = v;
        }
    }
    inverse
}

/// A matrix coded with error feedback.
pub struct Coded {
    /// `books` codes per vector, row-major like [`BeamEncoder::encode`].
    pub codes: Vec<u8>,
    /// Per row, the kept exact values: (column, target minus the decoded codes).
    pub corrections: Vec<Vec<(u16, f32)>>,
}

/// Codes `target` (`rows × feedback.cols`, modified: it ends holding the compensated weights)
/// block by block. Values beyond `±clamp` are clamped for the code search; `outliers[r]`
/// (sorted columns) are kept exact, so their error is neither made nor propagated.
pub fn encode(
    target: &mut [f32],
    clamp: f32,
    outliers: &[Vec<u16>],
    books: &Codebooks,
    feedback: &ErrorFeedback,
    beam: usize,
) -> Coded {
    let (n, dim, m) = (feedback.cols, books.dim, books.books);
    assert_eq!(feedback.dim, dim);
    let rows = target.len() / n;
    let blocks = n / dim;
    let mut codes = vec![0u8; rows * blocks * m];
    let mut corrections: Vec<Vec<(u16, f32)>> = vec![Vec::new(); rows];
    let mut gathered = vec![0f32; rows * dim];
    for s in 0..blocks {
        let transform = feedback.block(s);
        let transformed = transformed(books, transform);
        gathered
            .par_chunks_mut(dim)
            .zip(target.par_chunks(n))
            .for_each(|(g, row)| {
                let x: Vec<f32> = row[s * dim..(s + 1) * dim]
                    .iter()
                    .map(|v| v.clamp(-clamp, clamp))
                    .collect();
                g.copy_from_slice(&multiply(&x, transform, dim));
            });
        let block_codes = BeamEncoder::new(&transformed, beam).encode(&gathered);
        target
            .par_chunks_mut(n)
            .zip(codes.par_chunks_mut(blocks * m))
            .zip(corrections.par_iter_mut())
            .zip(outliers.par_iter())
            .zip(block_codes.par_chunks(m))
            .for_each(|((((row, row_codes), kept), exact), c)| {
                row_codes[s * m..(s + 1) * m].copy_from_slice(c);
                let mut delta = row[s * dim..(s + 1) * dim].to_vec();
                let mut q = vec![0f32; dim];
                books.accumulate(c, &mut q);
                delta.iter_mut().zip(&q).for_each(|(d, v)| *d -= v);
                for &col in exact {
                    let col = col as usize;
                    if (s * dim..(s + 1) * dim).contains(&col) {
                        kept.push((col as u16, delta[col - s * dim]));
                        delta[col - s * dim] = 0.0;
                    }
                }
                let e = multiply(&delta, transform, dim);
                let rest = (s + 1) * dim;
                for (i, &ei) in e.iter().enumerate() {
                    if ei == 0.0 {
                        continue;
                    }
                    let u_row = &feedback.u[(s * dim + i) * n + rest..(s * dim + i + 1) * n];
                    for (w, &u) in row[rest..].iter_mut().zip(u_row) {
                        *w -= ei * u;
                    }
                }
            });
    }
    Coded { codes, corrections }
}

/// Block coordinate descent after [`encode`]. Error feedback settles every block before the
/// blocks after it are coded, so early blocks never answer the errors late ones leave. Each
/// sweep searches every block's codes again with all other blocks as they now are (the
/// block's best target given the rest, in the metric of its diagonal block of `H`) and keeps
/// them when the row's output error `eᵀ H e` drops; then each kept exact value moves to its
/// optimum given everything else. The error never grows.
///
/// `original` is the matrix `encode` was given (unclamped, before it compensated it). Blocks
/// holding a kept exact value keep their codes.
pub fn refine(
    original: &[f32],
    coded: &mut Coded,
    books: &Codebooks,
    feedback: &ErrorFeedback,
    beam: usize,
    sweeps: usize,
) {
    if sweeps == 0 {
        return;
    }
    let (n, dim, m) = (feedback.cols, books.dim, books.books);
    assert_eq!(feedback.dim, dim);
    let h = feedback
        .h
        .as_deref()
        .expect("refinement needs error feedback built with its moments kept");
    let rows = original.len() / n;
    let codes_per_row = n / dim * m;
    // Per row, the error e = w − ŵ and its image g = H e.
    let mut errors = decode(books, &coded.codes);
    errors
        .par_chunks_mut(n)
        .zip(original.par_chunks(n))
        .zip(coded.corrections.par_iter())
        .for_each(|((e, w), kept)| {
            e.iter_mut().zip(w).for_each(|(v, w)| *v = w - *v);
            for &(col, v) in kept {
                e[col as usize] -= v;
            }
        });
    let mut images = vec![0f32; rows * n];
    images
        .par_chunks_mut(n)
        .zip(errors.par_chunks(n))
        .for_each(|(g, e)| {
            for (i, gi) in g.iter_mut().enumerate() {
                *gi = dot::<f32, 8>(&h[i * n..(i + 1) * n], e);
            }
        });
    let add_column = |g: &mut [f32], col: usize, amount: f32| {
        for (gi, &hv) in g.iter_mut().zip(&h[col * n..(col + 1) * n]) {
            *gi += amount * hv;
        }
    };
    let mut gathered = vec![0f32; rows * dim];
    for _ in 0..sweeps {
        for s in 0..n / dim {
            let span = s * dim..(s + 1) * dim;
            let block: Vec<f64> = span
                .clone()
                .flat_map(|i| span.clone().map(move |j| h[i * n + j] as f64))
                .collect();
            let block32: Vec<f32> = block.iter().map(|&v| v as f32).collect();
            let mut factor = block;
            if !cholesky_lower_in_place(&mut factor, dim) {
                continue;
            }
            // H_SS⁻¹ = K⁻ᵀ K⁻¹.
            let k_inverse = lower_inverse(&factor, dim);
            let inverse: Vec<f32> = (0..dim * dim)
                .map(|at| {
                    let (i, j) = (at / dim, at % dim);
                    (0..dim)
                        .map(|t| k_inverse[t * dim + i] * k_inverse[t * dim + j])
                        .sum::<f64>() as f32
                })
                .collect();
            // ‖x K‖² = x H_SS xᵀ for row vectors x.
            let factor: Vec<f32> = factor.iter().map(|&v| v as f32).collect();
            let transformed = transformed(books, &factor);
            let current = |codes: &[u8]| {
                let mut q = vec![0f32; dim];
                books.accumulate(&codes[s * m..(s + 1) * m], &mut q);
                q
            };
            gathered
                .par_chunks_mut(dim)
                .zip(coded.codes.par_chunks(codes_per_row))
                .zip(images.par_chunks(n))
                .for_each(|((out, codes), g)| {
                    // The block's best value given the rest: q + H_SS⁻¹ g_S.
                    let mut t = current(codes);
                    let step = multiply(&g[span.clone()], &inverse, dim);
                    t.iter_mut().zip(&step).for_each(|(v, d)| *v += d);
                    out.copy_from_slice(&multiply(&t, &factor, dim));
                });
            let searched = BeamEncoder::new(&transformed, beam).encode(&gathered);
            coded
                .codes
                .par_chunks_mut(codes_per_row)
                .zip(coded.corrections.par_iter())
                .zip(errors.par_chunks_mut(n))
                .zip(images.par_chunks_mut(n))
                .zip(searched.par_chunks(m))
                .for_each(|((((codes, kept), e), g), found)| {
                    if kept.iter().any(|&(col, _)| span.contains(&(col as usize))) {
                        return;
                    }
                    let old = current(codes);
                    let mut new = vec![0f32; dim];
                    books.accumulate(found, &mut new);
                    // The error moves by d = q_old − q_new; eᵀHe moves by dᵀH_SS d + 2 d·g_S.
                    let d: Vec<f32> = old.iter().zip(&new).map(|(a, b)| a - b).collect();
                    let hd = multiply(&d, &block32, dim);
                    let change = dot::<f32, 4>(&d, &hd) + 2.0 * dot::<f32, 4>(&d, &g[span.clone()]);
                    if change >= 0.0 {
                        return;
                    }
                    codes[s * m..(s + 1) * m].copy_from_slice(found);
                    for (i, &di) in d.iter().enumerate() {
                        if di != 0.0 {
                            e[s * dim + i] += di;
                            add_column(g, s * dim + i, di);
                        }
                    }
                });
        }
        coded
            .corrections
            .par_iter_mut()
            .zip(errors.par_chunks_mut(n))
            .zip(images.par_chunks_mut(n))
            .for_each(|((kept, e), g)| {
                for (col, v) in kept.iter_mut() {
                    let c = *col as usize;
                    let step = -g[c] / h[c * n + c];
                    e[c] += step;
                    *v -= step;
                    add_column(g, c, step);
                }
            });
    }
}

/// The codebooks with every entry (a row vector) multiplied by `matrix` (`dim × dim`): a code
/// search against them measures distances in that matrix's metric.
fn transformed(books: &Codebooks, matrix: &[f32]) -> Codebooks {
    Codebooks {
        books: books.books,
        dim: books.dim,
        entries: books
            .entries
            .chunks_exact(books.dim)
            .flat_map(|e| multiply(e, matrix, books.dim))
            .collect(),
    }
}

/// Row vector times a `dim × dim` row-major matrix.
fn multiply(x: &[f32], matrix: &[f32], dim: usize) -> Vec<f32> {
    let mut out = vec![0f32; dim];
    for (i, &xi) in x.iter().enumerate() {
        for (o, &a) in out.iter_mut().zip(&matrix[i * dim..(i + 1) * dim]) {
            *o += xi * a;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::aq::{TrainConfig, train};
    use crate::codec::rng::Rng;

    /// Inputs with strongly correlated columns (a few latent factors), as in real layers.
    fn correlated_inputs(samples: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
        let factors = 4;
        let mixing: Vec<f32> = (0..factors * cols).map(|_| rng.normal()).collect();
        let mut x = Vec::with_capacity(samples * cols);
        for _ in 0..samples {
            let z: Vec<f32> = (0..factors).map(|_| rng.normal()).collect();
            for c in 0..cols {
                let v: f32 = (0..factors).map(|f| z[f] * mixing[f * cols + c]).sum();
                x.push(v + 0.1 * rng.normal());
            }
        }
        x
    }

    fn one_book(w: &[f32], dim: usize, kmeans_iterations: usize) -> Codebooks {
        let config = TrainConfig {
            books: 1,
            dim,
            beam: 4,
            kmeans_iterations,
            rounds: 0,
        };
        train(w, &config, &mut Rng::new(1))
    }

    /// Gaussian weights, correlated inputs, a codebook fitted to the weights and the feedback
    /// factors of the inputs' moments (lightly damped).
    struct Layer {
        w: Vec<f32>,
        x: Vec<f32>,
        books: Codebooks,
        feedback: ErrorFeedback,
    }

    fn layer(seed: u64, rows: usize, cols: usize, dim: usize) -> Layer {
        let mut rng = Rng::new(seed);
        let x = correlated_inputs(400, cols, &mut rng);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal()).collect();
        let books = one_book(&w, dim, 6);
        let moments = InputMoments::from_inputs(&x, cols);
        let feedback =
            ErrorFeedback::new(&moments, &vec![1.0; cols], cols, dim, 0.01, true).unwrap();
        Layer {
            w,
            x,
            books,
            feedback,
        }
    }

    fn output_error(w: &[f32], q: &[f32], x: &[f32], cols: usize) -> f64 {
        let mut err = 0f64;
        for (wr, qr) in w.chunks_exact(cols).zip(q.chunks_exact(cols)) {
            for xs in x.chunks_exact(cols) {
                let d: f32 = wr
                    .iter()
                    .zip(qr)
                    .zip(xs)
                    .map(|((a, b), v)| (a - b) * v)
                    .sum();
                err += (d as f64).powi(2);
            }
        }
        err
    }

    #[test]
    fn factors_reproduce_the_inverse() {
        let mut rng = Rng::new(3);
        let cols = 12;
        let x = correlated_inputs(200, cols, &mut rng);
        let moments = InputMoments::from_inputs(&x, cols);
        let f = ErrorFeedback::new(&moments, &vec![1.0; cols], cols, 4, 0.01, false).unwrap();
        // (UᵀU) H ≈ I, with H damped as in `new`.
        let mean = (0..cols).map(|c| moments.matrix[c * cols + c]).sum::<f64>() / cols as f64;
        for i in 0..cols {
            for j in 0..cols {
                let mut v = 0f64;
                for p in 0..cols {
                    let hinv: f64 = (0..cols)
                        .map(|t| f.u[t * cols + i] as f64 * f.u[t * cols + p] as f64)
                        .sum();
                    let h = moments.matrix[p * cols + j] + if p == j { 0.01 * mean } else { 0.0 };
                    v += hinv * h;
                }
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-3, "({i},{j}) {v}");
            }
        }
    }

    #[test]
    fn feedback_lowers_the_output_error() {
        let (rows, cols, dim) = (1024, 32, 8);
        let Layer {
            w,
            x,
            books,
            feedback,
        } = layer(5, rows, cols, dim);
        let plain = crate::codec::aq::decode(&books, &BeamEncoder::new(&books, 4).encode(&w));
        let mut target = w.clone();
        let coded = encode(
            &mut target,
            f32::INFINITY,
            &vec![Vec::new(); rows],
            &books,
            &feedback,
            4,
        );
        let fed = crate::codec::aq::decode(&books, &coded.codes);
        let (before, after) = (
            output_error(&w, &plain, &x, cols),
            output_error(&w, &fed, &x, cols),
        );
        assert!(after < 0.8 * before, "feedback {after} vs plain {before}");
    }

    /// `Σ_rows eᵀ H e` with `H` the damped moments `refine` measures by.
    fn h_error(w: &[f32], books: &Codebooks, coded: &Coded, feedback: &ErrorFeedback) -> f64 {
        let n = feedback.cols;
        let h = feedback.h.as_ref().unwrap();
        let mut decoded = crate::codec::aq::decode(books, &coded.codes);
        for (r, kept) in coded.corrections.iter().enumerate() {
            for &(c, v) in kept {
                decoded[r * n + c as usize] += v;
            }
        }
        let mut total = 0f64;
        for (wr, qr) in w.chunks_exact(n).zip(decoded.chunks_exact(n)) {
            let e: Vec<f64> = wr.iter().zip(qr).map(|(a, b)| (a - b) as f64).collect();
            for i in 0..n {
                for j in 0..n {
                    total += e[i] * h[i * n + j] as f64 * e[j];
                }
            }
        }
        total
    }

    #[test]
    fn refinement_lowers_the_output_error_and_moves_only_what_it_may() {
        let (rows, cols, dim) = (256, 32, 4);
        let Layer {
            w, books, feedback, ..
        } = layer(11, rows, cols, dim);
        let outliers: Vec<Vec<u16>> = (0..rows)
            .map(|r| {
                if r % 3 == 0 {
                    vec![(r % cols) as u16]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let mut target = w.clone();
        let mut coded = encode(&mut target, 1.5, &outliers, &books, &feedback, 4);
        let before = h_error(&w, &books, &coded, &feedback);
        let first = coded.codes.clone();
        refine(&w, &mut coded, &books, &feedback, 4, 2);
        let after = h_error(&w, &books, &coded, &feedback);
        assert!(
            after < 0.95 * before,
            "refined {after} vs fed back {before}"
        );
        // The kept columns are the same, and blocks holding one kept their codes.
        let per_row = cols / dim;
        for (r, kept) in coded.corrections.iter().enumerate() {
            assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), outliers[r]);
            for &(c, _) in kept {
                let at = r * per_row + c as usize / dim;
                assert_eq!(coded.codes[at], first[at]);
            }
        }
        // A further sweep never makes the error worse.
        let mut again = Coded {
            codes: coded.codes.clone(),
            corrections: coded.corrections.clone(),
        };
        refine(&w, &mut again, &books, &feedback, 4, 1);
        assert!(h_error(&w, &books, &again, &feedback) <= after * (1.0 + 1e-5));
    }

    #[test]
    fn kept_values_are_exact() {
        let mut rng = Rng::new(8);
        let (rows, cols, dim) = (4, 16, 8);
        let x = correlated_inputs(100, cols, &mut rng);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal()).collect();
        let books = one_book(&w, dim, 2);
        let feedback = ErrorFeedback::new(
            &InputMoments::from_inputs(&x, cols),
            &vec![1.0; cols],
            cols,
            dim,
            0.01,
            false,
        )
        .unwrap();
        let mut target = w.clone();
        let outliers = vec![vec![0u16, 9], vec![], vec![15], vec![]];
        let coded = encode(&mut target, 0.5, &outliers, &books, &feedback, 2);
        let decoded = crate::codec::aq::decode(&books, &coded.codes);
        for (r, kept) in coded.corrections.iter().enumerate() {
            assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), outliers[r]);
            for &(c, v) in kept {
                let at = r * cols + c as usize;
                assert!((decoded[at] + v - target[at]).abs() < 1e-6);
            }
        }
        // Column 0 of row 0 is exact and first: nothing was propagated from it, so the
        // final weight equals the original.
        assert_eq!(target[0], w[0]);
    }
}
