//! The management canister (`aaaaa-aa`): canister lifecycle, code installation, chunk store,
//! settings, status, cycles and randomness. Reached by canisters through inter-canister calls
//! and by the test API directly; only controllers may manage a canister.

use candid::de::DecoderConfig;
use candid::utils::ArgumentEncoder;
use candid::{CandidType, Nat, Principal};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, CanisterStatusResult,
    CanisterStatusType, ChunkHash, CreateCanisterArgs, CreateCanisterResult,
    FetchCanisterLogsResult, InstallChunkedCodeArgs, InstallCodeArgs, MemoryMetrics,
    ProvisionalCreateCanisterWithCyclesArgs, ProvisionalTopUpCanisterArgs, QueryStats,
    UpdateSettingsArgs, UploadChunkArgs,
};
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::canister::{
    CanisterState, InstalledCode, MAX_CHUNK_BYTES, MAX_CHUNKS, RunStatus, WasmHeap,
};
use crate::execution::Target;
use crate::ids::canister_id_from_index;
use crate::network::{CallContext, Origin, Payload, Request, StopWaiter};
use crate::reject::{RejectCode, RejectResponse, error_codes};
use crate::scheduler::{MessageSpec, Network};
use crate::system_api::EntryPoint;
use crate::wasm_module;

/// Cycles a canister created through the test API or `provisional_create_canister_with_cycles`
/// starts with when no amount is given (as on PocketIC).
pub const DEFAULT_PROVISIONAL_CYCLES: u128 = 100_000_000_000_000;

fn reject(code: RejectCode, error_code: &str, message: impl Into<String>) -> RejectResponse {
    RejectResponse::new(code, message).with_error_code(error_code)
}

fn bad_payload(method: &str, e: impl std::fmt::Display) -> RejectResponse {
    reject(
        RejectCode::CanisterError,
        error_codes::INVALID_MANAGEMENT_PAYLOAD,
        format!("Error decoding the argument of ic00 method {method}: {e}"),
    )
}

/// The bounds on decoding a management canister argument: skipping unknown data (extra fields,
/// extra arguments) is capped small, as the replica caps it, and decoding at what the largest
/// payload needs, so a crafted argument (a `vec null` of 2^62 elements) is refused at once.
pub fn payload_decoder_config() -> DecoderConfig {
    let mut config = DecoderConfig::new();
    config
        .set_skipping_quota(10_000)
        .set_decoding_quota(1 << 30);
    config
}

fn decode<T: CandidType + DeserializeOwned>(method: &str, arg: &[u8]) -> Result<T, RejectResponse> {
    candid::utils::decode_one_with_config(arg, &payload_decoder_config())
        .map_err(|e| bad_payload(method, e))
}

fn encode<T: ArgumentEncoder>(value: T) -> Vec<u8> {
    candid::encode_args(value).expect("management canister replies are always encodable")
}

/// What a management call produced: a reply (with the cycles to refund) or, for
/// `stop_canister`, nothing yet.
enum Outcome {
    Reply(Vec<u8>, u128),
    Deferred,
}

impl Network {
    pub(crate) fn deliver_management_request(&mut self, request: Request) {
        let cycles = request.cycles;
        match self.management_call(
            request.sender,
            &request.method,
            &request.arg,
            cycles,
            request.origin,
        ) {
            Ok(Outcome::Reply(bytes, refund)) => {
                self.respond(request.origin, Payload::Reply(ByteBuf::from(bytes)), refund)
            }
            Ok(Outcome::Deferred) => {}
            Err(e) => self.respond(request.origin, Payload::Reject(e), cycles),
        }
    }

