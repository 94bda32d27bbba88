//! One test API over two backends: the project's local IC runtime (always available) and
//! PocketIC (feature `pocket-ic`, used when `POCKET_IC_BIN` is set). Integration tests written
//! against [`TestEnv`] run unchanged on both.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The folder `scripts/build` writes the wasm files to (`$OHMS_WASM_DIR` overrides it).
pub fn wasm_dir() -> PathBuf {
    std::env::var_os("OHMS_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../wasm"))
}

/// A test canister `scripts/build` wrote to `wasm/fixtures/<name>.wasm`, or `None` (with a
/// notice) when it has not been built; on CI (`CI=true`) a missing fixture fails the test.
pub fn fixture_wasm(name: &str) -> Option<Vec<u8>> {
    let path = wasm_dir().join("fixtures").join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!(
                "skipping: {} is missing ({e}); run scripts/build",
                path.display()
            );
            None
        }
        Err(e) => panic!("{} is missing: {e}; run scripts/build", path.display()),
    }
}

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use serde::de::DeserializeOwned;

use local_ic::candid_call;
pub use local_ic::{CallError, Fault, RejectCode, RejectResponse};

/// A log record of a canister, whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub idx: u64,
    pub timestamp_nanos: u64,
    pub content: Vec<u8>,
}

/// A submitted call, for [`TestEnv::await_call`].
#[derive(Debug, Clone)]
pub enum CallHandle {
    Local(local_ic::MessageId),
    #[cfg(feature = "pocket-ic")]
    Pocket(pocket_ic::common::rest::RawMessageId),
}

/// The backend a [`TestEnv`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    LocalIc,
    PocketIc,
}

enum Backend {
    Local(Box<local_ic::LocalIc>),
    #[cfg(feature = "pocket-ic")]
    Pocket(Box<pocket_ic::PocketIc>),
}

/// A test network.
pub struct TestEnv {
    backend: Backend,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    /// PocketIC when `POCKET_IC_BIN` is set (and the `pocket-ic` feature is on), otherwise
    /// the local IC runtime.
    pub fn new() -> Self {
        #[cfg(feature = "pocket-ic")]
        if std::env::var_os("POCKET_IC_BIN").is_some() {
            return Self::pocket_ic();
        }
        #[cfg(not(feature = "pocket-ic"))]
        if std::env::var_os("POCKET_IC_BIN").is_some() {
            eprintln!(
                "POCKET_IC_BIN is set but ic-test-env was built without the `pocket-ic` feature; using the local IC runtime"
            );
        }
        Self::local()
    }

    /// Always the local IC runtime.
    pub fn local() -> Self {
        Self {
            backend: Backend::Local(Box::new(local_ic::LocalIc::new())),
        }
    }

    /// Always PocketIC (the server binary comes from `POCKET_IC_BIN`).
    #[cfg(feature = "pocket-ic")]
    pub fn pocket_ic() -> Self {
        let pic = pocket_ic::PocketIcBuilder::new()
            .with_application_subnet()
            .build();
        Self {
            backend: Backend::Pocket(Box::new(pic)),
        }
    }

    pub fn kind(&self) -> BackendKind {
        match &self.backend {
            Backend::Local(_) => BackendKind::LocalIc,
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(_) => BackendKind::PocketIc,
        }
    }

    /// The local runtime, for checks only it can make (e.g. instructions of a call).
    pub fn as_local(&mut self) -> Option<&mut local_ic::LocalIc> {
        match &mut self.backend {
            Backend::Local(ic) => Some(ic),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(_) => None,
        }
    }

    /// Injects a fault into the local runtime (see [`Fault`]); false on PocketIC, where faults
    /// cannot be injected (the caller then skips what needs the fault, saying so).
    pub fn inject_fault(&mut self, fault: Fault) -> bool {
        match &mut self.backend {
            Backend::Local(ic) => {
                ic.inject_fault(fault);
                true
            }
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(_) => false,
        }
    }

    /// Injected faults that have not applied yet (0 on PocketIC).
    pub fn pending_faults(&self) -> usize {
        match &self.backend {
            Backend::Local(ic) => ic.pending_faults(),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(_) => 0,
        }
    }

    /// Instructions of the last completed call or query, where the backend measures them
    /// (the local runtime does; PocketIC does not report them).
    pub fn last_call_instructions(&self) -> Option<u64> {
        match &self.backend {
            Backend::Local(ic) => ic.last_call_instructions(),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(_) => None,
        }
    }

