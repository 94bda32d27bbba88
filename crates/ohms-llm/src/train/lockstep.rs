//! Sampling many sequences at once: every sequence of a group advances one position per step,
//! so each projection is one matrix product over the group instead of one matrix-vector
//! product per sequence. A matrix-vector product reads every weight from memory for two
//! flops; over a group each weight read serves every sequence, which is what makes sampling
//! thousands of calibration tokens from a model much larger than the caches affordable.

use super::gemm::{View, matmul};
use super::{Params, add_assign, rms_norm_rows};
use crate::config::Config;
use crate::math::{dot, silu, softmax};
use crate::rope::Rotation;
use crate::sample::Sampler;
use rayon::prelude::*;

/// Sequences that advance together: enough that a weight read serves many positions, few
/// enough that the group's logits (`GROUP × vocab`) stay small.
pub const GROUP: usize = 64;

/// The input a projection multiplies, named by the projections that read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A block's normed residual stream: the q, k and v projections' input.
    Attention(usize),
    /// A block's attention output: the output projection's input.
    AttentionOutput(usize),
    /// A block's normed residual stream after attention: the gate and up projections' input.
    FeedForward(usize),
    /// `silu(gate) ⊙ up`: the down projection's input.
    FeedForwardHidden(usize),
    /// The final normed residual stream: the output projection's input.
    Output,
}

/// Samples `count` sequences of `len` tokens (`start`, then `len - 1` sampled ones) from the
/// model at temperature 1, [`GROUP`] at a time. `observe(input, rows)` hears every
/// projection's input as the sequences go: `rows` holds one row per sequence of the group.
/// Deterministic for a given `seed`: one generator serves the sequences of a step in order.
pub fn sample_sequences(
    c: &Config,
    p: &Params,
    start: u32,
    count: usize,
    len: usize,
    seed: u64,
    mut observe: impl FnMut(Input, &[f32]),
) -> Vec<Vec<u32>> {
    assert!(
        (start as usize) < c.vocab_size,
        "start token is in the vocabulary"
    );
    assert!(len <= c.context_length, "sequences fit the context");
    let mut sampler = Sampler::top_p(1.0, 1.0, seed);
    let mut out = Vec::with_capacity(count);
    let mut left = count;
    while left > 0 {
        let n = left.min(GROUP);
        let mut group = Group::new(c, n, start);
        for pos in 0..len.saturating_sub(1) {
            let logits = group.step(c, p, pos, &mut observe);
            for (tokens, logits) in group
                .tokens
                .iter_mut()
                .zip(logits.chunks_exact(c.vocab_size))
            {
                tokens.push(sampler.sample(logits));
            }
        }
        out.extend(group.tokens);
        left -= n;
    }
    out
}

/// Sequences advancing together, with their keys and values so far.
struct Group {
    tokens: Vec<Vec<u32>>,
    /// Per block, per sequence: `positions × kv_dim` keys (after RoPE) and values.
    keys: Vec<Vec<Vec<f32>>>,
    values: Vec<Vec<Vec<f32>>>,
}

impl Group {
    fn new(c: &Config, n: usize, start: u32) -> Self {
        Self {
            tokens: vec![vec![start]; n],
            keys: vec![vec![Vec::new(); n]; c.n_layers],
            values: vec![vec![Vec::new(); n]; c.n_layers],
        }
    }

