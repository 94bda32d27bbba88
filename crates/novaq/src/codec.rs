//! Compression of a model's tensors (needs `std`: it runs on both cores with rayon).
//!
//! - [`Mode::Additive`]: the input space randomly rotated ([`crate::rotation`]), rows
//!   normalized by their RMS, the heavy tail clamped, additive vector quantization with
//!   codebooks fitted per tensor or shared ([`plan`]). Without input moments,
//!   row scales are re-fitted and the largest remaining errors kept as sparse outliers. With
//!   them ([`moments`]), columns are weighed by their inputs' power and codes are chosen block
//!   by block with error feedback ([`feedback`]), then searched again block by block given
//!   all the others (coordinate descent, [`feedback::refine`]); the largest weights are kept
//!   exact. Afterwards the row scales and codebook entries can be tuned end to end with the
//!   codes fixed ([`tune`]: the caller supplies the model's gradients).
//! - [`Mode::Scalar`]: group-wise q8 / q4 baselines.
//! - [`Mode::Affine`]: group-wise affine 4-bit integers ([`affine`]), the SIMD kernel's format.
//!
//! Vectors, norms and other small tensors stay f32. Everything is reproducible from the seed.

pub mod additive;
pub mod affine;
pub mod aq;
pub mod feedback;
pub mod kmeans;
pub mod linalg;
pub mod mode;
pub mod moments;
pub mod plan;
pub mod rng;
pub mod scalar;
pub mod tune;

pub use mode::Mode;
pub use moments::{Calibration, InputMoments, MomentSums};

use crate::format::blob::{AffineTensor, AqTensor, ScalarTensor};
use crate::kernel::{AqMatrix, BlockMatrix, QuantizedMatrix};
use crate::rotation::Rotation;
use crate::tensor::{SourceDType, Tensor};
use aq::{BeamEncoder, Codebooks, TrainConfig};
use feedback::ErrorFeedback;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use rng::Rng;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tensors below this many weights (and all vectors) stay f32: quantizing them saves nothing.
const MIN_QUANTIZED_WEIGHTS: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub mode: Mode,
    /// Tensors encoded in another mode than [`Options::mode`]: a key names a tensor exactly or
    /// one dot-separated part of its name (`attn_v` matches `blk.3.attn_v.weight`). The first
    /// matching key wins.
    pub overrides: Vec<(String, Mode)>,
    pub seed: u64,
    /// Beam width of the code search.
    pub beam: usize,
    /// Share of weights kept as outliers (additive modes).
    pub outlier_fraction: f64,
    /// Vectors sampled per codebook set to fit it.
    pub train_vectors: usize,
    /// Encode / least-squares alternations when fitting codebooks.
    pub rounds: usize,
    pub kmeans_iterations: usize,
    /// Code matrices with measured input moments block by block, each block's error
    /// compensated by the columns after it ([`feedback`]); otherwise only the moments'
    /// diagonal weighs the fit.
    pub error_feedback: bool,
    /// Largest share of a tensor's (or a group's) code bits its codebook set may take
    /// ([`plan`]): larger gives more tensors sets of their own.
    pub codebook_budget: f64,
    /// Tokens the source model generates to measure the inputs of every projection (the
    /// caller measures them; see [`compress_calibrated`]).
    pub calibration_tokens: usize,
    /// Diagonal damping of the input moments for error feedback, as a share of their mean
    /// diagonal: larger trusts the calibration less.
    pub damping: f64,
    /// Sweeps of block coordinate descent after error feedback ([`feedback::refine`]).
    pub refine_sweeps: usize,
    /// Passes of distillation over the calibration sequences after coding ([`tune`]; the
    /// caller runs them, as it measures the calibration).
    pub tune_epochs: usize,
    /// First step of that distillation, as a share of each parameter array's mean absolute
    /// value.
    pub tune_step_size: f32,
    /// Calibration sequences whose gradients add up to one distillation step. Two (256
    /// positions) take twice the steps of four per pass for a sixth more time (SmolLM2 2bit
    /// over 2,048 GPL-3 tokens: KL 0.930 → 0.923, perplexity ratio 1.801 → 1.784, top-1
    /// 0.510 → 0.517).
    pub tune_batch: usize,
    /// Code additively quantized matrices in a random rotation of their input space
    /// ([`crate::rotation`]), which makes their rows close to Gaussian.
    pub rotate: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// The token embedding; with tied embeddings it is also the output projection, whose errors
