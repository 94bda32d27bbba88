//! `ohms novaq …`: compress, inspect, verify and evaluate OHMS models.

mod calibrate;
mod compress;
mod eval;
mod gaussian;
mod inspect;
mod model_info;
mod sensitivity;
mod source;
mod tune;
mod verify;

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Compress a GGUF or safetensors model into an OHMS model directory.
    Compress(Box<CompressArgs>),
    /// Describe a compressed model: configuration, tensors, codebooks, shards.
    Inspect {
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash the manifest and every shard; fails naming the first shard that does not match.
    Verify { dir: PathBuf },
    /// Compare the compressed model's predictions with the source model's.
    Eval(EvalArgs),
    /// How much each kind of matrix (q, k, v, …, across all layers) costs the model's
    /// predictions when it alone is compressed: where extra bits buy the most.
    Sensitivity(SensitivityArgs),
    /// Compress an i.i.d. Gaussian matrix: the rate-distortion sanity check, and the kernel's
    /// speed against a plain f32 matrix-vector product.
    Gaussian(GaussianArgs),
}

#[derive(Args)]
pub struct CompressArgs {
    /// Source model (.gguf or .safetensors).
    pub input: PathBuf,
    /// Output directory.
    #[arg(short, long)]
    pub output: PathBuf,
    /// q4a (4-bit affine groups: what agent canisters run fastest, the default), 2bit, 3bit,
    /// 4bit (additive quantization), aq-BxD (additive, B books over vectors of D weights),
    /// q4a-64 (affine groups of 64) or q4, q8 (symmetric groups).
    #[arg(long, default_value = "q4a")]
    pub mode: String,
    /// Code bits per weight for the additive modes (e.g. 2.5), instead of the mode's preset.
    #[arg(long)]
    pub bits: Option<f64>,
    /// Mode of the embedding table (token_embd.weight, and output.weight when present);
    /// default: 3bit in 2bit mode, the main mode otherwise.
    #[arg(long)]
    pub embedding_mode: Option<String>,
    /// KEY=MODE: tensors named KEY, or with KEY as one dot-separated part of their name, in
    /// MODE (e.g. attn_v=q8). Repeatable; ahead of the mode's presets (2bit: attn_v=4bit,
    /// attn_k=4bit; 4bit: attn_v=q8, attn_k=aq-3x4).
    #[arg(long, value_name = "KEY=MODE")]
    pub tensor_mode: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tokens the source model generates (from BOS, fixed seed) to measure the inputs each
    /// projection sees; the additive modes weigh their fit by them and compensate each block's
    /// error with the columns after it (default: 65536 in 2bit mode, 16384 in 4bit, 8192
    /// otherwise). 0 fits weights alone.
    #[arg(long)]
    pub calibration_tokens: Option<usize>,
    /// Weigh the fit by the measured inputs but code every block independently (no error
    /// feedback).
    #[arg(long)]
    pub no_error_feedback: bool,
    /// Damping of the measured input moments for error feedback, as a share of their mean
    /// diagonal (larger trusts the calibration less; default: 0.3 in 2bit mode, 1.0
    /// otherwise).
    #[arg(long)]
    pub damping: Option<f64>,
    /// Sweeps of block coordinate descent after error feedback: each searches every block's
    /// codes again given all the others (default: 2 in 2bit mode, none in 4bit, 1 otherwise;
    /// 0 keeps error feedback's codes).
    #[arg(long)]
    pub refine_sweeps: Option<usize>,
    /// Candidates the code search keeps per vector (more: closer codes, slower).
    #[arg(long)]
    pub beam: Option<usize>,
    /// Code matrices as they are, without rotating their input space first.
    #[arg(long)]
    pub no_rotation: bool,
    /// Share of weights kept exactly as sparse outliers, from 0 to 0.05 (default: the mode's).
    #[arg(long)]
    pub outlier_fraction: Option<f64>,
    /// Passes of distillation after coding: the codes stay, row scales, codebook entries and
    /// norm gains move so that the compressed model's predictions on the calibration text
    /// match the source model's (default: 1 in 2bit and 4bit modes, none otherwise; 0 skips
    /// it).
    #[arg(long)]
    pub tune_epochs: Option<usize>,
    /// First distillation step, as a share of each parameter array's mean absolute value
    /// (default: 0.0025 in 2bit mode, 0.001 in 4bit, 0.002 otherwise).
    #[arg(long)]
    pub tune_step_size: Option<f32>,
    /// Calibration sequences whose gradients add up to one distillation step (default: 2).
    #[arg(long)]
    pub tune_batch: Option<usize>,
    /// Bytes per shard.
    #[arg(long, default_value_t = novaq::format::write::DEFAULT_SHARD_SIZE)]
    pub shard_size: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    /// The source model the directory was compressed from (.gguf).
    pub source: PathBuf,
    /// The compressed model directory.
    pub dir: PathBuf,
    #[command(flatten)]
    pub scoring: ScoringArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SensitivityArgs {
    /// The source model (.gguf).
    pub source: PathBuf,
    /// The mode each kind of matrix is compressed in, one kind at a time.
    #[arg(long, default_value = "q4")]
    pub mode: String,
    #[command(flatten)]
    pub scoring: ScoringArgs,
    #[arg(long)]
    pub json: bool,
}

/// The token sequences a model is scored on.
#[derive(Args)]
pub struct ScoringArgs {
    /// Text to score; without it, sequences are sampled from the source model with a fixed seed.
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Tokens of --text to score.
    #[arg(long, default_value_t = 512)]
    pub tokens: usize,
    /// Tokens per sequence (each sequence starts a fresh context).
    #[arg(long, default_value_t = 128)]
    pub sequence_length: usize,
    /// Sequences to sample when no --text is given.
    #[arg(long, default_value_t = 8)]
    pub sequences: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct GaussianArgs {
    #[arg(long, default_value_t = 4096)]
    pub rows: usize,
    #[arg(long, default_value_t = 4096)]
    pub cols: usize,
    #[arg(long, default_value = "2bit")]
    pub mode: String,
    #[arg(long)]
    pub bits: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Compress(args) => compress::run(&args),
        Command::Inspect { dir, json } => inspect::run(&dir, json),
        Command::Verify { dir } => verify::run(&dir),
        Command::Eval(args) => eval::run(&args),
        Command::Sensitivity(args) => sensitivity::run(&args),
        Command::Gaussian(args) => gaussian::run(&args),
    }
}

/// Prints a serializable value as one line of JSON.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
