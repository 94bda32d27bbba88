use super::*;
use crate::linear::DenseMatrix;
use crate::model::{Layer, Model, Weights};

fn config(tied: bool) -> Config {
    Config {
        dim: 8,
        hidden_dim: 12,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        vocab_size: 11,
        context_length: 16,
        rope_dim: 2,
        rope_theta: 10_000.0,
        norm_eps: 1e-5,
        tied_embeddings: tied,
    }
}

/// Deterministic values in about [-0.6, 0.6] (norm gains around 1).
fn params(c: &Config, seed: u64) -> Params {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut values = |len: usize, centre: f32| -> Vec<f32> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                centre + ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1.2
            })
            .collect()
    };
    let (d, kv, h) = (c.dim, c.kv_dim(), c.hidden_dim);
    Params {
        embedding: values(c.vocab_size * d, 0.0),
        output: (!c.tied_embeddings).then(|| values(c.vocab_size * d, 0.0)),
        output_norm: values(d, 1.0),
        layers: (0..c.n_layers)
            .map(|_| LayerParams {
                attn_norm: values(d, 1.0),
                wq: values(d * d, 0.0),
                wk: values(kv * d, 0.0),
                wv: values(kv * d, 0.0),
                wo: values(d * d, 0.0),
                ffn_norm: values(d, 1.0),
                w_gate: values(h * d, 0.0),
                w_up: values(h * d, 0.0),
                w_down: values(d * h, 0.0),
            })
            .collect(),
    }
}

fn model(c: &Config, p: &Params) -> Model<DenseMatrix> {
    let m = |data: &Vec<f32>, rows: usize, cols: usize| {
        DenseMatrix::new(rows, cols, data.clone()).expect("shape")
    };
    let (d, kv, h, v) = (c.dim, c.kv_dim(), c.hidden_dim, c.vocab_size);
    let weights = Weights {
        token_embedding: m(&p.embedding, v, d),
        layers: p
            .layers
            .iter()
            .map(|l| Layer {
                attn_norm: l.attn_norm.clone(),
                wq: m(&l.wq, d, d),
                wk: m(&l.wk, kv, d),
                wv: m(&l.wv, kv, d),
                wo: m(&l.wo, d, d),
                ffn_norm: l.ffn_norm.clone(),
                w_gate: m(&l.w_gate, h, d),
                w_up: m(&l.w_up, h, d),
                w_down: m(&l.w_down, d, h),
            })
            .collect(),
        output_norm: p.output_norm.clone(),
        output: m(p.output.as_ref().unwrap_or(&p.embedding), v, d),
    };
    Model::new(c.clone(), weights).expect("consistent model")
}

const TOKENS: [u32; 7] = [1, 5, 9, 2, 2, 10, 0];

#[test]
fn sequence_forward_matches_the_token_by_token_model() {
    for tied in [true, false] {
        let c = config(tied);
        let p = params(&c, 3);
        let tape = forward(&c, &p, &TOKENS);
        let mut m = model(&c, &p);
        for (pos, &token) in TOKENS.iter().enumerate() {
            let expected = m.forward(token, pos).expect("in range").to_vec();
            let got = &tape.logits[pos * c.vocab_size..(pos + 1) * c.vocab_size];
            for (a, b) in got.iter().zip(&expected) {
                assert!(
                    (a - b).abs() < 1e-4,
                    "tied {tied}, position {pos}: {a} vs {b}"
                );
            }
        }
    }
}

fn loss(c: &Config, p: &Params, teacher: &[f32]) -> f64 {
    let tape = forward(c, p, &TOKENS);
    kl_divergence(&tape.logits, teacher, c.vocab_size, 1.0).0
}

