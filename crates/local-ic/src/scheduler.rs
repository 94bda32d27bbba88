//! Executing messages: requests, responses (callbacks), the global timer, ingress and queries.
//!
//! A round ([`Network::tick`]) fires expired best-effort deadlines, due timers and heartbeats, then
//! executes the messages that were queued when it began; messages they produce wait for the
//! next round. So every `await` in a canister is a point where other messages interleave.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use candid::Principal;
use serde_bytes::ByteBuf;

use crate::canister::{RunStatus, WasmHeap};
use crate::certification::{LazyDataCertificate, NetworkRootKey};
use crate::execution::{
    ExecutionError, InstantiateError, LiveInstance, RunResult, Target, WasmRuntime,
};
use crate::fault::{self, Fault};
use crate::ids::MANAGEMENT_CANISTER;
use crate::network::{
    CallContext, Callback, IngressStatus, Message, NetworkState, Origin, Payload, Request,
    ResponseMessage,
};
use crate::reject::{RejectCode, RejectResponse, error_codes};
use crate::system_api::{EntryPoint, Response, SystemState, TrapCause, WasmClosure};

/// A network: its serializable state plus the compiled instances (a cache).
pub struct Network {
    pub state: NetworkState,
    pub(crate) runtime: WasmRuntime,
    pub(crate) live: HashMap<Principal, LiveInstance>,
    /// The root key of `state.random_seed`, derived once (see `root_key`).
    root_key: Arc<NetworkRootKey>,
}

/// What a message is, beyond which function runs.
pub(crate) struct MessageSpec<'a> {
    pub entry: EntryPoint,
    pub target: Target<'a>,
    pub caller: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub reject: Option<(u32, String)>,
    pub cycles_available: u128,
    pub cycles_refunded: u128,
    pub responded: bool,
    pub deadline: u64,
    pub call_context_instructions: u64,
    pub instruction_limit: u64,
    /// False for queries: the message's changes are discarded even if it succeeds.
    pub persist: bool,
    /// False for queries answered by one node (ingress queries, inspect_message): only those
    /// see a data certificate, and their logs are not kept.
    pub replicated: bool,
}

impl<'a> MessageSpec<'a> {
    pub fn new(entry: EntryPoint, target: Target<'a>, caller: Principal, limit: u64) -> Self {
        Self {
            entry,
            target,
            caller,
            method: String::new(),
            arg: Vec::new(),
            reject: None,
            cycles_available: 0,
            cycles_refunded: 0,
            responded: false,
            deadline: 0,
            call_context_instructions: 0,
            instruction_limit: limit,
            persist: true,
            replicated: true,
        }
    }
}

impl Network {
    pub fn new(state: NetworkState) -> Self {
        Self {
            root_key: Arc::new(NetworkRootKey::from_seed(state.random_seed)),
            state,
            runtime: WasmRuntime::new(),
            live: HashMap::new(),
        }
    }

    /// The instance of `canister`, instantiated from its installed code if not cached, and in
    /// line with its committed heap.
    pub(crate) fn live_instance(
        &mut self,
        canister: Principal,
    ) -> Result<&mut LiveInstance, InstantiateError> {
        let state = self.state.canisters.get(&canister).ok_or_else(|| {
            InstantiateError::Start(format!("canister {canister} does not exist"))
        })?;
        let code = state
            .code
            .as_ref()
            .ok_or_else(|| InstantiateError::Start(format!("canister {canister} has no code")))?;
        let cached = self
            .live
            .get(&canister)
            .is_some_and(|l| l.module_hash == code.module_hash);
        if !cached {
            let mut live = self
                .runtime
                .instantiate(&code.wasm, self.state.limits.install)?;
            // A new instance holds the module's initial heap; a committed heap replaces it.
            if state.heap.is_some() {
                live.mark_stale();
            }
            self.live.insert(canister, live);
        }
        let live = self.live.get_mut(&canister).expect("inserted above");
        if let Some(heap) = &state.heap {
            self.runtime.load_heap(live, heap)?;
        }
        Ok(live)
    }

