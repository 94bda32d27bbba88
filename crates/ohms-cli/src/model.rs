//! `ohms model`: uploading NOVAQ models to the model repository and managing them.
//!
//! The commands talk to a local network saved in a file (`ohms local deploy --state FILE`
//! writes it; every command loads it, calls the canister and saves it back), through the
//! [`RepoTransport`](crate::repo_client::RepoTransport) trait, so the IC HTTP interface can
//! take its place later.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use candid::Principal;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use local_ic::{LocalIc, NetworkState};
use ohms_types::{
    BeginUpload, Capability, ChunkRequest, Error, FinalizeOutcome, MAX_CHUNK_BYTES, ModelFilter,
    ModelId, ModelMetadata, ModelRecord, ModelState, ModelSummary, Tier, UploadChunk, UploadId,
    UploadPhase,
};
use serde::{Deserialize, Serialize};

use crate::repo_client::{
    CanisterError, LocalTransport, RepoClient, RepoTransport, missing_ranges, plan_chunks,
};

/// The identity the CLI uses on a local network: the controller of the canisters it deploys,
/// so an administrator of each.
pub fn local_identity() -> Principal {
    Principal::self_authenticating(b"ohms local controller")
}

/// Where `ohms local deploy` saves the network unless told otherwise.
pub const DEFAULT_STATE: &str = "target/ohms-local/network.cbor";

/// A local network saved between commands: the runtime's whole state, the ids of the deployed
/// canisters, and the uploads this client began (so an interrupted upload resumes).
#[derive(Serialize, Deserialize)]
pub struct SavedNetwork {
    pub network: NetworkState,
    pub canisters: BTreeMap<String, Principal>,
    /// Upload id by model id, for uploads begun and not yet finished.
    pub uploads: BTreeMap<String, u64>,
}

