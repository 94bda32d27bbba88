//! `ohms local`: the OHMS canisters on the project's local IC runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candid::{Encode, Principal};
use clap::Subcommand;
use local_ic::LocalIc;
use local_ic::management_types::CanisterSettings;
use ohms_types::{
    Capability, EconomicsInstallArgs, HttpRequest, HttpResponse, InitArgs, InstallArgs,
    MAX_CHUNK_BYTES, ModelId, ModelMetadata, OpsStatus, Siblings, Tier,
};

use crate::agents;
use crate::model;
use crate::pay;
use crate::repo_client::{LocalTransport, RepoClient};
use sha2::{Digest, Sha256};

pub(crate) const CANISTERS: [&str; 5] = [
    "model_repo",
    "agent_factory",
    "agent",
    "coordinator",
    "economics",
];

#[derive(Subcommand)]
pub enum Command {
    /// Serve a local network over the IC HTTP interface (status, call, query, read_state, all
    /// certified and signed as on the IC), saved in a folder: on first use it is created with
    /// the ICP ledger and the suite, written to icp-cli's id mappings; a restart resumes it,
    /// and no acknowledged update is lost even to `kill -9`.
    Serve(crate::serve::Args),
    /// Install DFINITY's ICP ledger and the five canisters, wired as siblings (economics taking
    /// payments on that ledger), on an in-process local IC network, then upgrade the five and
    /// check that every one serves its operations endpoints. Prints ids,
    /// wasm sizes and hashes, and the instructions the status and metrics queries used.
    SmokeTest {
        /// The folder `scripts/build` wrote the canisters to.
        #[arg(long, default_value = "wasm")]
        wasm_dir: PathBuf,
        /// Also print the figures as one JSON object on the last line (for `scripts/bench ops`).
        #[arg(long)]
        json: bool,
    },
    /// Install DFINITY's ICP ledger (a demo user funded with 100 ICP) and the five canisters,
    /// wired as siblings, on a new local network saved in a file, and upload the agent wasm to
    /// the agent factory (the module of every user's agent canister), for `ohms model …`,
    /// `ohms pay …` and `ohms agents … --local-state FILE` (an existing file is replaced by a
    /// fresh network).
    Deploy {
        /// Where the network is saved.
        #[arg(long, default_value = crate::model::DEFAULT_STATE)]
        state: PathBuf,
        /// The folder `scripts/build` wrote the canisters to.
        #[arg(long, default_value = "wasm")]
        wasm_dir: PathBuf,
    },
    /// Upload a synthetic model of `--mib` MiB to a freshly deployed model repository through
    /// the `ohms model upload` client (several chunks in flight) and report the client → local
    /// runtime throughput.
    UploadBench {
        /// Model size in MiB.
        #[arg(long, default_value_t = 64)]
        mib: u64,
        /// Chunks in flight at once.
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
        /// The folder `scripts/build` wrote the canisters to.
        #[arg(long, default_value = "wasm")]
        wasm_dir: PathBuf,
        /// Print one JSON object of figures as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Count, inside a canister on the local runtime, the wasm instructions of NOVAQ's
    /// matrix-vector kernel on every weight matrix of a compressed model, against a plain f32
    /// matvec of the same matrix dequantized (the `novaq_kernel` benchmark canister).
    KernelBench {
        /// A compressed model directory (`ohms novaq compress … -o DIR`).
        model: PathBuf,
        /// The folder `scripts/build` wrote the canisters to.
        #[arg(long, default_value = "wasm")]
        wasm_dir: PathBuf,
        /// Also decode the whole model in the canister and count each forward pass (with
        /// logits) of one sequence up to this many positions.
        #[arg(long, default_value_t = 0)]
        forward: u32,
        /// Print one JSON object of totals as the last line.
        #[arg(long)]
        json: bool,
    },
}

/// What the `novaq_kernel` canister reports for one matrix.
#[derive(candid::CandidType, serde::Deserialize)]
struct Measurement {
    rows: u64,
    cols: u64,
    codec: String,
    quantized_instructions: u64,
    dense_instructions: u64,
    max_relative_difference: f64,
}

/// Largest payload per upload call, under the 2 MiB message limit with room for the envelope.
const UPLOAD_CHUNK_BYTES: usize = 1_900_000;
/// The kernel and the dense product must agree to f32 accumulation-order noise.
const MAX_RELATIVE_DIFFERENCE: f64 = 1e-3;
/// The look-up-table product rounds each of its products to 8 bits of its block's largest
/// input (about 15 times coarser, for the small levels, than the integer kernel's rounding of
/// the input itself): it is only checked to be the same product.
const LUT_MAX_RELATIVE_DIFFERENCE: f64 = 0.1;

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => crate::serve::run(args),
        Command::SmokeTest { wasm_dir, json } => smoke_test(&wasm_dir, json),
        Command::Deploy { state, wasm_dir } => deploy(&state, &wasm_dir),
        Command::UploadBench {
            mib,
            in_flight,
            wasm_dir,
            json,
        } => upload_bench(mib, in_flight, &wasm_dir, json),
        Command::KernelBench {
            model,
            wasm_dir,
            forward,
            json,
        } => kernel_bench(&model, &wasm_dir, forward, json),
    }
}

