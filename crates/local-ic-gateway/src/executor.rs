//! The thread that owns the network: it takes the HTTP layer's commands, runs rounds while
//! anything is due (the clock follows the wall clock, so timers fire), syncs the journal once
//! per batch and only then answers.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Result;
use candid::Principal;
use local_ic::{RejectCode, RejectResponse};
use tokio::sync::oneshot;

use crate::journal::RequestId;
use crate::node::{Node, RequestStatus, Submission};
use crate::refusal::Refusal;
use crate::state_tree::{self, ReadStateTarget};

/// How long a synchronous (v4) call waits for its result before the server answers 202 and
/// the client polls `read_state`.
pub const SYNC_CALL_WAIT: Duration = Duration::from_secs(10);
/// How often an idle network looks for due timers.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// A snapshot is written after this many journal records, or this long after the last one.
const CHECKPOINT_RECORDS: usize = 20_000;
const CHECKPOINT_AGE: Duration = Duration::from_secs(300);

/// The result of submitting a call.
#[derive(Debug)]
pub enum CallOutcome {
    /// The call completed: the certificate of its status (v4 only).
    Certified(Vec<u8>),
    /// The call was accepted (journaled); its result comes from `read_state`.
    Accepted,
    /// Refused before execution; nothing changed.
    NonReplicatedRejection(RejectResponse),
}

pub enum Command {
    Call {
        submission: Submission,
        /// Wait for the result (v4) or answer once accepted (v2).
        sync: bool,
        reply: oneshot::Sender<CallOutcome>,
    },
    Query {
        canister: Principal,
        sender: Principal,
        method: String,
        arg: Vec<u8>,
        reply: oneshot::Sender<(Result<Vec<u8>, RejectResponse>, u64)>,
    },
    ReadState {
        target: ReadStateTarget,
        sender: Principal,
        paths: Vec<Vec<Vec<u8>>>,
        reply: oneshot::Sender<Result<Vec<u8>, Refusal>>,
    },
    /// An update call the HTTP gateway makes for a browser (`http_request_update`): submitted
    /// like an ingress call, answered with its reply or reject once it completes.
    UpdateHttp {
        submission: Submission,
        reply: oneshot::Sender<Result<Vec<u8>, RejectResponse>>,
    },
}

struct HttpWaiter {
    request_id: RequestId,
    deadline: Instant,
    reply: oneshot::Sender<Result<Vec<u8>, RejectResponse>>,
}

struct Waiter {
    request_id: RequestId,
    deadline: Instant,
    reply: oneshot::Sender<CallOutcome>,
}

/// Serves commands until every sender is gone, then writes a final snapshot.
pub fn run(mut node: Node, commands: Receiver<Command>) -> Result<()> {
    let mut waiters: Vec<Waiter> = Vec::new();
    let mut accepted: Vec<oneshot::Sender<CallOutcome>> = Vec::new();
    let mut http_waiters: Vec<HttpWaiter> = Vec::new();
    loop {
        // Waiting calls need rounds only while the network has work; one waiting for the clock
        // (a timer, a deadline) is looked at again after the idle poll, not in a busy loop.
        let wait = if node.busy() {
            Duration::ZERO
        } else {
            IDLE_POLL
        };
        let first = match commands.recv_timeout(wait) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for command in first
            .into_iter()
            .chain(std::iter::from_fn(|| commands.try_recv().ok()))
        {
            handle(
                &mut node,
                command,
                &mut waiters,
                &mut accepted,
                &mut http_waiters,
            )?;
        }
        node.round()?;
        // Nothing that depends on a change leaves before the change is durable.
        node.sync()?;
        for reply in accepted.drain(..) {
            let _ = reply.send(CallOutcome::Accepted);
        }
        let now = Instant::now();
        let mut still_waiting = Vec::with_capacity(waiters.len());
        for waiter in waiters.drain(..) {
            let done = !matches!(
                node.request_status(&waiter.request_id),
                Some(RequestStatus::Processing) | None
            );
            if done {
                let certificate = state_tree::call_certificate(&node, &waiter.request_id);
                let _ = waiter.reply.send(CallOutcome::Certified(certificate));
            } else if now >= waiter.deadline || waiter.reply.is_closed() {
                let _ = waiter.reply.send(CallOutcome::Accepted);
            } else {
                still_waiting.push(waiter);
            }
        }
        waiters = still_waiting;
        let mut http_still_waiting = Vec::with_capacity(http_waiters.len());
        for waiter in http_waiters.drain(..) {
            let result = match node.request_status(&waiter.request_id) {
                Some(RequestStatus::Replied(reply)) => Ok(reply),
                Some(RequestStatus::Rejected(reject)) => Err(reject),
                Some(RequestStatus::Done) => Err(RejectResponse::new(
                    RejectCode::SysUnknown,
                    "The call's result is no longer available",
                )),
                Some(RequestStatus::Processing) | None
                    if now < waiter.deadline && !waiter.reply.is_closed() =>
                {
                    http_still_waiting.push(waiter);
                    continue;
                }
                Some(RequestStatus::Processing) | None => Err(RejectResponse::new(
                    RejectCode::SysTransient,
                    "The update call did not complete in time",
                )),
            };
            let _ = waiter.reply.send(result);
        }
        http_waiters = http_still_waiting;
        node.maybe_checkpoint(CHECKPOINT_RECORDS, CHECKPOINT_AGE)?;
    }
    node.checkpoint()
}

fn handle(
    node: &mut Node,
    command: Command,
    waiters: &mut Vec<Waiter>,
    accepted: &mut Vec<oneshot::Sender<CallOutcome>>,
    http_waiters: &mut Vec<HttpWaiter>,
) -> Result<()> {
    match command {
        Command::Call {
            submission,
            sync,
            reply,
        } => match node.submit(&submission)? {
            Err(reject) => {
                let _ = reply.send(CallOutcome::NonReplicatedRejection(reject));
            }
            Ok(_) if sync => waiters.push(Waiter {
                request_id: submission.request_id,
                deadline: Instant::now() + SYNC_CALL_WAIT,
                reply,
            }),
            Ok(_) => accepted.push(reply),
        },
        Command::Query {
            canister,
            sender,
            method,
            arg,
            reply,
        } => {
            node.sync()?;
            let result = node.query(canister, sender, &method, arg);
            let _ = reply.send((result, node.time_nanos()));
        }
        Command::ReadState {
            target,
            sender,
            paths,
            reply,
        } => {
            node.sync()?;
            let _ = reply.send(state_tree::read_state(node, target, sender, &paths));
        }
        Command::UpdateHttp { submission, reply } => match node.submit(&submission)? {
            Err(reject) => {
                let _ = reply.send(Err(reject));
            }
            Ok(_) => http_waiters.push(HttpWaiter {
                request_id: submission.request_id,
                deadline: Instant::now() + SYNC_CALL_WAIT,
                reply,
            }),
        },
    }
    Ok(())
}
