//! Activation statistics for the additive fit: the uncompressed model generates text from BOS
//! with a fixed seed (no outside data), and every projection records the mean square of each
//! input feature it sees.

use anyhow::anyhow;
use novaq::Tensor;
use novaq::codec::ActivationPower;
use novaq::read::Metadata;
use ohms_llm::eval::sample_sequences;
use ohms_llm::load::{dense, load_model_with};
use ohms_llm::{Config, DenseMatrix, Linear, Tokenizer};
use std::cell::RefCell;

/// Longest generated sequence; longer budgets generate several.
const MAX_SEQUENCE: usize = 128;

/// A dense projection that accumulates `Σ x_c²` over the inputs it multiplies.
struct Recording {
    name: String,
    matrix: DenseMatrix,
    sums: RefCell<(Vec<f64>, u64)>,
}

impl Linear for Recording {
    fn rows(&self) -> usize {
        self.matrix.rows()
    }

    fn cols(&self) -> usize {
        self.matrix.cols()
    }

    fn matvec(&self, x: &[f32], out: &mut [f32]) {
        let mut sums = self.sums.borrow_mut();
        sums.0
            .iter_mut()
            .zip(x)
            .for_each(|(s, &v)| *s += (v as f64) * (v as f64));
        sums.1 += 1;
        self.matrix.matvec(x, out);
    }
}

/// Mean square input per column of every projection, keyed by tensor name, from `tokens`
/// generated tokens. `None` when the file does not describe a Llama model this project runs.
pub fn activation_power(
    metadata: &Metadata,
    tensors: &[Tensor],
    tokens: usize,
    seed: u64,
) -> anyhow::Result<Option<ActivationPower>> {
    let has_output = tensors.iter().any(|t| t.name == "output.weight");
    let Ok(config) = Config::from_gguf(metadata, has_output) else {
        return Ok(None);
    };
    let mut model = load_model_with(config, tensors.to_vec(), |t| Recording {
        name: t.name.clone(),
        sums: RefCell::new((vec![0.0; t.cols()], 0)),
        matrix: dense(t),
    })
    .map_err(|e| anyhow!("cannot run the source model for calibration: {e}"))?;
    let start = Tokenizer::from_gguf(metadata)
        .ok()
        .and_then(|t| t.bos)
        .unwrap_or(1);
    let length = tokens.clamp(2, MAX_SEQUENCE);
    sample_sequences(&mut model, start, tokens.div_ceil(length), length, seed)
        .map_err(|e| anyhow!("calibration run failed: {e}"))?;
    let weights = model.weights();
    let mut projections: Vec<&Recording> = vec![&weights.output];
    for layer in &weights.layers {
        projections.extend([
            &layer.wq,
            &layer.wk,
            &layer.wv,
            &layer.wo,
            &layer.w_gate,
            &layer.w_up,
            &layer.w_down,
        ]);
    }
    let mut power = ActivationPower::new();
    for p in projections {
        let (sums, calls) = &*p.sums.borrow();
        let mean = sums
            .iter()
            .map(|&s| (s / (*calls).max(1) as f64) as f32)
            .collect();
        // A tied output projection is the embedding table.
        let name = if p.name == "output.weight" && !has_output {
            "token_embd.weight".to_owned()
        } else {
            p.name.clone()
        };
        power.insert(name, mean);
    }
    Ok(Some(power))
}