    /// Runs one message on `canister` and commits its effects unless it trapped (or is a query).
    pub(crate) fn run_message(&mut self, canister: Principal, spec: MessageSpec<'_>) -> RunResult {
        let time = self.state.time_nanos;
        let fees = self.state.fees;
        let root_key = self.root_key();
        let data_certificate =
            (!spec.replicated).then(|| self.data_certificate(canister, root_key.clone()));
        let calls_in_flight = if spec.entry.may_call() {
            self.calls_in_flight(canister)
        } else {
            Default::default()
        };
        let Some(state) = self.state.canisters.get_mut(&canister) else {
            return failed_run(ExecutionError::Instantiation(format!(
                "canister {canister} does not exist"
            )));
        };
        let system = SystemState {
            entry: Some(spec.entry),
            canister_id: canister,
            caller: Some(spec.caller),
            method_name: spec.method,
            arg: spec.arg,
            reject: spec.reject,
            time,
            controllers: state.settings.controllers.clone(),
            env_vars: state.env_vars(),
            canister_version: state.version,
            status_code: state.status.code(),
            deadline: spec.deadline,
            data_certificate,
            replicated: spec.replicated,
            root_key: root_key.der().to_vec(),
            subnet_id: crate::ids::local_subnet_id(),
            fees,
            balance: state.cycles,
            cycles_available: spec.cycles_available,
            cycles_refunded: spec.cycles_refunded,
            call_context_responded: spec.responded,
            stable: std::mem::take(&mut state.stable),
            max_stable_pages: crate::stable_memory::MAX_STABLE_PAGES,
            global_timer: state.global_timer,
            instruction_limit: spec.instruction_limit,
            call_context_instructions: spec.call_context_instructions,
            calls_in_flight,
            ..SystemState::default()
        };
        let wasm_memory_limit = state.wasm_memory_limit();
        let persist = spec.persist;
        let replicated = spec.replicated;
        let entry = spec.entry;
        let mut run = match self.live_instance(canister) {
            Ok(live) => live.run(spec.target, system, wasm_memory_limit),
            Err(e) => RunResult {
                state: system,
                outcome: Err(ExecutionError::Instantiation(e.to_string())),
                instructions: 0,
            },
        };
        let state = self
            .state
            .canisters
            .get_mut(&canister)
            .expect("checked above");
        state.stable = std::mem::take(&mut run.state.stable);
        state.instructions_executed = state.instructions_executed.saturating_add(run.instructions);
        let commit = persist && run.outcome.is_ok();
        if commit {
            state.stable.commit();
            if let Some(live) = self.live.get_mut(&canister) {
                live.save_heap(state.heap.get_or_insert_with(WasmHeap::default));
            }
            state.cycles = run.state.balance;
            if let Some(data) = run.state.certified_data.take() {
                state.certified_data = ByteBuf::from(data);
            }
            state.global_timer = run.state.global_timer;
            // Every replicated execution counts as a change of the canister; code installation
            // counts once, in `install_code`.
            if !matches!(
                entry,
                EntryPoint::Init | EntryPoint::PreUpgrade | EntryPoint::PostUpgrade
            ) {
                state.version += 1;
            }
        } else {
            state.stable.rollback();
            if let Some(live) = self.live.get_mut(&canister) {
                live.mark_stale();
            }
        }
        // Logs of replicated executions are kept even when the message trapped.
        if replicated {
            for line in std::mem::take(&mut run.state.logs) {
                state.append_log(line.timestamp_nanos, line.content);
            }
            if let Err(e) = &run.outcome {
                state.append_log(time, format!("[TRAP]: {e}").into_bytes());
            }
        }
        run
    }

    /// The network's root key: the one the gateway derives from the same seed, cached (and
    /// derived again only if the seed was changed since).
    pub(crate) fn root_key(&mut self) -> Arc<NetworkRootKey> {
        if self.root_key.seed() != self.state.random_seed {
            self.root_key = Arc::new(NetworkRootKey::from_seed(self.state.random_seed));
        }
        self.root_key.clone()
    }

    /// The certificate `ic0.data_certificate_copy` returns in a query of `canister`: signed
    /// only if the query asks for it.
    fn data_certificate(
        &self,
        canister: Principal,
        root_key: Arc<NetworkRootKey>,
    ) -> LazyDataCertificate {
        let data = self
            .state
            .canisters
            .get(&canister)
            .map(|c| c.certified_data.to_vec())
            .unwrap_or_default();
        LazyDataCertificate::new(root_key, canister, data, self.state.time_nanos)
    }