impl SavedNetwork {
    pub fn load(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).with_context(|| {
            format!(
                "opening the local network {} (create it with `ohms local deploy --state {}`)",
                path.display(),
                path.display()
            )
        })?;
        ciborium::from_reader(BufReader::new(file))
            .with_context(|| format!("reading the local network {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension("cbor.tmp");
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        let mut writer = BufWriter::new(file);
        ciborium::into_writer(self, &mut writer)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::io::Write::flush(&mut writer)?;
        drop(writer);
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// The id of a canister `ohms local deploy` recorded (`model_repo`, …, `icp_ledger`).
    pub fn canister(&self, name: &str) -> Result<Principal> {
        self.canisters.get(name).copied().ok_or_else(|| {
            anyhow!("the local network has no {name} (deploy it again with `ohms local deploy`)")
        })
    }

    pub fn model_repo(&self, canister: Option<Principal>) -> Result<Principal> {
        match canister {
            Some(id) => Ok(id),
            None => self
                .canisters
                .get("model_repo")
                .copied()
                .ok_or_else(|| anyhow!("the local network has no model_repo; pass --canister")),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// The local network file (`ohms local deploy --state FILE`).
    #[arg(long, global = true, default_value = DEFAULT_STATE)]
    pub local_state: PathBuf,
    /// The model repository canister (default: the network's `model_repo`).
    #[arg(long, global = true)]
    pub canister: Option<Principal>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Uploads a NOVAQ model directory (`ohms novaq compress` output): begins the upload or
    /// resumes it (sending only the ranges `upload_status` lists as missing), sends chunks
    /// several at a time, finalizes (the canister verifies every shard's sha256 and the root
    /// hash) and optionally activates.
    Upload {
        /// The model directory.
        dir: PathBuf,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Model id (default: the directory's name, lowercased).
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "1.0.0")]
        version: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Comma-separated: chat, code, python, javascript, rust, code-review, testing,
        /// summarize, translate, writing, reasoning, math, storytelling.
        #[arg(long, value_delimiter = ',', value_parser = parse_capability)]
        capabilities: Vec<Capability>,
        /// Comma-separated free tags.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// basic, pro or enterprise.
        #[arg(long, default_value = "basic", value_parser = parse_tier)]
        min_tier: Tier,
        /// Activate the model once verified.
        #[arg(long)]
        activate: bool,
        /// Chunks in flight at once.
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
        /// Bytes per chunk (at most 1.9 MiB, 1992294).
        #[arg(long, default_value_t = MAX_CHUNK_BYTES)]
        chunk_bytes: u64,
        /// Resume this upload (by default the one this network file remembers for the model).
        #[arg(long)]
        upload_id: Option<u64>,
        /// Stop once this many bytes were sent in this run, leaving the upload to resume
        /// (for testing resumption).
        #[arg(long, hide = true)]
        stop_after_bytes: Option<u64>,
        /// Print a JSON object of figures as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Lists the models (every state unless filtered).
    List {
        /// uploading, verified, active or deprecated.
        #[arg(long, value_parser = parse_state)]
        state: Option<ModelState>,
        /// Models having every one of these capabilities (comma-separated).
        #[arg(long, value_delimiter = ',', value_parser = parse_capability)]
        capabilities: Vec<Capability>,
    },
    /// Shows one model's record with its shard table.
    Show { id: String },
    /// Verified or Deprecated → Active.
    Activate { id: String },
    /// Active → Deprecated.
    Deprecate { id: String },
    /// Deletes a Verified or Deprecated model and frees its bytes.
    Delete { id: String },
    /// Stops an unfinished upload and frees its bytes (the upload this network file remembers
    /// for the model, or `--upload-id`).
    Abort {
        id: String,
        #[arg(long)]
        upload_id: Option<u64>,
    },
    /// Reads a model back (manifest and every shard) into a directory, and verifies it.
    Download {
        id: String,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// The repository's storage and model figures (`repo_stats` and `/metrics`).
    Stats,
}

fn parse_capability(s: &str) -> Result<Capability, String> {
    let key: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    Ok(match key.as_str() {
        "chat" => Capability::Chat,
        "code" => Capability::Code,
        "python" => Capability::Python,
        "javascript" | "js" => Capability::JavaScript,
        "rust" => Capability::Rust,
        "codereview" => Capability::CodeReview,
        "testing" => Capability::Testing,
        "summarize" => Capability::Summarize,
        "translate" => Capability::Translate,
        "writing" => Capability::Writing,
        "reasoning" => Capability::Reasoning,
        "math" => Capability::Math,
        "storytelling" => Capability::Storytelling,
        _ => return Err(format!("unknown capability {s:?}")),
    })
}

pub(crate) fn parse_tier(s: &str) -> Result<Tier, String> {
    match s.to_ascii_lowercase().as_str() {
        "basic" => Ok(Tier::Basic),
        "pro" => Ok(Tier::Pro),
        "enterprise" => Ok(Tier::Enterprise),
        _ => Err(format!("unknown tier {s:?} (basic, pro, enterprise)")),
    }
}

fn parse_state(s: &str) -> Result<ModelState, String> {
    match s.to_ascii_lowercase().as_str() {
        "uploading" => Ok(ModelState::Uploading),
        "verified" => Ok(ModelState::Verified),
        "active" => Ok(ModelState::Active),
        "deprecated" => Ok(ModelState::Deprecated),
        _ => Err(format!(
            "unknown state {s:?} (uploading, verified, active, deprecated)"
        )),
    }
}

fn model_id(s: &str) -> Result<ModelId> {
    ModelId::parse(s, "id").map_err(|e| anyhow!("{e}"))
}

pub fn run(args: Args) -> Result<()> {
    with_local_network(&args.local_state, |ic, saved| {
        let canister = saved.model_repo(args.canister)?;
        run_on(ic, canister, &mut saved.uploads, args.command)
    })
}

/// Loads the local network saved in `path`, runs `f` on it and saves it back, whatever `f`
/// returned (an interrupted upload included), so the next command continues from it.
pub fn with_local_network<R>(
    path: &Path,
    f: impl FnOnce(&mut LocalIc, &mut SavedNetwork) -> Result<R>,
) -> Result<R> {
    let mut saved = SavedNetwork::load(path)?;
    let mut ic = LocalIc::from_state(std::mem::replace(
        &mut saved.network,
        NetworkState::new([0; 32]),
    ));
    let result = f(&mut ic, &mut saved);
    saved.network = ic.state().clone();
    saved.save(path)?;
    result
}

fn run_on(
    ic: &mut LocalIc,
    canister: Principal,
    uploads: &mut BTreeMap<String, u64>,
    command: Command,
) -> Result<()> {
    let mut client = RepoClient::new(LocalTransport {
        ic,
        canister,
        sender: local_identity(),
    });
    match command {
        Command::Upload {
            dir,
            name,
            id,
            version,
            description,
            capabilities,
            tags,
            min_tier,
            activate,
            in_flight,
            chunk_bytes,
            upload_id,
            stop_after_bytes,
            json,
        } => {
            let files = novaq::format::dir::read_verified(&dir)
                .with_context(|| format!("reading {}", dir.display()))?;
            let id = match id {
                Some(id) => id,
                None => default_id(&dir)?,
            };
            let metadata = ModelMetadata {
                id: model_id(&id)?,
                name,
                version,
                description,
                capabilities,
                tags,
                min_tier,
            };
            let resume = upload_id.or_else(|| uploads.get(&id).copied());
            let options = UploadOptions {
                in_flight,
                chunk_bytes,
                stop_after_bytes,
                progress: true,
            };
            let report = upload(
                &mut client,
                &files.manifest_bytes,
                &files.shards,
                metadata,
                resume.map(UploadId),
                &options,
                |upload| {
                    uploads.insert(id.clone(), upload.0);
                },
            );
            let report = match report {
                Ok(report) => report,
                Err(err) => {
                    if err.downcast_ref::<Stopped>().is_none()
                        && uploads.get(&id).is_some_and(|u| Some(*u) == resume)
                        && err
                            .downcast_ref::<CanisterError>()
                            .is_some_and(|e| matches!(e.error, Error::NotFound { .. }))
                    {
                        uploads.remove(&id);
                    }
                    return Err(err);
                }
            };
            uploads.remove(&id);
            let mut record = report.record.clone();
            if activate {
                record = client.activate(&record.id)?;
            }
            println!(
                "upload {}: {} {} ({} bytes in {} shards, root {}): {}",
                report.upload_id.0,
                record.id,
                record.version,
                record.compressed_bytes,
                record.shards.len(),
                &record.root_hash[..16],
                state_name(record.state)
            );
            println!(
                "sent {} bytes in {} chunks ({} already there) in {:.2} s: {:.1} MiB/s; verified in {:.2} s",
                report.sent_bytes,
                report.chunks,
                report.resumed_bytes,
                report.send_seconds,
                report.mib_per_sec(),
                report.verify_seconds
            );
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "bytes": record.compressed_bytes,
                        "sent_bytes": report.sent_bytes,
                        "resumed_bytes": report.resumed_bytes,
                        "chunks": report.chunks,
                        "send_seconds": report.send_seconds,
                        "mib_per_sec": report.mib_per_sec(),
                        "verify_seconds": report.verify_seconds,
                    })
                );
            }
            Ok(())
        }
        Command::List {
            state,
            capabilities,
        } => {
            let filter = ModelFilter {
                state,
                capabilities,
                ..Default::default()
            };
            let models = client.list_all_models(&filter)?;
            print_listing(&models);
            Ok(())
        }
        Command::Show { id } => {
            let record = client.get_model(&model_id(&id)?)?;
            print_record(&record);
            Ok(())
        }
        Command::Activate { id } => {
            let record = client.activate(&model_id(&id)?)?;
            println!("{}: {}", record.id, state_name(record.state));
            Ok(())
        }
        Command::Deprecate { id } => {
            let record = client.deprecate(&model_id(&id)?)?;
            println!("{}: {}", record.id, state_name(record.state));
            Ok(())
        }
        Command::Delete { id } => {
            client.delete_model(&model_id(&id)?)?;
            println!("{id}: deleted");
            Ok(())
        }
        Command::Abort { id, upload_id } => {
            let upload = upload_id
                .or_else(|| uploads.get(&id).copied())
                .ok_or_else(|| anyhow!("no upload of {id} is remembered here; pass --upload-id"))?;
            client.abort_upload(UploadId(upload))?;
            uploads.remove(&id);
            println!("upload {upload} of {id}: aborted");
            Ok(())
        }
        Command::Download { id, output } => {
            let started = Instant::now();
            let (manifest, shards) = download(&mut client, &model_id(&id)?)?;
            write_model_dir(&output, &manifest, &shards)?;
            let files = novaq::format::dir::read_verified(&output)
                .with_context(|| format!("verifying {}", output.display()))?;
            let bytes: usize = shards.iter().map(Vec::len).sum();
            println!(
                "{id}: manifest {} bytes and {} shards ({bytes} bytes) read in {:.2} s into {}; root {} verified",
                manifest.len(),
                shards.len(),
                started.elapsed().as_secs_f64(),
                output.display(),
                files.root_hash
            );
            Ok(())
        }
        Command::Stats => {
            let stats = client.repo_stats()?;
            let metrics = client.metrics()?;
            println!(
                "blob store: {} bytes used, {} free, {} reserved for models (pages of {} bytes)",
                stats.bytes_used, stats.bytes_free, stats.bytes_reserved, stats.page_bytes
            );
            println!(
                "models: {} uploading, {} verified, {} active, {} deprecated; {} uploads in progress",
                stats.models_uploading,
                stats.models_verified,
                stats.models_active,
                stats.models_deprecated,
                stats.uploads_in_progress
            );
            println!("/metrics:");
            for line in metrics
                .lines()
                .filter(|l| l.starts_with("model_repo_") || l.starts_with("stable_memory_bytes"))
            {
                println!("  {line}");
            }
            Ok(())
        }
    }
}

/// The directory's name, lowercased, as a model id.
fn default_id(dir: &Path) -> Result<String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} has no name; pass --id", dir.display()))?
        .to_ascii_lowercase();
    ModelId::parse(&name, "id")
        .map_err(|e| anyhow!("the directory name is not a model id ({e}); pass --id"))?;
    Ok(name)
}

