//! The forward pass over whole sequences and its backward pass (host only, feature `train`).
//!
//! [`crate::model`] runs one token at a time against a KV cache, which is what inference
//! needs. Tuning a compressed model against its source needs the gradient of a loss over
//! whole sequences with respect to every weight. Here each sequence goes through as
//! `positions × width` activations (kept on a [`Tape`] for the backward pass), every
//! projection is a dense f32 matrix, and products run as matrix-matrix products on both
//! cores. Same model, same arithmetic as [`crate::model`]: RMSNorm, RoPE, causal
//! grouped-query attention, SwiGLU.

pub mod distill;
mod gemm;
pub mod lockstep;

use crate::config::Config;
use crate::load::LoadError;
use crate::math::{dot, silu};
use crate::rope::Rotation;
use gemm::{View, matmul};
use novaq::Tensor;
use rayon::prelude::*;

/// One block's weights (or their gradients), dense and row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerParams {
    pub attn_norm: Vec<f32>,
    pub wq: Vec<f32>,
    pub wk: Vec<f32>,
    pub wv: Vec<f32>,
    pub wo: Vec<f32>,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Vec<f32>,
    pub w_up: Vec<f32>,
    pub w_down: Vec<f32>,
}

/// A whole model's weights (or their gradients), dense and row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `vocab × dim`; with tied embeddings also the output projection.
    pub embedding: Vec<f32>,
    /// The output projection when the model does not tie it to the embedding.
    pub output: Option<Vec<f32>>,
    pub output_norm: Vec<f32>,
    pub layers: Vec<LayerParams>,
}

impl Params {
    /// Gathers every weight by its GGUF name (`token_embd.weight`, `blk.N.attn_q.weight`, …)
    /// from `tensor`, checking its length against `config`.
    pub fn assemble(
        config: &Config,
        mut tensor: impl FnMut(&str) -> Option<Vec<f32>>,
    ) -> Result<Self, LoadError> {
        let mut take = |name: String, shape: &[usize]| -> Result<Vec<f32>, LoadError> {
            let data = tensor(&name).ok_or_else(|| LoadError::MissingTensor(name.clone()))?;
            let expected: usize = shape.iter().product();
            if data.len() != expected {
                return Err(LoadError::ShapeMismatch {
                    tensor: name,
                    expected: shape.to_vec(),
                    found: vec![data.len()],
                });
            }
            Ok(data)
        };
        let c = config;
        let (dim, kv, hidden) = (c.dim, c.kv_dim(), c.hidden_dim);
        let embedding = take("token_embd.weight".into(), &[c.vocab_size, dim])?;
        let output = if c.tied_embeddings {
            None
        } else {
            Some(take("output.weight".into(), &[c.vocab_size, dim])?)
        };
        let output_norm = take("output_norm.weight".into(), &[dim])?;
        let mut layers = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let mut part =
                |name: &str, shape: &[usize]| take(format!("blk.{i}.{name}.weight"), shape);
            layers.push(LayerParams {
                attn_norm: part("attn_norm", &[dim])?,
                wq: part("attn_q", &[dim, dim])?,
                wk: part("attn_k", &[kv, dim])?,
                wv: part("attn_v", &[kv, dim])?,
                wo: part("attn_output", &[dim, dim])?,
                ffn_norm: part("ffn_norm", &[dim])?,
                w_gate: part("ffn_gate", &[hidden, dim])?,
                w_up: part("ffn_up", &[hidden, dim])?,
                w_down: part("ffn_down", &[dim, hidden])?,
            });
        }
        Ok(Self {
            embedding,
            output,
            output_norm,
            layers,
        })
    }

    /// The weights of `tensors` (dense, named as in GGUF).
    pub fn from_tensors(config: &Config, tensors: &[Tensor]) -> Result<Self, LoadError> {
        Self::assemble(config, |name| {
            Some(tensors.iter().find(|t| t.name == name)?.data.clone())
        })
    }

    /// Every array with its GGUF name.
    pub fn named_mut(&mut self) -> Vec<(String, &mut Vec<f32>)> {
        let mut out = vec![("token_embd.weight".to_owned(), &mut self.embedding)];
        if let Some(output) = &mut self.output {
            out.push(("output.weight".to_owned(), output));
        }
        out.push(("output_norm.weight".to_owned(), &mut self.output_norm));
        for (i, l) in self.layers.iter_mut().enumerate() {
            let name = |part: &str| format!("blk.{i}.{part}.weight");
            out.extend([
                (name("attn_norm"), &mut l.attn_norm),
                (name("attn_q"), &mut l.wq),
                (name("attn_k"), &mut l.wk),
                (name("attn_v"), &mut l.wv),
                (name("attn_output"), &mut l.wo),
                (name("ffn_norm"), &mut l.ffn_norm),
                (name("ffn_gate"), &mut l.w_gate),
                (name("ffn_up"), &mut l.w_up),
                (name("ffn_down"), &mut l.w_down),
            ]);
        }
        out
    }

    /// Sets every value to zero (a gradient accumulator between steps).
    pub fn zero(&mut self) {
        self.named_mut()
            .into_par_iter()
            .for_each(|(_, values)| values.fill(0.0));
    }
}