    /// Instructions `canister`'s code has executed so far, where the backend counts them (the
    /// local runtime does; PocketIC does not).
    pub fn canister_instructions(&self, canister: Principal) -> Option<u64> {
        match &self.backend {
            Backend::Local(ic) => ic.canister_instructions(canister),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(_) => None,
        }
    }

    /// Replaces the controllers of a canister.
    pub fn set_controllers(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
        controllers: Vec<Principal>,
    ) -> Result<(), RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic.set_controllers(canister, sender, controllers),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic
                .set_controllers(canister, sender, controllers)
                .map_err(pocket::reject),
        }
    }

    pub fn create_canister(&mut self) -> Principal {
        match &mut self.backend {
            Backend::Local(ic) => ic.create_canister(),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic.create_canister(),
        }
    }

    /// Creates a canister controlled by `controllers` (plus nothing else).
    pub fn create_canister_with_controllers(&mut self, controllers: Vec<Principal>) -> Principal {
        let settings = local_ic::management_types::CanisterSettings {
            controllers: Some(controllers.clone()),
            ..Default::default()
        };
        match &mut self.backend {
            Backend::Local(ic) => ic.create_canister_with_settings(None, Some(settings)),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => {
                let settings = pocket_ic::CanisterSettings {
                    controllers: Some(controllers),
                    ..Default::default()
                };
                pic.create_canister_with_settings(None, Some(settings))
            }
        }
    }

    pub fn add_cycles(&mut self, canister: Principal, amount: u128) -> u128 {
        match &mut self.backend {
            Backend::Local(ic) => ic.add_cycles(canister, amount),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic.add_cycles(canister, amount),
        }
    }

    pub fn cycle_balance(&mut self, canister: Principal) -> u128 {
        match &mut self.backend {
            Backend::Local(ic) => ic.cycle_balance(canister),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic.cycle_balance(canister),
        }
    }

    pub fn install_canister(
        &mut self,
        canister: Principal,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic.install_canister(canister, wasm, arg, sender),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic
                .reinstall_canister(canister, wasm, arg, sender)
                .map_err(pocket::reject),
        }
    }

    pub fn upgrade_canister(
        &mut self,
        canister: Principal,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic.upgrade_canister(canister, wasm, arg, sender),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic
                .upgrade_canister(canister, wasm, arg, sender)
                .map_err(pocket::reject),
        }
    }

    pub fn reinstall_canister(
        &mut self,
        canister: Principal,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic.reinstall_canister(canister, wasm, arg, sender),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic
                .reinstall_canister(canister, wasm, arg, sender)
                .map_err(pocket::reject),
        }
    }

    pub fn update_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic.update_call(canister, sender, method, arg),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic
                .update_call(canister, sender, method, arg)
                .map_err(pocket::reject),
        }
    }

    pub fn query_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic.query_call(canister, sender, method, arg),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic
                .query_call(canister, sender, method, arg)
                .map_err(pocket::reject),
        }
    }

    pub fn submit_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<CallHandle, RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic
                .submit_call(canister, sender, method, arg)
                .map(CallHandle::Local),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic
                .submit_call(canister, sender, method, arg)
                .map(CallHandle::Pocket)
                .map_err(pocket::reject),
        }
    }

    /// Waits for a submitted call. A handle from the other backend is a `SysFatal` rejection.
    pub fn await_call(&mut self, call: CallHandle) -> Result<Vec<u8>, RejectResponse> {
        match (&mut self.backend, call) {
            (Backend::Local(ic), CallHandle::Local(id)) => ic.await_call(id),
            #[cfg(feature = "pocket-ic")]
            (Backend::Pocket(pic), CallHandle::Pocket(id)) => {
                pic.await_call(id).map_err(pocket::reject)
            }
            #[cfg(feature = "pocket-ic")]
            _ => Err(RejectResponse::new(
                RejectCode::SysFatal,
                "the call handle belongs to another test environment",
            )),
        }
    }

    pub fn tick(&mut self) {
        match &mut self.backend {
            Backend::Local(ic) => ic.tick(),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic.tick(),
        }
    }

    pub fn advance_time(&mut self, duration: Duration) {
        match &mut self.backend {
            Backend::Local(ic) => ic.advance_time(duration),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic.advance_time(duration),
        }
    }

    pub fn get_time(&mut self) -> SystemTime {
        match &mut self.backend {
            Backend::Local(ic) => ic.get_time(),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => {
                SystemTime::UNIX_EPOCH
                    + Duration::from_nanos(pic.get_time().as_nanos_since_unix_epoch())
            }
        }
    }

    pub fn set_time(&mut self, time: SystemTime) {
        match &mut self.backend {
            Backend::Local(ic) => ic.set_time(time),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic.set_time(time.into()),
        }
    }

    pub fn fetch_canister_logs(
        &mut self,
        canister: Principal,
        sender: Principal,
    ) -> Result<Vec<LogRecord>, RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => Ok(ic
                .fetch_canister_logs(canister, sender)?
                .into_iter()
                .map(|r| LogRecord {
                    idx: r.idx,
                    timestamp_nanos: r.timestamp_nanos,
                    content: r.content,
                })
                .collect()),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => Ok(pic
                .fetch_canister_logs(canister, sender)
                .map_err(pocket::reject)?
                .into_iter()
                .map(|r| LogRecord {
                    idx: r.idx,
                    timestamp_nanos: r.timestamp_nanos,
                    content: r.content,
                })
                .collect()),
        }
    }

    pub fn stop_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic.stop_canister(canister, sender),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic.stop_canister(canister, sender).map_err(pocket::reject),
        }
    }

    pub fn start_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic.start_canister(canister, sender),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic.start_canister(canister, sender).map_err(pocket::reject),
        }
    }

    pub fn delete_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        match &mut self.backend {
            Backend::Local(ic) => ic.delete_canister(canister, sender),
            #[cfg(feature = "pocket-ic")]
            Backend::Pocket(pic) => pic
                .delete_canister(canister, sender)
                .map_err(pocket::reject),
        }
    }

    /// `update_call` with Candid arguments and a single Candid result.
    pub fn update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let reply = self.update_call(canister, sender, method, candid_call::encode_args(args)?)?;
        candid_call::decode_one(&reply)
    }

    /// `query_call` with Candid arguments and a single Candid result.
    pub fn query<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let reply = self.query_call(canister, sender, method, candid_call::encode_args(args)?)?;
        candid_call::decode_one(&reply)
    }

    /// `update_call` decoding several Candid results as a tuple.
    pub fn update_tuple<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let reply = self.update_call(canister, sender, method, candid_call::encode_args(args)?)?;
        candid_call::decode_tuple(&reply)
    }

    /// `query_call` decoding several Candid results as a tuple.
    pub fn query_tuple<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let reply = self.query_call(canister, sender, method, candid_call::encode_args(args)?)?;
        candid_call::decode_tuple(&reply)
    }
}

