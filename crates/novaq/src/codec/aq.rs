//! Additive vector quantization: a vector of `dim` weights is approximated by the sum of one
//! entry from each of `books` codebooks of 256 entries, so it costs `8 · books / dim` bits per
//! weight. Codebooks start as residual k-means (each book fits what the previous ones left),
//! codes are chosen by beam search, and codebooks are then re-fitted to the codes by least
//! squares; a few such rounds alternate.

use super::kmeans;
use super::linalg::cholesky_solve;
use super::rng::Rng;
use crate::format::blob::f16_round;
use rayon::prelude::*;

/// Entries per codebook: one byte per code.
pub const ENTRIES: usize = 256;
/// The most codebooks one vector may sum (fixed-size code arrays in the beam).
pub const MAX_BOOKS: usize = 8;

/// Vectors handed to one rayon task.
const CHUNK: usize = 1024;
/// Partial sums of the least-squares normal equations.
const LEAST_SQUARES_PARTS: usize = 8;

/// `books` codebooks of [`ENTRIES`] vectors of `dim` values, laid out `[book][entry][dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebooks {
    pub books: usize,
    pub dim: usize,
    pub entries: Vec<f32>,
}

impl Codebooks {
    pub fn entry(&self, book: usize, code: u8) -> &[f32] {
        let start = (book * ENTRIES + code as usize) * self.dim;
        &self.entries[start..start + self.dim]
    }

    /// Rounds every value to f16, the precision codebooks are stored in, so codes are chosen
    /// against exactly what the decoder will see.
    pub fn round_to_stored_precision(&mut self) {
        self.entries.iter_mut().for_each(|v| *v = f16_round(*v));
    }

    /// Adds the chosen entries of `codes` (one per book) into `out` (`dim` values).
    pub fn accumulate(&self, codes: &[u8], out: &mut [f32]) {
        for (book, &code) in codes.iter().enumerate() {
            for (o, &e) in out.iter_mut().zip(self.entry(book, code)) {
                *o += e;
            }
        }
    }
}

/// How codebooks are fitted and codes searched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    pub books: usize,
    pub dim: usize,
    /// Partial code combinations kept per step of the beam search.
    pub beam: usize,
    pub kmeans_iterations: usize,
    /// Alternations of (beam-search encode, least-squares codebook update).
    pub rounds: usize,
}

/// Fits codebooks to `data` (`n × dim` row-major vectors).
pub fn train(data: &[f32], config: &TrainConfig, rng: &mut Rng) -> Codebooks {
    let dim = config.dim;
    let n = data.len() / dim;
    let mut residual = data.to_vec();
    let mut entries = Vec::with_capacity(config.books * ENTRIES * dim);
    let mut labels = vec![0u32; n];
    for _ in 0..config.books {
        let centers = kmeans::kmeans(&residual, dim, ENTRIES, config.kmeans_iterations, rng);
        kmeans::assign(&residual, dim, &centers, &mut labels);
        residual
            .par_chunks_mut(dim)
            .zip(labels.par_iter())
            .for_each(|(r, &l)| {
                let c = &centers[l as usize * dim..(l as usize + 1) * dim];
                r.iter_mut().zip(c).for_each(|(x, y)| *x -= y);
            });
        entries.extend_from_slice(&centers);
    }
    let mut books = Codebooks {
        books: config.books,
        dim,
        entries,
    };
    books.round_to_stored_precision();
    for _ in 0..config.rounds {
        let codes = BeamEncoder::new(&books, config.beam).encode(data);
        least_squares_update(&mut books, data, &codes);
        books.round_to_stored_precision();
    }
    books
}

/// Re-fits every codebook entry to minimise `Σ‖x − Σ_m C_m[b_m]‖²` for fixed codes. The
/// problem separates per coordinate and shares one normal matrix (code co-occurrence counts),
/// solved once by Cholesky. A small ridge towards the current entries keeps unused entries put.
pub fn least_squares_update(books: &mut Codebooks, data: &[f32], codes: &[u8]) {
    const RIDGE: f64 = 1.0;
    let (m, dim) = (books.books, books.dim);
    let k = m * ENTRIES;
    // Co-occurrence counts are exact integers; the right-hand sides are summed over a fixed
    // number of parts in order, so the result does not depend on thread scheduling.
    let n = data.len() / dim;
    let part = n.div_ceil(LEAST_SQUARES_PARTS).max(1);
    let partials: Vec<(Vec<u32>, Vec<f64>)> = data
        .par_chunks(part * dim)
        .zip(codes.par_chunks(part * m))
        .map(|(vecs, codes)| {
            let mut counts = vec![0u32; k * k];
            let mut rhs = vec![0f64; k * dim];
            for (v, c) in vecs.chunks_exact(dim).zip(codes.chunks_exact(m)) {
                for (a, &ca) in c.iter().enumerate() {
                    let ia = a * ENTRIES + ca as usize;
                    for (b, &cb) in c.iter().enumerate() {
                        counts[ia * k + b * ENTRIES + cb as usize] += 1;
                    }
                    for (r, &x) in rhs[ia * dim..(ia + 1) * dim].iter_mut().zip(v) {
                        *r += x as f64;
                    }
                }
            }
            (counts, rhs)
        })
        .collect();
    let mut normal = vec![0f64; k * k];
    let mut rhs = vec![0f64; k * dim];
    for (c, r) in &partials {
        normal.iter_mut().zip(c).for_each(|(a, &b)| *a += b as f64);
        rhs.iter_mut().zip(r).for_each(|(a, b)| *a += b);
    }
    for i in 0..k {
        normal[i * k + i] += RIDGE;
        for t in 0..dim {
            rhs[i * dim + t] += RIDGE * books.entries[i * dim + t] as f64;
        }
    }
    if cholesky_solve(&mut normal, &mut rhs, k, dim) {
        books
            .entries
            .iter_mut()
            .zip(&rhs)
            .for_each(|(e, &x)| *e = x as f32);
    }
}

