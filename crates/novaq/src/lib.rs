//! NOVAQ turns real language models (GGUF, safetensors) into the OHMS model format.
//!
//! The core — [`tensor`], [`codec`], [`format`], [`kernel`] — is `no_std + alloc` so agent
//! canisters can decode and run compressed weights inside wasm32. Reading model files needs the
//! `std` feature.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod codec;
pub mod format;
pub mod kernel;
#[cfg(feature = "std")]
pub mod read;
pub mod report;
pub mod tensor;

pub use tensor::{SourceDType, Tensor};