fn smoke_test(wasm_dir: &Path, json: bool) -> Result<()> {
    let controller = Principal::self_authenticating(b"ohms local controller");
    let mut ic = LocalIc::new();
    let ids = install_suite(&mut ic, wasm_dir, controller)?;
    let ledger = ids[pay::LEDGER];
    let siblings = siblings_of(&CANISTERS.map(|name| ids[name]));
    let ledger_wasm = icp_ledger_fixture::wasm().map_err(anyhow::Error::msg)?;

    println!(
        "{:<14} {:<28} {:>9} {:<16} {:>18} {:>19}",
        "canister", "id", "bytes", "sha256 (prefix)", "ops_status instr", "/metrics instr"
    );
    println!(
        "{:<14} {:<28} {:>9} {:<16} {:>18} {:>19}",
        pay::LEDGER,
        ledger.to_text(),
        ledger_wasm.len(),
        &hex::encode(Sha256::digest(&ledger_wasm))[..16],
        "-",
        "-"
    );
    let (mut max_status, mut max_metrics, mut max_bytes) = (0u64, 0u64, 0usize);
    for name in CANISTERS {
        let (id, wasm) = (&ids[name], read_wasm(wasm_dir, name)?);
        let sha = hex::encode(Sha256::digest(&wasm));
        let upgrade = if name == "economics" {
            Encode!(&EconomicsInstallArgs::Upgrade(None))?
        } else {
            Encode!()?
        };
        ic.upgrade_canister(*id, wasm.clone(), upgrade, Some(controller))
            .with_context(|| format!("upgrading {name}"))?;

        let status: OpsStatus = ic
            .query(*id, controller, "ops_status", ())
            .with_context(|| format!("{name}.ops_status"))?;
        let status_instructions = ic.last_call_instructions().unwrap_or_default();
        if status.paused || status.siblings != siblings {
            bail!("{name} came up in the wrong state: {status:?}");
        }
        let request = HttpRequest {
            method: "GET".into(),
            url: "/metrics".into(),
            headers: vec![],
            body: vec![],
        };
        let metrics: HttpResponse =
            ic.query(*id, Principal::anonymous(), "http_request", (request,))?;
        let metrics_instructions = ic.last_call_instructions().unwrap_or_default();
        max_status = max_status.max(status_instructions);
        max_metrics = max_metrics.max(metrics_instructions);
        max_bytes = max_bytes.max(wasm.len());
        let version_metric = format!("{name}_canister_version ");
        if metrics.status_code != 200
            || !String::from_utf8_lossy(&metrics.body).contains(&version_metric)
        {
            bail!(
                "{name} /metrics answered {} without {version_metric}",
                metrics.status_code
            );
        }
        println!(
            "{name:<14} {:<28} {:>9} {:<16} {status_instructions:>18} {metrics_instructions:>19}",
            id.to_text(),
            wasm.len(),
            &sha[..16]
        );
    }
    println!(
        "all {} canisters installed, upgraded and serving; economics takes payments on the ICP ledger {ledger}",
        CANISTERS.len()
    );
    if json {
        let figures = serde_json::json!({
            "ops.instructions.ops_status": max_status,
            "ops.instructions.metrics_request": max_metrics,
            "ops.canister_wasm_bytes": max_bytes,
        });
        println!("{figures}");
    }
    Ok(())
}

