//! Calibration for the additive fit: the uncompressed model generates text from BOS with a
//! fixed seed (no outside data), many sequences in lockstep, and the second moments of every
//! projection's inputs are taken a block at a time as they go (memory does not grow with the
//! tokens); they weigh the fit and drive error feedback.

use anyhow::anyhow;
use novaq::Tensor;
use novaq::codec::{Calibration, MomentSums};
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

/// The moments of one input, and the projections that multiply it (tensor names).
type Measuring = (Vec<String>, MomentSums);

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
        |input, rows| inputs[index(&config, input)].1.add(rows),
    );
    let mut calibration = Calibration::new();
    for (names, sums) in inputs {
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
            (
                names(&["attn_q", "attn_k", "attn_v"]),
                MomentSums::new(c.dim),
            ),
            (names(&["attn_output"]), MomentSums::new(c.dim)),
            (names(&["ffn_gate", "ffn_up"]), MomentSums::new(c.dim)),
            (names(&["ffn_down"]), MomentSums::new(c.hidden_dim)),
        ]);
    }
    // A tied output projection is the embedding table.
    let output = if has_output {
        "output.weight"
    } else {
        "token_embd.weight"
    };
    out.push((vec![output.to_owned()], MomentSums::new(c.dim)));
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