/// land directly on the logits.
pub const EMBEDDING_TENSORS: [&str; 2] = ["token_embd.weight", "output.weight"];

/// The value projections: measured the most sensitive matrices per weight of SmolLM2 (the
/// KL divergence their q4 error alone causes is 5 to 16 times that of the other projections
/// per weight, `ohms novaq sensitivity`), and only 2.5% of its weights, so extra bits there
/// are the cheapest quality there is.
pub const VALUE_PROJECTION: &str = "attn_v";

/// The key projections: the next most sensitive per weight (about 4 times the others), as few.
pub const KEY_PROJECTION: &str = "attn_k";

impl Options {
    /// The defaults the benchmarks measure. At 2 bits the embedding tables get 3 bits and the
    /// value and key projections 4, paid for by keeping no outliers (in rotated coordinates
    /// the largest weights are no longer far from the rest: measured on SmolLM2, the same bits
    /// buy more on the key projections); at 4 bits the value projections get q8, the key
    /// projections 6 bits (three books over 4 weights instead of two; SmolLM2: rel MSE mean
    /// 0.00745 → 0.00629, KL 0.139 → 0.136, perplexity ratio 1.043 → 1.050, within its noise,
    /// top-1 0.792 → 0.793, 4.432 → 4.481 bits per weight) and 0.6% of the weights stay exact
    /// (fewer cost more quality than they save). Error feedback is
    /// followed by two refinement sweeps at 2 bits (SmolLM2: perplexity ratio 3.54 → 3.33 over
    /// 2,048 tokens), none at 4 bits (no better there, a quarter more time), one otherwise.
    /// At 2 bits the inputs are measured over 65,536 tokens and damped by 0.3 (SmolLM2, over
    /// 4,096: KL 1.495 → 1.293, perplexity ratio 3.33 → 2.70); at 4 bits over 16,384 (which
    /// the distillation below then runs over), elsewhere over 8,192, damped by 1.0 (SmolLM2
    /// 4bit without distillation, over 1,024: KL 0.176, perplexity ratio 1.145, rel MSE
    /// 0.00759; over 8,192: 0.162, 1.075, 0.00743). At 2 bits a codebook set may take 4.5% of
    /// its tensors' code bits, so each of
    /// SmolLM2's feed-forward matrices (and key and value projections) gets one of its own: KL
    /// 1.293 → 1.153, perplexity ratio 2.70 → 2.33, for 0.043 more bits per weight. At 4 bits
    /// the same gave the key projections their own sets and lost quality (KL 0.165 → 0.172), so
    /// the other modes keep [`plan::CODEBOOK_BUDGET`]. At 2 bits the coded model is then
    /// distilled for one pass over the calibration sequences, first step 0.25% ([`tune`]).
    /// Fresh sequences generalise better than repeated ones: SmolLM2 over 2,048 GPL-3 tokens,
    /// in steps of two sequences, gave KL 0.923, perplexity ratio 1.78, top-1 0.517 with 8
    /// passes over 4,096 tokens; 0.865, 1.70, 0.516 with 2 passes over 16,384 (the same
    /// steps); 0.838, 1.62, 0.522 with one pass over 32,768 (the same steps again); 0.797,
    /// 1.59, 0.535 with one pass over 65,536. A third pass over 16,384 added nothing (0.863,
    /// 1.71). Over 4,096 tokens in steps of four, 4 passes gave 0.947 and 1.82; a first step
    /// of 0.5% 0.956 and 1.82 with 4 passes, of 1% 1.053 and 1.98; 8,192 tokens at 0.5% and 4
    /// passes 0.934 and 1.82. At 4 bits one pass over 16,384 tokens, first step 0.1%, takes
    /// SmolLM2 from KL 0.162, perplexity ratio 1.075, top-1 0.782 to 0.139, 1.044, 0.792
    /// (first step 0.05%: 0.138, 1.043, 0.792; 0.2%: 0.146, 1.043, 0.788; 32,768 tokens at
    /// 0.2%: 0.159, 0.992, 0.773 — a model that drifted, not one closer to the source) and
    /// stories260K from KL 0.083 to 0.055 (0.05%: 0.059; 0.2%: 0.052), for about six more
    /// minutes on SmolLM2.
    pub fn new(mode: Mode) -> Self {
        let mut options = Self {
            mode,
            overrides: Vec::new(),
            seed: 0,
            beam: 8,
            outlier_fraction: 0.01,
            train_vectors: 1 << 17,
            rounds: 3,
            kmeans_iterations: 12,
            error_feedback: true,
            codebook_budget: plan::CODEBOOK_BUDGET,
            calibration_tokens: 8192,
            damping: 1.0,
            refine_sweeps: 1,
            tune_epochs: 0,
            tune_step_size: 0.002,
            tune_batch: 2,
            rotate: true,
            progress: false,
        };
        match mode {
            Mode::Additive { books: 2, dim: 8 } => {
                options.overrides = EMBEDDING_TENSORS
                    .iter()
                    .map(|&name| (name.to_owned(), Mode::Additive { books: 3, dim: 8 }))
                    .collect();
                for projection in [VALUE_PROJECTION, KEY_PROJECTION] {
                    options
                        .overrides
                        .push((projection.to_owned(), Mode::Additive { books: 2, dim: 4 }));
                }
                options.outlier_fraction = 0.0;
                options.refine_sweeps = 2;
                options.calibration_tokens = 65_536;
                options.damping = 0.3;
                options.codebook_budget = 0.045;
                options.tune_epochs = 1;
                options.tune_step_size = 0.0025;
            }
            Mode::Additive { books: 2, dim: 4 } => {
                options.overrides = vec![
                    (VALUE_PROJECTION.to_owned(), Mode::Scalar { bits: 8 }),
                    (
                        KEY_PROJECTION.to_owned(),
                        Mode::Additive { books: 3, dim: 4 },
                    ),
                ];
                options.outlier_fraction = 0.006;
                options.refine_sweeps = 0;
                options.calibration_tokens = 16_384;
                options.tune_epochs = 1;
                options.tune_step_size = 0.001;
            }
            _ => {}
        }
        options
    }
}