fn state_name(state: ModelState) -> &'static str {
    match state {
        ModelState::Uploading => "uploading",
        ModelState::Verified => "verified",
        ModelState::Active => "active",
        ModelState::Deprecated => "deprecated",
    }
}

fn print_listing(models: &[ModelSummary]) {
    println!(
        "{:<24} {:<24} {:<8} {:<6} {:>6} {:>10} {:>7} {:<11} capabilities",
        "id", "name", "version", "mode", "bpw", "bytes", "shards", "state"
    );
    for m in models {
        let caps: Vec<String> = m.capabilities.iter().map(ToString::to_string).collect();
        println!(
            "{:<24} {:<24} {:<8} {:<6} {:>6.2} {:>10} {:>7} {:<11} {}",
            m.id.as_str(),
            m.name,
            m.version,
            m.mode,
            m.bits_per_weight,
            m.compressed_bytes,
            m.shard_count,
            state_name(m.state),
            caps.join(",")
        );
    }
    println!("{} models", models.len());
}

fn print_record(r: &ModelRecord) {
    let caps: Vec<String> = r.capabilities.iter().map(ToString::to_string).collect();
    let a = &r.architecture;
    println!("id            {}", r.id);
    println!("name          {} {}", r.name, r.version);
    println!("description   {}", r.description);
    println!("state         {}", state_name(r.state));
    println!("capabilities  {}", caps.join(", "));
    println!("tags          {}", r.tags.join(", "));
    println!("min tier      {:?}", r.min_tier);
    println!(
        "architecture  {}: hidden {}, {} layers, {} heads ({} kv), vocab {}, context {}",
        a.family, a.hidden_size, a.layers, a.heads, a.kv_heads, a.vocab_size, a.context_length
    );
    println!(
        "novaq         {}: {:.3} bits/weight all-in ({:.3} in codes), {} parameters, {} tensors",
        r.novaq.mode,
        r.novaq.bits_per_weight,
        r.novaq.code_bits,
        r.novaq.parameters,
        r.novaq.tensors
    );
    println!(
        "bytes         {} compressed ({} original), manifest {}",
        r.compressed_bytes, r.original_bytes, r.manifest_bytes
    );
    println!("root hash     {}", r.root_hash);
    println!("creator       {}", r.creator);
    println!(
        "usage         {} tokens in {} calls",
        r.usage_tokens, r.usage_calls
    );
    for (i, s) in r.shards.iter().enumerate() {
        println!("shard {i:<5}   {:>10} bytes  sha256 {}", s.size, s.sha256);
    }
}

