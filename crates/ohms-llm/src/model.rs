//! The Llama forward pass: RMSNorm, RoPE, grouped-query attention with a KV cache, SwiGLU.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::config::{Config, ConfigError};
use crate::linear::{DenseMatrix, Linear};
use crate::load::LoadError;
use crate::math::{attend, rms_norm, silu};
use crate::rope::Rotation;

/// Weights of one transformer block.
pub struct Layer<W> {
    pub attn_norm: Vec<f32>,
    pub wq: W,
    pub wk: W,
    pub wv: W,
    pub wo: W,
    pub ffn_norm: Vec<f32>,
    pub w_gate: W,
    pub w_up: W,
    pub w_down: W,
}

/// All weights of a model.
///
/// The token embedding stays a dense f32 table: a lookup reads one row per token, so it costs
/// memory, not compute, and keeping it exact keeps every compressed model's input identical to the
/// reference. The output projection — the largest matrix-vector product of small models — is a
/// `W` like every other projection, built from the embedding table when the model ties them.
pub struct Weights<W> {
    pub token_embedding: DenseMatrix,
    pub layers: Vec<Layer<W>>,
    pub output_norm: Vec<f32>,
    pub output: W,
}

/// `forward` was asked for something the model cannot do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardError {
    TokenOutOfRange {
        token: u32,
        vocab_size: usize,
    },
    /// Positions must be fed in order; `pos` may rewind to any earlier position.
    PositionSkipped {
        pos: usize,
        next: usize,
    },
    ContextFull {
        pos: usize,
        context_length: usize,
    },
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TokenOutOfRange { token, vocab_size } => {
                write!(f, "token {token} is outside the vocabulary of {vocab_size}")
            }
            Self::PositionSkipped { pos, next } => {
                write!(f, "position {pos} skips ahead of the next position {next}")
            }
            Self::ContextFull {
                pos,
                context_length,
            } => {
                write!(
                    f,
                    "position {pos} is past the context length {context_length}"
                )
            }
        }
    }
}

impl core::error::Error for ForwardError {}

/// Keys and values of every position seen so far, per layer. Grows with the sequence rather than
/// reserving the whole context up front (SmolLM2's 8192 positions would take 377 MB).
struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    kv_dim: usize,
    len: usize,
}

impl KvCache {
    fn new(n_layers: usize, kv_dim: usize) -> Self {
        Self {
            keys: vec![Vec::new(); n_layers],
            values: vec![Vec::new(); n_layers],
            kv_dim,
            len: 0,
        }
    }

    fn truncate(&mut self, len: usize) {
        for layer in self.keys.iter_mut().chain(self.values.iter_mut()) {
            layer.truncate(len * self.kv_dim);
        }
        self.len = len;
    }
}

/// Work buffers reused by every `forward` call.
struct Scratch {
    x: Vec<f32>,
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn_out: Vec<f32>,
    proj: Vec<f32>,
    scores: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    logits: Vec<f32>,
}

/// A Llama-family model with its KV cache, over any [`Linear`] weight type.
pub struct Model<W: Linear> {
    config: Config,
    weights: Weights<W>,
    cache: KvCache,
    scratch: Scratch,
}