/// What the backward pass needs of one block's forward pass.
struct LayerTape {
    /// The block's input (the residual stream).
    x: Vec<f32>,
    inv_rms_attn: Vec<f32>,
    /// `x` normalized: the input of the q, k and v projections.
    a: Vec<f32>,
    /// Queries and keys after RoPE.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention weights, `heads × positions × positions` (zero above the diagonal).
    probs: Vec<f32>,
    /// Attention output, the input of the output projection.
    o: Vec<f32>,
    /// The residual stream after attention.
    x_mid: Vec<f32>,
    inv_rms_ffn: Vec<f32>,
    /// `x_mid` normalized: the input of the gate and up projections.
    b: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// `silu(gate) ⊙ up`: the input of the down projection.
    h: Vec<f32>,
}

/// A sequence's forward pass, kept for [`backward`].
pub struct Tape {
    tokens: Vec<u32>,
    layers: Vec<LayerTape>,
    x_final: Vec<f32>,
    inv_rms_final: Vec<f32>,
    f: Vec<f32>,
    /// `positions × vocab`: the prediction after each position.
    pub logits: Vec<f32>,
}

/// `y = x W^T` for `x` of `n` rows: a projection of every position.
fn project(x: &[f32], n: usize, w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut y = vec![0f32; n * rows];
    matmul(
        View::new(x, n, cols),
        View::new(w, rows, cols).t(),
        &mut y,
        false,
    );
    y
}

/// RMSNorm of each row; returns the normalized rows and each row's `1 / rms`.
fn rms_norm_rows(x: &[f32], gain: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = gain.len();
    let mut out = vec![0f32; x.len()];
    let mut inv = Vec::with_capacity(x.len() / d);
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let r = 1.0 / (dot(row, row) / d as f32 + eps).sqrt();
        for ((o, &v), &g) in o.iter_mut().zip(row).zip(gain) {
            *o = v * r * g;
        }
        inv.push(r);
    }
    (out, inv)
}

/// The adjoint of [`rms_norm_rows`]: `∂L/∂x` from `∂L/∂out`; adds `∂L/∂gain` into `gain_grad`.
fn rms_norm_backward(
    dy: &[f32],
    x: &[f32],
    inv: &[f32],
    gain: &[f32],
    gain_grad: &mut [f32],
) -> Vec<f32> {
    let d = gain.len();
    let mut dx = vec![0f32; x.len()];
    for (((dy, x), &r), dx) in dy
        .chunks_exact(d)
        .zip(x.chunks_exact(d))
        .zip(inv)
        .zip(dx.chunks_exact_mut(d))
    {
        let mut s = 0f32;
        for j in 0..d {
            s += gain[j] * dy[j] * x[j];
            gain_grad[j] += dy[j] * x[j] * r;
        }
        let c = r * r * r * s / d as f32;
        for j in 0..d {
            dx[j] = r * gain[j] * dy[j] - c * x[j];
        }
    }
    dx
}

fn add(x: &[f32], y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(a, b)| a + b).collect()
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// `silu'(x)`.
fn silu_grad(x: f32) -> f32 {
    let s = 1.0 / (1.0 + (-x).exp());
    s * (1.0 + x * (1.0 - s))
}

/// Shapes of one attention pass.
struct Heads {
    n: usize,
    heads: usize,
    group: usize,
    head_dim: usize,
    dim: usize,
    kv_dim: usize,
    scale: f32,
}

impl Heads {
    fn new(c: &Config, n: usize) -> Self {
        Self {
            n,
            heads: c.n_heads,
            group: c.n_heads / c.n_kv_heads,
            head_dim: c.head_dim(),
            dim: c.dim,
            kv_dim: c.kv_dim(),
            scale: 1.0 / (c.head_dim() as f32).sqrt(),
        }
    }

    fn q_of<'a>(&self, m: &'a [f32], t: usize, h: usize) -> &'a [f32] {
        &m[t * self.dim + h * self.head_dim..][..self.head_dim]
    }

    fn kv_of<'a>(&self, m: &'a [f32], t: usize, h: usize) -> &'a [f32] {
        let kv_head = h / self.group;
        &m[t * self.kv_dim + kv_head * self.head_dim..][..self.head_dim]
    }
}