    /// One round: due timers and deadlines, then every message queued before the round began.
    pub fn tick(&mut self) {
        self.expire_deadlines();
        self.prune_ingress_history();
        self.fire_timers();
        self.run_heartbeats();
        let pending = self.state.queue.len();
        for _ in 0..pending {
            let Some(message) = self.state.queue.pop_front() else {
                break;
            };
            match message {
                Message::Request(request) => self.deliver_request(request),
                Message::Response(response) => self.deliver_response(response),
            }
        }
        self.complete_stops();
    }

    /// Drops old replies from the ingress history, then old entries altogether, so a long-lived
    /// network does not keep every reply it ever gave.
    fn prune_ingress_history(&mut self) {
        use crate::network::{INGRESS_DONE_RETENTION_NANOS, INGRESS_REPLY_RETENTION_NANOS};
        let now = self.state.time_nanos;
        self.state.ingress.retain(|_, status| match status {
            IngressStatus::Processing => true,
            IngressStatus::Completed { completed_at, .. } => {
                if now.saturating_sub(*completed_at) > INGRESS_REPLY_RETENTION_NANOS {
                    *status = IngressStatus::Done {
                        completed_at: *completed_at,
                    };
                }
                true
            }
            IngressStatus::Done { completed_at } => {
                now.saturating_sub(*completed_at) <= INGRESS_DONE_RETENTION_NANOS
            }
        });
    }

    /// How many calls `canister` has in flight to each callee (for the IC's queue capacity).
    fn calls_in_flight(&self, canister: Principal) -> BTreeMap<Principal, u32> {
        let mut in_flight = BTreeMap::new();
        for callback in self.state.callbacks.values() {
            if callback.canister == canister {
                *in_flight.entry(callback.callee).or_insert(0) += 1;
            }
        }
        in_flight
    }

    /// True when rounds can still change something without the clock moving.
    pub fn has_work(&self) -> bool {
        let now = self.state.time_nanos;
        !self.state.queue.is_empty()
            || self
                .state
                .callbacks
                .values()
                .any(|c| c.deadline.is_some_and(|d| d <= now))
            || self.state.canisters.values().any(|c| {
                c.status == RunStatus::Running && c.global_timer != 0 && c.global_timer <= now
            })
    }

