//! NOVAQ turns real language models (GGUF, safetensors) into the OHMS model format.
//!
//! The core — [`tensor`], [`format`], [`kernel`], [`rotation`], and the metadata and block decoding
//! of [`read`] — is `no_std + alloc` so agent canisters can decode and run compressed weights
//! inside wasm32. Reading model files needs the `std` feature.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod codec;
pub mod format;
pub mod kernel;
pub mod read;
#[cfg(feature = "std")]
pub mod report;
pub mod rotation;
pub mod tensor;

pub use tensor::{SourceDType, Tensor};
