//! `ohms novaq gaussian`: compresses an i.i.d. N(0, 1) matrix. At `b` bits per weight no coder
//! can get the relative error below the Shannon bound `2^(−2b)`; landing just above it shows the
//! codec and its bit accounting are honest. Also times the kernel against f32.

use super::{GaussianArgs, print_json};
use anyhow::anyhow;
use novaq::Tensor;
use novaq::codec::rng::Rng;
use novaq::codec::{Mode, Options, compress};
use novaq::format::write::{ModelInfo, package};
use novaq::kernel::{ModelReader, QuantizedMatrix};
use serde::Serialize;
use std::time::Instant;

#[derive(Serialize)]
struct GaussianReport {
    rows: usize,
    cols: usize,
    mode: String,
    bits_per_weight: f64,
    relative_mse: f64,
    shannon_bound: f64,
    seconds: f64,
    weights_per_second: f64,
    /// Time of the kernel's matrix-vector product over time of a plain f32 one, same matrix.
    kernel_time_vs_f32: f64,
}

pub fn run(args: &GaussianArgs) -> anyhow::Result<()> {
    let mode = Mode::parse(&args.mode, args.bits).map_err(|e| anyhow!(e))?;
    if args.rows == 0 || args.cols == 0 {
        anyhow::bail!("--rows and --cols must be positive");
    }
    let mut rng = Rng::new(args.seed ^ 0x6761_7573_7369_616e);
    let data = (0..args.rows * args.cols).map(|_| rng.normal()).collect();
    let tensor = Tensor::new("gaussian.weight", vec![args.rows, args.cols], data);
    let mut options = Options::new(mode);
    options.seed = args.seed;
    options.progress = true;
    // Gaussian weights have no outliers worth their bits.
    options.outlier_fraction = 0.0;
    let start = Instant::now();
    let compressed = compress(std::slice::from_ref(&tensor), &options);
    let seconds = start.elapsed().as_secs_f64();
    let (manifest, shards) = package(&compressed, ModelInfo::default(), u64::MAX >> 1);
    let stored = manifest.stored_bytes() + manifest.to_cbor().len() as u64;
    let mut reader = ModelReader::new(&manifest, shards.iter().map(Vec::as_slice).collect())?;
    let quantized = reader.matrix("gaussian.weight")?;
    let dense = QuantizedMatrix::dense(args.rows, args.cols, tensor.data);
    let report = GaussianReport {
        rows: args.rows,
        cols: args.cols,
        mode: mode.to_string(),
        bits_per_weight: stored as f64 * 8.0 / (args.rows * args.cols) as f64,
        relative_mse: compressed.tensors[0].relative_mse,
        shannon_bound: (-2.0 * mode.code_bits()).exp2(),
        seconds,
        weights_per_second: (args.rows * args.cols) as f64 / seconds.max(1e-9),
        kernel_time_vs_f32: matvec_seconds(&quantized) / matvec_seconds(&dense),
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "{}×{} Gaussian, {}: {:.4} bits/weight, relative MSE {:.5} (Shannon bound {:.5}), {:.1} s; kernel {:.2}× the time of f32",
        report.rows,
        report.cols,
        report.mode,
        report.bits_per_weight,
        report.relative_mse,
        report.shannon_bound,
        report.seconds,
        report.kernel_time_vs_f32
    );
    Ok(())
}

/// Median wall time of one matrix-vector product.
fn matvec_seconds(m: &QuantizedMatrix) -> f64 {
    let x: Vec<f32> = (0..m.cols())
        .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
        .collect();
    let mut out = vec![0f32; m.rows()];
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            m.matvec(std::hint::black_box(&x), &mut out);
            std::hint::black_box(&out);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
