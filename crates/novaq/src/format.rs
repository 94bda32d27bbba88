//! The OHMS model format: one CBOR manifest plus bounded-size binary shards.
//!
//! # Layout on disk
//!
//! A model is a directory holding
//! - `manifest.cbor` — the [`Manifest`], encoded as CBOR by serde (field order as declared, so
//!   the same model always encodes to the same bytes);
//! - `shard-00000.bin`, `shard-00001.bin`, … — the shards;
//! - `root.sha256` — the root hash in lowercase hex followed by a newline.
//!
//! # Blobs and shards
//!
//! Every stored array (a tensor, or a set of codebooks shared by several tensors) is one *blob*
//! whose byte layout is given in [`blob`]. Blobs are written one after another into a single
//! byte stream which is cut into shards of exactly [`Manifest::shard_size`] bytes (the last
//! shard may be shorter). A [`Location`] names the shard a blob starts in, the offset inside
//! that shard and the blob's length; a blob longer than the rest of its shard continues at the
//! start of the next shard. Shards are uploaded to the model repository in smaller chunks
//! (≤ 1.9 MiB); the shard size only bounds what a reader has to hold at once.
//!
//! # Integrity
//!
//! The manifest's shard table lists each shard's size and SHA-256. The **root hash** is the
//! SHA-256 of the exact bytes of `manifest.cbor`. Verifying the root hash therefore pins the
//! manifest, the manifest pins every shard's hash, and every shard's hash pins its bytes:
//! [`verify`] checks all three and names the first shard that does not match.
//!
//! # Tensors
//!
//! Each [`TensorEntry`] has the tensor's name and shape (row-major; a matrix is
//! `[rows = outputs, cols = inputs]`), the dtype the source file used, and a [`Codec`]:
//! - [`Codec::F32`] — stored as is (norm weights and other small vectors);
//! - [`Codec::Aq`] — additive vector quantization: per-row f16 scales, optional per-column f16
//!   scales (when activation statistics weighted the fit), `books` one-byte codes per
//!   `dim` weights into the codebook set [`Codec::Aq::codebook`] (an index into
//!   [`Manifest::codebooks`], possibly shared with other tensors), and sparse outliers; with
//!   a rotation seed the codes hold `W Tᵀ` for the orthogonal transform
//!   [`crate::rotation::Rotation`] of that seed (see [`blob`]);
//! - [`Codec::Scalar`] — group-wise symmetric 8- or 4-bit integers with f16 group scales;
//! - [`Codec::Affine`] — group-wise affine 4-bit integers, each group's step and origin in
//!   8 bits of its row's (the format the SIMD kernel reads fastest).
//!
//! Reading is `no_std + alloc` (agent canisters parse manifests and shards inside wasm);
//! writing a model directory needs the `std` feature.

pub mod blob;
#[cfg(feature = "std")]
pub mod dir;
mod manifest;
mod shards;
pub mod synthetic;
#[cfg(feature = "std")]
pub mod write;

pub use manifest::{
    Architecture, CodebookEntry, Codec, Compression, FORMAT_NAME, FORMAT_VERSION, Location,
    Manifest, ShardEntry, TensorEntry, TokenizerSpec,
};
pub use shards::{ShardSet, StreamWriter, sha256_hex, verify};

use alloc::string::String;

/// Why a manifest, shard or blob was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The manifest bytes are not valid CBOR for a [`Manifest`].
    Cbor(String),
    /// Not an OHMS model manifest, or a version this decoder does not read.
    Version { format: String, version: u32 },
    /// A shard's size differs from the shard table.
    ShardSize {
        shard: usize,
        expected: u64,
        found: u64,
    },
    /// A shard's SHA-256 differs from the shard table.
    ShardHash { shard: usize },
    /// A shard listed in the table is absent.
    MissingShard { shard: usize },
    /// The manifest does not hash to the expected root hash.
    RootHash { expected: String, found: String },
    /// A blob's bytes do not have the length its description implies.
    Length { expected: u64, found: u64 },
    /// A location points outside the shards.
    OutOfRange {
        shard: u32,
        offset: u64,
        length: u64,
    },
    /// A structural rule of the format is broken.
    Invalid(&'static str),
    /// No tensor of that name.
    UnknownTensor(String),
    /// Reading or writing files failed.
    Io(String),
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Cbor(e) => write!(f, "manifest is not valid CBOR: {e}"),
            Self::Version { format, version } => write!(
                f,
                "unsupported model format {format:?} version {version} (expected {FORMAT_NAME:?} version {FORMAT_VERSION})"
            ),
            Self::ShardSize {
                shard,
                expected,
                found,
            } => write!(
                f,
                "shard {shard} ({}) has {found} bytes, the manifest says {expected}",
                shards::shard_file_name(*shard)
            ),
            Self::ShardHash { shard } => write!(
                f,
                "shard {shard} ({}) does not match its sha256 in the manifest",
                shards::shard_file_name(*shard)
            ),
            Self::MissingShard { shard } => write!(
                f,
                "shard {shard} ({}) is missing",
                shards::shard_file_name(*shard)
            ),
            Self::RootHash { expected, found } => {
                write!(f, "manifest root hash is {found}, expected {expected}")
            }
            Self::Length { expected, found } => {
                write!(
                    f,
                    "blob has {found} bytes, its description needs {expected}"
                )
            }
            Self::OutOfRange {
                shard,
                offset,
                length,
            } => write!(
                f,
                "location shard {shard} offset {offset} length {length} lies outside the shards"
            ),
            Self::Invalid(what) => write!(f, "invalid model: {what}"),
            Self::UnknownTensor(name) => write!(f, "no tensor named {name:?}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for FormatError {}
