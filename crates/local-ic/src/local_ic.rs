//! The test API: a PocketIC-shaped handle on a local network.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use ic_management_canister_types::{
    CanisterInstallMode, CanisterLogRecord, CanisterSettings, CanisterStatusResult, ChunkHash,
    InstallChunkedCodeArgs, UpgradeFlags,
};
use serde::de::DeserializeOwned;

use crate::candid_call::{self, CallError};
use crate::fault::Fault;
use crate::management::DEFAULT_PROVISIONAL_CYCLES;
use crate::network::{IngressStatus, InstructionLimits, NetworkState};
use crate::reject::{RejectCode, RejectResponse};
use crate::scheduler::Network;

/// Rounds `await_call` runs at most before giving up on a call that keeps the network busy.
pub const MAX_AWAIT_ROUNDS: u32 = 100_000;

/// The id of a submitted call, for [`LocalIc::await_call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId(pub u64);

/// A local IC network with one subnet, driven by the test.
pub struct LocalIc {
    network: Network,
    last_instructions: Option<u64>,
}

impl Default for LocalIc {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalIc {
    /// A network whose clock starts at the IC's genesis time and whose randomness is seeded
    /// with zeros.
    pub fn new() -> Self {
        Self::with_seed([0; 32])
    }

    /// A network whose `raw_rand` is derived from `seed`.
    pub fn with_seed(seed: [u8; 32]) -> Self {
        Self::from_state(NetworkState::new(seed))
    }

    /// Resumes a network from its saved state.
    pub fn from_state(state: NetworkState) -> Self {
        Self {
            network: Network::new(state),
            last_instructions: None,
        }
    }

    /// The whole network state (serializable).
    pub fn state(&self) -> &NetworkState {
        &self.network.state
    }

    /// Replaces the per-message instruction limits (the IC's by default).
    pub fn set_instruction_limits(&mut self, limits: InstructionLimits) {
        self.network.state.limits = limits;
    }

    /// Injects a fault: it applies once, to the next response delivered to the fault's
    /// canister for a call it made to the fault's callee (and method, when given). See
    /// [`Fault`].
    pub fn inject_fault(&mut self, fault: Fault) {
        self.network.state.faults.push(fault);
    }

    /// Injected faults that have not applied yet.
    pub fn pending_faults(&self) -> usize {
        self.network.state.faults.len()
    }

    // ---- Canister lifecycle -------------------------------------------------------------

    /// Creates a canister controlled by the anonymous principal, with 100T cycles.
    pub fn create_canister(&mut self) -> Principal {
        self.create_canister_with_settings(None, None)
    }

    /// Creates a canister; `sender` (default anonymous) controls it unless `settings` names
    /// the controllers.
    pub fn create_canister_with_settings(
        &mut self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
    ) -> Principal {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.network
            .create_canister(sender, settings.as_ref(), DEFAULT_PROVISIONAL_CYCLES)
            .expect("creating a canister through the test API only fails on invalid settings")
    }

    /// Creates a canister, returning an error instead of panicking on invalid settings.
    pub fn try_create_canister(
        &mut self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
        cycles: u128,
    ) -> Result<Principal, RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.network
            .create_canister(sender, settings.as_ref(), cycles)
    }

    pub fn canister_exists(&self, canister: Principal) -> bool {
        self.network.state.canisters.contains_key(&canister)
    }

    pub fn install_canister(
        &mut self,
        canister: Principal,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        self.install(canister, CanisterInstallMode::Install, wasm, arg, sender)
    }

    pub fn reinstall_canister(
        &mut self,
        canister: Principal,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        self.install(canister, CanisterInstallMode::Reinstall, wasm, arg, sender)
    }

    pub fn upgrade_canister(
        &mut self,
        canister: Principal,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let mode = CanisterInstallMode::Upgrade(Some(UpgradeFlags::default()));
        self.install(canister, mode, wasm, arg, sender)
    }

    fn install(
        &mut self,
        canister: Principal,
        mode: CanisterInstallMode,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.network
            .install_code(sender, canister, mode, &wasm, arg)
    }

    pub fn upload_chunk(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
        chunk: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        Ok(self.network.upload_chunk(sender, canister, chunk)?.to_vec())
    }