    fn expire_deadlines(&mut self) {
        let now = self.state.time_nanos;
        let expired: Vec<u64> = self
            .state
            .callbacks
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(callback) = self.state.callbacks.get_mut(&id) {
                callback.deadline = None;
            }
            // Whichever of this and the real response is delivered first wins; the other
            // finds no callback and is dropped.
            self.state
                .queue
                .push_back(Message::Response(ResponseMessage {
                    callback: id,
                    payload: response_unknown("Call deadline has expired."),
                    refund: 0,
                }));
        }
    }

    fn fire_timers(&mut self) {
        let now = self.state.time_nanos;
        let due: Vec<Principal> = self
            .state
            .canisters
            .values()
            .filter(|c| {
                c.status == RunStatus::Running && c.global_timer != 0 && c.global_timer <= now
            })
            .map(|c| c.id)
            .collect();
        for canister in due {
            // The timer is deactivated before it runs; the canister re-arms it if it wants.
            if let Some(state) = self.state.canisters.get_mut(&canister) {
                state.global_timer = 0;
            }
            self.run_system_task(canister, EntryPoint::GlobalTimer, "canister_global_timer");
        }
    }

    /// Every running canister that exports `canister_heartbeat` gets one per round.
    fn run_heartbeats(&mut self) {
        let running: Vec<Principal> = self
            .state
            .canisters
            .values()
            .filter(|c| c.status == RunStatus::Running && c.code.is_some())
            .map(|c| c.id)
            .collect();
        for canister in running {
            self.run_system_task(canister, EntryPoint::Heartbeat, "canister_heartbeat");
        }
    }

    /// Runs a system task (timer, heartbeat) if the canister exports it; its calls belong to a
    /// call context nobody waits on.
    fn run_system_task(&mut self, canister: Principal, entry: EntryPoint, export: &str) {
        // A cached instance answers without reloading its heap.
        let exported = match self.live.get(&canister) {
            Some(live) => live.exports_function(export),
            None => self
                .live_instance(canister)
                .is_ok_and(|l| l.exports_function(export)),
        };
        if !exported {
            return;
        }
        let context = self.open_call_context(canister, Origin::System, canister, export, 0, 0);
        let spec = MessageSpec::new(
            entry,
            Target::Export(export),
            canister,
            self.state.limits.update,
        );
        let run = self.run_message(canister, spec);
        self.finish_message(context, run, true);
    }

    fn open_call_context(
        &mut self,
        canister: Principal,
        origin: Origin,
        caller: Principal,
        method: &str,
        cycles: u128,
        deadline: u64,
    ) -> u64 {
        let id = self.state.fresh_id();
        self.state.call_contexts.insert(
            id,
            CallContext {
                canister,
                origin,
                caller,
                method: method.to_string(),
                available_cycles: cycles,
                responded: false,
                deadline,
                outstanding_callbacks: 0,
                instructions: 0,
            },
        );
        id
    }

    /// Why `receiver` cannot take a call to `method` now, if it cannot.
    pub(crate) fn check_callee(
        &mut self,
        receiver: Principal,
        method: &str,
    ) -> Result<EntryPoint, RejectResponse> {
        let Some(state) = self.state.canisters.get(&receiver) else {
            return Err(RejectResponse::new(
                RejectCode::DestinationInvalid,
                format!("Canister {receiver} not found"),
            )
            .with_error_code(error_codes::CANISTER_NOT_FOUND));
        };
        match state.status {
            RunStatus::Running => {}
            RunStatus::Stopping => {
                return Err(RejectResponse::new(
                    RejectCode::CanisterError,
                    format!("Canister {receiver} is stopping"),
                )
                .with_error_code(error_codes::CANISTER_STOPPING));
            }
            RunStatus::Stopped => {
                return Err(RejectResponse::new(
                    RejectCode::CanisterError,
                    format!("Canister {receiver} is stopped"),
                )
                .with_error_code(error_codes::CANISTER_STOPPED));
            }
        }
        if state.code.is_none() {
            // The replica's IC0537 is a canister error (reject code 5), as every IC05xx code.
            return Err(RejectResponse::new(
                RejectCode::CanisterError,
                format!("Canister {receiver} is empty: it has no Wasm module"),
            )
            .with_error_code(error_codes::CANISTER_WASM_MODULE_NOT_FOUND));
        }
        let live = self.live_instance(receiver).map_err(|e| {
            RejectResponse::new(RejectCode::CanisterError, e.to_string())
                .with_error_code(error_codes::CANISTER_INVALID_WASM)
        })?;
        if live.update_methods().contains(method) {
            Ok(EntryPoint::Update)
        } else if live.query_methods().contains(method)
            || live.composite_query_methods().contains(method)
        {
            Ok(EntryPoint::Query)
        } else {
            Err(RejectResponse::new(
                RejectCode::CanisterError,
                format!("Canister {receiver} has no update method '{method}'"),
            )
            .with_error_code(error_codes::CANISTER_METHOD_NOT_FOUND))
        }
    }

    fn deliver_request(&mut self, request: Request) {
        if request.receiver == MANAGEMENT_CANISTER {
            self.deliver_management_request(request);
            return;
        }
        let entry = match self.check_callee(request.receiver, &request.method) {
            Ok(entry) => entry,
            Err(reject) => {
                self.respond(request.origin, Payload::Reject(reject), request.cycles);
                return;
            }
        };
        let context = self.open_call_context(
            request.receiver,
            request.origin,
            request.sender,
            &request.method,
            request.cycles,
            request.deadline,
        );
        // A query method called by a canister runs like an update whose changes are discarded.
        let export = match entry {
            EntryPoint::Update => format!("canister_update {}", request.method),
            _ if self
                .live
                .get(&request.receiver)
                .is_some_and(|l| l.query_methods().contains(&request.method)) =>
            {
                format!("canister_query {}", request.method)
            }
            _ => format!("canister_composite_query {}", request.method),
        };
        let mut spec = MessageSpec::new(
            entry,
            Target::Export(&export),
            request.sender,
            if entry == EntryPoint::Update {
                self.state.limits.update
            } else {
                self.state.limits.query
            },
        );
        spec.method = request.method.clone();
        spec.arg = request.arg.into_vec();
        spec.cycles_available = request.cycles;
        spec.deadline = request.deadline;
        spec.persist = entry == EntryPoint::Update;
        let run = self.run_message(request.receiver, spec);
        self.finish_message(context, run, entry == EntryPoint::Update);
    }

    fn deliver_response(&mut self, response: ResponseMessage) {
        let Some(callback) = self.state.callbacks.remove(&response.callback) else {
            return;
        };
        let Some(context) = self.state.call_contexts.get_mut(&callback.call_context) else {
            return;
        };
        context.outstanding_callbacks -= 1;
        let (caller, method, available, responded, deadline, instructions) = (
            context.caller,
            context.method.clone(),
            context.available_cycles,
            context.responded,
            context.deadline,
            context.instructions,
        );
        let canister = callback.canister;
        let has_code = self
            .state
            .canisters
            .get(&canister)
            .is_some_and(|state| state.code.is_some());
        // An injected fault applies to a response that reaches a callback.
        let fault = has_code
            .then(|| {
                fault::take(
                    &mut self.state.faults,
                    canister,
                    callback.callee,
                    &callback.method,
                )
            })
            .flatten();
        let (payload, refund) = match fault {
            // As when a bounded-wait call's deadline passes: the response, and the cycles it
            // would have refunded, never arrive.
            Some(Fault::LoseReply { .. }) => {
                (response_unknown("the reply was lost (injected fault)"), 0)
            }
            _ => (response.payload, response.refund),
        };
        if let Some(state) = self.state.canisters.get_mut(&canister) {
            state.cycles = state.cycles.saturating_add(refund);
        }
        if !has_code {
            self.close_if_done(callback.call_context);
            return;
        }
        let run = if matches!(fault, Some(Fault::TrapInCallback { .. })) {
            self.injected_callback_trap(canister)
        } else {
            let (entry, closure, arg, reject) = match payload {
                Payload::Reply(bytes) => (
                    EntryPoint::ReplyCallback,
                    callback.on_reply,
                    bytes.into_vec(),
                    None,
                ),
                Payload::Reject(r) => (
                    EntryPoint::RejectCallback,
                    callback.on_reject,
                    Vec::new(),
                    Some((r.reject_code.as_u32(), r.reject_message)),
                ),
            };
            let limit = self.state.limits.update;
            let mut spec = MessageSpec::new(entry, Target::Closure(closure), caller, limit);
            spec.method = method;
            spec.arg = arg;
            spec.reject = reject;
            spec.cycles_available = available;
            spec.cycles_refunded = refund;
            spec.responded = responded;
            spec.deadline = deadline;
            spec.call_context_instructions = instructions;
            self.run_message(canister, spec)
        };
        // A trapped callback's cleanup runs (and persists) so the canister can release
        // what the callback would have released.
        if let (Err(_), Some(cleanup)) = (&run.outcome, callback.on_cleanup) {
            self.run_cleanup(canister, caller, cleanup, instructions + run.instructions);
        }
        self.finish_message(callback.call_context, run, true);
    }

    /// What a callback that traps at entry leaves: nothing of its own (there is nothing to
    /// roll back), a trap for its call context, and the trap in the canister's log.
    fn injected_callback_trap(&mut self, canister: Principal) -> RunResult {
        let error = ExecutionError::Trap(TrapCause::Explicit(
            "the callback trapped (injected fault)".to_string(),
        ));
        let time = self.state.time_nanos;
        if let Some(state) = self.state.canisters.get_mut(&canister) {
            state.append_log(time, format!("[TRAP]: {error}").into_bytes());
        }
        failed_run(error)
    }

    fn run_cleanup(
        &mut self,
        canister: Principal,
        caller: Principal,
        closure: WasmClosure,
        instructions: u64,
    ) {
        let mut spec = MessageSpec::new(
            EntryPoint::Cleanup,
            Target::Closure(closure),
            caller,
            self.state.limits.update,
        );
        spec.call_context_instructions = instructions;
        self.run_message(canister, spec);
    }

    /// Applies the outcome of a message to its call context: outgoing calls, the response,
    /// or the rejection a trap produces.
    pub(crate) fn finish_message(&mut self, context_id: u64, run: RunResult, persisted: bool) {
        let now = self.state.time_nanos;
        let Some(context) = self.state.call_contexts.get_mut(&context_id) else {
            return;
        };
        context.instructions += run.instructions;
        let canister = context.canister;
        let mut state = run.state;
        match run.outcome {
            Ok(()) => {
                if persisted {
                    context.available_cycles = state.cycles_available;
                }
                let calls = std::mem::take(&mut state.calls);
                context.outstanding_callbacks += calls.len() as u32;
                if let Some(response) = state.response.take() {
                    let payload = match response {
                        Response::Reply(bytes) => Payload::Reply(ByteBuf::from(bytes)),
                        Response::Reject(message) => Payload::reject(
                            RejectCode::CanisterReject,
                            message,
                            error_codes::CANISTER_REJECTED_MESSAGE,
                        ),
                    };
                    self.respond_context(context_id, payload);
                }
                for call in calls {
                    let callback = self.state.fresh_id();
                    let deadline = call
                        .timeout_seconds
                        .map(|t| now.saturating_add(u64::from(t) * 1_000_000_000));
                    self.state.callbacks.insert(
                        callback,
                        Callback {
                            canister,
                            call_context: context_id,
                            callee: call.callee,
                            method: call.method.clone(),
                            on_reply: call.on_reply,
                            on_reject: call.on_reject,
                            on_cleanup: call.on_cleanup,
                            deadline,
                        },
                    );
                    self.state.queue.push_back(Message::Request(Request {
                        origin: Origin::Canister { canister, callback },
                        sender: canister,
                        receiver: call.callee,
                        method: call.method,
                        arg: ByteBuf::from(call.arg),
                        cycles: call.cycles,
                        deadline: deadline.unwrap_or(0),
                    }));
                }
            }
            Err(error) => {
                let error_code = error.error_code();
                if !context.responded && context.outstanding_callbacks == 0 {
                    let payload = Payload::reject(
                        RejectCode::CanisterError,
                        format!("Error from Canister {canister}: {error}"),
                        error_code,
                    );
                    self.respond_context(context_id, payload);
                }
            }
        }
        self.close_if_done(context_id);
    }

    /// Sends the response of a call context to its origin, with the unaccepted cycles.
    fn respond_context(&mut self, context_id: u64, payload: Payload) {
        let Some(context) = self.state.call_contexts.get_mut(&context_id) else {
            return;
        };
        if context.responded {
            return;
        }
        context.responded = true;
        let refund = std::mem::take(&mut context.available_cycles);
        let origin = context.origin;
        let instructions = context.instructions;
        self.respond_with_instructions(origin, payload, refund, instructions);
    }

    /// Closes a call context that has no outstanding callbacks; one that never responded is
    /// rejected ("did not reply").
    fn close_if_done(&mut self, context_id: u64) {
        let Some(context) = self.state.call_contexts.get(&context_id) else {
            return;
        };
        if context.outstanding_callbacks > 0 {
            return;
        }
        if !context.responded {
            let canister = context.canister;
            let payload = Payload::reject(
                RejectCode::CanisterError,
                format!("Canister {canister} did not produce a response"),
                error_codes::CANISTER_DID_NOT_REPLY,
            );
            self.respond_context(context_id, payload);
        }
        self.state.call_contexts.remove(&context_id);
    }

    pub(crate) fn respond(&mut self, origin: Origin, payload: Payload, refund: u128) {
        self.respond_with_instructions(origin, payload, refund, 0);
    }

    fn respond_with_instructions(
        &mut self,
        origin: Origin,
        payload: Payload,
        refund: u128,
        instructions: u64,
    ) {
        match origin {
            Origin::Ingress(id) => {
                let result = match payload {
                    Payload::Reply(bytes) => Ok(bytes),
                    Payload::Reject(reject) => Err(reject),
                };
                self.state.ingress.insert(
                    id,
                    IngressStatus::Completed {
                        result,
                        instructions,
                        completed_at: self.state.time_nanos,
                    },
                );
            }
            Origin::Canister { callback, .. } => {
                self.state
                    .queue
                    .push_back(Message::Response(ResponseMessage {
                        callback,
                        payload,
                        refund,
                    }));
            }
            Origin::System => {}
        }
    }

    /// Stopping canisters without open call contexts become stopped; their stop calls reply.
    pub(crate) fn complete_stops(&mut self) {
        // Canisters that are stopping, or already stopped with a stop call still to answer.
        let candidates: std::collections::BTreeSet<Principal> = self
            .state
            .canisters
            .values()
            .filter(|c| c.status == RunStatus::Stopping)
            .map(|c| c.id)
            .chain(self.state.stop_waiters.iter().map(|w| w.canister))
            .collect();
        for canister in candidates {
            let Some(status) = self.state.canisters.get(&canister).map(|c| c.status) else {
                continue;
            };
            match status {
                RunStatus::Running => continue,
                RunStatus::Stopping if self.state.open_call_contexts(&canister) > 0 => continue,
                RunStatus::Stopping | RunStatus::Stopped => {}
            }
            if let Some(state) = self.state.canisters.get_mut(&canister) {
                state.status = RunStatus::Stopped;
            }
            let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.state.stop_waiters)
                .into_iter()
                .partition(|w| w.canister == canister);
            self.state.stop_waiters = waiting;
            for waiter in done {
                let reply = candid::encode_args(()).expect("encoding () cannot fail");
                self.respond(waiter.origin, Payload::Reply(ByteBuf::from(reply)), 0);
            }
        }
    }

    /// Submits an ingress message after `canister_inspect_message` accepted it.
    pub fn submit_ingress(
        &mut self,
        sender: Principal,
        receiver: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<u64, RejectResponse> {
        if receiver != MANAGEMENT_CANISTER {
            self.check_callee(receiver, method)?;
            self.inspect_message(sender, receiver, method, &arg)?;
        }
        let id = self.state.fresh_id();
        self.state.ingress.insert(id, IngressStatus::Processing);
        self.state.queue.push_back(Message::Request(Request {
            origin: Origin::Ingress(id),
            sender,
            receiver,
            method: method.to_string(),
            arg: ByteBuf::from(arg),
            cycles: 0,
            deadline: 0,
        }));
        Ok(id)
    }

    fn inspect_message(
        &mut self,
        sender: Principal,
        receiver: Principal,
        method: &str,
        arg: &[u8],
    ) -> Result<(), RejectResponse> {
        let exported = self
            .live_instance(receiver)
            .map(|l| l.exports_function("canister_inspect_message"))
            .unwrap_or(false);
        if !exported {
            return Ok(());
        }
        let mut spec = MessageSpec::new(
            EntryPoint::InspectMessage,
            Target::Export("canister_inspect_message"),
            sender,
            self.state.limits.inspect_message,
        );
        spec.method = method.to_string();
        spec.arg = arg.to_vec();
        spec.persist = false;
        spec.replicated = false;
        let run = self.run_message(receiver, spec);
        match run.outcome {
            Ok(()) if run.state.message_accepted => Ok(()),
            Ok(()) => Err(RejectResponse::new(
                RejectCode::CanisterReject,
                format!("Canister {receiver} rejected the message"),
            )
            .with_error_code(error_codes::CANISTER_REJECTED_MESSAGE)),
            Err(e) => Err(RejectResponse::new(
                RejectCode::CanisterError,
                format!("Error from Canister {receiver}: {e}"),
            )
            .with_error_code(error_codes::CANISTER_TRAPPED)),
        }
    }

    /// Runs a query; nothing it does persists. Returns the result and its instructions.
    pub fn query(
        &mut self,
        sender: Principal,
        receiver: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> (Result<Vec<u8>, RejectResponse>, u64) {
        match self.check_callee(receiver, method) {
            Ok(EntryPoint::Query) => {}
            Ok(_) => {
                return (
                    Err(RejectResponse::new(
                        RejectCode::CanisterError,
                        format!("Canister {receiver} has no query method '{method}'"),
                    )
                    .with_error_code(error_codes::CANISTER_METHOD_NOT_FOUND)),
                    0,
                );
            }
            Err(reject) => return (Err(reject), 0),
        }
        let export = if self
            .live
            .get(&receiver)
            .is_some_and(|l| l.query_methods().contains(method))
        {
            format!("canister_query {method}")
        } else {
            format!("canister_composite_query {method}")
        };
        let mut spec = MessageSpec::new(
            EntryPoint::Query,
            Target::Export(&export),
            sender,
            self.state.limits.query,
        );
        spec.method = method.to_string();
        spec.arg = arg;
        spec.persist = false;
        spec.replicated = false;
        let run = self.run_message(receiver, spec);
        let instructions = run.instructions;
        let result = match run.outcome {
            Err(e) => Err(RejectResponse::new(
                RejectCode::CanisterError,
                format!("Error from Canister {receiver}: {e}"),
            )
            .with_error_code(e.error_code())),
            Ok(()) => match run.state.response {
                Some(Response::Reply(bytes)) => Ok(bytes),
                Some(Response::Reject(message)) => {
                    Err(RejectResponse::new(RejectCode::CanisterReject, message)
                        .with_error_code(error_codes::CANISTER_REJECTED_MESSAGE))
                }
                None => Err(RejectResponse::new(
                    RejectCode::CanisterError,
                    format!("Canister {receiver} did not produce a response"),
                )
                .with_error_code(error_codes::CANISTER_DID_NOT_REPLY)),
            },
        };
        (result, instructions)
    }
}

/// The reject a caller gets when the response to its call is unknown: the call's deadline
/// passed, or (an injected fault) the reply was lost.
fn response_unknown(message: &str) -> Payload {
    Payload::reject(
        RejectCode::SysUnknown,
        message,
        error_codes::DEADLINE_EXPIRED,
    )
}

fn failed_run(error: ExecutionError) -> RunResult {
    RunResult {
        state: SystemState::default(),
        outcome: Err(error),
        instructions: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_management_canister_types::CanisterInstallMode;

    /// Queries that ask for nothing, whether a certificate is present, and its size.
    const CERTIFICATE_QUERIES: &str = r#"(module
      (import "ic0" "msg_reply" (func $reply))
      (import "ic0" "data_certificate_present" (func $present (result i32)))
      (import "ic0" "data_certificate_size" (func $size (result i32)))
      (func (export "canister_query plain") (call $reply))
      (func (export "canister_query present") (drop (call $present)) (call $reply))
      (func (export "canister_query size") (drop (call $size)) (call $reply))
      (func (export "canister_update update") (call $reply)))"#;

    fn network_with_canister() -> (Network, Principal) {
        let mut network = Network::new(NetworkState::new([1; 32]));
        let sender = Principal::anonymous();
        let canister = network
            .create_canister(sender, None, crate::DEFAULT_PROVISIONAL_CYCLES)
            .unwrap();
        let wasm = wat::parse_str(CERTIFICATE_QUERIES).unwrap();
        network
            .install_code(
                sender,
                canister,
                CanisterInstallMode::Install,
                &wasm,
                vec![],
            )
            .unwrap();
        (network, canister)
    }

    /// The system state a message on `method` ends with.
    fn run(network: &mut Network, canister: Principal, method: &str, query: bool) -> SystemState {
        let (entry, export) = if query {
            (EntryPoint::Query, format!("canister_query {method}"))
        } else {
            (EntryPoint::Update, format!("canister_update {method}"))
        };
        let mut spec = MessageSpec::new(
            entry,
            Target::Export(&export),
            Principal::anonymous(),
            1 << 30,
        );
        spec.method = method.to_string();
        spec.persist = !query;
        spec.replicated = !query;
        let run = network.run_message(canister, spec);
        run.outcome.unwrap();
        run.state
    }

    #[test]
    fn a_query_signs_its_data_certificate_only_when_it_reads_it() {
        let (mut network, canister) = network_with_canister();
        let plain = run(&mut network, canister, "plain", true);
        assert!(!plain.data_certificate.as_ref().unwrap().is_built());
        let present = run(&mut network, canister, "present", true);
        assert!(!present.data_certificate.as_ref().unwrap().is_built());
        let size = run(&mut network, canister, "size", true);
        assert!(size.data_certificate.as_ref().unwrap().is_built());
        let update = run(&mut network, canister, "update", false);
        assert!(update.data_certificate.is_none());
        // Every message sees the network's root key.
        let der = ic_certificate::RootKey::from_seed([1; 32]).public_key_der();
        assert_eq!(plain.root_key, der);
        assert_eq!(update.root_key, der);
    }

    #[test]
    fn the_root_key_is_derived_once_per_seed() {
        let (mut network, _) = network_with_canister();
        let first = network.root_key();
        assert!(Arc::ptr_eq(&first, &network.root_key()));
        network.state.random_seed = [2; 32];
        let second = network.root_key();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(
            second.der(),
            ic_certificate::RootKey::from_seed([2; 32]).public_key_der()
        );
    }
}
