//! Assembling a [`Model`] from tensors named as in GGUF (`token_embd.weight`, `blk.N.attn_q.weight`,
//! …). Takes already-read tensors or a NOVAQ manifest and its shards, so it works without `std`;
//! [`load_gguf`] reads a file too.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use novaq::Tensor;
use novaq::format::{FormatError, Manifest};
use novaq::kernel::{ModelReader, QuantizedMatrix};
use novaq::read::Metadata;

use crate::config::{Config, ConfigError};
use crate::linear::{DenseMatrix, Linear};
use crate::model::{Layer, Model, Weights};

/// The tensors do not form the model the configuration describes.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadError {
    Config(ConfigError),
    MissingTensor(String),
    ShapeMismatch {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// Reading the model file failed (the reader's message).
    Read(String),
    /// The NOVAQ manifest records no architecture, so there is no model to build.
    NoArchitecture,
    /// A NOVAQ tensor could not be read from the shards.
    Format(FormatError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "invalid model configuration: {e}"),
            Self::MissingTensor(name) => write!(f, "tensor {name:?} is missing"),
            Self::ShapeMismatch {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "tensor {tensor:?} has shape {found:?}, expected {expected:?}"
            ),
            Self::Read(e) => f.write_str(e),
            Self::NoArchitecture => {
                f.write_str("the manifest records no architecture: the model cannot be run")
            }
            Self::Format(e) => write!(f, "reading the compressed model: {e}"),
        }
    }
}

impl core::error::Error for LoadError {}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<FormatError> for LoadError {
    fn from(e: FormatError) -> Self {
        Self::Format(e)
    }
}

/// Builds an f32 reference model from GGUF metadata and the file's tensors.
pub fn load_model(
    metadata: &Metadata,
    tensors: Vec<Tensor>,
) -> Result<Model<DenseMatrix>, LoadError> {
    let has_output = tensors.iter().any(|t| t.name == "output.weight");
    let config = Config::from_gguf(metadata, has_output)?;
    load_model_with(config, tensors, dense)
}

/// A dense matrix holding a tensor's values.
pub fn dense(t: Tensor) -> DenseMatrix {
    DenseMatrix::new(t.rows(), t.cols(), t.data).expect("a tensor's data matches its shape")
}

/// Builds a model whose projections are made by `make_linear` (e.g. a compressor), each from
/// the checked f32 tensor.
pub fn load_model_with<W: Linear>(
    config: Config,
    tensors: Vec<Tensor>,
    mut make_linear: impl FnMut(Tensor) -> W,
) -> Result<Model<W>, LoadError> {
    config.validate().map_err(|reason| {
        LoadError::Config(ConfigError::Invalid {
            key: "config".into(),
            reason,
        })
    })?;
    let mut by_name: BTreeMap<String, Tensor> =
        tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut take = |name: &str, expected: &[usize]| -> Result<Tensor, LoadError> {
        let t = by_name
            .remove(name)
            .ok_or_else(|| LoadError::MissingTensor(name.into()))?;
        if t.shape != expected {
            return Err(LoadError::ShapeMismatch {
                tensor: name.into(),
                expected: expected.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    };
    let c = &config;
    let (dim, kv_dim, hidden) = (c.dim, c.kv_dim(), c.hidden_dim);

    let embedding = take("token_embd.weight", &[c.vocab_size, dim])?;
    let output = if c.tied_embeddings {
        make_linear(Tensor {
            name: "output.weight".into(),
            ..embedding.clone()
        })
    } else {
        make_linear(take("output.weight", &[c.vocab_size, dim])?)
    };
    let output_norm = take("output_norm.weight", &[dim])?.data;

    let mut layers = Vec::with_capacity(c.n_layers);
    for i in 0..c.n_layers {
        let mut matrix = |part: &str, shape: [usize; 2]| {
            take(&format!("blk.{i}.{part}.weight"), &shape).map(&mut make_linear)
        };
        layers.push(Layer {
            wq: matrix("attn_q", [dim, dim])?,
            wk: matrix("attn_k", [kv_dim, dim])?,
            wv: matrix("attn_v", [kv_dim, dim])?,
            wo: matrix("attn_output", [dim, dim])?,
            w_gate: matrix("ffn_gate", [hidden, dim])?,
            w_up: matrix("ffn_up", [hidden, dim])?,
            w_down: matrix("ffn_down", [dim, hidden])?,
            attn_norm: take(&format!("blk.{i}.attn_norm.weight"), &[dim])?.data,
            ffn_norm: take(&format!("blk.{i}.ffn_norm.weight"), &[dim])?.data,
        });
    }
    let weights = Weights {
        token_embedding: dense(embedding),
        layers,
        output_norm,
        output,
    };
    Model::new(config, weights)
}

/// Builds a NOVAQ model whose projections multiply straight on their stored codes. The
/// embedding table is decoded to f32 (a lookup reads one row per token, so decoding it once is
/// cheaper than decoding rows on every step); a tied output projection reuses its codes.
pub fn load_novaq(
    manifest: &Manifest,
    shards: Vec<&[u8]>,
) -> Result<Model<QuantizedMatrix>, LoadError> {
    let architecture = manifest
        .architecture
        .as_ref()
        .ok_or(LoadError::NoArchitecture)?;
    let config = Config::from_architecture(architecture)?;
    let mut reader = ModelReader::new(manifest, shards)?;
    let mut matrices = BTreeMap::new();
    let mut tensors = Vec::with_capacity(manifest.tensors.len());
    for entry in &manifest.tensors {
        let shape = entry
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|_| FormatError::Invalid("a tensor dimension exceeds the address space"))?;
        // Projections are only used through `make_linear` below, so their tensors carry no
        // values: `load_model_with` checks shapes only.
        let data = if shape.len() == 2 && entry.name != EMBEDDING {
            matrices.insert(entry.name.clone(), reader.matrix(&entry.name)?);
            Vec::new()
        } else {
            reader.values(&entry.name)?
        };
        tensors.push(Tensor::new(entry.name.clone(), shape, data));
    }
    if config.tied_embeddings {
        matrices.insert(OUTPUT.into(), reader.matrix(EMBEDDING)?);
    }
    // A tensor whose shape `load_model_with` accepted was a 2-D manifest entry, so its matrix
    // was read above; the empty fallback only keeps this total.
    load_model_with(config, tensors, |t| {
        matrices
            .remove(&t.name)
            .unwrap_or_else(|| QuantizedMatrix::dense(0, 0, Vec::new()))
    })
}

const EMBEDDING: &str = "token_embd.weight";
const OUTPUT: &str = "output.weight";

/// Reads a GGUF file into an f32 reference model and its tokenizer.
#[cfg(feature = "std")]
pub fn load_gguf(
    path: impl AsRef<std::path::Path>,
) -> Result<(Model<DenseMatrix>, crate::tokenizer::Tokenizer), LoadError> {
    let file = novaq::read::GgufFile::open(path).map_err(|e| LoadError::Read(e.to_string()))?;
    let tensors = file
        .read_tensors()
        .map_err(|e| LoadError::Read(e.to_string()))?;
    let tokenizer = crate::tokenizer::Tokenizer::from_gguf(&file.metadata)
        .map_err(|e| LoadError::Read(format!("{}: {e}", file.file_name())))?;
    Ok((load_model(&file.metadata, tensors)?, tokenizer))
}