/// The siblings of the five canisters created in [`CANISTERS`] order.
fn siblings_of(ids: &[Principal]) -> Siblings {
    Siblings {
        model_repo: Some(ids[0]),
        agent_factory: Some(ids[1]),
        coordinator: Some(ids[3]),
        economics: Some(ids[4]),
    }
}

/// Installs DFINITY's ICP ledger (the demo user funded), then creates the five canisters
/// controlled by `controller` and installs them wired as siblings, economics taking payments on
/// that ledger. The ids by name, the ledger's as [`pay::LEDGER`].
fn install_suite(
    ic: &mut LocalIc,
    wasm_dir: &Path,
    controller: Principal,
) -> Result<BTreeMap<String, Principal>> {
    let settings = CanisterSettings {
        controllers: Some(vec![controller]),
        ..Default::default()
    };
    let ids: Vec<Principal> = CANISTERS
        .iter()
        .map(|_| ic.create_canister_with_settings(Some(controller), Some(settings.clone())))
        .collect();
    // After the five, so they keep their ids and none takes the mainnet ledger's.
    let (ledger, _) = pay::install_icp_ledger(ic, controller)?;
    install_suite_code(ic, wasm_dir, &ids, ledger, controller)?;
    let mut canisters: BTreeMap<String, Principal> = CANISTERS
        .iter()
        .map(|name| name.to_string())
        .zip(ids)
        .collect();
    canisters.insert(pay::LEDGER.to_string(), ledger);
    Ok(canisters)
}

/// Installs the five canisters' code in `ids` (in [`CANISTERS`] order), wired as siblings,
/// economics taking payments on `ledger`.
pub(crate) fn install_suite_code(
    ic: &mut LocalIc,
    wasm_dir: &Path,
    ids: &[Principal],
    ledger: Principal,
    controller: Principal,
) -> Result<()> {
    let wasms = CANISTERS
        .iter()
        .map(|name| read_wasm(wasm_dir, name))
        .collect::<Result<Vec<_>>>()?;
    let siblings = siblings_of(ids);
    let init = Encode!(&InstallArgs::Init(InitArgs {
        admins: vec![],
        siblings: siblings.clone(),
    }))?;
    let economics_init = pay::economics_init(siblings, ledger)?;
    for ((name, id), wasm) in CANISTERS.iter().zip(ids).zip(wasms) {
        let arg = if *name == "economics" {
            economics_init.clone()
        } else {
            init.clone()
        };
        ic.install_canister(*id, wasm, arg, Some(controller))
            .with_context(|| format!("installing {name}"))?;
    }
    Ok(())
}

/// Uploads the module the factory installs in every user's agent canister, and says so.
pub(crate) fn upload_agent_module(
    ic: &mut LocalIc,
    agent_factory: Principal,
    wasm_dir: &Path,
) -> Result<()> {
    let module = read_wasm(wasm_dir, "agent")?;
    let status = agents::upload_agent_wasm(ic, agent_factory, model::local_identity(), &module)
        .context("uploading the agent wasm to the agent factory")?;
    println!(
        "agent wasm uploaded to agent_factory: {} bytes in {} chunk(s) of at most {} bytes; active sha256 {}",
        status.active_bytes,
        module.len().div_ceil(agents::AGENT_WASM_CHUNK_BYTES),
        agents::AGENT_WASM_CHUNK_BYTES,
        status.active_sha256.as_deref().unwrap_or("none")
    );
    Ok(())
}

fn deploy(state: &Path, wasm_dir: &Path) -> Result<()> {
    let mut ic = LocalIc::new();
    let canisters = install_suite(&mut ic, wasm_dir, model::local_identity())?;
    for (name, id) in &canisters {
        println!("{name:<14} {}", id.to_text());
    }
    upload_agent_module(&mut ic, canisters["agent_factory"], wasm_dir)?;
    let saved = model::SavedNetwork {
        network: ic.state().clone(),
        canisters,
        uploads: BTreeMap::new(),
    };
    saved.save(state)?;
    println!(
        "local network with {} canisters and the ICP ledger {} saved in {} (administrator {}; demo user {} holds {} e8s)",
        CANISTERS.len(),
        saved.canisters[pay::LEDGER],
        state.display(),
        model::local_identity(),
        pay::demo_user(),
        pay::DEMO_USER_E8S
    );
    Ok(())
}

