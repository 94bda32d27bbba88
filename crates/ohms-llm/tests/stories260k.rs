//! The f32 reference model on stories260K, a tiny Llama trained on TinyStories: loading,
//! generation, an independent recomputation of the logits, the tokenizer and evaluation.

mod common;

use novaq::Tensor;
use novaq::kernel::QuantizedMatrix;
use novaq::read::GgufFile;
use ohms_llm::eval::{compare, perplexity, sample_sequences};
use ohms_llm::load::{load_gguf, load_model, load_model_with};
use ohms_llm::{Config, DenseMatrix, Model, Sampler, Tokenizer, generate};

const FIXTURE: &str = "stories260Ktok512.gguf";

struct Fixture {
    file: GgufFile,
    tensors: Vec<Tensor>,
}

fn fixture() -> Option<Fixture> {
    let path = common::fixture(FIXTURE)?;
    let file = GgufFile::open(path).expect("fixture reads");
    let tensors = file.read_tensors().expect("tensors decode");
    Some(Fixture { file, tensors })
}

impl Fixture {
    fn model(&self) -> Model<DenseMatrix> {
        load_model(&self.file.metadata, self.tensors.clone()).expect("model loads")
    }

    fn tokenizer(&self) -> Tokenizer {
        Tokenizer::from_gguf(&self.file.metadata).expect("tokenizer loads")
    }

    fn config(&self) -> Config {
        Config::from_gguf(&self.file.metadata, true).unwrap()
    }

    fn tensor(&self, name: &str) -> &Tensor {
        self.tensors.iter().find(|t| t.name == name).unwrap()
    }
}

#[test]
fn config_comes_from_the_metadata() {
    let Some(f) = fixture() else { return };
    let c = f.model().config().clone();
    assert_eq!(
        c,
        Config {
            dim: 64,
            hidden_dim: 172,
            n_layers: 5,
            n_heads: 8,
            n_kv_heads: 4,
            vocab_size: 512,
            context_length: 128,
            rope_dim: 8,
            rope_theta: 10_000.0,
            norm_eps: 1e-5,
            tied_embeddings: false,
        }
    );
}

#[test]
fn greedy_continuation_of_once_upon_a_time_is_fluent() {
    let Some(path) = common::fixture(FIXTURE) else {
        return;
    };
    let (mut model, tokenizer) = load_gguf(&path).expect("load");
    let prompt = tokenizer.encode("Once upon a time");
    let stop = [tokenizer.eos.unwrap()];
    let new = generate(&mut model, &prompt, &mut Sampler::Greedy, 60, &stop).unwrap();
    assert_eq!(new.len(), 60);
    assert_eq!(
        tokenizer.decode(&[prompt, new].concat()),
        "Once upon a time, there was a little girl named Lily. She loved to play outside in \
         the park. One day, she saw a big, red ball. She wanted to play with it, but it was too \
         high.\nLily"
    );
}

#[test]
fn forward_is_deterministic_and_finite() {
    let Some(f) = fixture() else { return };
    let mut model = f.model();
    let tokens = f.tokenizer().encode("The cat sat on the mat.");
    let run = |model: &mut Model<DenseMatrix>| -> Vec<u32> {
        model.reset();
        let mut bits = Vec::new();
        for (pos, &t) in tokens.iter().enumerate() {
            let logits = model.forward(t, pos).unwrap();
            assert!(logits.iter().all(|x| x.is_finite()));
            bits.extend(logits.iter().map(|x| x.to_bits()));
        }
        bits
    };
    let first = run(&mut model);
    assert_eq!(first, run(&mut model));
    assert_eq!(first, run(&mut f.model()), "a fresh model agrees");
}

#[test]
fn forward_rejects_bad_input_with_typed_errors() {
    use ohms_llm::ForwardError;
    let Some(f) = fixture() else { return };
    let mut model = f.model();
    assert_eq!(
        model.forward(512, 0).unwrap_err(),
        ForwardError::TokenOutOfRange {
            token: 512,
            vocab_size: 512
        }
    );
    assert_eq!(
        model.forward(1, 3).unwrap_err(),
        ForwardError::PositionSkipped { pos: 3, next: 0 }
    );
    for pos in 0..128 {
        model.forward(1, pos).unwrap();
    }
    assert!(matches!(
        model.forward(1, 128),
        Err(ForwardError::ContextFull { .. })
    ));
}