    fn management_call(
        &mut self,
        sender: Principal,
        method: &str,
        arg: &[u8],
        cycles: u128,
        origin: Origin,
    ) -> Result<Outcome, RejectResponse> {
        let reply = |bytes| Ok(Outcome::Reply(bytes, cycles));
        match method {
            "create_canister" => {
                let args: CreateCanisterArgs = decode(method, arg)?;
                let fee = self.state.fees.canister_creation;
                if cycles < fee {
                    return Err(reject(
                        RejectCode::CanisterError,
                        error_codes::INSUFFICIENT_CYCLES_FOR_CREATE_CANISTER,
                        format!(
                            "create_canister needs at least {fee} cycles attached for the creation fee, got {cycles}"
                        ),
                    ));
                }
                let canister_id =
                    self.create_canister(sender, args.settings.as_ref(), cycles - fee)?;
                Ok(Outcome::Reply(
                    encode((CreateCanisterResult { canister_id },)),
                    0,
                ))
            }
            "provisional_create_canister_with_cycles" => {
                let args: ProvisionalCreateCanisterWithCyclesArgs = decode(method, arg)?;
                let amount = match args.amount {
                    Some(n) => u128::try_from(n.0).map_err(|e| bad_payload(method, e))?,
                    None => DEFAULT_PROVISIONAL_CYCLES,
                };
                let canister_id = self.create_canister(sender, args.settings.as_ref(), amount)?;
                reply(encode((CreateCanisterResult { canister_id },)))
            }
            "provisional_top_up_canister" => {
                let args: ProvisionalTopUpCanisterArgs = decode(method, arg)?;
                let amount = u128::try_from(args.amount.0).map_err(|e| bad_payload(method, e))?;
                let canister = self.canister_mut(args.canister_id)?;
                canister.cycles = canister.cycles.saturating_add(amount);
                reply(encode(()))
            }
            "install_code" => {
                let args: InstallCodeArgs = decode(method, arg)?;
                self.install_code(
                    sender,
                    args.canister_id,
                    args.mode,
                    &args.wasm_module,
                    args.arg,
                )?;
                reply(encode(()))
            }
            "install_chunked_code" => {
                let args: InstallChunkedCodeArgs = decode(method, arg)?;
                self.install_chunked_code(sender, &args)?;
                reply(encode(()))
            }
            "upload_chunk" => {
                let args: UploadChunkArgs = decode(method, arg)?;
                let hash = self.upload_chunk(sender, args.canister_id, args.chunk)?;
                reply(encode((ChunkHash {
                    hash: hash.to_vec(),
                },)))
            }
            "clear_chunk_store" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                self.controlled_canister(sender, args.canister_id, method)?
                    .chunks
                    .clear();
                reply(encode(()))
            }
            "stored_chunks" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                let hashes = self.stored_chunks(sender, args.canister_id)?;
                reply(encode((hashes,)))
            }
            "update_settings" => {
                let args: UpdateSettingsArgs = decode(method, arg)?;
                self.update_settings(sender, args.canister_id, &args.settings)?;
                reply(encode(()))
            }
            "canister_status" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                let status = self.canister_status(sender, args.canister_id)?;
                reply(encode((status,)))
            }
            "start_canister" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                self.start_canister(sender, args.canister_id)?;
                reply(encode(()))
            }
            "stop_canister" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                self.begin_stop(sender, args.canister_id, origin)?;
                Ok(Outcome::Deferred)
            }
            "delete_canister" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                self.delete_canister(sender, args.canister_id)?;
                reply(encode(()))
            }
            "uninstall_code" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                self.uninstall_code(sender, args.canister_id)?;
                reply(encode(()))
            }
            "deposit_cycles" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                let canister = self.canister_mut(args.canister_id)?;
                canister.cycles = canister.cycles.saturating_add(cycles);
                Ok(Outcome::Reply(encode(()), 0))
            }
            "raw_rand" => {
                if !arg.is_empty() {
                    decode::<()>(method, arg)?;
                }
                reply(encode((ByteBuf::from(self.raw_rand().to_vec()),)))
            }
            "fetch_canister_logs" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                let records = self.fetch_canister_logs(sender, args.canister_id)?;
                reply(encode((FetchCanisterLogsResult {
                    canister_log_records: records,
                },)))
            }
            other => Err(reject(
                RejectCode::DestinationInvalid,
                error_codes::CANISTER_METHOD_NOT_FOUND,
                format!("Management canister has no method '{other}'"),
            )),
        }
    }

    fn canister_mut(&mut self, id: Principal) -> Result<&mut CanisterState, RejectResponse> {
        self.state.canisters.get_mut(&id).ok_or_else(|| {
            reject(
                RejectCode::DestinationInvalid,
                error_codes::CANISTER_NOT_FOUND,
                format!("Canister {id} not found"),
            )
        })
    }

    /// The canister, if `sender` controls it.
    fn controlled_canister(
        &mut self,
        sender: Principal,
        id: Principal,
        method: &str,
    ) -> Result<&mut CanisterState, RejectResponse> {
        let canister = self.canister_mut(id)?;
        if !canister.is_controller(&sender) {
            return Err(reject(
                RejectCode::CanisterError,
                error_codes::CANISTER_INVALID_CONTROLLER,
                format!(
                    "Only the controllers of the canister {id} can control it. Canister's controllers: {}. Sender's ID: {sender}. Method: {method}",
                    canister
                        .settings
                        .controllers
                        .iter()
                        .map(Principal::to_text)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
        }
        Ok(canister)
    }

    /// Creates an empty canister controlled by the settings' controllers (default: `sender`).
    pub fn create_canister(
        &mut self,
        sender: Principal,
        settings: Option<&CanisterSettings>,
        cycles: u128,
    ) -> Result<Principal, RejectResponse> {
        if let Some(controllers) = settings.and_then(|s| s.controllers.as_ref()) {
            check_controllers(controllers)?;
        }
        let id = canister_id_from_index(self.state.next_canister_index);
        self.state.next_canister_index += 1;
        let mut canister = CanisterState::new(id, vec![sender], cycles);
        if let Some(settings) = settings {
            canister.apply_settings(settings);
        }
        self.state.canisters.insert(id, canister);
        Ok(id)
    }

    /// Installs, reinstalls or upgrades the code of a canister; all or nothing.
    pub fn install_code(
        &mut self,
        sender: Principal,
        id: Principal,
        mode: CanisterInstallMode,
        wasm: &[u8],
        arg: Vec<u8>,
    ) -> Result<(), RejectResponse> {
        let canister = self.controlled_canister(sender, id, "install_code")?;
        match (mode, canister.code.is_some()) {
            (CanisterInstallMode::Install, true) => {
                return Err(reject(
                    RejectCode::CanisterError,
                    error_codes::CANISTER_CONTRACT_VIOLATION,
                    format!(
                        "Canister {id} cannot be installed because the canister is not empty. Try installing with mode='reinstall' instead."
                    ),
                ));
            }
            (CanisterInstallMode::Upgrade(_), false) => {
                return Err(reject(
                    RejectCode::CanisterError,
                    error_codes::CANISTER_WASM_MODULE_NOT_FOUND,
                    format!("Canister {id} cannot be upgraded: it has no Wasm module"),
                ));
            }
            _ => {}
        }
        // Installation is all or nothing: on failure the canister returns to this state and
        // its instance is rebuilt from it on next use.
        let before = canister.clone();
        let result = self.install_code_unchecked(sender, id, mode, wasm, arg);
        match result {
            // Open call contexts stay open across a new install, as on the IC: the responses
            // to their calls run the callbacks' table entries in the new module (the interface
            // spec tells canisters that cannot make sense of that to stop first; only
            // `uninstall_code` forgets them).
            Ok(()) => Ok(()),
            Err(e) => {
                self.state.canisters.insert(id, before);
                self.live.remove(&id);
                Err(e)
            }
        }
    }

    fn install_code_unchecked(
        &mut self,
        sender: Principal,
        id: Principal,
        mode: CanisterInstallMode,
        wasm: &[u8],
        arg: Vec<u8>,
    ) -> Result<(), RejectResponse> {
        let limit = self.state.limits.install;
        let trapped = |what: &str, e: &dyn std::fmt::Display, code: &str| {
            reject(
                RejectCode::CanisterError,
                code,
                format!("Error from Canister {id}: {what} trapped: {e}"),
            )
        };
        let mut instructions = 0;
        if let CanisterInstallMode::Upgrade(flags) = mode {
            let skip = flags.and_then(|f| f.skip_pre_upgrade).unwrap_or(false);
            let exported = self
                .live_instance(id)
                .is_ok_and(|l| l.exports_function("canister_pre_upgrade"));
            if exported && !skip {
                let spec = MessageSpec::new(
                    EntryPoint::PreUpgrade,
                    Target::Export("canister_pre_upgrade"),
                    sender,
                    limit,
                );
                let run = self.run_message(id, spec);
                instructions = run.instructions;
                run.outcome
                    .map_err(|e| trapped("canister_pre_upgrade", &e, error_code_of(&e)))?;
            }
        }
        let module_hash = wasm_module::module_hash(wasm).map_err(invalid_wasm(id))?;
        let live = self.runtime.instantiate(wasm, limit).map_err(|e| {
            reject(
                RejectCode::CanisterError,
                error_codes::CANISTER_INVALID_WASM,
                format!("Error from Canister {id}: invalid Wasm module: {e}"),
            )
        })?;
        let decompressed = decompress_for_storage(wasm).map_err(invalid_wasm(id))?;
        let canister = self
            .state
            .canisters
            .get_mut(&id)
            .expect("checked by the caller");
        canister.code = Some(InstalledCode {
            wasm: ByteBuf::from(decompressed),
            module_hash,
        });
        canister.heap = None;
        canister.global_timer = 0;
        canister.certified_data = ByteBuf::new();
        if !matches!(mode, CanisterInstallMode::Upgrade(_)) {
            canister.stable.clear();
        }
        let (export, entry) = if matches!(mode, CanisterInstallMode::Upgrade(_)) {
            ("canister_post_upgrade", EntryPoint::PostUpgrade)
        } else {
            ("canister_init", EntryPoint::Init)
        };
        let has_entry = live.exports_function(export);
        self.live.insert(id, live);
        if has_entry {
            let mut spec = MessageSpec::new(
                entry,
                Target::Export(export),
                sender,
                limit.saturating_sub(instructions),
            );
            spec.arg = arg;
            let run = self.run_message(id, spec);
            run.outcome
                .map_err(|e| trapped(export, &e, error_code_of(&e)))?;
        } else if let Some(live) = self.live.get_mut(&id) {
            let canister = self
                .state
                .canisters
                .get_mut(&id)
                .expect("checked by the caller");
            live.save_heap(canister.heap.get_or_insert_with(WasmHeap::default));
        }
        let canister = self
            .state
            .canisters
            .get_mut(&id)
            .expect("checked by the caller");
        canister.version += 1;
        Ok(())
    }

    /// Rejects and forgets the open call contexts of an uninstalled canister: their callbacks
    /// point into a module that is gone.
    fn abandon_call_contexts(&mut self, id: Principal, why: &str) {
        let contexts: Vec<(u64, CallContext)> = self
            .state
            .call_contexts
            .iter()
            .filter(|(_, c)| c.canister == id)
            .map(|(k, c)| (*k, c.clone()))
            .collect();
        for (context_id, context) in contexts {
            self.state.call_contexts.remove(&context_id);
            self.state
                .callbacks
                .retain(|_, cb| cb.call_context != context_id);
            if !context.responded {
                self.respond(
                    context.origin,
                    Payload::reject(
                        RejectCode::CanisterError,
                        format!("Canister {id}: {why} while the call was open"),
                        error_codes::CANISTER_TRAPPED,
                    ),
                    context.available_cycles,
                );
            }
        }
        self.complete_stops();
    }

    pub fn upload_chunk(
        &mut self,
        sender: Principal,
        id: Principal,
        chunk: Vec<u8>,
    ) -> Result<[u8; 32], RejectResponse> {
        let canister = self.controlled_canister(sender, id, "upload_chunk")?;
        if chunk.len() > MAX_CHUNK_BYTES {
            return Err(reject(
                RejectCode::CanisterError,
                error_codes::INVALID_MANAGEMENT_PAYLOAD,
                format!(
                    "Wasm chunk of {} bytes exceeds the maximum of {MAX_CHUNK_BYTES} bytes",
                    chunk.len()
                ),
            ));
        }
        let hash: [u8; 32] = Sha256::digest(&chunk).into();
        if !canister.chunks.contains_key(&hash) && canister.chunks.len() >= MAX_CHUNKS {
            return Err(reject(
                RejectCode::CanisterError,
                error_codes::CANISTER_OUT_OF_MEMORY,
                format!("The chunk store of canister {id} is full ({MAX_CHUNKS} chunks)"),
            ));
        }
        canister.chunks.insert(hash, ByteBuf::from(chunk));
        Ok(hash)
    }

    pub fn stored_chunks(
        &mut self,
        sender: Principal,
        id: Principal,
    ) -> Result<Vec<ChunkHash>, RejectResponse> {
        let canister = self.controlled_canister(sender, id, "stored_chunks")?;
        Ok(canister
            .chunks
            .keys()
            .map(|h| ChunkHash { hash: h.to_vec() })
            .collect())
    }

    pub fn install_chunked_code(
        &mut self,
        sender: Principal,
        args: &InstallChunkedCodeArgs,
    ) -> Result<(), RejectResponse> {
        let store_id = args.store_canister.unwrap_or(args.target_canister);
        // The caller must control both the target and the store canister.
        self.controlled_canister(sender, args.target_canister, "install_chunked_code")?;
        let store = self.controlled_canister(sender, store_id, "install_chunked_code")?;
        let mut wasm = Vec::new();
        for ChunkHash { hash } in &args.chunk_hashes_list {
            let key: [u8; 32] = hash.as_slice().try_into().map_err(|_| {
                reject(
                    RejectCode::CanisterError,
                    error_codes::INVALID_MANAGEMENT_PAYLOAD,
                    "A chunk hash must be 32 bytes",
                )
            })?;
            let chunk = store.chunks.get(&key).ok_or_else(|| {
                reject(
                    RejectCode::CanisterError,
                    error_codes::INVALID_MANAGEMENT_PAYLOAD,
                    format!(
                        "Chunk {} is not in the chunk store of canister {store_id}",
                        hex(&key)
                    ),
                )
            })?;
            wasm.extend_from_slice(chunk);
        }
        let actual: [u8; 32] = Sha256::digest(&wasm).into();
        if actual.as_slice() != args.wasm_module_hash.as_slice() {
            return Err(reject(
                RejectCode::CanisterError,
                error_codes::INVALID_MANAGEMENT_PAYLOAD,
                format!(
                    "Wasm module hash mismatch: the chunks assemble to {}, expected {}",
                    hex(&actual),
                    hex(&args.wasm_module_hash)
                ),
            ));
        }
        self.install_code(
            sender,
            args.target_canister,
            args.mode,
            &wasm,
            args.arg.clone(),
        )
    }

    pub fn update_settings(
        &mut self,
        sender: Principal,
        id: Principal,
        settings: &CanisterSettings,
    ) -> Result<(), RejectResponse> {
        if let Some(controllers) = &settings.controllers {
            check_controllers(controllers)?;
        }
        let canister = self.controlled_canister(sender, id, "update_settings")?;
        canister.apply_settings(settings);
        canister.version += 1;
        Ok(())
    }

    pub fn canister_status(
        &mut self,
        sender: Principal,
        id: Principal,
    ) -> Result<CanisterStatusResult, RejectResponse> {
        let canister = self.controlled_canister(sender, id, "canister_status")?;
        let heap = canister.heap.as_ref().map_or(0, |h| h.memory.len() as u64);
        let code = canister.code.as_ref().map_or(0, |c| c.wasm.len() as u64);
        let chunks: u64 = canister.chunks.values().map(|c| c.len() as u64).sum();
        Ok(CanisterStatusResult {
            status: match canister.status {
                RunStatus::Running => CanisterStatusType::Running,
                RunStatus::Stopping => CanisterStatusType::Stopping,
                RunStatus::Stopped => CanisterStatusType::Stopped,
            },
            ready_for_migration: false,
            version: canister.version,
            settings: canister.settings.clone(),
            module_hash: canister.code.as_ref().map(|c| c.module_hash.to_vec()),
            memory_size: Nat::from(canister.memory_size()),
            memory_metrics: MemoryMetrics {
                wasm_memory_size: Nat::from(heap),
                stable_memory_size: Nat::from(canister.stable.size_bytes()),
                global_memory_size: Nat::from(0u32),
                wasm_binary_size: Nat::from(code),
                custom_sections_size: Nat::from(0u32),
                canister_history_size: Nat::from(0u32),
                wasm_chunk_store_size: Nat::from(chunks),
                snapshots_size: Nat::from(0u32),
                log_memory_store_size: Nat::from(
                    canister
                        .logs
                        .iter()
                        .map(|r| r.content.len() as u64)
                        .sum::<u64>(),
                ),
            },
            cycles: Nat::from(canister.cycles),
            reserved_cycles: Nat::from(0u32),
            idle_cycles_burned_per_day: Nat::from(0u32),
            query_stats: QueryStats {
                num_calls_total: Nat::from(0u32),
                num_instructions_total: Nat::from(0u32),
                request_payload_bytes_total: Nat::from(0u32),
                response_payload_bytes_total: Nat::from(0u32),
            },
        })
    }

    pub fn start_canister(
        &mut self,
        sender: Principal,
        id: Principal,
    ) -> Result<(), RejectResponse> {
        let canister = self.controlled_canister(sender, id, "start_canister")?;
        let was_stopping = canister.status == RunStatus::Stopping;
        canister.status = RunStatus::Running;
        if was_stopping {
            let (cancelled, waiting): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.state.stop_waiters)
                    .into_iter()
                    .partition(|w| w.canister == id);
            self.state.stop_waiters = waiting;
            for waiter in cancelled {
                self.respond(
                    waiter.origin,
                    Payload::reject(
                        RejectCode::CanisterError,
                        format!("Canister {id} was started before it stopped"),
                        error_codes::CANISTER_STOPPING,
                    ),
                    0,
                );
            }
        }
        Ok(())
    }

    /// Marks the canister stopping; the stop completes when its call contexts are closed.
    pub fn begin_stop(
        &mut self,
        sender: Principal,
        id: Principal,
        origin: Origin,
    ) -> Result<(), RejectResponse> {
        let canister = self.controlled_canister(sender, id, "stop_canister")?;
        if canister.status == RunStatus::Running {
            canister.status = RunStatus::Stopping;
        }
        self.state.stop_waiters.push(StopWaiter {
            canister: id,
            origin,
        });
        self.complete_stops();
        Ok(())
    }

    pub fn delete_canister(
        &mut self,
        sender: Principal,
        id: Principal,
    ) -> Result<(), RejectResponse> {
        let canister = self.controlled_canister(sender, id, "delete_canister")?;
        if canister.status != RunStatus::Stopped {
            return Err(reject(
                RejectCode::CanisterError,
                error_codes::CANISTER_CONTRACT_VIOLATION,
                format!("Canister {id} must be stopped before it is deleted"),
            ));
        }
        self.state.canisters.remove(&id);
        self.live.remove(&id);
        Ok(())
    }

    pub fn uninstall_code(
        &mut self,
        sender: Principal,
        id: Principal,
    ) -> Result<(), RejectResponse> {
        let canister = self.controlled_canister(sender, id, "uninstall_code")?;
        canister.code = None;
        canister.heap = None;
        canister.stable.clear();
        canister.certified_data = ByteBuf::new();
        canister.global_timer = 0;
        canister.version += 1;
        self.live.remove(&id);
        self.abandon_call_contexts(id, "the canister was uninstalled");
        Ok(())
    }

    pub fn fetch_canister_logs(
        &mut self,
        sender: Principal,
        id: Principal,
    ) -> Result<Vec<ic_management_canister_types::CanisterLogRecord>, RejectResponse> {
        use ic_management_canister_types::LogVisibility;
        let canister = self.canister_mut(id)?;
        let allowed = match &canister.settings.log_visibility {
            LogVisibility::Public => true,
            LogVisibility::Controllers => canister.is_controller(&sender),
            LogVisibility::AllowedViewers(viewers) => {
                canister.is_controller(&sender) || viewers.contains(&sender)
            }
        };
        if !allowed {
            return Err(reject(
                RejectCode::CanisterReject,
                error_codes::CANISTER_INVALID_CONTROLLER,
                format!("Caller {sender} is not allowed to read the logs of canister {id}"),
            ));
        }
        Ok(canister.logs.clone())
    }

    /// 32 bytes derived from the network's seed and the number of earlier draws.
    pub fn raw_rand(&mut self) -> [u8; 32] {
        self.state.random_draws += 1;
        Sha256::new()
            .chain_update(self.state.random_seed)
            .chain_update(self.state.random_draws.to_be_bytes())
            .finalize()
            .into()
    }
}

fn check_controllers(controllers: &[Principal]) -> Result<(), RejectResponse> {
    const MAX_CONTROLLERS: usize = 10;
    if controllers.len() > MAX_CONTROLLERS {
        return Err(reject(
            RejectCode::CanisterError,
            error_codes::INVALID_MANAGEMENT_PAYLOAD,
            format!(
                "A canister can have at most {MAX_CONTROLLERS} controllers, {} given",
                controllers.len()
            ),
        ));
    }
    Ok(())
}

fn error_code_of(e: &crate::execution::ExecutionError) -> &'static str {
    use crate::execution::ExecutionError;
    use crate::system_api::TrapCause;
    match e {
        ExecutionError::Trap(TrapCause::InstructionLimit(_)) => {
            error_codes::CANISTER_INSTRUCTION_LIMIT_EXCEEDED
        }
        ExecutionError::Trap(TrapCause::ContractViolation(_)) => {
            error_codes::CANISTER_CONTRACT_VIOLATION
        }
        _ => error_codes::CANISTER_TRAPPED,
    }
}

fn invalid_wasm(id: Principal) -> impl Fn(wasm_module::ModuleError) -> RejectResponse {
    move |e| {
        reject(
            RejectCode::CanisterError,
            error_codes::CANISTER_INVALID_WASM,
            format!("Error from Canister {id}: invalid Wasm module: {e}"),
        )
    }
}

/// The installed module is kept uncompressed so a restart can compile it directly.
fn decompress_for_storage(wasm: &[u8]) -> Result<Vec<u8>, wasm_module::ModuleError> {
    wasm_module::decompress(wasm)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