/// Causal attention of every head; returns the attention weights and the output.
fn attention(s: &Heads, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (n, hd) = (s.n, s.head_dim);
    let per_head: Vec<(Vec<f32>, Vec<f32>)> = (0..s.heads)
        .into_par_iter()
        .map(|h| {
            let mut probs = vec![0f32; n * n];
            let mut out = vec![0f32; n * hd];
            for i in 0..n {
                let row = &mut probs[i * n..i * n + i + 1];
                for (j, p) in row.iter_mut().enumerate() {
                    *p = dot(s.q_of(q, i, h), s.kv_of(k, j, h)) * s.scale;
                }
                crate::math::softmax(row);
                let o = &mut out[i * hd..(i + 1) * hd];
                for (j, &p) in row.iter().enumerate() {
                    for (o, &vv) in o.iter_mut().zip(s.kv_of(v, j, h)) {
                        *o += p * vv;
                    }
                }
            }
            (probs, out)
        })
        .collect();
    let mut probs = Vec::with_capacity(s.heads * n * n);
    let mut out = vec![0f32; n * s.dim];
    for (h, (p, o)) in per_head.into_iter().enumerate() {
        probs.extend_from_slice(&p);
        for i in 0..n {
            out[i * s.dim + h * hd..][..hd].copy_from_slice(&o[i * hd..(i + 1) * hd]);
        }
    }
    (probs, out)
}

/// The adjoint of [`attention`]: `(∂q, ∂k, ∂v)` from `∂out`.
fn attention_backward(s: &Heads, t: &LayerTape, d_out: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (n, hd) = (s.n, s.head_dim);
    let kv_heads = s.heads / s.group;
    // Per key/value head: its query heads' ∂q (one after another), and its ∂k and ∂v summed
    // over them.
    let per_kv: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..kv_heads)
        .into_par_iter()
        .map(|kvh| {
            let mut dk = vec![0f32; n * hd];
            let mut dv = vec![0f32; n * hd];
            let mut dqs = Vec::with_capacity(s.group * n * hd);
            let mut ds = vec![0f32; n];
            for h in kvh * s.group..(kvh + 1) * s.group {
                let probs = &t.probs[h * n * n..(h + 1) * n * n];
                let mut dq = vec![0f32; n * hd];
                for i in 0..n {
                    let p = &probs[i * n..i * n + i + 1];
                    let d_o = s.q_of(d_out, i, h);
                    // ∂p_j = ∂o · v_j; ∂v_j += p_j ∂o.
                    let mut weighted = 0f32;
                    for (j, &pj) in p.iter().enumerate() {
                        let dp = dot(d_o, s.kv_of(&t.v, j, h));
                        ds[j] = dp;
                        weighted += pj * dp;
                        for (dv, &g) in dv[j * hd..(j + 1) * hd].iter_mut().zip(d_o) {
                            *dv += pj * g;
                        }
                    }
                    // Softmax: ∂s_j = p_j (∂p_j − Σ p ∂p); scores are q · k · scale.
                    let qi = s.q_of(&t.q, i, h);
                    let dq_i = &mut dq[i * hd..(i + 1) * hd];
                    for (j, &pj) in p.iter().enumerate() {
                        let g = pj * (ds[j] - weighted) * s.scale;
                        for ((dq, dk), (&kk, &qq)) in dq_i
                            .iter_mut()
                            .zip(&mut dk[j * hd..(j + 1) * hd])
                            .zip(s.kv_of(&t.k, j, h).iter().zip(qi))
                        {
                            *dq += g * kk;
                            *dk += g * qq;
                        }
                    }
                }
                dqs.extend_from_slice(&dq);
            }
            (dqs, dk, dv)
        })
        .collect();
    let mut dq = vec![0f32; n * s.dim];
    let mut dk = vec![0f32; n * s.kv_dim];
    let mut dv = vec![0f32; n * s.kv_dim];
    for (kvh, (dqs, dk_h, dv_h)) in per_kv.into_iter().enumerate() {
        for (g, dq_h) in dqs.chunks_exact(n * hd).enumerate() {
            let h = kvh * s.group + g;
            for i in 0..n {
                dq[i * s.dim + h * hd..][..hd].copy_from_slice(&dq_h[i * hd..(i + 1) * hd]);
            }
        }
        for i in 0..n {
            dk[i * s.kv_dim + kvh * hd..][..hd].copy_from_slice(&dk_h[i * hd..(i + 1) * hd]);
            dv[i * s.kv_dim + kvh * hd..][..hd].copy_from_slice(&dv_h[i * hd..(i + 1) * hd]);
        }
    }
    (dq, dk, dv)
}

