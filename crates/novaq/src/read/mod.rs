//! Readers for model files: GGUF and safetensors, dequantized to f32 on read.
//!
//! [`metadata`] and [`dequant`] are plain data and arithmetic and stay available without `std`,
//! so a wasm build can interpret a model's configuration and decode ggml blocks. Reading files
//! needs the `std` feature.

pub mod dequant;
pub mod metadata;

#[cfg(feature = "std")]
mod cursor;
#[cfg(feature = "std")]
mod error;
#[cfg(feature = "std")]
pub mod gguf;
#[cfg(feature = "std")]
pub mod safetensors;

#[cfg(feature = "std")]
pub use error::{ReadError, ReadErrorKind};
#[cfg(feature = "std")]
pub use gguf::GgufFile;
pub use metadata::{Metadata, MetadataValue};
#[cfg(feature = "std")]
pub use safetensors::SafetensorsFile;
