//! The ICP ledger, as economics uses it: pull a payment (`icrc2_transfer_from`), pay out
//! (`icrc1_transfer`) and read a block (`query_blocks`, following archives). Every call is
//! bounded-wait, and its outcome is classified for the journal: done, refused (nothing moved),
//! or unknown (the reply was lost, so the transaction may or may not have happened).

use candid::{CandidType, Nat, Principal};
use ic_cdk::call::{Call, CallFailed, RejectCode};
use ic_ledger_types::{Block, GetBlocksArgs, GetBlocksResult, QueryBlocksResponse};
use icrc_ledger_types::icrc1::account::Account as IcrcAccount;
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use ohms_types::{Account, Error, PaymentError};
use serde::de::DeserializeOwned;

/// What became of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In the ledger at this block (a deduplicated retry of a transaction already there
    /// included).
    Done { block_index: u64 },
    /// The ledger refused it, or it never reached the ledger: nothing moved.
    Refused(Error),
    /// The reply was lost: it may have happened. Retry the identical transaction to learn.
    Unknown(String),
}

/// One transaction as journaled: repeated identically, the ledger deduplicates it.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub amount_e8s: u64,
    pub fee_e8s: u64,
    pub memo: Vec<u8>,
    pub created_at_time: u64,
}

fn icrc_account(account: &Account) -> IcrcAccount {
    IcrcAccount {
        owner: account.owner,
        subaccount: account.subaccount,
    }
}

/// `nat` as e8s (the ICP supply fits a u64 many times over; anything larger saturates).
pub fn e8s(n: &Nat) -> u64 {
    u64::try_from(n.0.clone()).unwrap_or(u64::MAX)
}

/// Calls `method` and decodes the reply; a lost reply (or one that does not decode, which
/// only a ledger that executed could send) is `Unknown`, any other failure is definite.
async fn call<A: CandidType, R: CandidType + DeserializeOwned>(
    canister: Principal,
    method: &str,
    arg: &A,
) -> Result<R, Outcome> {
    let failed = |reason: String| {
        Outcome::Refused(Error::CallFailed {
            canister: canister.to_string(),
            method: method.to_string(),
            reason,
        })
    };
    match Call::bounded_wait(canister, method).with_arg(arg).await {
        Ok(response) => response.candid::<R>().map_err(|err| {
            Outcome::Unknown(format!(
                "the ledger's reply to {method} did not decode: {err}"
            ))
        }),
        Err(CallFailed::CallRejected(rejected))
            if rejected.reject_code() == Ok(RejectCode::SysUnknown) =>
        {
            Err(Outcome::Unknown(format!(
                "the reply of {method} was lost: {}",
                rejected.reject_message()
            )))
        }
        Err(err) => Err(failed(err.to_string())),
    }
}

/// `icrc2_transfer_from(from → to)` with economics as the spender.
pub async fn transfer_from(
    ledger: Principal,
    from: &Account,
    to: &Account,
    tx: &Transaction,
) -> Outcome {
    let args = TransferFromArgs {
        spender_subaccount: None,
        from: icrc_account(from),
        to: icrc_account(to),
        amount: Nat::from(tx.amount_e8s),
        fee: Some(Nat::from(tx.fee_e8s)),
        memo: Some(Memo::from(tx.memo.clone())),
        created_at_time: Some(tx.created_at_time),
    };
    let required = tx.amount_e8s.saturating_add(tx.fee_e8s);
    match call::<_, Result<Nat, TransferFromError>>(ledger, "icrc2_transfer_from", &args).await {
        Ok(result) => outcome_of(result, required),
        Err(outcome) => outcome,
    }
}

/// `icrc1_transfer` from economics' `from_subaccount` to `to`.
pub async fn transfer(
    ledger: Principal,
    from_subaccount: Option<[u8; 32]>,
    to: &Account,
    tx: &Transaction,
) -> Outcome {
    let args = TransferArg {
        from_subaccount,
        to: icrc_account(to),
        fee: Some(Nat::from(tx.fee_e8s)),
        created_at_time: Some(tx.created_at_time),
        memo: Some(Memo::from(tx.memo.clone())),
        amount: Nat::from(tx.amount_e8s),
    };
    let required = tx.amount_e8s.saturating_add(tx.fee_e8s);
    match call::<_, Result<Nat, TransferError>>(ledger, "icrc1_transfer", &args).await {
        Ok(result) => outcome_of(result.map_err(as_transfer_from_error), required),
        Err(outcome) => outcome,
    }
}

/// Whether a refusal of a repeated transaction shows that the first attempt did not happen
/// either. Only the ledger's balance and allowance checks, which it makes after looking the
/// transaction up in its deduplication record, do: a call that failed, a fee or time check
/// (made before that look-up), or an unavailable ledger says nothing about the first attempt.
pub fn proves_first_attempt_failed(err: &Error) -> bool {
    matches!(
        err,
        Error::Payment(
            PaymentError::InsufficientFunds { .. } | PaymentError::InsufficientAllowance { .. }
        )
    )
}

