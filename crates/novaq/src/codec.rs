//! Compression of a model's tensors (needs `std`: it runs on both cores with rayon).
//!
//! - [`Mode::Additive`]: rows normalized by their RMS, the heavy tail clamped, additive vector
//!   quantization with codebooks fitted per tensor or shared ([`plan`]), row scales re-fitted,
//!   and the largest remaining errors kept as sparse outliers.
//! - [`Mode::Scalar`]: group-wise q8 / q4 baselines.
//!
//! Vectors, norms and other small tensors stay f32. Everything is reproducible from the seed.

pub mod additive;
pub mod aq;
pub mod kmeans;
pub mod linalg;
pub mod mode;
pub mod plan;
pub mod rng;
pub mod scalar;

pub use mode::Mode;

use crate::format::blob::{AqTensor, ScalarTensor};
use crate::kernel::{AqMatrix, QuantizedMatrix, ScalarMatrix};
use crate::tensor::{SourceDType, Tensor};
use aq::{BeamEncoder, Codebooks, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use rng::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tensors below this many weights (and all vectors) stay f32: quantizing them saves nothing.
const MIN_QUANTIZED_WEIGHTS: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub mode: Mode,
    /// Tensors (by exact name) encoded in another mode than [`Options::mode`].
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
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// The token embedding; with tied embeddings it is also the output projection, whose errors
/// land directly on the logits.
pub const EMBEDDING_TENSORS: [&str; 2] = ["token_embd.weight", "output.weight"];

impl Options {
    /// The defaults the benchmarks measure. At 2 bits the embedding tables get 3: they are the
    /// most sensitive matrices, and the budget pays for it by keeping half as many outliers.
    pub fn new(mode: Mode) -> Self {
        let two_bit = mode == Mode::Additive { books: 2, dim: 8 };
        let overrides = if two_bit {
            EMBEDDING_TENSORS
                .iter()
                .map(|&name| (name.to_owned(), Mode::Additive { books: 3, dim: 8 }))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            mode,
            overrides,
            seed: 0,
            beam: 8,
            outlier_fraction: if two_bit { 0.005 } else { 0.01 },
            train_vectors: 1 << 17,
            rounds: 3,
            kmeans_iterations: 12,
            progress: false,
        }
    }
}

impl Options {
    /// The mode that encodes `tensor`: its override, unless that is an additive mode the
    /// tensor is too small to pay a codebook set for (tiny models), else [`Options::mode`].
    pub fn mode_for(&self, tensor: &Tensor) -> Mode {
        match self.overrides.iter().find(|(n, _)| *n == tensor.name) {
            Some(&(_, Mode::Additive { books, dim }))
                if !plan::affords_own_codebooks(tensor.numel(), books, dim) =>
            {
                self.mode
            }
            Some(&(_, mode)) => mode,
            None => self.mode,
        }
    }
}

/// How one tensor is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    F32(Vec<f32>),
    Additive { tensor: AqTensor, codebook: usize },
    Scalar(ScalarTensor),
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

pub fn is_quantizable(tensor: &Tensor, mode: Mode) -> bool {
    let min_cols = match mode {
        Mode::Additive { dim, .. } => dim,
        Mode::Scalar { bits } => scalar::group_size(bits),
    };
    tensor.shape.len() >= 2 && tensor.numel() >= MIN_QUANTIZED_WEIGHTS && tensor.cols() >= min_cols
}

/// Mean square of the input each matrix's columns meet, by tensor name, measured by running
/// the uncompressed model. Weighs the additive fit towards the columns that matter.
pub type ActivationPower = BTreeMap<String, Vec<f32>>;

pub fn compress(tensors: &[Tensor], options: &Options) -> Compressed {
    compress_with_activations(tensors, &ActivationPower::new(), options)
}

pub fn compress_with_activations(
    tensors: &[Tensor],
    activations: &ActivationPower,
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
    let quantized: Vec<usize> = (0..tensors.len())
        .filter(|&i| is_quantizable(&tensors[i], options.mode_for(&tensors[i])))
        .collect();
    // Tensors grouped by the mode that encodes them, modes in order of first use.
    let mut by_mode: Vec<(Mode, Vec<usize>)> = Vec::new();
    for &i in &quantized {
        let mode = options.mode_for(&tensors[i]);
        match by_mode.iter_mut().find(|(m, _)| *m == mode) {
            Some((_, members)) => members.push(i),
            None => by_mode.push((mode, vec![i])),
        }
    }
    let mut rng = Rng::new(options.seed);
    let mut group_count = 0u64;
    for (mode, indices) in by_mode {
        match mode {
            Mode::Scalar { bits } => {
                for i in indices {
                    let stored = scalar::encode(&tensors[i], bits);
                    let decoded =
                        QuantizedMatrix::from(ScalarMatrix::new(stored.clone())).dequantize();
                    slots[i] = Some(finished(&tensors[i], Encoding::Scalar(stored), &decoded));
                    bar.inc(tensors[i].numel() as u64);
                }
            }
            Mode::Additive { books, dim } => {
                let sizes: Vec<(&str, usize)> = indices
                    .iter()
                    .map(|&i| (tensors[i].name.as_str(), tensors[i].numel()))
                    .collect();
                for group in plan::codebook_groups(&sizes, books, dim) {
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
                    let (set, encoded) =
                        compress_group(tensors, &group, activations, options, &mut group_rng, &bar);
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

/// Fits one codebook set to the members of a group and encodes each member against it.
/// Returns the set and, per member, the stored tensor with its decoded weights.
/// Tensors sharing one codebook set of `books` books of `dim`-vectors.
struct Group<'a> {
    members: &'a [usize],
    books: usize,
    dim: usize,
}

fn compress_group(
    tensors: &[Tensor],
    group: &Group<'_>,
    activations: &ActivationPower,
    options: &Options,
    rng: &mut Rng,
    bar: &ProgressBar,
) -> (Codebooks, Vec<(AqTensor, Vec<f32>)>) {
    let Group {
        members,
        books,
        dim,
    } = *group;
    let prepared: Vec<additive::Prepared> = members
        .iter()
        .map(|&i| {
            let power = activations.get(&tensors[i].name).map(Vec::as_slice);
            additive::prepare(&tensors[i], dim, options.outlier_fraction, power)
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
    let encoder = BeamEncoder::new(&set, options.beam);
    let shared = Arc::new(set.entries.clone());
    let encoded = members
        .iter()
        .zip(&prepared)
        .map(|(&i, prep)| {
            let codes = encoder.encode(&prep.target);
            let stored =
                additive::finalize(&tensors[i], prep, &set, codes, options.outlier_fraction);
            let decoded =
                QuantizedMatrix::from(AqMatrix::new(stored.clone(), shared.clone())).dequantize();
            bar.inc(tensors[i].numel() as u64);
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
