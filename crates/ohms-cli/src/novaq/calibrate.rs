//! Calibration for the additive fit: the uncompressed model generates text from BOS with a
//! fixed seed (no outside data), and every projection records the inputs it multiplies; their
//! second moments weigh the fit and drive error feedback.

use anyhow::anyhow;
use novaq::Tensor;
use novaq::codec::{Calibration, InputMoments};
use novaq::read::Metadata;
use ohms_llm::eval::sample_sequences;
use ohms_llm::load::{dense, load_model_with};
use ohms_llm::{Config, DenseMatrix, Linear, Model, Tokenizer};
use std::cell::RefCell;
use std::sync::Arc;

/// Longest generated sequence; longer budgets generate several.
const MAX_SEQUENCE: usize = 128;
/// Models generating at once, each on its own thread with its own seed. Fixed (not the core
/// count) so the calibration, and so the compressed model, is the same on every machine.
const WORKERS: usize = 2;
/// Mixed into the seed so calibration never samples the sequences `eval` scores by default
/// (both start from BOS with the same sampler).
const CALIBRATION_STREAM: u64 = 0xCA11_B4A7_E000;

/// One projection's recorded inputs: tensor name, input width, `n × width` values.
type Recorded = (String, usize, Vec<f32>);

/// One worker's recorded inputs, projection by projection, and the sequences it generated.
type WorkerRun = (Vec<Recorded>, Vec<Vec<u32>>);

/// A dense projection that keeps every input it multiplies.
struct Recording {
    name: String,
    matrix: DenseMatrix,
    inputs: RefCell<Vec<f32>>,
}

impl Linear for Recording {
    fn rows(&self) -> usize {
        self.matrix.rows()
    }

    fn cols(&self) -> usize {
        self.matrix.cols()
    }

    fn matvec(&self, x: &[f32], out: &mut [f32]) {
        self.inputs.borrow_mut().extend_from_slice(x);
        self.matrix.matvec(x, out);
    }
}

/// What calibration measured: the generated sequences, and the moments of the inputs every
/// projection saw while generating them.
pub struct Measured {
    pub calibration: Calibration,
    pub sequences: Vec<Vec<u32>>,
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
    let length = tokens.clamp(2, MAX_SEQUENCE);
    let sequences = tokens.div_ceil(length);
    let runs: Vec<anyhow::Result<WorkerRun>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let config = config.clone();
                let share = sequences / WORKERS + usize::from(worker < sequences % WORKERS);
                scope.spawn(move || {
                    record(
                        config,
                        tensors,
                        start,
                        share,
                        length,
                        seed ^ CALIBRATION_STREAM ^ worker as u64,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("calibration worker panicked"))
            .collect()
    });
    // Inputs of all workers, in worker order, per projection.
    let mut merged: Vec<Recorded> = Vec::new();
    let mut all_sequences = Vec::new();
    for run in runs {
        let (recorded, sequences) = run?;
        all_sequences.extend(sequences);
        for (i, (name, cols, inputs)) in recorded.into_iter().enumerate() {
            match merged.get_mut(i) {
                Some(m) => m.2.extend_from_slice(&inputs),
                None => merged.push((name, cols, inputs)),
            }
        }
    }
    let mut calibration = Calibration::new();
    // Projections of one input (q, k, v; gate, up) come one after another and share moments.
    let mut previous: Option<(Vec<f32>, Arc<InputMoments>)> = None;
    for (name, cols, inputs) in merged {
        if inputs.is_empty() {
            continue;
        }
        let moments = match &previous {
            Some((seen, moments)) if *seen == inputs => moments.clone(),
            _ => Arc::new(InputMoments::from_inputs(&inputs, cols)),
        };
        // A tied output projection is the embedding table.
        let name = if name == "output.weight" && !has_output {
            "token_embd.weight".to_owned()
        } else {
            name
        };
        calibration.insert(name, moments.clone());
        previous = Some((inputs, moments));
    }
    Ok(Some(Measured {
        calibration,
        sequences: all_sequences,
    }))
}

/// One worker: `count` sequences from `start`; the inputs of every projection, in model order,
/// and the sequences.
fn record(
    config: Config,
    tensors: &[Tensor],
    start: u32,
    count: usize,
    length: usize,
    seed: u64,
) -> anyhow::Result<WorkerRun> {
    let mut model = load_model_with(config, tensors.to_vec(), |t| Recording {
        name: t.name.clone(),
        inputs: RefCell::new(Vec::new()),
        matrix: dense(t),
    })
    .map_err(|e| anyhow!("cannot run the source model for calibration: {e}"))?;
    let sequences = sample_sequences(&mut model, start, count, length, seed)
        .map_err(|e| anyhow!("calibration run failed: {e}"))?;
    let recorded = projections(&model)
        .into_iter()
        .map(|p| (p.name.clone(), p.matrix.cols(), p.inputs.take()))
        .collect();
    Ok((recorded, sequences))
}

fn projections(model: &Model<Recording>) -> Vec<&Recording> {
    let weights = model.weights();
    let mut out = Vec::new();
    for layer in &weights.layers {
        out.extend([
            &layer.wq,
            &layer.wk,
            &layer.wv,
            &layer.wo,
            &layer.w_gate,
            &layer.w_up,
            &layer.w_down,
        ]);
    }
    out.push(&weights.output);
    out
}