/// Whether override `key` names `tensor`: exactly, or as one dot-separated part of its name.
fn override_matches(key: &str, tensor: &str) -> bool {
    key == tensor || tensor.split('.').any(|part| part == key)
}

impl Options {
    /// The mode that encodes each tensor: its override, unless that is an additive mode the
    /// tensors the override names are together too small to pay a codebook set for (tiny
    /// models), else [`Options::mode`].
    pub fn modes(&self, tensors: &[Tensor]) -> Vec<Mode> {
        let keys: Vec<Option<usize>> = tensors
            .iter()
            .map(|t| {
                self.overrides
                    .iter()
                    .position(|(key, _)| override_matches(key, &t.name))
            })
            .collect();
        tensors
            .iter()
            .zip(&keys)
            .map(|(_, key)| match key.map(|k| self.overrides[k].1) {
                Some(Mode::Additive { books, dim }) => {
                    let named: usize = tensors
                        .iter()
                        .zip(&keys)
                        .filter(|(_, other)| *other == key)
                        .map(|(t, _)| t.numel())
                        .sum();
                    if plan::affords_own_codebooks(named, books, dim, self.codebook_budget) {
                        Mode::Additive { books, dim }
                    } else {
                        self.mode
                    }
                }
                Some(mode) => mode,
                None => self.mode,
            })
            .collect()
    }
}

