//! `ohms novaq compress`.

use super::{CompressArgs, calibrate, model_info, print_json, source, tune};
use anyhow::{anyhow, bail};
use novaq::codec::{Calibration, EMBEDDING_TENSORS, Mode, Options, compress_calibrated};
use novaq::format::dir;
use novaq::format::write::{ModelInfo, package};
use novaq::report::CompressionReport;
use std::time::Instant;

/// Wider beams cost time in proportion and have stopped paying long before.
const MAX_BEAM: usize = 64;

/// Each sweep costs about what error feedback's own search does; gains shrink fast.
const MAX_REFINE_SWEEPS: usize = 8;

/// Distillation passes over the calibration sequences: far past where it stops paying.
const MAX_TUNE_EPOCHS: usize = 64;

/// Sequences per distillation step: past this a step's memory grows for little gain.
const MAX_TUNE_BATCH: usize = 64;

/// Largest first distillation step (a share of each parameter's scale): larger diverges.
const MAX_TUNE_STEP_SIZE: f32 = 0.1;

/// Beyond this, outliers cost more than the codes they correct (and rows hold at most 255).
const MAX_OUTLIER_FRACTION: f64 = 0.05;

pub fn run(args: &CompressArgs) -> anyhow::Result<()> {
    let mode = Mode::parse(&args.mode, args.bits).map_err(|e| anyhow!(e))?;
    let embedding_mode = match &args.embedding_mode {
        Some(name) => Some(Mode::parse(name, None).map_err(|e| anyhow!("--embedding-mode: {e}"))?),
        None => None,
    };
    if args.shard_size == 0 {
        bail!("--shard-size must be at least 1 byte");
    }
    // Given on the command line: ahead of the presets, so they win.
    let given = args
        .tensor_mode
        .iter()
        .map(|spec| parse_tensor_mode(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(damping) = args.damping
        && !(damping > 0.0 && damping.is_finite())
    {
        bail!("--damping must be a positive number, not {damping}");
    }
    if args
        .beam
        .is_some_and(|beam| !(1..=MAX_BEAM).contains(&beam))
    {
        bail!("--beam must lie between 1 and {MAX_BEAM}");
    }
    if args
        .refine_sweeps
        .is_some_and(|sweeps| sweeps > MAX_REFINE_SWEEPS)
    {
        bail!("--refine-sweeps must lie between 0 and {MAX_REFINE_SWEEPS}");
    }
    if let Some(fraction) = args.outlier_fraction
        && !(0.0..=MAX_OUTLIER_FRACTION).contains(&fraction)
    {
        bail!("--outlier-fraction must lie between 0 and {MAX_OUTLIER_FRACTION}, not {fraction}");
    }
    if args
        .tune_epochs
        .is_some_and(|epochs| epochs > MAX_TUNE_EPOCHS)
    {
        bail!("--tune-epochs must lie between 0 and {MAX_TUNE_EPOCHS}");
    }
    if let Some(step) = args.tune_step_size
        && !(step > 0.0 && step <= MAX_TUNE_STEP_SIZE)
    {
        bail!("--tune-step-size must lie in (0, {MAX_TUNE_STEP_SIZE}], not {step}");
    }
    if args
        .tune_batch
        .is_some_and(|batch| !(1..=MAX_TUNE_BATCH).contains(&batch))
    {
        bail!("--tune-batch must lie between 1 and {MAX_TUNE_BATCH}");
    }
    let source = source::open(&args.input)?;
    if source.tensors.is_empty() {
        bail!("{} holds no tensors", args.input.display());
    }
    let start = Instant::now();
    let mut options = Options::new(mode);
    options.seed = args.seed;
    options.progress = true;
    if let Some(embedding) = embedding_mode {
        options
            .overrides
            .retain(|(key, _)| !EMBEDDING_TENSORS.contains(&key.as_str()));
        options.overrides.splice(
            0..0,
            EMBEDDING_TENSORS.iter().map(|&t| (t.to_owned(), embedding)),
        );
    }
    options.overrides.splice(0..0, given);
    options.error_feedback = !args.no_error_feedback;
    if let Some(damping) = args.damping {
        options.damping = damping;
    }
    if let Some(tokens) = args.calibration_tokens {
        options.calibration_tokens = tokens;
    }
    options.rotate = !args.no_rotation;
    if let Some(sweeps) = args.refine_sweeps {
        options.refine_sweeps = sweeps;
    }
    if let Some(beam) = args.beam {
        options.beam = beam;
    }
    if let Some(fraction) = args.outlier_fraction {
        options.outlier_fraction = fraction;
    }
    if let Some(epochs) = args.tune_epochs {
        options.tune_epochs = epochs;
    }
    if let Some(step) = args.tune_step_size {
        options.tune_step_size = step;
    }
    if let Some(batch) = args.tune_batch {
        options.tune_batch = batch;
    }
    let measured = match mode {
        Mode::Additive { .. } if options.calibration_tokens > 0 => {
            eprintln!(
                "measuring the inputs of every projection over {} generated tokens",
                options.calibration_tokens
            );
            let measuring = Instant::now();
            let measured = calibrate::input_moments(
                &source.metadata,
                &source.tensors,
                options.calibration_tokens,
                args.seed,
            )?;
            eprintln!("measured in {:.0} s", measuring.elapsed().as_secs_f64());
            measured
        }
        _ => None,
    };
    let calibration = measured.as_ref().map(|m| &m.calibration);
    let mut compressed = compress_calibrated(
        &source.tensors,
        calibration.unwrap_or(&Calibration::new()),
        &options,
    );
    if let Some(measured) = &measured
        && options.tune_epochs > 0
    {
        tune::distill(&source, &mut compressed, &measured.sequences, &options)?;
    }
    let info = ModelInfo {
        name: source.name.clone(),
        architecture: model_info::architecture(&source.metadata, &source.tensors),
        tokenizer: model_info::tokenizer(&source.metadata),
    };
    let (manifest, shards) = package(&compressed, info, args.shard_size);
    let root = dir::write(&args.output, &manifest, &shards)?;
    let seconds = start.elapsed().as_secs_f64();
    let manifest_bytes = manifest.to_cbor().len() as u64;
    let report = CompressionReport::new(&compressed, &manifest, manifest_bytes, root, seconds);
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} → {} ({} mode, seed {})",
        args.input.display(),
        args.output.display(),
        report.mode,
        report.seed
    );
    println!(
        "{} weights, {} quantized, {} tensors, {} codebook sets, {} outliers",
        report.parameters,
        report.quantized_parameters,
        report.tensors.len(),
        report.codebook_sets,
        report.outliers
    );
    println!(
        "{:.3} bits/weight all-in ({} bytes in {} shards + {} byte manifest)",
        report.bits_per_weight,
        report.stored_bytes - report.manifest_bytes,
        report.shards,
        report.manifest_bytes
    );
    println!(
        "{:.1}x smaller than f32, {:.2}x smaller than the source",
        report.compression_ratio_vs_f32, report.compression_ratio_vs_source
    );
    println!(
        "relative MSE mean {:.5}, max {:.5}; lowest cosine {:.5}",
        report.relative_mse_mean, report.relative_mse_max, report.cosine_min
    );
    println!(
        "{:.1} s, {:.0} weights/s; root hash {}",
        report.seconds, report.weights_per_second, report.root_hash
    );
    Ok(())
}

/// `KEY=MODE`, e.g. `attn_v=q8`.
fn parse_tensor_mode(spec: &str) -> anyhow::Result<(String, Mode)> {
    let Some((key, mode)) = spec.split_once('=') else {
        bail!("--tensor-mode {spec:?}: expected KEY=MODE, e.g. attn_v=q8");
    };
    if key.is_empty() {
        bail!("--tensor-mode {spec:?}: the tensor name (or name part) is empty");
    }
    let mode = Mode::parse(mode, None).map_err(|e| anyhow!("--tensor-mode {spec:?}: {e}"))?;
    Ok((key.to_owned(), mode))
}
