//! The network behind the HTTP interface: one runtime, its clock following the wall clock,
//! every change journaled before anything that depends on it is answered.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use candid::Principal;
use local_ic::{IngressStatus, LocalIc, NetworkState, RejectResponse};
use serde_bytes::ByteBuf;

use crate::journal::{self, Journal, Record, RequestEntry, RequestId, SnapshotRef};
use crate::keys::NetworkKeys;

/// How long after its ingress expiry a request id is still remembered (its status is then
/// "done" in the replica's terms; after this it is forgotten).
const REQUEST_RETENTION_NANOS: u64 = 10 * 60 * 1_000_000_000;

/// The status of a request, as `/request_status/<id>/status` certifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestStatus {
    Processing,
    Replied(Vec<u8>),
    Rejected(RejectResponse),
    Done,
}

/// A call the HTTP layer validated.
pub struct Submission {
    pub request_id: RequestId,
    pub sender: Principal,
    pub canister: Principal,
    pub effective: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub ingress_expiry: u64,
}

pub struct Node {
    ic: LocalIc,
    requests: BTreeMap<RequestId, RequestEntry>,
    journal: Journal,
    pub keys: Arc<NetworkKeys>,
    last_checkpoint: Instant,
}

/// What opening a network folder found.
pub struct Opened {
    pub node: Node,
    /// Journal records replayed over the snapshot.
    pub replayed: usize,
}