/// How one tensor is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    F32(Vec<f32>),
    Additive { tensor: AqTensor, codebook: usize },
    Scalar(ScalarTensor),
    Affine(AffineTensor),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompressedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub source_dtype: SourceDType,
    pub encoding: Encoding,
    /// `‖W − Ŵ‖² / ‖W‖²` of the decoded tensor against the source.
    pub relative_mse: f64,
    /// Cosine similarity of the decoded tensor and the source.
    pub cosine: f64,
}

impl CompressedTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_quantized(&self) -> bool {
        !matches!(self.encoding, Encoding::F32(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compressed {
    pub options: Options,
    pub codebooks: Vec<Codebooks>,
    /// In the order of the input.
    pub tensors: Vec<CompressedTensor>,
}

impl Compressed {
    /// Tensor `index` as the decoder reconstructs it.
    pub fn decoded(&self, index: usize) -> Vec<f32> {
        match &self.tensors[index].encoding {
            Encoding::F32(data) => data.clone(),
            Encoding::Scalar(stored) => BlockMatrix::from_scalar(stored).dequantize(),
            Encoding::Affine(stored) => BlockMatrix::from_affine(stored).dequantize(),
            Encoding::Additive { tensor, codebook } => {
                let books = Arc::new(self.codebooks[*codebook].entries.clone());
                QuantizedMatrix::from(AqMatrix::new(tensor.clone(), books)).dequantize()
            }
        }
    }
}

pub fn is_quantizable(tensor: &Tensor, mode: Mode) -> bool {
    let min_cols = match mode {
        Mode::Additive { dim, .. } => dim,
        Mode::Scalar { bits } => scalar::group_size(bits),
        Mode::Affine { group } => group,
    };
    tensor.shape.len() >= 2 && tensor.numel() >= MIN_QUANTIZED_WEIGHTS && tensor.cols() >= min_cols
}

pub fn compress(tensors: &[Tensor], options: &Options) -> Compressed {
    compress_calibrated(tensors, &Calibration::new(), options)
}

/// Compresses with the input moments of (some of) the matrices, measured by running the
/// uncompressed model: they weigh the additive fit and drive error feedback.
pub fn compress_calibrated(
    tensors: &[Tensor],
    calibration: &Calibration,
    options: &Options,
) -> Compressed {
    let total: u64 = tensors.iter().map(|t| t.numel() as u64).sum();
    let bar = if options.progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} weights ({per_sec}, eta {eta}) {msg}",
            )
            .expect("progress template is valid")
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut slots: Vec<Option<CompressedTensor>> = vec![None; tensors.len()];
    let mut codebooks = Vec::new();
    let modes = options.modes(tensors);
    let quantized: Vec<usize> = (0..tensors.len())
        .filter(|&i| is_quantizable(&tensors[i], modes[i]))
        .collect();
    // Tensors grouped by the mode that encodes them, modes in order of first use.
    let mut by_mode: Vec<(Mode, Vec<usize>)> = Vec::new();
    for &i in &quantized {
        let mode = modes[i];
        match by_mode.iter_mut().find(|(m, _)| *m == mode) {
            Some((_, members)) => members.push(i),
            None => by_mode.push((mode, vec![i])),
        }
    }
    let mut rng = Rng::new(options.seed);
    let mut group_count = 0u64;
    let mut caches = Caches::default();
    for (mode, indices) in by_mode {
        match mode {
            Mode::Scalar { bits } => {
                for i in indices {
                    let stored = scalar::encode(&tensors[i], bits);
                    let decoded = BlockMatrix::from_scalar(&stored).dequantize();
                    slots[i] = Some(finished(&tensors[i], Encoding::Scalar(stored), &decoded));
                    bar.inc(tensors[i].numel() as u64);
                }
            }
            Mode::Affine { group } => {
                for i in indices {
                    let stored = affine::encode(&tensors[i], group);
                    let decoded = BlockMatrix::from_affine(&stored).dequantize();
                    slots[i] = Some(finished(&tensors[i], Encoding::Affine(stored), &decoded));
                    bar.inc(tensors[i].numel() as u64);
                }
            }
            Mode::Additive { books, dim } => {
                let sizes: Vec<(&str, usize)> = indices
                    .iter()
                    .map(|&i| (tensors[i].name.as_str(), tensors[i].numel()))
                    .collect();
                for group in plan::codebook_groups(&sizes, books, dim, options.codebook_budget) {
                    let members: Vec<usize> = group.iter().map(|&k| indices[k]).collect();
                    group_count += 1;
                    bar.set_message(format!(
                        "fitting codebooks {group_count} ({} tensors)",
                        members.len()
                    ));
                    let mut group_rng = rng.fork(group_count);
                    let group = Group {
                        members: &members,
                        books,
                        dim,
                    };
                    let (set, encoded) = compress_group(
                        tensors,
                        &group,
                        calibration,
                        &mut caches,
                        options,
                        &mut group_rng,
                        &bar,
                    );
                    let set_index = codebooks.len();
                    codebooks.push(set);
                    for (i, (stored, decoded)) in members.into_iter().zip(encoded) {
                        let encoding = Encoding::Additive {
                            tensor: stored,
                            codebook: set_index,
                        };
                        slots[i] = Some(finished(&tensors[i], encoding, &decoded));
                    }
                }
            }
        }
    }
    let tensors = tensors
        .iter()
        .zip(slots)
        .map(|(t, slot)| {
            slot.unwrap_or_else(|| {
                bar.inc(t.numel() as u64);
                finished(t, Encoding::F32(t.data.clone()), &t.data)
            })
        })
        .collect();
    bar.finish_and_clear();
    Compressed {
        options: options.clone(),
        codebooks,
        tensors,
    }
}

/// Tensors sharing one codebook set of `books` books of `dim`-vectors.
struct Group<'a> {
    members: &'a [usize],
    books: usize,
    dim: usize,
}