/// How an upload runs.
pub struct UploadOptions {
    pub in_flight: usize,
    pub chunk_bytes: u64,
    pub stop_after_bytes: Option<u64>,
    /// Show a progress bar on stderr (drawn only on a terminal).
    pub progress: bool,
}

/// What an upload did.
pub struct UploadReport {
    pub record: ModelRecord,
    pub upload_id: UploadId,
    /// Bytes sent in this run, and already received before it.
    pub sent_bytes: u64,
    pub resumed_bytes: u64,
    pub chunks: u64,
    pub send_seconds: f64,
    pub verify_seconds: f64,
}

impl UploadReport {
    pub fn mib_per_sec(&self) -> f64 {
        self.sent_bytes as f64 / (1 << 20) as f64 / self.send_seconds.max(1e-9)
    }
}

/// The upload stopped on purpose (`--stop-after-bytes`); it can be resumed.
#[derive(Debug)]
pub struct Stopped {
    pub upload_id: UploadId,
    pub sent_bytes: u64,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stopped after sending {} bytes (--stop-after-bytes); upload {} resumes with the same command",
            self.sent_bytes, self.upload_id.0
        )
    }
}

impl std::error::Error for Stopped {}

/// Polls of `upload_status` while the canister verifies, before giving up.
const MAX_VERIFY_POLLS: u32 = 100_000;

