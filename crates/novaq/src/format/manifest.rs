//! The manifest: everything about a model except the weight bytes themselves.

use super::FormatError;
use super::shards::sha256_hex;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Value of [`Manifest::format`].
pub const FORMAT_NAME: &str = "ohms-novaq";
/// The manifest version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for manifests this crate writes.
    pub version: u32,
    /// Name from the source model's metadata (or its file name).
    pub name: String,
    /// How to run the model, when the source said (a bare safetensors file may not).
    pub architecture: Option<Architecture>,
    pub tokenizer: Option<TokenizerSpec>,
    pub compression: Compression,
    /// Codebook sets; [`Codec::Aq::codebook`] indexes this list.
    pub codebooks: Vec<CodebookEntry>,
    pub tensors: Vec<TensorEntry>,
    /// Every shard but the last has exactly this many bytes.
    pub shard_size: u64,
    pub shards: Vec<ShardEntry>,
}

/// Llama-family transformer configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// `"llama"` for every model this format stores today.
    pub family: String,
    pub hidden_size: u32,
    pub intermediate_size: u32,
    pub layers: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub vocab_size: u32,
    pub context_length: u32,
    /// Leading dimensions of each head that RoPE rotates.
    pub rope_dim: u32,
    pub rope_theta: f32,
    pub norm_eps: f32,
    /// The output projection reuses the token embedding matrix.
    pub tied_embeddings: bool,
}

/// The tokenizer, as GGUF describes it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenizerSpec {
    /// `"gpt2"` (byte-level BPE with merges) or `"llama"` (SentencePiece scores).
    pub model: String,
    pub tokens: Vec<String>,
    /// One per token for SentencePiece vocabularies, empty otherwise.
    pub scores: Vec<f32>,
    /// GGUF token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Vec<i32>,
    /// BPE merges as `"left right"`, in priority order.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unknown: Option<u32>,
    pub padding: Option<u32>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
    /// GGUF `tokenizer.ggml.pre`: how a `gpt2` tokenizer splits text into words (`None`: GPT-2's
    /// own pattern).
    #[serde(default)]
    pub pre_tokenizer: Option<String>,
    /// GGUF `tokenizer.ggml.add_space_prefix`: whether SentencePiece prepends a space to the
    /// text (`None`: it does).
    #[serde(default)]
    pub add_space_prefix: Option<bool>,
}

/// How the model was compressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compression {
    /// `"2bit"`, `"3bit"`, `"4bit"`, `"q4"`, `"q8"` or `"aq-<bits>"` for a custom bit rate.
    pub mode: String,
    /// Bits per weight spent on codes alone (before scales, codebooks and outliers).
    pub code_bits: f32,
    pub seed: u64,
    /// Weights in all tensors.
    pub parameters: u64,
    /// Bytes the source file used for the tensors.
    pub source_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodebookEntry {
    pub books: u32,
    pub dim: u32,
    /// `books × 256 × dim` f16 values.
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub shape: Vec<u64>,
    /// The dtype in the source file (`"F16"`, `"BF16"`, `"Q8_0"`, …).
    pub source_dtype: String,
    pub codec: Codec,
    pub location: Location,
}

impl TensorEntry {
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }

    /// `(rows, cols)` of the tensor seen as a matrix over its last dimension.
    pub fn matrix_shape(&self) -> (usize, usize) {
        let cols = self.shape.last().copied().unwrap_or(1) as usize;
        let rows = match self.shape.split_last() {
            Some((_, outer)) => outer.iter().product::<u64>() as usize,
            None => 1,
        };
        (rows, cols)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Codec {
    F32,
    Aq {
        books: u32,
        dim: u32,
        codebook: u32,
        outliers: u64,
        /// The blob carries per-column scales.
        column_scales: bool,
        /// Seed of the rotation the rows were coded in ([`crate::rotation::Rotation`]).
        rotation: Option<u64>,
    },
    Scalar {
        bits: u32,
        group: u32,
    },
    /// Group-wise affine 4-bit integers ([`crate::format::blob::AffineTensor`]).
    Affine {
        group: u32,
    },
}

/// Where a blob lives: it starts `offset` bytes into shard `shard` and runs for `length`
/// bytes, continuing into the following shards if needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub shard: u32,
    pub offset: u64,
    pub length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub size: u64,
    /// Lowercase hex SHA-256 of the shard's bytes.
    pub sha256: String,
}

impl Manifest {
    /// The manifest's canonical bytes (what `manifest.cbor` holds).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("writing CBOR into memory cannot fail");
        out
    }

    /// Parses and structurally validates manifest bytes.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, FormatError> {
        let manifest: Self =
            ciborium::from_reader(bytes).map_err(|e| FormatError::Cbor(format!("{e}")))?;
        if manifest.format != FORMAT_NAME || manifest.version != FORMAT_VERSION {
            return Err(FormatError::Version {
                format: manifest.format,
                version: manifest.version,
            });
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Root hash of these manifest bytes: lowercase hex SHA-256.
    pub fn root_hash(manifest_bytes: &[u8]) -> String {
        sha256_hex(manifest_bytes)
    }

    /// Total bytes of all shards (saturating: a hostile manifest may claim sizes whose sum
    /// overflows; validation then refuses it).
    pub fn stored_bytes(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |total, s| total.saturating_add(s.size))
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorEntry, FormatError> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| FormatError::UnknownTensor(name.into()))
    }

    /// Checks that shard sizes fit the shard size, every location lies inside the shards and
    /// every codec's parameters are usable.
    fn validate(&self) -> Result<(), FormatError> {
        if self.shard_size == 0 {
            return Err(FormatError::Invalid("shard size is zero"));
        }
        let last = self.shards.len().saturating_sub(1);
        for (i, s) in self.shards.iter().enumerate() {
            if s.size > self.shard_size || (i < last && s.size != self.shard_size) {
                return Err(FormatError::Invalid(
                    "shard sizes disagree with the shard size",
                ));
            }
            if s.sha256.len() != 64 {
                return Err(FormatError::Invalid("shard sha256 is not 64 hex digits"));
            }
        }
        let total = self.stored_bytes();
        if total == u64::MAX {
            return Err(FormatError::Invalid("shard sizes overflow"));
        }
        let inside = |l: &Location| {
            let start = (l.shard as u64)
                .checked_mul(self.shard_size)
                .and_then(|s| s.checked_add(l.offset));
            l.offset < self.shard_size.max(1)
                && start
                    .and_then(|s| s.checked_add(l.length))
                    .is_some_and(|e| e <= total)
        };
        for entry in &self.codebooks {
            if !inside(&entry.location) || entry.books == 0 || entry.dim == 0 {
                return Err(FormatError::Invalid("codebook entry out of range"));
            }
        }
        for t in &self.tensors {
            if !inside(&t.location) {
                return Err(FormatError::OutOfRange {
                    shard: t.location.shard,
                    offset: t.location.offset,
                    length: t.location.length,
                });
            }
            if let Codec::Aq {
                books,
                dim,
                codebook,
                ..
            } = t.codec
            {
                let set = self
                    .codebooks
                    .get(codebook as usize)
                    .ok_or(FormatError::Invalid("tensor names a missing codebook set"))?;
                if set.books != books || set.dim != dim {
                    return Err(FormatError::Invalid("tensor and codebook set disagree"));
                }
            }
        }
        Ok(())
    }
}