/// What projections reading the same input share, keyed by the address of their measured
/// moments.
#[derive(Default)]
struct Caches {
    /// Moments of the rotated inputs.
    rotated: BTreeMap<usize, Arc<InputMoments>>,
    /// Error-feedback factors by (rotated moments, padded width, vector length).
    feedback: BTreeMap<(usize, usize, usize), Arc<ErrorFeedback>>,
}

/// Mixed into the seed for the rotations, so they do not repeat the sampling stream.
const ROTATION_SALT: u64 = 0x0F7A_7E5E_ED00_0001;

/// Row `r` of the result is `T w_r`: the matrix `W Tᵀ` that inputs `T x` multiply.
fn rotated(tensor: &Tensor, rotation: &Rotation) -> Tensor {
    let mut data = tensor.data.clone();
    data.par_chunks_mut(tensor.cols())
        .for_each(|row| rotation.apply(row));
    Tensor {
        data,
        ..tensor.clone()
    }
}

/// Fits one codebook set to the members of a group and encodes each member against it.
/// Returns the set and, per member, the stored tensor with its decoded weights.
fn compress_group(
    tensors: &[Tensor],
    group: &Group<'_>,
    calibration: &Calibration,
    caches: &mut Caches,
    options: &Options,
    rng: &mut Rng,
    bar: &ProgressBar,
) -> (Codebooks, Vec<(AqTensor, Vec<f32>)>) {
    let Group {
        members,
        books,
        dim,
    } = *group;
    let rotation_seed = options.rotate.then_some(options.seed ^ ROTATION_SALT);
    // The matrices as coded, with the moments of the inputs they then multiply.
    let coded: Vec<(Cow<'_, Tensor>, Option<Arc<InputMoments>>)> = members
        .iter()
        .map(|&i| {
            let tensor = &tensors[i];
            let moments = calibration
                .get(&tensor.name)
                .filter(|m| m.cols == tensor.cols());
            match rotation_seed {
                Some(seed) => {
                    let rotation = Rotation::new(tensor.cols(), seed);
                    let moments = moments.map(|m| {
                        caches
                            .rotated
                            .entry(Arc::as_ptr(m) as usize)
                            .or_insert_with(|| Arc::new(m.rotated(&rotation)))
                            .clone()
                    });
                    (Cow::Owned(rotated(tensor, &rotation)), moments)
                }
                None => (Cow::Borrowed(tensor), moments.cloned()),
            }
        })
        .collect();
    let prepared: Vec<additive::Prepared> = coded
        .iter()
        .map(|(tensor, moments)| {
            let power = moments.as_ref().map(|m| m.power());
            additive::prepare(tensor, dim, options.outlier_fraction, power.as_deref())
        })
        .collect();
    let sample = training_sample(&prepared, dim, options.train_vectors, rng);
    let config = TrainConfig {
        books,
        dim,
        beam: options.beam,
        kmeans_iterations: options.kmeans_iterations,
        rounds: options.rounds,
    };
    let set = aq::train(&sample, &config, rng);
    // Only tensors coded without error feedback use the plain encoder.
    let encoder = std::cell::OnceCell::new();
    let shared = Arc::new(set.entries.clone());
    let encoded = coded
        .iter()
        .zip(&prepared)
        .map(|((tensor, moments), prep)| {
            let feedback = moments
                .as_ref()
                .filter(|_| options.error_feedback)
                .and_then(|moments| {
                    let key = (Arc::as_ptr(moments) as usize, prep.padded_cols, dim);
                    if let Some(f) = caches.feedback.get(&key) {
                        return Some(f.clone());
                    }
                    let f = Arc::new(ErrorFeedback::new(
                        moments,
                        &prep.column_emphasis,
                        prep.padded_cols,
                        dim,
                        options.damping,
                        options.refine_sweeps > 0,
                    )?);
                    caches.feedback.insert(key, f.clone());
                    Some(f)
                });
            let mut stored = match feedback {
                Some(feedback) => {
                    let original = prep.unclamped(tensor);
                    let mut target = original.clone();
                    let outliers = prep.outlier_columns(&target);
                    let mut coded = feedback::encode(
                        &mut target,
                        prep.clamp,
                        &outliers,
                        &set,
                        &feedback,
                        options.beam,
                    );
                    feedback::refine(
                        &original,
                        &mut coded,
                        &set,
                        &feedback,
                        options.beam,
                        options.refine_sweeps,
                    );
                    additive::finalize_with_corrections(prep, &set, coded.codes, &coded.corrections)
                }
                None => {
                    let codes = encoder
                        .get_or_init(|| BeamEncoder::new(&set, options.beam))
                        .encode(&prep.target);
                    additive::finalize(tensor, prep, &set, codes, options.outlier_fraction)
                }
            };
            stored.rotation = rotation_seed;
            let decoded =
                QuantizedMatrix::from(AqMatrix::new(stored.clone(), shared.clone())).dequantize();
            bar.inc(tensor.numel() as u64);
            (stored, decoded)
        })
        .collect();
    (set, encoded)
}

/// Up to `limit` vectors drawn uniformly (without replacement when the group is larger).
fn training_sample(
    prepared: &[additive::Prepared],
    dim: usize,
    limit: usize,
    rng: &mut Rng,
) -> Vec<f32> {
    let counts: Vec<usize> = prepared.iter().map(|p| p.target.len() / dim).collect();
    let total: usize = counts.iter().sum();
    let mut picks: Vec<usize> = if total <= limit {
        (0..total).collect()
    } else {
        // Floyd's algorithm: `limit` distinct indices.
        let mut chosen = std::collections::BTreeSet::new();
        for j in total - limit..total {
            let t = rng.below(j + 1);
            if !chosen.insert(t) {
                chosen.insert(j);
            }
        }
        chosen.into_iter().collect()
    };
    picks.sort_unstable();
    let mut sample = Vec::with_capacity(picks.len() * dim);
    let (mut tensor, mut base) = (0, 0);
    for p in picks {
        while p >= base + counts[tensor] {
            base += counts[tensor];
            tensor += 1;
        }
        let v = p - base;
        sample.extend_from_slice(&prepared[tensor].target[v * dim..(v + 1) * dim]);
    }
    sample
}

fn finished(source: &Tensor, encoding: Encoding, decoded: &[f32]) -> CompressedTensor {
    let (mut err, mut ww, mut dd, mut wd) = (0f64, 0f64, 0f64, 0f64);
    for (&w, &d) in source.data.iter().zip(decoded) {
        let (w, d) = (w as f64, d as f64);
        err += (w - d) * (w - d);
        ww += w * w;
        dd += d * d;
        wd += w * d;
    }
    CompressedTensor {
        name: source.name.clone(),
        shape: source.shape.clone(),
        source_dtype: source.source_dtype,
        encoding,
        relative_mse: if ww > 0.0 { err / ww } else { err },
        cosine: if ww > 0.0 && dd > 0.0 {
            wd / (ww.sqrt() * dd.sqrt())
        } else {
            1.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(name: &str, rows: usize, cols: usize) -> Tensor {
        Tensor::new(name, vec![rows, cols], vec![0.0; rows * cols])
    }

    #[test]
    fn overrides_name_whole_parts_and_the_first_match_wins() {
        assert!(override_matches("attn_v", "blk.3.attn_v.weight"));
        assert!(override_matches("token_embd.weight", "token_embd.weight"));
        assert!(!override_matches("attn", "blk.3.attn_v.weight"));
        assert!(!override_matches("attn_v", "blk.3.attn_v_norm.weight"));
        let mut options = Options::new(Mode::Additive { books: 2, dim: 4 });
        options
            .overrides
            .insert(0, ("blk.0.attn_v.weight".into(), Mode::Scalar { bits: 4 }));
        let tensors = [
            matrix("blk.0.attn_v.weight", 64, 64),
            matrix("blk.1.attn_v.weight", 64, 64),
            matrix("blk.1.attn_q.weight", 64, 64),
        ];
        assert_eq!(
            options.modes(&tensors),
            vec![
                Mode::Scalar { bits: 4 },
                Mode::Scalar { bits: 8 },
                Mode::Additive { books: 2, dim: 4 }
            ]
        );
    }

    #[test]
    fn additive_overrides_need_enough_weights_for_their_codebooks() {
        let options = Options::new(Mode::Additive { books: 2, dim: 8 });
        // 30 value projections of SmolLM2's shape share one 4-bit codebook set; two of
        // stories260K's cannot pay for one and stay in the main mode.
        let big: Vec<Tensor> = (0..30)
            .map(|l| matrix(&format!("blk.{l}.attn_v.weight"), 192, 576))
            .collect();
        assert!(
            options
                .modes(&big)
                .iter()
                .all(|&m| m == Mode::Additive { books: 2, dim: 4 })
        );
        let small: Vec<Tensor> = (0..2)
            .map(|l| matrix(&format!("blk.{l}.attn_v.weight"), 64, 64))
            .collect();
        assert!(options.modes(&small).iter().all(|&m| m == options.mode));
        // The 4bit preset codes SmolLM2's key projections at 6 bits; stories260K's stay at 4.
        let options = Options::new(Mode::Additive { books: 2, dim: 4 });
        let keys = |count: usize, rows: usize, cols: usize| -> Vec<Tensor> {
            (0..count)
                .map(|l| matrix(&format!("blk.{l}.attn_k.weight"), rows, cols))
                .collect()
        };
        assert!(
            options
                .modes(&keys(30, 192, 576))
                .iter()
                .all(|&m| m == Mode::Additive { books: 3, dim: 4 })
        );
        assert!(
            options
                .modes(&keys(2, 64, 64))
                .iter()
                .all(|&m| m == options.mode)
        );
    }
}
