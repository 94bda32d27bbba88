use std::fmt;

use candid::{CandidType, Deserialize};
use serde::Serialize;

use crate::{DenyReason, PaymentError};

/// The error every OHMS endpoint returns for a caller's mistake or a refused request.
///
/// Each variant carries what a client needs to act on it; `Display` turns it into one sentence
/// for people. Traps are kept for bugs: a user's mistake always comes back as one of these and
/// changes nothing.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The anonymous principal tried to act for itself.
    Anonymous,
    /// The caller lacks the role the method requires.
    NotAuthorized { reason: String },
    /// The named thing does not exist.
    NotFound { kind: String, id: String },
    /// The thing to be created exists already.
    AlreadyExists { kind: String, id: String },
    /// An argument is out of bounds or malformed; nothing was changed.
    InvalidArgument { field: String, reason: String },
    /// The request is valid but the target is not in a state that allows it.
    InvalidState { reason: String },
    /// A quota or limit of the caller's tier is used up.
    QuotaExceeded { quota: String, limit: u64 },
    /// An administrator paused the canister; state-changing user calls are refused.
    Paused { reason: String },
    /// Another value-moving call of the same caller is still in progress.
    Busy,
    /// A call to another canister failed; `reason` says how.
    CallFailed {
        canister: String,
        method: String,
        reason: String,
    },
    /// An internal invariant did not hold. Reported, never expected.
    Internal { reason: String },
    /// A payment or deposit was refused; nothing was charged or credited (see the variant).
    Payment(PaymentError),
    /// The policy engine (economics) refused the action; nothing was done.
    Denied { reason: DenyReason, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn not_authorized(reason: impl Into<String>) -> Self {
        Self::NotAuthorized {
            reason: reason.into(),
        }
    }

    pub fn not_found(kind: impl Into<String>, id: impl ToString) -> Self {
        Self::NotFound {
            kind: kind.into(),
            id: id.to_string(),
        }
    }

    pub fn already_exists(kind: impl Into<String>, id: impl ToString) -> Self {
        Self::AlreadyExists {
            kind: kind.into(),
            id: id.to_string(),
        }
    }

    pub fn invalid_argument(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn invalid_state(reason: impl Into<String>) -> Self {
        Self::InvalidState {
            reason: reason.into(),
        }
    }

    pub fn internal(reason: impl Into<String>) -> Self {
        Self::Internal {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => {
                write!(
                    f,
                    "the anonymous principal cannot do this: sign in (e.g. with Internet Identity) first"
                )
            }
            Self::NotAuthorized { reason } => write!(f, "not authorized: {reason}"),
            Self::NotFound { kind, id } => write!(f, "{kind} {id} not found"),
            Self::AlreadyExists { kind, id } => write!(f, "{kind} {id} already exists"),
            Self::InvalidArgument { field, reason } => {
                write!(f, "invalid argument `{field}`: {reason}")
            }
            Self::InvalidState { reason } => write!(f, "not possible now: {reason}"),
            Self::QuotaExceeded { quota, limit } => {
                write!(f, "quota `{quota}` exceeded (limit {limit})")
            }
            Self::Paused { reason } => {
                write!(f, "the canister is paused by an administrator: {reason}")
            }
            Self::Busy => write!(
                f,
                "another call of yours is still in progress; retry when it has finished"
            ),
            Self::CallFailed {
                canister,
                method,
                reason,
            } => {
                write!(f, "call to {canister}.{method} failed: {reason}")
            }
            Self::Internal { reason } => write!(f, "internal error: {reason}"),
            Self::Payment(err) => write!(f, "payment refused: {err}"),
            Self::Denied { message, .. } => write!(f, "refused by the policy engine: {message}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_went_wrong() {
        let err = Error::invalid_argument("page.limit", "must be at least 1");
        assert_eq!(
            err.to_string(),
            "invalid argument `page.limit`: must be at least 1"
        );
        assert_eq!(
            Error::not_found("model", "llama-2").to_string(),
            "model llama-2 not found"
        );
        assert!(Error::Anonymous.to_string().contains("anonymous principal"));
    }

    #[test]
    fn round_trips_through_candid() {
        let err = Error::QuotaExceeded {
            quota: "agents".into(),
            limit: 5,
        };
        let bytes = candid::encode_one(&err).unwrap();
        assert_eq!(candid::decode_one::<Error>(&bytes).unwrap(), err);
    }
}