#[cfg(feature = "pocket-ic")]
mod pocket {
    use super::{RejectCode, RejectResponse};

    /// PocketIC's rejection in the local runtime's terms (same codes, same `IC0xxx` names).
    pub fn reject(r: pocket_ic::RejectResponse) -> RejectResponse {
        let code = match r.reject_code {
            pocket_ic::RejectCode::SysFatal => RejectCode::SysFatal,
            pocket_ic::RejectCode::SysTransient => RejectCode::SysTransient,
            pocket_ic::RejectCode::DestinationInvalid => RejectCode::DestinationInvalid,
            pocket_ic::RejectCode::CanisterReject => RejectCode::CanisterReject,
            pocket_ic::RejectCode::CanisterError => RejectCode::CanisterError,
            pocket_ic::RejectCode::SysUnknown => RejectCode::SysUnknown,
        };
        RejectResponse::new(code, r.reject_message)
            .with_error_code(&format!("IC{:04}", r.error_code as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_backend_without_pocket_ic_bin() {
        if std::env::var_os("POCKET_IC_BIN").is_some() {
            return;
        }
        let mut env = TestEnv::new();
        assert_eq!(env.kind(), BackendKind::LocalIc);
        let canister = env.create_canister();
        assert_eq!(canister.to_text(), "rwlgt-iiaaa-aaaaa-aaaaa-cai");
        let balance = env.cycle_balance(canister);
        assert_eq!(env.add_cycles(canister, 5), balance + 5);
        let err = env
            .update_call(canister, Principal::anonymous(), "m", vec![])
            .unwrap_err();
        // An empty canister answers IC0537, a canister error (reject code 5) on current replicas.
        assert_eq!(err.reject_code, RejectCode::CanisterError);
        let before = env.get_time();
        env.advance_time(Duration::from_secs(1));
        assert_eq!(
            env.get_time().duration_since(before).unwrap(),
            Duration::from_secs(1)
        );
    }
}