pub fn wall_clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Node {
    /// Opens the network saved in `dir`, or starts one there from `initial` (a fresh network
    /// with a random seed when there is none).
    pub fn open(dir: &Path, initial: impl FnOnce() -> Result<NetworkState>) -> Result<Opened> {
        if let Some((snapshot, replay)) = journal::load(dir)? {
            let keys = Arc::new(NetworkKeys::from_seed(snapshot.network.random_seed));
            let mut ic = LocalIc::from_state(snapshot.network);
            let mut requests = snapshot.requests;
            for record in &replay.records {
                apply(&mut ic, &mut requests, record)
                    .with_context(|| format!("replaying the journal in {}", dir.display()))?;
            }
            return Ok(Opened {
                node: Node {
                    ic,
                    requests,
                    journal: Journal::resume(dir, snapshot.generation, &replay)?,
                    keys,
                    last_checkpoint: Instant::now(),
                },
                replayed: replay.records.len(),
            });
        }
        let state = initial()?;
        let keys = Arc::new(NetworkKeys::from_seed(state.random_seed));
        let requests = BTreeMap::new();
        let journal = Journal::checkpoint(
            dir,
            &SnapshotRef {
                generation: 0,
                network: &state,
                requests: &requests,
            },
        )?;
        Ok(Opened {
            node: Node {
                ic: LocalIc::from_state(state),
                requests,
                journal,
                keys,
                last_checkpoint: Instant::now(),
            },
            replayed: 0,
        })
    }

    /// Moves the clock to the wall clock (it never moves back) and returns the network time.
    pub fn clock(&mut self) -> u64 {
        self.ic.set_time(SystemTime::now());
        self.time_nanos()
    }

    pub fn time_nanos(&self) -> u64 {
        self.ic.state().time_nanos
    }

    pub fn state(&self) -> &NetworkState {
        self.ic.state()
    }

    /// Accepts a call: `Ok(true)` if it is new, `Ok(false)` if the same request id was already
    /// accepted (it is not executed twice), or the non-replicated rejection (no such canister,
    /// `canister_inspect_message` refused it), which changes nothing.
    pub fn submit(&mut self, call: &Submission) -> Result<Result<bool, RejectResponse>> {
        if self.requests.contains_key(&call.request_id) {
            return Ok(Ok(false));
        }
        let time_nanos = self.clock();
        let message =
            match self
                .ic
                .submit_call(call.canister, call.sender, &call.method, call.arg.clone())
            {
                Ok(message) => message,
                Err(reject) => return Ok(Err(reject)),
            };
        let entry = RequestEntry {
            message: message.0,
            sender: call.sender,
            canister: call.canister,
            effective: call.effective,
            ingress_expiry: call.ingress_expiry,
        };
        self.journal.append(&Record::Submit {
            time_nanos,
            request_id: call.request_id,
            entry: entry.clone(),
            method: call.method.clone(),
            arg: ByteBuf::from(call.arg.clone()),
        })?;
        self.requests.insert(call.request_id, entry);
        Ok(Ok(true))
    }

    /// Whether a round is due now.
    pub fn busy(&mut self) -> bool {
        self.clock();
        self.ic.has_work()
    }

    /// Executes one round if anything is due.
    pub fn round(&mut self) -> Result<bool> {
        let time_nanos = self.clock();
        if !self.ic.has_work() {
            return Ok(false);
        }
        self.journal.append(&Record::Round { time_nanos })?;
        self.ic.tick();
        forget_expired(&mut self.requests, time_nanos);
        Ok(true)
    }

    /// Makes every change so far durable: call before answering anything that reveals state.
    pub fn sync(&mut self) -> Result<()> {
        self.journal.sync()
    }

    pub fn request(&self, request_id: &RequestId) -> Option<&RequestEntry> {
        self.requests.get(request_id)
    }

    pub fn request_status(&self, request_id: &RequestId) -> Option<RequestStatus> {
        let entry = self.requests.get(request_id)?;
        Some(match self.ic.state().ingress.get(&entry.message) {
            Some(IngressStatus::Processing) => RequestStatus::Processing,
            Some(IngressStatus::Completed { result, .. }) => match result {
                Ok(reply) => RequestStatus::Replied(reply.to_vec()),
                Err(reject) => RequestStatus::Rejected(reject.clone()),
            },
            Some(IngressStatus::Done { .. }) | None => RequestStatus::Done,
        })
    }

    /// Runs a query at the current time; nothing it changes persists.
    pub fn query(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        self.clock();
        self.ic.query_call(canister, sender, method, arg)
    }

    /// Writes a snapshot and starts a new journal when the journal has grown or aged.
    pub fn maybe_checkpoint(
        &mut self,
        max_records: usize,
        max_age: std::time::Duration,
    ) -> Result<()> {
        if self.journal.records >= max_records
            || (self.journal.records > 0 && self.last_checkpoint.elapsed() >= max_age)
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    pub fn checkpoint(&mut self) -> Result<()> {
        self.journal.sync()?;
        let dir = self.journal.dir().to_path_buf();
        self.journal = Journal::checkpoint(
            &dir,
            &SnapshotRef {
                generation: self.journal.generation() + 1,
                network: self.ic.state(),
                requests: &self.requests,
            },
        )?;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// Applies one journaled change, exactly as it was applied live.
fn apply(
    ic: &mut LocalIc,
    requests: &mut BTreeMap<RequestId, RequestEntry>,
    record: &Record,
) -> Result<()> {
    match record {
        Record::Round { time_nanos } => {
            ic.set_time(UNIX_EPOCH + std::time::Duration::from_nanos(*time_nanos));
            ic.tick();
            forget_expired(requests, *time_nanos);
        }
        Record::Submit {
            time_nanos,
            request_id,
            entry,
            method,
            arg,
        } => {
            ic.set_time(UNIX_EPOCH + std::time::Duration::from_nanos(*time_nanos));
            let message = ic
                .submit_call(entry.canister, entry.sender, method, arg.to_vec())
                .map_err(|reject| anyhow::anyhow!("{}", reject.reject_message))?;
            if message.0 != entry.message {
                bail!(
                    "the journal diverged: message {} replayed as {}",
                    entry.message,
                    message.0
                );
            }
            requests.insert(*request_id, entry.clone());
        }
    }
    Ok(())
}

/// Forgets the request ids whose retention after their expiry has passed (part of a round, live
/// and in replay alike).
fn forget_expired(requests: &mut BTreeMap<RequestId, RequestEntry>, now: u64) {
    requests.retain(|_, e| e.ingress_expiry.saturating_add(REQUEST_RETENTION_NANOS) > now);
}