/// Beam-search encoder. Distances are expanded as
/// `‖x − Σ c_m‖² = ‖x‖² − 2 Σ x·c_m + Σ ‖c_m‖² + 2 Σ_{j<m} c_j·c_m`, so after the `x·c`
/// products of one vector every candidate costs a few table look-ups. Tables are laid out so
/// that scoring all 256 entries of one book is a run of contiguous, vectorizable additions.
pub struct BeamEncoder<'a> {
    books: &'a Codebooks,
    beam: usize,
    /// Entries transposed, `[book][coordinate][entry]`, for vectorized dot products.
    transposed: Vec<f32>,
    /// `‖C_m[k]‖²`, indexed `m * 256 + k`.
    norms: Vec<f32>,
    /// `2 C_j[a]·C_m[b]` for every ordered pair `j ≠ m`, indexed
    /// `[j * books + m][a * 256 + b]` (empty when `j == m`).
    cross: Vec<Vec<f32>>,
}

#[derive(Clone, Copy)]
struct Partial {
    cost: f32,
    codes: [u8; MAX_BOOKS],
}

/// Per-thread working memory of the encoder.
struct Scratch {
    /// `‖C_m[k]‖² − 2 x·C_m[k]`, indexed `m * 256 + k`.
    base: Vec<f32>,
    /// Costs of the 256 entries of the book being extended.
    row: [f32; ENTRIES],
    beam: Vec<Partial>,
    next: Vec<Partial>,
}

impl<'a> BeamEncoder<'a> {
    pub fn new(books: &'a Codebooks, beam: usize) -> Self {
        let (m, dim) = (books.books, books.dim);
        assert!(m <= MAX_BOOKS, "at most {MAX_BOOKS} codebooks");
        let mut transposed = vec![0f32; m * dim * ENTRIES];
        for b in 0..m {
            for k in 0..ENTRIES {
                for (t, &v) in books.entry(b, k as u8).iter().enumerate() {
                    transposed[(b * dim + t) * ENTRIES + k] = v;
                }
            }
        }
        let norms = (0..m * ENTRIES)
            .map(|i| {
                let e = &books.entries[i * dim..(i + 1) * dim];
                e.iter().map(|x| x * x).sum()
            })
            .collect();
        let cross = (0..m * m)
            .map(|pair| {
                let (j, n) = (pair / m, pair % m);
                if j == n {
                    return Vec::new();
                }
                (0..ENTRIES * ENTRIES)
                    .into_par_iter()
                    .map(|i| {
                        let a = books.entry(j, (i / ENTRIES) as u8);
                        2.0 * dot(a, books.entry(n, (i % ENTRIES) as u8))
                    })
                    .collect()
            })
            .collect();
        Self {
            books,
            beam: beam.max(1),
            transposed,
            norms,
            cross,
        }
    }

    /// `2 C_j[a]·C_m[b]` for all 256 `b`.
    fn cross_row(&self, j: usize, m: usize, a: u8) -> &[f32] {
        let start = a as usize * ENTRIES;
        &self.cross[j * self.books.books + m][start..start + ENTRIES]
    }

    /// Codes for every vector of `data` (`n × dim`), `books` bytes per vector.
    pub fn encode(&self, data: &[f32]) -> Vec<u8> {
        let (m, dim) = (self.books.books, self.books.dim);
        let mut codes = vec![0u8; data.len() / dim * m];
        data.par_chunks(CHUNK * dim)
            .zip(codes.par_chunks_mut(CHUNK * m))
            .for_each(|(vecs, out)| {
                let mut scratch = Scratch {
                    base: vec![0f32; m * ENTRIES],
                    row: [0f32; ENTRIES],
                    beam: Vec::with_capacity(self.beam + 1),
                    next: Vec::with_capacity(self.beam + 1),
                };
                for (v, c) in vecs.chunks_exact(dim).zip(out.chunks_exact_mut(m)) {
                    self.encode_one(v, &mut scratch, c);
                }
            });
        codes
    }

