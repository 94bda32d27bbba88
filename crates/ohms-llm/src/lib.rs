//! Llama-family language model inference for OHMS agents.
//!
//! `no_std + alloc`: the same code runs natively (tests, evaluation, the CLI) and inside agent
//! canisters on wasm32. Weights are reached only through [`Linear`], so a model runs on dense f32
//! matrices or on NOVAQ-compressed ones alike.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod config;
pub mod eval;
pub mod generate;
pub mod linear;
pub mod load;
mod math;
pub mod model;
mod rope;
pub mod sample;
pub mod tokenizer;
#[cfg(feature = "train")]
pub mod train;

pub use config::{Config, ConfigError};
pub use generate::{Generation, Step, StopReason, generate};
pub use linear::{DenseMatrix, Linear};
pub use load::{LoadError, load_model, load_novaq};
pub use model::{ForwardError, Model};
pub use sample::{Rng, Sampler};
pub use tokenizer::{ChatMessage, Tokenizer, TokenizerError, TokenizerSpec};
