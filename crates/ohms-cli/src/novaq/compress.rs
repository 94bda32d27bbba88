//! `ohms novaq compress`.

use super::{CompressArgs, calibrate, model_info, print_json, source};
use anyhow::{anyhow, bail};
use novaq::codec::{ActivationPower, EMBEDDING_TENSORS, Mode, Options, compress_with_activations};
use novaq::format::dir;
use novaq::format::write::{ModelInfo, package};
use novaq::report::CompressionReport;
use std::time::Instant;

pub fn run(args: &CompressArgs) -> anyhow::Result<()> {
    let mode = Mode::parse(&args.mode, args.bits).map_err(|e| anyhow!(e))?;
    let embedding_mode = match &args.embedding_mode {
        Some(name) => Some(Mode::parse(name, None).map_err(|e| anyhow!("--embedding-mode: {e}"))?),
        None => None,
    };
    if args.shard_size == 0 {
        bail!("--shard-size must be at least 1 byte");
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
        options.overrides = EMBEDDING_TENSORS
            .iter()
            .map(|&t| (t.to_owned(), embedding))
            .collect();
    }
    let activations = match mode {
        Mode::Additive { .. } if args.calibration_tokens > 0 => {
            eprintln!(
                "measuring activations over {} generated tokens",
                args.calibration_tokens
            );
            calibrate::activation_power(
                &source.metadata,
                &source.tensors,
                args.calibration_tokens,
                args.seed,
            )?
            .unwrap_or_default()
        }
        _ => ActivationPower::new(),
    };
    let compressed = compress_with_activations(&source.tensors, &activations, &options);
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