impl<W: Linear> Model<W> {
    /// Assembles a model after checking every weight's shape against `config`.
    pub fn new(config: Config, weights: Weights<W>) -> Result<Self, LoadError> {
        check_shapes(&config, &weights)?;
        let scratch = Scratch {
            x: vec![0.0; config.dim],
            xb: vec![0.0; config.dim],
            q: vec![0.0; config.dim],
            k: vec![0.0; config.kv_dim()],
            v: vec![0.0; config.kv_dim()],
            attn_out: vec![0.0; config.dim],
            proj: vec![0.0; config.dim],
            scores: Vec::new(),
            gate: vec![0.0; config.hidden_dim],
            up: vec![0.0; config.hidden_dim],
            logits: vec![0.0; config.vocab_size],
        };
        Ok(Self {
            cache: KvCache::new(config.n_layers, config.kv_dim()),
            config,
            weights,
            scratch,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn weights(&self) -> &Weights<W> {
        &self.weights
    }

    /// Number of positions held in the KV cache.
    pub fn cached_len(&self) -> usize {
        self.cache.len
    }

    /// Forgets the cached sequence.
    pub fn reset(&mut self) {
        self.cache.truncate(0);
    }

    /// Runs `token` at position `pos` and returns the logits for the next token.
    ///
    /// `pos` is the next position, or an earlier one to rewind (the cache drops everything from
    /// `pos` on).
    pub fn forward(&mut self, token: u32, pos: usize) -> Result<&[f32], ForwardError> {
        self.feed(token, pos)?;
        let s = &mut self.scratch;
        rms_norm(
            &mut s.xb,
            &s.x,
            &self.weights.output_norm,
            self.config.norm_eps,
        );
        self.weights.output.matvec(&s.xb, &mut s.logits);
        Ok(&s.logits)
    }

    /// Runs `token` at position `pos` into the KV cache without computing the logits: a prompt
    /// token whose successor is already known skips the output projection, the largest product
    /// of a small model (SmolLM2's 49,152 × 576).
    pub fn feed(&mut self, token: u32, pos: usize) -> Result<(), ForwardError> {
        let c = &self.config;
        if token as usize >= c.vocab_size {
            return Err(ForwardError::TokenOutOfRange {
                token,
                vocab_size: c.vocab_size,
            });
        }
        if pos > self.cache.len {
            return Err(ForwardError::PositionSkipped {
                pos,
                next: self.cache.len,
            });
        }
        if pos >= c.context_length {
            return Err(ForwardError::ContextFull {
                pos,
                context_length: c.context_length,
            });
        }
        self.cache.truncate(pos);

        let (head_dim, kv_dim) = (c.head_dim(), c.kv_dim());
        let group = c.n_heads / c.n_kv_heads;
        let attn_scale = 1.0 / libm::sqrtf(head_dim as f32);
        let rotation = Rotation::new(pos, c.rope_dim, c.rope_theta);
        let s = &mut self.scratch;
        s.x.copy_from_slice(self.weights.token_embedding.row(token as usize));
        s.scores.resize(pos + 1, 0.0);

        for (l, layer) in self.weights.layers.iter().enumerate() {
            // Attention.
            rms_norm(&mut s.xb, &s.x, &layer.attn_norm, c.norm_eps);
            layer.wq.matvec(&s.xb, &mut s.q);
            layer.wk.matvec(&s.xb, &mut s.k);
            layer.wv.matvec(&s.xb, &mut s.v);
            rotation.apply(&mut s.q, head_dim);
            rotation.apply(&mut s.k, head_dim);
            let keys = &mut self.cache.keys[l];
            let values = &mut self.cache.values[l];
            keys.extend_from_slice(&s.k);
            values.extend_from_slice(&s.v);

            for (h, (q, out)) in
                s.q.chunks_exact(head_dim)
                    .zip(s.attn_out.chunks_exact_mut(head_dim))
                    .enumerate()
            {
                // Grouped-query attention: `group` consecutive query heads share a KV head.
                let kv_offset = (h / group) * head_dim;
                attend(
                    q,
                    &keys[kv_offset..],
                    &values[kv_offset..],
                    kv_dim,
                    attn_scale,
                    &mut s.scores,
                    out,
                );
            }
            layer.wo.matvec(&s.attn_out, &mut s.proj);
            add_assign(&mut s.x, &s.proj);

            // SwiGLU feed-forward.
            rms_norm(&mut s.xb, &s.x, &layer.ffn_norm, c.norm_eps);
            layer.w_gate.matvec(&s.xb, &mut s.gate);
            layer.w_up.matvec(&s.xb, &mut s.up);
            for (g, &u) in s.gate.iter_mut().zip(&s.up) {
                *g = silu(*g) * u;
            }
            layer.w_down.matvec(&s.gate, &mut s.proj);
            add_assign(&mut s.x, &s.proj);
        }
        self.cache.len = pos + 1;
        Ok(())
    }
}

/// The shapes `forward` relies on, so a wrongly assembled model is an error, not a panic.
fn check_shapes<W: Linear>(c: &Config, w: &Weights<W>) -> Result<(), LoadError> {
    c.validate().map_err(|reason| {
        LoadError::Config(ConfigError::Invalid {
            key: "config".into(),
            reason,
        })
    })?;
    let mismatch = |name: String, expected: &[usize], found: &[usize]| {
        (expected != found).then(|| LoadError::ShapeMismatch {
            tensor: name,
            expected: expected.to_vec(),
            found: found.to_vec(),
        })
    };
    let matrix = |name: String, m: &W, expected: [usize; 2]| {
        mismatch(name, &expected, &[m.rows(), m.cols()])
    };
    let vector = |name: String, v: &[f32]| mismatch(name, &[c.dim], &[v.len()]);
    let (dim, kv, hidden) = (c.dim, c.kv_dim(), c.hidden_dim);
    let e = &w.token_embedding;
    let mut problems = vec![
        mismatch(
            "token_embd.weight".into(),
            &[c.vocab_size, dim],
            &[Linear::rows(e), Linear::cols(e)],
        ),
        matrix("output.weight".into(), &w.output, [c.vocab_size, dim]),
        vector("output_norm.weight".into(), &w.output_norm),
        // The number of blocks, reported as the length of the `blk.*` list.
        mismatch("blk.*".into(), &[c.n_layers], &[w.layers.len()]),
    ];
    for (i, l) in w.layers.iter().enumerate() {
        let name = |part: &str| format!("blk.{i}.{part}.weight");
        problems.extend([
            matrix(name("attn_q"), &l.wq, [dim, dim]),
            matrix(name("attn_k"), &l.wk, [kv, dim]),
            matrix(name("attn_v"), &l.wv, [kv, dim]),
            matrix(name("attn_output"), &l.wo, [dim, dim]),
            matrix(name("ffn_gate"), &l.w_gate, [hidden, dim]),
            matrix(name("ffn_up"), &l.w_up, [hidden, dim]),
            matrix(name("ffn_down"), &l.w_down, [dim, hidden]),
            vector(name("attn_norm"), &l.attn_norm),
            vector(name("ffn_norm"), &l.ffn_norm),
        ]);
    }
    match problems.into_iter().flatten().next() {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