#[test]
fn gradients_match_finite_differences() {
    for tied in [true, false] {
        let c = config(tied);
        let p = params(&c, 5);
        let teacher_params = params(&c, 6);
        let teacher = log_softmax_rows(&forward(&c, &teacher_params, &TOKENS).logits, c.vocab_size);
        let tape = forward(&c, &p, &TOKENS);
        let (kl, d_logits) = kl_divergence(&tape.logits, &teacher, c.vocab_size, 1.0);
        assert!(kl > 0.1, "different models disagree: {kl}");
        let mut grads = p.clone();
        grads.zero();
        backward(&c, &p, &tape, &d_logits, &mut grads);

        let names: Vec<String> = p.clone().named_mut().into_iter().map(|(n, _)| n).collect();
        let grad_values: Vec<Vec<f32>> = grads
            .named_mut()
            .into_iter()
            .map(|(_, g)| g.clone())
            .collect();
        let mut checked = 0;
        for (a, name) in names.iter().enumerate() {
            let len = grad_values[a].len();
            for i in [0, len / 3, len - 1] {
                let h = 1e-2f32;
                let at = |delta: f32| {
                    let mut q = p.clone();
                    q.named_mut()[a].1[i] += delta;
                    loss(&c, &q, &teacher)
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
                let analytic = grad_values[a][i] as f64;
                assert!(
                    (numeric - analytic).abs() < 2e-3 + 2e-2 * numeric.abs(),
                    "tied {tied}, {name}[{i}]: numeric {numeric} vs analytic {analytic}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 3 * (2 + usize::from(!tied) + 9 * c.n_layers));
    }
}

#[test]
fn kl_of_a_model_with_itself_is_zero_with_zero_gradient() {
    let c = config(true);
    let p = params(&c, 9);
    let tape = forward(&c, &p, &TOKENS);
    let teacher = log_softmax_rows(&tape.logits, c.vocab_size);
    let (kl, grad) = kl_divergence(&tape.logits, &teacher, c.vocab_size, 1.0);
    assert!(kl.abs() < 1e-5, "{kl}");
    assert!(grad.iter().all(|g| g.abs() < 1e-6));
}

#[test]
fn lockstep_sampling_matches_the_token_by_token_model() {
    use crate::sample::Sampler;
    use lockstep::{GROUP, Input};
    let (count, len, seed) = (GROUP + 3, 9, 42);
    for tied in [true, false] {
        let c = config(tied);
        let p = params(&c, 5);
        let mut seen: Vec<(Input, Vec<f32>)> = Vec::new();
        let sequences = lockstep::sample_sequences(&c, &p, 1, count, len, seed, |input, rows| {
            if matches!(input, Input::FeedForwardHidden(1) | Input::Output) {
                seen.push((input, rows.to_vec()));
            }
        });
        // The same sampling, one model per sequence, one token at a time: a group's sequences
        // draw from the generator in order at every step.
        let mut sampler = Sampler::top_p(1.0, 1.0, seed);
        let mut expected: Vec<Vec<u32>> = Vec::new();
        for first in (0..count).step_by(GROUP) {
            let n = GROUP.min(count - first);
            let mut models: Vec<_> = (0..n).map(|_| model(&c, &p)).collect();
            let mut group = vec![vec![1u32]; n];
            for pos in 0..len - 1 {
                for (m, tokens) in models.iter_mut().zip(&mut group) {
                    let logits = m.forward(tokens[pos], pos).expect("in range");
                    tokens.push(sampler.sample(logits));
                }
            }
            expected.extend(group);
        }
        assert_eq!(sequences, expected, "tied {tied}");
        assert!(sequences.iter().any(|s| s[1..] != sequences[0][1..]));
        // Every step shows each input once per step, one row per sequence of the group,
        // equal to what the sequence-level pass computes at that position.
        assert_eq!(seen.len(), 2 * 2 * (len - 1));
        let tapes: Vec<Tape> = sequences.iter().map(|s| forward(&c, &p, s)).collect();
        let mut steps = seen.chunks_exact(2);
        for first in (0..count).step_by(GROUP) {
            let n = GROUP.min(count - first);
            for pos in 0..len - 1 {
                let step = steps.next().expect("a step per position");
                for (input, rows) in step {
                    let (width, of): (usize, fn(&Tape) -> &[f32]) = match input {
                        Input::FeedForwardHidden(_) => (c.hidden_dim, |t| &t.layers[1].h),
                        _ => (c.dim, |t| &t.f),
                    };
                    assert_eq!(rows.len(), n * width);
                    for (s, row) in rows.chunks_exact(width).enumerate() {
                        let want = &of(&tapes[first + s])[pos * width..(pos + 1) * width];
                        for (a, b) in row.iter().zip(want) {
                            assert!((a - b).abs() < 1e-4, "{input:?} {pos}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }
}
