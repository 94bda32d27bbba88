//! Calibration for the additive fit: the uncompressed model generates text from BOS with a
//! fixed seed (no outside data), many sequences in lockstep, and the second moments of every
//! projection's inputs are taken a block at a time as they go (memory does not grow with the
//! tokens); they weigh the fit and drive error feedback.

use anyhow::anyhow;
use novaq::Tensor;
use novaq::codec::{Calibration, MomentSums, SAMPLE_BLOCK};
use novaq::read::Metadata;
use ohms_llm::train::Params;
use ohms_llm::train::lockstep::{Input, sample_sequences};
use ohms_llm::{Config, Tokenizer};
use std::sync::Arc;

/// Longest generated sequence; longer budgets generate several.
const MAX_SEQUENCE: usize = 128;
/// Mixed into the seed so calibration never samples the sequences `eval` scores by default
/// (both start from BOS with the same sampler).
const CALIBRATION_STREAM: u64 = 0xCA11_B4A7_E000;

/// What calibration measured: the generated sequences, and the moments of the inputs every
/// projection saw while generating them.
pub struct Measured {
    pub calibration: Calibration,
    pub sequences: Vec<Vec<u32>>,
}

/// The moments of one input, taken a block of samples at a time as the sequences advance.
struct Measuring {
    /// The projections that multiply this input (tensor names).
    names: Vec<String>,
    sums: MomentSums,
    /// Rows not yet summed (fewer than [`SAMPLE_BLOCK`]).
    pending: Vec<f32>,
}

impl Measuring {
    fn new(names: Vec<String>, cols: usize) -> Self {
        Self {
            names,
            sums: MomentSums::new(cols),
            pending: Vec::with_capacity(SAMPLE_BLOCK * cols),
        }
    }

    fn add(&mut self, rows: &[f32]) {
        self.pending.extend_from_slice(rows);
        let full = self.pending.len() / (SAMPLE_BLOCK * self.sums.cols()) * SAMPLE_BLOCK;
        if full > 0 {
            let cut = full * self.sums.cols();
            self.sums.add(&self.pending[..cut]);
            self.pending.drain(..cut);
        }
    }

    fn finish(mut self) -> (Vec<String>, MomentSums) {
        self.sums.add(&self.pending);
        (self.names, self.sums)
    }
}

/// Input moments of every projection, keyed by tensor name, from about `tokens` generated
/// tokens. `None` when the file does not describe a Llama model this project runs.
pub fn input_moments(
    metadata: &Metadata,
    tensors: &[Tensor],
    tokens: usize,
    seed: u64,
) -> anyhow::Result<Option<Measured>> {
    let has_output = tensors.iter().any(|t| t.name == "output.weight");
    let Ok(config) = Config::from_gguf(metadata, has_output) else {
        return Ok(None);
    };
    let start = Tokenizer::from_gguf(metadata)
        .ok()
        .and_then(|t| t.bos)
        .unwrap_or(1);
    if start as usize >= config.vocab_size {
        return Err(anyhow!(
            "the model's BOS token {start} is outside its vocabulary of {}",
            config.vocab_size
        ));
    }
    let params = Params::from_tensors(&config, tensors)
        .map_err(|e| anyhow!("cannot run the source model for calibration: {e}"))?;
    let length = tokens.clamp(2, MAX_SEQUENCE.min(config.context_length.max(2)));
    let count = tokens.div_ceil(length);
    let mut inputs = projection_inputs(&config, has_output);
    let sequences = sample_sequences(
        &config,
        &params,
        start,
        count,
        length,
        seed ^ CALIBRATION_STREAM,
        |input, rows| inputs[index(&config, input)].add(rows),
    );
    let mut calibration = Calibration::new();
    for measuring in inputs {
        let (names, sums) = measuring.finish();
        let moments = Arc::new(sums.finish());
        for name in names {
            calibration.insert(name, moments.clone());
        }
    }
    Ok(Some(Measured {
        calibration,
        sequences,
    }))
}

/// One measurement per distinct input, in [`index`] order, each naming the projections that
/// multiply it: a block's q, k and v read the same normed input, and so do its gate and up.
fn projection_inputs(c: &Config, has_output: bool) -> Vec<Measuring> {
    let mut out = Vec::with_capacity(4 * c.n_layers + 1);
    for l in 0..c.n_layers {
        let names = |parts: &[&str]| -> Vec<String> {
            parts
                .iter()
                .map(|p| format!("blk.{l}.{p}.weight"))
                .collect()
        };
        out.extend([
            Measuring::new(names(&["attn_q", "attn_k", "attn_v"]), c.dim),
            Measuring::new(names(&["attn_output"]), c.dim),
            Measuring::new(names(&["ffn_gate", "ffn_up"]), c.dim),
            Measuring::new(names(&["ffn_down"]), c.hidden_dim),
        ]);
    }
    // A tied output projection is the embedding table.
    let output = if has_output {
        "output.weight"
    } else {
        "token_embd.weight"
    };
    out.push(Measuring::new(vec![output.to_owned()], c.dim));
    out
}

/// Where `input`'s measurement sits in [`projection_inputs`].
fn index(c: &Config, input: Input) -> usize {
    match input {
        Input::Attention(l) => 4 * l,
        Input::AttentionOutput(l) => 4 * l + 1,
        Input::FeedForward(l) => 4 * l + 2,
        Input::FeedForwardHidden(l) => 4 * l + 3,
        Input::Output => 4 * c.n_layers,
    }
}