    /// Runs every sequence's last token at `pos`; returns the logits, one row per sequence.
    fn step(
        &mut self,
        c: &Config,
        p: &Params,
        pos: usize,
        observe: &mut impl FnMut(Input, &[f32]),
    ) -> Vec<f32> {
        let n = self.tokens.len();
        let (dim, kv, hidden) = (c.dim, c.kv_dim(), c.hidden_dim);
        let head_dim = c.head_dim();
        let rotation = Rotation::new(pos, c.rope_dim, c.rope_theta);
        let mut x = Vec::with_capacity(n * dim);
        for tokens in &self.tokens {
            let t = tokens[pos] as usize;
            x.extend_from_slice(&p.embedding[t * dim..(t + 1) * dim]);
        }
        for (l, layer) in p.layers.iter().enumerate() {
            let (a, _) = rms_norm_rows(&x, &layer.attn_norm, c.norm_eps);
            observe(Input::Attention(l), &a);
            let mut q = project(&a, n, &layer.wq, dim, dim);
            let mut k = project(&a, n, &layer.wk, kv, dim);
            let v = project(&a, n, &layer.wv, kv, dim);
            for s in 0..n {
                rotation.apply(&mut q[s * dim..(s + 1) * dim], head_dim);
                rotation.apply(&mut k[s * kv..(s + 1) * kv], head_dim);
                self.keys[l][s].extend_from_slice(&k[s * kv..(s + 1) * kv]);
                self.values[l][s].extend_from_slice(&v[s * kv..(s + 1) * kv]);
            }
            let o = attend(c, &q, &self.keys[l], &self.values[l]);
            observe(Input::AttentionOutput(l), &o);
            add_assign(&mut x, &project(&o, n, &layer.wo, dim, dim));
            let (b, _) = rms_norm_rows(&x, &layer.ffn_norm, c.norm_eps);
            observe(Input::FeedForward(l), &b);
            let mut h = project(&b, n, &layer.w_gate, hidden, dim);
            let up = project(&b, n, &layer.w_up, hidden, dim);
            for (g, &u) in h.iter_mut().zip(&up) {
                *g = silu(*g) * u;
            }
            observe(Input::FeedForwardHidden(l), &h);
            add_assign(&mut x, &project(&h, n, &layer.w_down, dim, hidden));
        }
        let (f, _) = rms_norm_rows(&x, &p.output_norm, c.norm_eps);
        observe(Input::Output, &f);
        let output = p.output.as_ref().unwrap_or(&p.embedding);
        project(&f, n, output, c.vocab_size, dim)
    }
}

/// `y = x Wᵀ` for `x` of `n` rows, computed as `W xᵀ` so that the work splits over the
/// weight's rows and each weight is read once per step.
fn project(x: &[f32], n: usize, w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut yt = vec![0f32; rows * n];
    matmul(
        View::new(w, rows, cols),
        View::new(x, n, cols).t(),
        &mut yt,
        false,
    );
    let mut y = vec![0f32; n * rows];
    for (r, column) in yt.chunks_exact(n).enumerate() {
        for (s, &value) in column.iter().enumerate() {
            y[s * rows + r] = value;
        }
    }
    y
}

/// Each sequence's newest query against all of its keys and values (causal by construction:
/// the cache holds only positions up to the current one).
fn attend(c: &Config, q: &[f32], keys: &[Vec<f32>], values: &[Vec<f32>]) -> Vec<f32> {
    let (dim, kv, head_dim) = (c.dim, c.kv_dim(), c.head_dim());
    let group = c.n_heads / c.n_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0f32; q.len()];
    out.par_chunks_mut(dim)
        .zip(q.par_chunks(dim))
        .zip(keys.par_iter().zip(values))
        .for_each(|((out, q), (keys, values))| {
            let positions = keys.len() / kv;
            let mut scores = vec![0f32; positions];
            for (h, (q, out)) in q
                .chunks_exact(head_dim)
                .zip(out.chunks_exact_mut(head_dim))
                .enumerate()
            {
                let offset = (h / group) * head_dim;
                for (t, score) in scores.iter_mut().enumerate() {
                    *score = dot(q, &keys[t * kv + offset..][..head_dim]) * scale;
                }
                softmax(&mut scores);
                for (t, &a) in scores.iter().enumerate() {
                    for (o, &v) in out.iter_mut().zip(&values[t * kv + offset..][..head_dim]) {
                        *o += a * v;
                    }
                }
            }
        });
    out
}