/// The RoPE rotation of each position `0..n`.
fn rotations(c: &Config, n: usize) -> Vec<Rotation> {
    (0..n)
        .map(|pos| Rotation::new(pos, c.rope_dim, c.rope_theta))
        .collect()
}

/// Runs `tokens` (positions `0..n`, a fresh context) through the model. Panics on a token
/// outside the vocabulary or a sequence longer than the context.
pub fn forward(c: &Config, p: &Params, tokens: &[u32]) -> Tape {
    let n = tokens.len();
    assert!(n <= c.context_length, "sequence fits the context");
    let (dim, kv, hidden) = (c.dim, c.kv_dim(), c.hidden_dim);
    let heads = Heads::new(c, n);
    let rope = rotations(c, n);
    let mut x = Vec::with_capacity(n * dim);
    for &token in tokens {
        let t = token as usize;
        assert!(t < c.vocab_size, "token {token} is in the vocabulary");
        x.extend_from_slice(&p.embedding[t * dim..(t + 1) * dim]);
    }
    let mut layers = Vec::with_capacity(c.n_layers);
    for l in &p.layers {
        let (a, inv_rms_attn) = rms_norm_rows(&x, &l.attn_norm, c.norm_eps);
        let mut q = project(&a, n, &l.wq, dim, dim);
        let mut k = project(&a, n, &l.wk, kv, dim);
        let v = project(&a, n, &l.wv, kv, dim);
        for (pos, r) in rope.iter().enumerate() {
            r.apply(&mut q[pos * dim..(pos + 1) * dim], heads.head_dim);
            r.apply(&mut k[pos * kv..(pos + 1) * kv], heads.head_dim);
        }
        let (probs, o) = attention(&heads, &q, &k, &v);
        let x_mid = add(&x, &project(&o, n, &l.wo, dim, dim));
        let (b, inv_rms_ffn) = rms_norm_rows(&x_mid, &l.ffn_norm, c.norm_eps);
        let gate = project(&b, n, &l.w_gate, hidden, dim);
        let up = project(&b, n, &l.w_up, hidden, dim);
        let h: Vec<f32> = gate.iter().zip(&up).map(|(&g, &u)| silu(g) * u).collect();
        let next = add(&x_mid, &project(&h, n, &l.w_down, dim, hidden));
        layers.push(LayerTape {
            x: core::mem::replace(&mut x, next),
            inv_rms_attn,
            a,
            q,
            k,
            v,
            probs,
            o,
            x_mid,
            inv_rms_ffn,
            b,
            gate,
            up,
            h,
        });
    }
    let (f, inv_rms_final) = rms_norm_rows(&x, &p.output_norm, c.norm_eps);
    let output = p.output.as_ref().unwrap_or(&p.embedding);
    let logits = project(&f, n, output, c.vocab_size, dim);
    Tape {
        tokens: tokens.to_vec(),
        layers,
        x_final: x,
        inv_rms_final,
        f,
        logits,
    }
}

/// `W += dyᵀ x`: the gradient of `y = x Wᵀ` in `W`, over `n` positions.
fn add_weight_grad(grad: &mut [f32], dy: &[f32], x: &[f32], n: usize) {
    let (rows, cols) = (dy.len() / n, x.len() / n);
    matmul(
        View::new(dy, n, rows).t(),
        View::new(x, n, cols),
        grad,
        true,
    );
}

/// `dx = dy W` (accumulated into `dx`): the gradient of `y = x Wᵀ` in `x`.
fn add_input_grad(dx: &mut [f32], dy: &[f32], w: &[f32], n: usize) {
    let (rows, cols) = (dy.len() / n, dx.len() / n);
    matmul(View::new(dy, n, rows), View::new(w, rows, cols), dx, true);
}