/// Uploads a model: resumes `resume` if the canister still has it (for this model), else
/// begins a new upload (`started` is told its id before any chunk is sent); sends every missing
/// range in chunks, `in_flight` at a time; finalizes and follows verification to the end.
pub fn upload<T: RepoTransport>(
    client: &mut RepoClient<T>,
    manifest: &[u8],
    shards: &[Vec<u8>],
    metadata: ModelMetadata,
    resume: Option<UploadId>,
    options: &UploadOptions,
    mut started: impl FnMut(UploadId),
) -> Result<UploadReport> {
    let sizes: Vec<u64> = shards.iter().map(|s| s.len() as u64).collect();
    let mut upload_id = None;
    if let Some(id) = resume {
        match client.upload_status(id)? {
            Ok(status) if status.model == metadata.id => {
                eprintln!(
                    "resuming upload {} of {}: {} of {} bytes already received",
                    id.0, status.model, status.received_bytes, status.total_bytes
                );
                upload_id = Some(id);
            }
            Ok(status) => bail!(
                "upload {} is of model {}, not {}",
                id.0,
                status.model,
                metadata.id
            ),
            Err(Error::NotFound { .. }) => {
                eprintln!(
                    "upload {} is gone (expired or aborted): starting again",
                    id.0
                );
            }
            Err(error) => {
                return Err(CanisterError {
                    canister: "model_repo",
                    method: "upload_status",
                    error,
                }
                .into());
            }
        }
    }
    let upload_id = match upload_id {
        Some(id) => id,
        None => {
            let begun = client.begin_upload(BeginUpload {
                manifest: manifest.to_vec(),
                metadata: metadata.clone(),
            });
            let id = begun.map_err(|err| {
                let exists = err
                    .downcast_ref::<CanisterError>()
                    .is_some_and(|e| matches!(e.error, Error::AlreadyExists { .. }));
                if exists {
                    err.context(format!(
                        "model {} is in the repository already: an unfinished upload of it resumes with --upload-id, a new version needs a new --id",
                        metadata.id
                    ))
                } else {
                    err
                }
            })?;
            eprintln!("began upload {} of {}", id.0, metadata.id);
            id
        }
    };
    started(upload_id);

    let status = status_of(client, upload_id)?;
    let total = status.total_bytes;
    let resumed_bytes = status.received_bytes;
    let bar = if options.progress {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("upload {}", upload_id.0));
    bar.set_position(resumed_bytes);
    bar.reset_eta();

    let sending = Instant::now();
    let (mut sent_bytes, mut chunks) = (0u64, 0u64);
    let mut status = status;
    loop {
        if status.phase != UploadPhase::Receiving {
            break;
        }
        let ranges = missing_ranges(&status, &sizes)?;
        if ranges.is_empty() {
            if status.more_shards == 0 {
                break;
            }
            bail!(
                "upload {} lists no missing range but leaves {} shards out of its reply",
                upload_id.0,
                status.more_shards
            );
        }
        let pieces = plan_chunks(&ranges, options.chunk_bytes);
        for batch in pieces.chunks(options.in_flight.max(1)) {
            if let Some(limit) = options.stop_after_bytes
                && sent_bytes >= limit
            {
                bar.abandon();
                return Err(Stopped {
                    upload_id,
                    sent_bytes,
                }
                .into());
            }
            let calls: Vec<UploadChunk> = batch
                .iter()
                .map(|p| UploadChunk {
                    upload_id,
                    shard: p.shard,
                    offset: p.offset,
                    bytes: shards[p.shard as usize][p.offset as usize..(p.offset + p.len) as usize]
                        .to_vec(),
                })
                .collect();
            for (piece, reply) in batch.iter().zip(client.upload_chunks(calls)?) {
                reply.map_err(|error| {
                    bar.abandon();
                    anyhow::Error::from(CanisterError {
                        canister: "model_repo",
                        method: "upload_chunk",
                        error,
                    })
                    .context(format!(
                        "shard {} bytes {}..{}",
                        piece.shard,
                        piece.offset,
                        piece.offset + piece.len
                    ))
                })?;
                sent_bytes += piece.len;
                chunks += 1;
                bar.inc(piece.len);
            }
        }
        // Ask again: ranges beyond what one reply lists, and anything a verification dropped.
        status = status_of(client, upload_id)?;
    }
    let send_seconds = sending.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let verifying = Instant::now();
    let record = finalize(client, upload_id)?;
    Ok(UploadReport {
        record,
        upload_id,
        sent_bytes,
        resumed_bytes,
        chunks,
        send_seconds,
        verify_seconds: verifying.elapsed().as_secs_f64(),
    })
}