fn upload_bench(mib: u64, in_flight: usize, wasm_dir: &Path, json: bool) -> Result<()> {
    let mut ic = LocalIc::new();
    let admin = model::local_identity();
    let canisters = install_suite(&mut ic, wasm_dir, admin)?;
    let (manifest, shards) = novaq::format::synthetic::model((mib << 20) as usize, 4 << 20, 1);
    let mut client = RepoClient::new(LocalTransport {
        ic: &mut ic,
        canister: canisters["model_repo"],
        sender: admin,
    });
    let metadata = ModelMetadata {
        id: ModelId::parse("synthetic", "id").map_err(|e| anyhow::anyhow!("{e}"))?,
        name: "Synthetic".into(),
        version: "1.0.0".into(),
        description: "upload benchmark".into(),
        capabilities: vec![Capability::Chat],
        tags: vec![],
        min_tier: Tier::Basic,
    };
    let options = model::UploadOptions {
        in_flight,
        chunk_bytes: MAX_CHUNK_BYTES,
        stop_after_bytes: None,
        progress: false,
    };
    let report = model::upload(
        &mut client,
        &manifest,
        &shards,
        metadata,
        None,
        &options,
        |_| {},
    )?;
    let (manifest_back, shards_back) = model::download(&mut client, &report.record.id)?;
    if manifest_back != manifest || shards_back != shards {
        bail!("the model read back differs from the one uploaded");
    }
    println!(
        "{mib} MiB in {} chunks, {in_flight} in flight: sent in {:.2} s ({:.1} MiB/s), verified in {:.2} s, read back identical",
        report.chunks,
        report.send_seconds,
        report.mib_per_sec(),
        report.verify_seconds
    );
    if json {
        let figures = serde_json::json!({
            "model_repo.upload_mib_per_sec_local": report.mib_per_sec(),
            "model_repo.upload_verify_seconds_local": report.verify_seconds,
        });
        println!("{figures}");
    }
    Ok(())
}