/// Adds the gradient of a loss in every weight into `grads`, given `d_logits` = its gradient
/// in `tape.logits`.
pub fn backward(c: &Config, p: &Params, tape: &Tape, d_logits: &[f32], grads: &mut Params) {
    let n = tape.tokens.len();
    let (dim, hidden) = (c.dim, c.hidden_dim);
    let heads = Heads::new(c, n);
    let rope = rotations(c, n);
    let output = p.output.as_ref().unwrap_or(&p.embedding);
    let output_grad = match &mut grads.output {
        Some(g) => g,
        None => &mut grads.embedding,
    };
    add_weight_grad(output_grad, d_logits, &tape.f, n);
    let mut df = vec![0f32; n * dim];
    add_input_grad(&mut df, d_logits, output, n);
    let mut dx = rms_norm_backward(
        &df,
        &tape.x_final,
        &tape.inv_rms_final,
        &p.output_norm,
        &mut grads.output_norm,
    );
    for ((l, t), g) in p
        .layers
        .iter()
        .zip(&tape.layers)
        .zip(grads.layers.iter_mut())
        .rev()
    {
        // Feed-forward: x_next = x_mid + W_down (silu(W_gate b) ⊙ W_up b).
        add_weight_grad(&mut g.w_down, &dx, &t.h, n);
        let mut dh = vec![0f32; n * hidden];
        add_input_grad(&mut dh, &dx, &l.w_down, n);
        let mut d_gate = vec![0f32; n * hidden];
        let mut d_up = vec![0f32; n * hidden];
        for i in 0..n * hidden {
            d_up[i] = dh[i] * silu(t.gate[i]);
            d_gate[i] = dh[i] * t.up[i] * silu_grad(t.gate[i]);
        }
        add_weight_grad(&mut g.w_gate, &d_gate, &t.b, n);
        add_weight_grad(&mut g.w_up, &d_up, &t.b, n);
        let mut db = vec![0f32; n * dim];
        add_input_grad(&mut db, &d_gate, &l.w_gate, n);
        add_input_grad(&mut db, &d_up, &l.w_up, n);
        let d_norm = rms_norm_backward(&db, &t.x_mid, &t.inv_rms_ffn, &l.ffn_norm, &mut g.ffn_norm);
        add_assign(&mut dx, &d_norm);
        // Attention: x_mid = x + W_o attention(rope(W_q a), rope(W_k a), W_v a).
        add_weight_grad(&mut g.wo, &dx, &t.o, n);
        let mut d_o = vec![0f32; n * dim];
        add_input_grad(&mut d_o, &dx, &l.wo, n);
        let (mut dq, mut dk, dv) = attention_backward(&heads, t, &d_o);
        let kv = heads.kv_dim;
        for (pos, r) in rope.iter().enumerate() {
            r.undo(&mut dq[pos * dim..(pos + 1) * dim], heads.head_dim);
            r.undo(&mut dk[pos * kv..(pos + 1) * kv], heads.head_dim);
        }
        add_weight_grad(&mut g.wq, &dq, &t.a, n);
        add_weight_grad(&mut g.wk, &dk, &t.a, n);
        add_weight_grad(&mut g.wv, &dv, &t.a, n);
        let mut da = vec![0f32; n * dim];
        add_input_grad(&mut da, &dq, &l.wq, n);
        add_input_grad(&mut da, &dk, &l.wk, n);
        add_input_grad(&mut da, &dv, &l.wv, n);
        let d_norm = rms_norm_backward(&da, &t.x, &t.inv_rms_attn, &l.attn_norm, &mut g.attn_norm);
        add_assign(&mut dx, &d_norm);
    }
    for (&token, d) in tape.tokens.iter().zip(dx.chunks_exact(dim)) {
        let t = token as usize;
        add_assign(&mut grads.embedding[t * dim..(t + 1) * dim], d);
    }
}

/// `log softmax` of each `vocab`-long row.
pub fn log_softmax_rows(logits: &[f32], vocab: usize) -> Vec<f32> {
    let mut out = logits.to_vec();
    out.par_chunks_mut(vocab).for_each(|row| {
        let lse = crate::math::log_sum_exp(row) as f32;
        row.iter_mut().for_each(|v| *v -= lse);
    });
    out
}

/// `Σ_positions KL(teacher ‖ model)` in nats, and its gradient in the model's logits times
/// `scale`. `teacher_log_probs` and `logits` are `positions × vocab`.
pub fn kl_divergence(
    logits: &[f32],
    teacher_log_probs: &[f32],
    vocab: usize,
    scale: f32,
) -> (f64, Vec<f32>) {
    let mut grad = log_softmax_rows(logits, vocab);
    let kl: f64 = grad
        .par_chunks_mut(vocab)
        .zip(teacher_log_probs.par_chunks(vocab))
        .map(|(row, teacher)| {
            let mut kl = 0f64;
            for (g, &lp) in row.iter_mut().zip(teacher) {
                let p = lp.exp();
                kl += p as f64 * (lp - *g) as f64;
                // ∂/∂logit of Σ p (log p − log q) is q − p.
                *g = (g.exp() - p) * scale;
            }
            kl
        })
        .sum();
    (kl, grad)
}

#[cfg(test)]
mod tests;