fn status_of<T: RepoTransport>(
    client: &mut RepoClient<T>,
    id: UploadId,
) -> Result<ohms_types::UploadStatus> {
    client.upload_status(id)?.map_err(|error| {
        CanisterError {
            canister: "model_repo",
            method: "upload_status",
            error,
        }
        .into()
    })
}

/// `finalize_upload`, then `upload_status` until the canister has hashed every shard.
fn finalize<T: RepoTransport>(client: &mut RepoClient<T>, id: UploadId) -> Result<ModelRecord> {
    if let FinalizeOutcome::Verified(record) = client.finalize_upload(id)? {
        return Ok(*record);
    }
    for _ in 0..MAX_VERIFY_POLLS {
        client.transport.wait();
        let status = status_of(client, id)?;
        match status.phase {
            UploadPhase::Verifying => {}
            UploadPhase::Verified => match client.finalize_upload(id)? {
                FinalizeOutcome::Verified(record) => return Ok(*record),
                FinalizeOutcome::Verifying { .. } => bail!("upload {} verified twice", id.0),
            },
            UploadPhase::Receiving => bail!(
                "the canister's verification of upload {} failed: {}; the upload resumes with the same command",
                id.0,
                status.last_error.as_deref().unwrap_or("no reason given")
            ),
        }
    }
    bail!("upload {} is still being verified", id.0)
}

/// The manifest and every shard of a model, read in chunks of at most 1.9 MiB.
pub fn download<T: RepoTransport>(
    client: &mut RepoClient<T>,
    id: &ModelId,
) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let record = client.get_model(id)?;
    let manifest = client.get_manifest(id)?;
    let mut shards = Vec::with_capacity(record.shards.len());
    for (i, info) in record.shards.iter().enumerate() {
        let mut shard = Vec::with_capacity(info.size as usize);
        while (shard.len() as u64) < info.size {
            let len = (info.size - shard.len() as u64).min(MAX_CHUNK_BYTES);
            let bytes = client.get_chunk(ChunkRequest {
                model: id.clone(),
                shard: i as u32,
                offset: shard.len() as u64,
                len,
            })?;
            if bytes.len() as u64 != len {
                bail!(
                    "get_chunk returned {} bytes for {len} of shard {i}",
                    bytes.len()
                );
            }
            shard.extend_from_slice(&bytes);
        }
        shards.push(shard);
    }
    Ok((manifest, shards))
}

/// Writes a model directory with the manifest's exact bytes (not re-encoded), the shards and
/// the root hash, as `ohms novaq compress` lays it out.
fn write_model_dir(dir: &Path, manifest: &[u8], shards: &[Vec<u8>]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: String, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write(novaq::format::dir::MANIFEST_FILE.into(), manifest)?;
    for (i, shard) in shards.iter().enumerate() {
        write(format!("shard-{i:05}.bin"), shard)?;
    }
    let root = novaq::format::Manifest::root_hash(manifest);
    write(
        novaq::format::dir::ROOT_HASH_FILE.into(),
        format!("{root}\n").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_tiers_and_states_parse_loosely() {
        assert_eq!(
            parse_capability("Storytelling"),
            Ok(Capability::Storytelling)
        );
        assert_eq!(parse_capability("code-review"), Ok(Capability::CodeReview));
        assert_eq!(parse_capability("js"), Ok(Capability::JavaScript));
        assert!(parse_capability("poetry").is_err());
        assert_eq!(parse_tier("Pro"), Ok(Tier::Pro));
        assert!(parse_tier("gold").is_err());
        assert_eq!(parse_state("ACTIVE"), Ok(ModelState::Active));
    }

    #[test]
    fn the_default_id_is_the_directory_name() {
        assert_eq!(
            default_id(Path::new("target/ohms-run/stories260k.2bit")).unwrap(),
            "stories260k.2bit"
        );
        assert!(default_id(Path::new("/tmp/Bad Name!")).is_err());
    }
}