fn kernel_bench(model: &Path, wasm_dir: &Path, forward: u32, json: bool) -> Result<()> {
    let files = novaq::format::dir::read_verified(model)
        .with_context(|| format!("reading {}", model.display()))?;
    let wasm = read_wasm(wasm_dir, "fixtures/novaq_kernel")?;
    let user = Principal::self_authenticating(b"ohms kernel bench");
    let mut ic = LocalIc::new();
    let canister = ic.create_canister_with_settings(
        Some(user),
        Some(CanisterSettings {
            controllers: Some(vec![user]),
            ..Default::default()
        }),
    );
    ic.install_canister(canister, wasm, Encode!()?, Some(user))
        .context("installing novaq_kernel")?;

    let call = |ic: &mut LocalIc, method: &str, arg: Vec<u8>| -> Result<Vec<u8>> {
        ic.update_call(canister, user, method, arg)
            .map_err(|reject| anyhow::anyhow!("{method}: {reject}"))
    };
    let unit = |reply: Vec<u8>| -> Result<()> {
        candid::decode_one::<Result<(), String>>(&reply)?.map_err(anyhow::Error::msg)
    };
    unit(call(
        &mut ic,
        "put_manifest",
        Encode!(&files.manifest_bytes)?,
    )?)?;
    for (index, shard) in files.shards.iter().enumerate() {
        for chunk in shard.chunks(UPLOAD_CHUNK_BYTES) {
            unit(call(
                &mut ic,
                "put_shard_chunk",
                Encode!(&(index as u32), &chunk.to_vec())?,
            )?)?;
        }
    }

    let matrices: Vec<String> = files
        .manifest
        .tensors
        .iter()
        .filter(|t| t.shape.len() >= 2)
        .map(|t| t.name.clone())
        .collect();
    let (mut quantized_total, mut dense_total, mut matrix_weights) = (0u64, 0u64, 0u64);
    let (mut lut_total, mut lut_worst) = (0u64, 0f64);
    println!(
        "{:<28} {:>13} {:<14} {:>14} {:>14} {:>7}",
        "tensor", "shape", "codec", "kernel instr", "f32 instr", "ratio"
    );
    for name in &matrices {
        let reply = call(&mut ic, "measure", Encode!(name)?)?;
        let m = candid::decode_one::<Result<Measurement, String>>(&reply)?
            .map_err(anyhow::Error::msg)?;
        if m.max_relative_difference > MAX_RELATIVE_DIFFERENCE {
            bail!(
                "{name}: kernel and dense results differ by {} (relative)",
                m.max_relative_difference
            );
        }
        quantized_total += m.quantized_instructions;
        matrix_weights += m.rows * m.cols;
        dense_total += m.dense_instructions;
        let ratio = m.quantized_instructions as f64 / m.dense_instructions as f64;
        let shape = format!("{}x{}", m.rows, m.cols);
        println!(
            "{name:<28} {shape:>13} {:<14} {:>14} {:>14} {ratio:>7.3}",
            m.codec, m.quantized_instructions, m.dense_instructions
        );
        if m.codec.starts_with("q4a") {
            // The look-up-table alternative on the same 4-bit values, for comparison.
            let reply = call(&mut ic, "measure_lut", Encode!(name)?)?;
            let (instructions, difference) =
                candid::decode_one::<Result<(u64, f64), String>>(&reply)?
                    .map_err(anyhow::Error::msg)?;
            if difference > LUT_MAX_RELATIVE_DIFFERENCE {
                bail!("{name}: look-up-table and dense results differ by {difference} (relative)");
            }
            lut_total += instructions;
            lut_worst = lut_worst.max(difference);
        }
    }
    if lut_total > 0 {
        println!(
            "look-up-table kernel (i8x16.swizzle over 16-entry int8 product tables): \
             {lut_total} instructions, {:.3} of the integer kernel's; largest difference from \
             the exact product {lut_worst:.4} (relative)",
            lut_total as f64 / quantized_total as f64
        );
    }
    let ratio = quantized_total as f64 / dense_total.max(1) as f64;
    println!(
        "{} matrices: kernel {quantized_total} instructions, plain f32 {dense_total}: ratio {ratio:.3}",
        matrices.len()
    );
    let weights: u64 = files.manifest.tensors.iter().map(|t| t.numel()).sum();
    let mut figures = serde_json::json!({
        "matrices": matrices.len(),
        "matrix_weights": matrix_weights,
        "weights": weights,
        "kernel_instructions": quantized_total,
        "lut_instructions": lut_total,
        "lut_max_relative_difference": lut_worst,
        "f32_instructions": dense_total,
        "lookups_vs_f32": ratio,
    });
    if forward > 0 {
        let reply = call(&mut ic, "load_model", Encode!()?)?;
        let decode =
            candid::decode_one::<Result<u64, String>>(&reply)?.map_err(anyhow::Error::msg)?;
        println!("model decoded in the canister: {decode} instructions");
        let mut costs = Vec::new();
        // A few positions per call keeps each message far below the instruction limit.
        while costs.len() < forward as usize {
            let count = (forward as usize - costs.len()).min(16) as u32;
            let reply = call(&mut ic, "forward_costs", Encode!(&count)?)?;
            costs.extend(
                candid::decode_one::<Result<Vec<u64>, String>>(&reply)?
                    .map_err(anyhow::Error::msg)?,
            );
        }
        for (pos, cost) in costs.iter().enumerate() {
            if pos.is_power_of_two() || pos == 0 || pos + 1 == costs.len() {
                println!(
                    "forward pass at position {pos:>5}: {cost:>12} instructions, {:.3} per weight",
                    *cost as f64 / weights as f64
                );
            }
        }
        let last = *costs.last().expect("forward > 0");
        figures["forward_positions"] = forward.into();
        figures["forward_instructions_last"] = last.into();
        figures["forward_instructions_per_weight_last"] = (last as f64 / weights as f64).into();
        figures["forward_instructions_first"] = costs[0].into();
        figures["model_decode_instructions"] = decode.into();
    }
    if json {
        println!("{figures}");
    }
    Ok(())
}

/// The wasm `scripts/build` wrote for `name` (a canister, or `fixtures/<name>`).
fn read_wasm(wasm_dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = wasm_dir.join(format!("{name}.wasm"));
    std::fs::read(&path)
        .with_context(|| format!("reading {} (run scripts/build first)", path.display()))
}