    fn encode_one(&self, x: &[f32], s: &mut Scratch, out: &mut [u8]) {
        let (books, dim) = (self.books.books, self.books.dim);
        s.base.copy_from_slice(&self.norms);
        for b in 0..books {
            let base = &mut s.base[b * ENTRIES..(b + 1) * ENTRIES];
            for (t, &xt) in x.iter().enumerate() {
                let column = &self.transposed[(b * dim + t) * ENTRIES..(b * dim + t + 1) * ENTRIES];
                for (o, &c) in base.iter_mut().zip(column) {
                    *o -= 2.0 * xt * c;
                }
            }
        }
        // First book: every entry is a candidate.
        s.beam.clear();
        for (k, &cost) in s.base[..ENTRIES].iter().enumerate() {
            push_bounded(&mut s.beam, self.beam, cost, || {
                let mut codes = [0u8; MAX_BOOKS];
                codes[0] = k as u8;
                codes
            });
        }
        // Later books extend every kept partial sum by every entry; the last keeps the best.
        for m in 1..books {
            s.next.clear();
            for p in &s.beam {
                s.row
                    .copy_from_slice(&s.base[m * ENTRIES..(m + 1) * ENTRIES]);
                for j in 0..m {
                    for (r, &c) in s.row.iter_mut().zip(self.cross_row(j, m, p.codes[j])) {
                        *r += c;
                    }
                }
                if m + 1 == books {
                    let (k, cost) = argmin(&s.row);
                    push_bounded(&mut s.next, 1, p.cost + cost, || {
                        let mut codes = p.codes;
                        codes[m] = k as u8;
                        codes
                    });
                } else {
                    for (k, &cost) in s.row.iter().enumerate() {
                        push_bounded(&mut s.next, self.beam, p.cost + cost, || {
                            let mut codes = p.codes;
                            codes[m] = k as u8;
                            codes
                        });
                    }
                }
            }
            core::mem::swap(&mut s.beam, &mut s.next);
        }
        let mut codes = s.beam[0].codes;
        // One sweep of coordinate descent: re-pick each code given all the others.
        if books > 1 {
            for m in 0..books {
                s.row
                    .copy_from_slice(&s.base[m * ENTRIES..(m + 1) * ENTRIES]);
                for (j, &other) in codes.iter().enumerate().take(books) {
                    if j != m {
                        for (r, &c) in s.row.iter_mut().zip(self.cross_row(j, m, other)) {
                            *r += c;
                        }
                    }
                }
                codes[m] = argmin(&s.row).0 as u8;
            }
        }
        out.copy_from_slice(&codes[..books]);
    }
}

/// Index and value of the smallest entry.
fn argmin(values: &[f32; ENTRIES]) -> (usize, f32) {
    let mut best = (0, values[0]);
    for (k, &v) in values.iter().enumerate().skip(1) {
        if v < best.1 {
            best = (k, v);
        }
    }
    best
}

/// Keeps `list` sorted by cost and at most `cap` long; builds the codes only when kept.
fn push_bounded(
    list: &mut Vec<Partial>,
    cap: usize,
    cost: f32,
    codes: impl FnOnce() -> [u8; MAX_BOOKS],
) {
    if list.len() == cap && cost >= list[cap - 1].cost {
        return;
    }
    let at = list.partition_point(|p| p.cost <= cost);
    list.insert(
        at,
        Partial {
            cost,
            codes: codes(),
        },
    );
    list.truncate(cap);
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Decodes `codes` (`books` per vector) into `n × dim` values.
pub fn decode(books: &Codebooks, codes: &[u8]) -> Vec<f32> {
    let mut out = vec![0f32; codes.len() / books.books * books.dim];
    out.chunks_exact_mut(books.dim)
        .zip(codes.chunks_exact(books.books))
        .for_each(|(o, c)| books.accumulate(c, o));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.normal()).collect()
    }

    fn relative_error(data: &[f32], books: &Codebooks, codes: &[u8]) -> f64 {
        let rec = decode(books, codes);
        let err: f64 = data
            .iter()
            .zip(&rec)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        err / data.iter().map(|&a| (a as f64).powi(2)).sum::<f64>()
    }

    #[test]
    fn beam_search_never_loses_to_greedy_and_refinement_helps() {
        let data = gaussian(8 * 4096, 11);
        let config = TrainConfig {
            books: 2,
            dim: 8,
            beam: 1,
            kmeans_iterations: 4,
            rounds: 0,
        };
        let books = train(&data, &config, &mut Rng::new(1));
        let greedy = relative_error(&data, &books, &BeamEncoder::new(&books, 1).encode(&data));
        let beam = relative_error(&data, &books, &BeamEncoder::new(&books, 8).encode(&data));
        assert!(beam <= greedy + 1e-9, "beam {beam} greedy {greedy}");
        let mut refined = books.clone();
        least_squares_update(
            &mut refined,
            &data,
            &BeamEncoder::new(&books, 8).encode(&data),
        );
        let after = relative_error(
            &data,
            &refined,
            &BeamEncoder::new(&refined, 8).encode(&data),
        );
        assert!(after < beam, "least squares {after} vs {beam}");
    }
}