    pub fn stored_chunks(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<Vec<Vec<u8>>, RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        Ok(self
            .network
            .stored_chunks(sender, canister)?
            .into_iter()
            .map(|c| c.hash)
            .collect())
    }

    pub fn clear_chunk_store(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.management_update(sender, "clear_chunk_store", canister)
    }

    /// Installs code assembled from chunks stored in `store_canister`'s chunk store.
    #[allow(clippy::too_many_arguments)]
    pub fn install_chunked_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
        mode: CanisterInstallMode,
        store_canister: Principal,
        chunk_hashes: Vec<Vec<u8>>,
        wasm_module_hash: Vec<u8>,
        arg: Vec<u8>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.network.install_chunked_code(
            sender,
            &InstallChunkedCodeArgs {
                mode,
                target_canister: canister,
                store_canister: Some(store_canister),
                chunk_hashes_list: chunk_hashes
                    .into_iter()
                    .map(|hash| ChunkHash { hash })
                    .collect(),
                wasm_module_hash,
                arg,
                sender_canister_version: None,
            },
        )
    }

    pub fn update_canister_settings(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
        settings: CanisterSettings,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.network.update_settings(sender, canister, &settings)
    }

    pub fn set_controllers(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
        controllers: Vec<Principal>,
    ) -> Result<(), RejectResponse> {
        let settings = CanisterSettings {
            controllers: Some(controllers),
            ..Default::default()
        };
        self.update_canister_settings(canister, sender, settings)
    }

    /// The controllers of a canister (empty if it does not exist).
    pub fn get_controllers(&self, canister: Principal) -> Vec<Principal> {
        self.network
            .state
            .canisters
            .get(&canister)
            .map(|c| c.settings.controllers.clone())
            .unwrap_or_default()
    }

    pub fn canister_status(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<CanisterStatusResult, RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.network.canister_status(sender, canister)
    }

    pub fn start_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.network.start_canister(sender, canister)
    }

    /// Stops a canister, running rounds until its open calls have finished.
    pub fn stop_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.management_update(sender, "stop_canister", canister)
    }

    pub fn delete_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.network.delete_canister(sender, canister)
    }

    /// Sends a management call as an ingress message and waits for it.
    fn management_update(
        &mut self,
        sender: Principal,
        method: &str,
        canister: Principal,
    ) -> Result<(), RejectResponse> {
        let arg = candid::encode_one(ic_management_canister_types::CanisterIdRecord {
            canister_id: canister,
        })
        .expect("a canister id record is always encodable");
        let id =
            self.network
                .submit_ingress(sender, Principal::management_canister(), method, arg)?;
        self.await_call(MessageId(id)).map(|_| ())
    }

    // ---- Cycles, time, logs -----------------------------------------------------------

    /// Adds cycles to a canister; returns the new balance (0 if it does not exist).
    pub fn add_cycles(&mut self, canister: Principal, amount: u128) -> u128 {
        match self.network.state.canisters.get_mut(&canister) {
            Some(c) => {
                c.cycles = c.cycles.saturating_add(amount);
                c.cycles
            }
            None => 0,
        }
    }

    /// The cycle balance of a canister (0 if it does not exist).
    pub fn cycle_balance(&self, canister: Principal) -> u128 {
        self.network
            .state
            .canisters
            .get(&canister)
            .map_or(0, |c| c.cycles)
    }

    pub fn get_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.network.state.time_nanos)
    }

    /// Sets the clock; it never moves backwards.
    pub fn set_time(&mut self, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64);
        self.network.state.time_nanos = self.network.state.time_nanos.max(nanos);
    }

    pub fn advance_time(&mut self, duration: Duration) {
        let nanos = duration.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.network.state.time_nanos = self.network.state.time_nanos.saturating_add(nanos);
    }

    /// Whether a round would execute anything now: queued messages, due timers or expired
    /// call deadlines.
    pub fn has_work(&self) -> bool {
        self.network.has_work()
    }

    /// Executes one round: due timers, expired deadlines, then the queued messages.
    pub fn tick(&mut self) {
        self.network.tick();
    }

    pub fn fetch_canister_logs(
        &mut self,
        canister: Principal,
        sender: Principal,
    ) -> Result<Vec<CanisterLogRecord>, RejectResponse> {
        self.network.fetch_canister_logs(sender, canister)
    }

    // ---- Calls ----------------------------------------------------------------------------

    /// Submits an update call (after `canister_inspect_message`) without executing it.
    pub fn submit_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<MessageId, RejectResponse> {
        self.network
            .submit_ingress(sender, canister, method, arg)
            .map(MessageId)
    }

    /// Runs rounds until the call completes. A call that cannot complete without the clock
    /// moving (or that keeps running for [`MAX_AWAIT_ROUNDS`] rounds) is reported as a
    /// `SysUnknown` rejection.
    pub fn await_call(&mut self, message: MessageId) -> Result<Vec<u8>, RejectResponse> {
        for _ in 0..=MAX_AWAIT_ROUNDS {
            if let Some(result) = self.ingress_status(message) {
                return result;
            }
            if !self.network.has_work() {
                break;
            }
            self.network.tick();
        }
        if let Some(result) = self.ingress_status(message) {
            return result;
        }
        Err(RejectResponse::new(
            RejectCode::SysUnknown,
            format!(
                "call {} did not complete: it waits for something that needs the clock to move",
                message.0
            ),
        ))
    }

    /// The result of a submitted call, if it has completed.
    pub fn ingress_status(
        &mut self,
        message: MessageId,
    ) -> Option<Result<Vec<u8>, RejectResponse>> {
        match self.network.state.ingress.get(&message.0)? {
            IngressStatus::Processing => None,
            IngressStatus::Completed {
                result,
                instructions,
                ..
            } => {
                self.last_instructions = Some(*instructions);
                Some(result.clone().map(|b| b.into_vec()))
            }
            IngressStatus::Done { .. } => Some(Err(RejectResponse::new(
                RejectCode::SysUnknown,
                format!(
                    "call {} completed, but its reply is no longer in the ingress history",
                    message.0
                ),
            ))),
        }
    }

    /// Executes an update call to completion.
    pub fn update_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        self.last_instructions = None;
        let id = self.submit_call(canister, sender, method, arg)?;
        self.await_call(id)
    }

    /// Executes a query; nothing it changes persists.
    pub fn query_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let (result, instructions) = self.network.query(sender, canister, method, arg);
        self.last_instructions = Some(instructions);
        result
    }

    /// Instructions the last completed update call (all its messages) or query used.
    pub fn last_call_instructions(&self) -> Option<u64> {
        self.last_instructions
    }

    /// Instructions `canister`'s code has executed since it was created, every message
    /// (replicated or not): the difference across a call is that canister's share of it,
    /// however many canisters the call crossed.
    pub fn canister_instructions(&self, canister: Principal) -> Option<u64> {
        self.network
            .state
            .canisters
            .get(&canister)
            .map(|c| c.instructions_executed)
    }

    /// `update_call` with Candid arguments and result.
    pub fn update<A, R>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError>
    where
        A: ArgumentEncoder,
        R: CandidType + DeserializeOwned,
    {
        let reply = self.update_call(canister, sender, method, candid_call::encode_args(args)?)?;
        candid_call::decode_one(&reply)
    }

    /// `query_call` with Candid arguments and result.
    pub fn query<A, R>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError>
    where
        A: ArgumentEncoder,
        R: CandidType + DeserializeOwned,
    {
        let reply = self.query_call(canister, sender, method, candid_call::encode_args(args)?)?;
        candid_call::decode_one(&reply)
    }

    /// `update_call` decoding a multi-value result as a tuple.
    pub fn update_tuple<A, R>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError>
    where
        A: ArgumentEncoder,
        R: for<'de> ArgumentDecoder<'de>,
    {
        let reply = self.update_call(canister, sender, method, candid_call::encode_args(args)?)?;
        candid_call::decode_tuple(&reply)
    }

    /// `query_call` decoding a multi-value result as a tuple.
    pub fn query_tuple<A, R>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError>
    where
        A: ArgumentEncoder,
        R: for<'de> ArgumentDecoder<'de>,
    {
        let reply = self.query_call(canister, sender, method, candid_call::encode_args(args)?)?;
        candid_call::decode_tuple(&reply)
    }

    /// `raw_rand` as the management canister would answer it now (advances the generator).
    pub fn raw_rand(&mut self) -> [u8; 32] {
        self.network.raw_rand()
    }
}