#[test]
fn rewinding_the_cache_reproduces_the_same_logits() {
    let Some(f) = fixture() else { return };
    let mut model = f.model();
    let tokens = f.tokenizer().encode("Tom had a red dog");
    let mut at_last = Vec::new();
    for (pos, &t) in tokens.iter().enumerate() {
        at_last = model.forward(t, pos).unwrap().to_vec();
    }
    // Rewind to position 2 and replay: the cache must have dropped everything after it.
    for (pos, &t) in tokens.iter().enumerate().skip(2) {
        let logits = model.forward(t, pos).unwrap();
        if pos + 1 == tokens.len() {
            assert_eq!(logits, at_last.as_slice());
        }
    }
}

/// The Llama forward pass written out plainly in f64, with no KV cache (every position
/// recomputes attention over the whole prefix) and RoPE as complex multiplication.
fn reference_logits(f: &Fixture, tokens: &[u32]) -> Vec<Vec<f64>> {
    let c = f.config();
    let (dim, hd, nh, nkv) = (c.dim, c.head_dim(), c.n_heads, c.n_kv_heads);
    let mat = |name: &str, x: &[f64]| -> Vec<f64> {
        let t = f.tensor(name);
        (0..t.rows())
            .map(|r| t.row(r).iter().zip(x).map(|(&w, &v)| w as f64 * v).sum())
            .collect()
    };
    let norm = |name: &str, x: &[f64]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let w = &f.tensor(name).data;
        x.iter()
            .zip(w)
            .map(|(v, &w)| v / (ms + c.norm_eps as f64).sqrt() * w as f64)
            .collect()
    };
    let rope = |v: &mut [f64], pos: usize| {
        for head in v.chunks_mut(hd) {
            for i in 0..c.rope_dim / 2 {
                let angle =
                    pos as f64 * (c.rope_theta as f64).powf(-2.0 * i as f64 / c.rope_dim as f64);
                let (re, im) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = re * angle.cos() - im * angle.sin();
                head[2 * i + 1] = re * angle.sin() + im * angle.cos();
            }
        }
    };
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| {
            f.tensor("token_embd.weight")
                .row(t as usize)
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    for l in 0..c.n_layers {
        let p = |part: &str| format!("blk.{l}.{part}.weight");
        let normed: Vec<Vec<f64>> = xs.iter().map(|x| norm(&p("attn_norm"), x)).collect();
        let mut qs: Vec<Vec<f64>> = normed.iter().map(|x| mat(&p("attn_q"), x)).collect();
        let mut ks: Vec<Vec<f64>> = normed.iter().map(|x| mat(&p("attn_k"), x)).collect();
        let vs: Vec<Vec<f64>> = normed.iter().map(|x| mat(&p("attn_v"), x)).collect();
        for pos in 0..tokens.len() {
            rope(&mut qs[pos], pos);
            rope(&mut ks[pos], pos);
        }
        for pos in 0..tokens.len() {
            let mut attn = vec![0.0; dim];
            for h in 0..nh {
                let kvh = h * nkv / nh;
                let q = &qs[pos][h * hd..(h + 1) * hd];
                let scores: Vec<f64> = (0..=pos)
                    .map(|t| {
                        let k = &ks[t][kvh * hd..(kvh + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for (t, s) in scores.iter().enumerate() {
                    for i in 0..hd {
                        attn[h * hd + i] += (s - max).exp() / z * vs[t][kvh * hd + i];
                    }
                }
            }
            let o = mat(&p("attn_output"), &attn);
            xs[pos].iter_mut().zip(o).for_each(|(x, o)| *x += o);
            let n = norm(&p("ffn_norm"), &xs[pos]);
            let gate = mat(&p("ffn_gate"), &n);
            let up = mat(&p("ffn_up"), &n);
            let hidden: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = mat(&p("ffn_down"), &hidden);
            xs[pos].iter_mut().zip(down).for_each(|(x, d)| *x += d);
        }
    }
    xs.iter()
        .map(|x| mat("output.weight", &norm("output_norm.weight", x)))
        .collect()
}

#[test]
fn logits_match_an_independent_plain_computation() {
    let Some(f) = fixture() else { return };
    let tokens = f.tokenizer().encode("Once upon a time, a dog");
    let expected = reference_logits(&f, &tokens);
    let mut model = f.model();
    for (pos, &t) in tokens.iter().enumerate() {
        let logits = model.forward(t, pos).unwrap();
        let worst = logits
            .iter()
            .zip(&expected[pos])
            .map(|(&a, &e)| (a as f64 - e).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-3, "position {pos}: logits differ by {worst}");
    }
}

#[test]
fn tokenizer_round_trips_text_and_falls_back_to_bytes() {
    let Some(f) = fixture() else { return };
    let tokenizer = f.tokenizer();
    let ids = tokenizer.encode("Once upon a time");
    assert_eq!(ids[0], 1, "starts with BOS");
    let pieces: Vec<&str> = ids[1..]
        .iter()
        .map(|&i| tokenizer.token(i).unwrap())
        .collect();
    assert_eq!(pieces.concat(), "▁Once▁upon▁a▁time");
    for text in [
        "Once upon a time",
        "Lily said, \"Hi!\"\nThey played.",
        "  two leading spaces",
        "héllo wörld 🌍 — ok",
        "",
    ] {
        assert_eq!(tokenizer.decode(&tokenizer.encode(text)), text);
    }
    // Long inputs stay fast: merging is O(n log n) in the text length.
    let long = "Lily and Tom played in the big park. ".repeat(1000);
    let started = std::time::Instant::now();
    let ids = tokenizer.encode(&long);
    assert!(
        started.elapsed().as_secs_f64() < 2.0,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(tokenizer.decode(&ids), long);
    // Characters outside the 512-token vocabulary become their UTF-8 bytes.
    let globe = tokenizer.encode("🌍");
    let bytes: Vec<&str> = globe[2..]
        .iter()
        .map(|&i| tokenizer.token(i).unwrap())
        .collect();
    assert_eq!(bytes, ["<0xF0>", "<0x9F>", "<0x8C>", "<0x8D>"]);
}

#[test]
fn evaluation_scores_identical_models_as_equal_and_degraded_ones_as_worse() {
    let Some(f) = fixture() else { return };
    let mut reference = f.model();
    let bos = f.tokenizer().bos.unwrap();
    let sequences = sample_sequences(&mut reference, bos, 4, 48, 2024).unwrap();
    assert_eq!(
        sequences,
        sample_sequences(&mut reference, bos, 4, 48, 2024).unwrap()
    );
    assert!(sequences.iter().all(|s| s.len() == 48 && s[0] == bos));

    // The codec's uncompressed kernel matrix must behave like the dense reference (it may sum
    // in another order, so equal up to rounding).
    let as_kernel = |t: Tensor| QuantizedMatrix::dense(t.rows(), t.cols(), t.data);
    let mut same = load_model_with(f.config(), f.tensors.clone(), as_kernel).unwrap();
    let c = compare(&mut reference, &mut same, &sequences).unwrap();
    assert_eq!(c.positions, 4 * 47);
    assert!((c.perplexity_ratio - 1.0).abs() < 1e-6, "{c:?}");
    assert!(c.mean_kl_divergence.abs() < 1e-9, "{c:?}");
    assert_eq!(c.top1_agreement, 1.0);
    let ppl = perplexity(&mut reference, &sequences).unwrap();
    assert!((ppl - c.reference_perplexity).abs() < 1e-9);
    // Self-sampled text is easy for the model that wrote it, but not trivial.
    assert!((1.5..20.0).contains(&ppl), "perplexity {ppl}");

    // Rounding every weight to 3 bits per row must visibly hurt.
    let coarse = |t: Tensor| {
        let cols = t.cols();
        let data = t
            .data
            .chunks(cols)
            .flat_map(|row| {
                let scale = row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 3.0;
                row.iter().map(move |v| (v / scale).round() * scale)
            })
            .collect();
        DenseMatrix::new(t.rows(), cols, data).unwrap()
    };
    let mut degraded = load_model_with(f.config(), f.tensors.clone(), coarse).unwrap();
    let c = compare(&mut reference, &mut degraded, &sequences).unwrap();
    println!("3-bit rounding: {c:?}");
    assert!(c.perplexity_ratio > 1.05, "{c:?}");
    assert!(c.mean_kl_divergence > 0.01, "{c:?}");
    assert!((0.2..1.0).contains(&c.top1_agreement), "{c:?}");
}

#[test]
fn weights_of_the_wrong_shape_are_rejected() {
    use ohms_llm::LoadError;
    let Some(f) = fixture() else { return };
    let transposed = |t: Tensor| DenseMatrix::new(t.cols(), t.rows(), t.data).unwrap();
    let err = load_model_with(f.config(), f.tensors.clone(), transposed).err();
    assert_eq!(
        err,
        Some(LoadError::ShapeMismatch {
            tensor: "output.weight".into(),
            expected: vec![512, 64],
            found: vec![64, 512],
        })
    );
    let mut missing = f.tensors.clone();
    missing.retain(|t| t.name != "blk.3.ffn_up.weight");
    assert_eq!(
        load_model(&f.file.metadata, missing).err(),
        Some(LoadError::MissingTensor("blk.3.ffn_up.weight".into()))
    );
}