/// What the ledger's answer to a transfer means; `required` is the amount plus the fee.
fn outcome_of(result: Result<Nat, TransferFromError>, required: u64) -> Outcome {
    let err = match result {
        Ok(block) => {
            return Outcome::Done {
                block_index: e8s(&block),
            };
        }
        // The same transaction is in the ledger already: a retry found the first attempt.
        Err(TransferFromError::Duplicate { duplicate_of }) => {
            return Outcome::Done {
                block_index: e8s(&duplicate_of),
            };
        }
        Err(err) => err,
    };
    let refusal = match err {
        TransferFromError::InsufficientAllowance { allowance } => {
            PaymentError::InsufficientAllowance {
                allowance: e8s(&allowance),
                required,
            }
        }
        TransferFromError::InsufficientFunds { balance } => PaymentError::InsufficientFunds {
            balance: e8s(&balance),
            required,
        },
        TransferFromError::BadFee { expected_fee } => PaymentError::BadFee {
            expected_fee: e8s(&expected_fee),
        },
        TransferFromError::BadBurn { min_burn_amount } => PaymentError::LedgerError {
            code: 0,
            message: format!("bad burn (minimum {min_burn_amount})"),
        },
        TransferFromError::TooOld => PaymentError::TooOld,
        TransferFromError::CreatedInFuture { .. } => PaymentError::CreatedInFuture,
        TransferFromError::TemporarilyUnavailable => PaymentError::TemporarilyUnavailable,
        TransferFromError::GenericError {
            error_code,
            message,
        } => PaymentError::LedgerError {
            code: e8s(&error_code),
            message,
        },
        TransferFromError::Duplicate { .. } => unreachable!("handled above"),
    };
    Outcome::Refused(Error::Payment(refusal))
}

/// `icrc1_transfer`'s refusals are those of `icrc2_transfer_from` without the allowance.
fn as_transfer_from_error(err: TransferError) -> TransferFromError {
    match err {
        TransferError::BadFee { expected_fee } => TransferFromError::BadFee { expected_fee },
        TransferError::BadBurn { min_burn_amount } => {
            TransferFromError::BadBurn { min_burn_amount }
        }
        TransferError::InsufficientFunds { balance } => {
            TransferFromError::InsufficientFunds { balance }
        }
        TransferError::TooOld => TransferFromError::TooOld,
        TransferError::CreatedInFuture { ledger_time } => {
            TransferFromError::CreatedInFuture { ledger_time }
        }
        TransferError::TemporarilyUnavailable => TransferFromError::TemporarilyUnavailable,
        TransferError::Duplicate { duplicate_of } => TransferFromError::Duplicate { duplicate_of },
        TransferError::GenericError {
            error_code,
            message,
        } => TransferFromError::GenericError {
            error_code,
            message,
        },
    }
}

/// Block `index`, from the ledger or from the archive that holds it.
pub async fn block(ledger: Principal, index: u64) -> Result<Block, Error> {
    // A read moves nothing: a lost reply is just a failed call.
    let definite = |outcome: Outcome| match outcome {
        Outcome::Refused(err) => err,
        Outcome::Unknown(reason) => Error::CallFailed {
            canister: ledger.to_string(),
            method: "query_blocks".into(),
            reason,
        },
        Outcome::Done { .. } => unreachable!("reads have no block of their own"),
    };
    let args = GetBlocksArgs {
        start: index,
        length: 1,
    };
    let response: QueryBlocksResponse = call(ledger, "query_blocks", &args)
        .await
        .map_err(definite)?;
    if index >= response.chain_length {
        return Err(Error::Payment(PaymentError::BlockNotFound {
            block_index: index,
        }));
    }
    if index >= response.first_block_index {
        let offset = (index - response.first_block_index) as usize;
        return response.blocks.get(offset).cloned().ok_or(Error::Payment(
            PaymentError::BlockNotFound { block_index: index },
        ));
    }
    let archived = response
        .archived_blocks
        .iter()
        .find(|range| range.start <= index && index < range.start.saturating_add(range.length))
        .ok_or(Error::Payment(PaymentError::BlockNotFound {
            block_index: index,
        }))?;
    let func: candid::Func = archived.callback.clone().into();
    let result: GetBlocksResult = call(func.principal, &func.method, &args)
        .await
        .map_err(definite)?;
    let range = result.map_err(|err| Error::CallFailed {
        canister: func.principal.to_string(),
        method: func.method.clone(),
        reason: err.to_string(),
    })?;
    range
        .blocks
        .into_iter()
        .next()
        .ok_or(Error::Payment(PaymentError::BlockNotFound {
            block_index: index,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_answers_map_to_outcomes() {
        let nat = |n: u64| Nat::from(n);
        assert_eq!(outcome_of(Ok(nat(7)), 0), Outcome::Done { block_index: 7 });
        assert_eq!(
            outcome_of(
                Err(TransferFromError::Duplicate {
                    duplicate_of: nat(5)
                }),
                0
            ),
            Outcome::Done { block_index: 5 },
            "a duplicate is the first attempt's success"
        );
        let refused = |err| match outcome_of(Err(err), 110) {
            Outcome::Refused(Error::Payment(err)) => err,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(TransferFromError::InsufficientAllowance { allowance: nat(3) }),
            PaymentError::InsufficientAllowance {
                allowance: 3,
                required: 110
            }
        );
        assert_eq!(
            refused(TransferFromError::InsufficientFunds { balance: nat(4) }),
            PaymentError::InsufficientFunds {
                balance: 4,
                required: 110
            }
        );
        assert_eq!(
            refused(TransferFromError::BadFee {
                expected_fee: nat(10_000)
            }),
            PaymentError::BadFee {
                expected_fee: 10_000
            }
        );
        assert_eq!(refused(TransferFromError::TooOld), PaymentError::TooOld);
        assert_eq!(
            refused(as_transfer_from_error(TransferError::CreatedInFuture {
                ledger_time: 1
            })),
            PaymentError::CreatedInFuture
        );
        assert!(matches!(
            refused(TransferFromError::GenericError {
                error_code: nat(9),
                message: "x".into()
            }),
            PaymentError::LedgerError { code: 9, .. }
        ));
    }
}
