//! Deposits for wallets without ICRC-2: each principal has its own deposit account (economics'
//! principal with a subaccount derived from the principal), and a ledger block paying it is
//! checked completely before it is credited.

use candid::Principal;
use ic_ledger_types::{AccountIdentifier, Block, Operation, Subaccount};
use ohms_types::{Account, DepositAccount, EconomicsSettings, PaymentError};

use ohms_types::calendar::NANOS_PER_SECOND;

/// `[DEPOSIT_TAG, length, principal bytes…, 0…]` (a principal has at most 29 bytes):
/// distinct for every principal, and never the default (all zero) subaccount that holds the
/// treasury.
pub fn deposit_subaccount(principal: &Principal) -> [u8; 32] {
    let bytes = principal.as_slice();
    let mut subaccount = [0; 32];
    subaccount[0] = DEPOSIT_TAG;
    subaccount[1] = bytes.len() as u8;
    subaccount[2..2 + bytes.len()].copy_from_slice(bytes);
    subaccount
}

const DEPOSIT_TAG: u8 = 1;

pub fn account_identifier(account: &Account) -> AccountIdentifier {
    AccountIdentifier::new(
        &account.owner,
        &Subaccount(account.subaccount.unwrap_or([0; 32])),
    )
}

pub fn deposit_account(canister: Principal, principal: &Principal) -> DepositAccount {
    let account = Account {
        owner: canister,
        subaccount: Some(deposit_subaccount(principal)),
    };
    DepositAccount {
        account_id: account_identifier(&account).to_hex(),
        account,
    }
}

/// The amount a block deposits into `expected`, or why it is not a creditable deposit.
pub fn check_block(
    block: &Block,
    block_index: u64,
    expected: &AccountIdentifier,
    now: u64,
    settings: &EconomicsSettings,
) -> Result<u64, PaymentError> {
    let not_a_transfer = |kind: &str| PaymentError::NotATransfer {
        block_index,
        kind: kind.into(),
    };
    let (to, amount) = match &block.transaction.operation {
        Some(Operation::Transfer { to, amount, .. })
        | Some(Operation::TransferFrom { to, amount, .. }) => (to, amount.e8s()),
        Some(Operation::Mint { .. }) => return Err(not_a_transfer("mint")),
        Some(Operation::Burn { .. }) => return Err(not_a_transfer("burn")),
        Some(Operation::Approve { .. }) => return Err(not_a_transfer("approval")),
        None => return Err(not_a_transfer("block without an operation")),
    };
    if to != expected {
        return Err(PaymentError::NotYours {
            block_index,
            reason: format!(
                "it pays account {}, and your deposit account is {}",
                to.to_hex(),
                expected.to_hex()
            ),
        });
    }
    if amount < settings.min_deposit_e8s {
        return Err(PaymentError::BelowMinimum {
            amount,
            minimum: settings.min_deposit_e8s,
        });
    }
    let age = now.saturating_sub(block.timestamp.timestamp_nanos);
    if age
        > settings
            .deposit_max_age_seconds
            .saturating_mul(NANOS_PER_SECOND)
    {
        return Err(PaymentError::BlockTooOld {
            block_index,
            max_age_seconds: settings.deposit_max_age_seconds,
        });
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_ledger_types::{Memo, Timestamp, Tokens, Transaction};

    const NOW: u64 = 1_800_000_000 * NANOS_PER_SECOND;

    fn block(operation: Operation, timestamp: u64) -> Block {
        Block {
            parent_hash: None,
            transaction: Transaction {
                memo: Memo(0),
                operation: Some(operation),
                created_at_time: Timestamp {
                    timestamp_nanos: timestamp,
                },
                icrc1_memo: None,
            },
            timestamp: Timestamp {
                timestamp_nanos: timestamp,
            },
        }
    }

    fn settings() -> EconomicsSettings {
        crate::tiers::default_settings(10_000)
    }

    #[test]
    fn subaccounts_are_distinct_and_never_the_treasurys() {
        let alice = Principal::self_authenticating(b"alice");
        let bob = Principal::self_authenticating(b"bob");
        assert_ne!(deposit_subaccount(&alice), deposit_subaccount(&bob));
        assert_ne!(
            deposit_subaccount(&Principal::management_canister()),
            [0; 32]
        );
    }

    #[test]
    fn blocks_are_checked_completely() {
        let economics = Principal::from_slice(&[1; 10]);
        let alice = Principal::self_authenticating(b"alice");
        let bob = Principal::self_authenticating(b"bob");
        let mine = account_identifier(&deposit_account(economics, &alice).account);
        let bobs = account_identifier(&deposit_account(economics, &bob).account);
        let from = AccountIdentifier::new(&alice, &Subaccount([0; 32]));
        let transfer = |to, e8s| Operation::Transfer {
            from,
            to,
            amount: Tokens::from_e8s(e8s),
            fee: Tokens::from_e8s(10_000),
        };
        let s = settings();
        assert_eq!(
            check_block(&block(transfer(mine, 5_000_000), NOW), 7, &mine, NOW, &s),
            Ok(5_000_000)
        );
        assert!(matches!(
            check_block(&block(transfer(bobs, 5_000_000), NOW), 7, &mine, NOW, &s),
            Err(PaymentError::NotYours { block_index: 7, .. })
        ));
        assert!(matches!(
            check_block(&block(transfer(mine, 999_999), NOW), 7, &mine, NOW, &s),
            Err(PaymentError::BelowMinimum {
                amount: 999_999,
                ..
            })
        ));
        let old = NOW - 8 * 86_400 * NANOS_PER_SECOND;
        assert!(matches!(
            check_block(&block(transfer(mine, 5_000_000), old), 7, &mine, NOW, &s),
            Err(PaymentError::BlockTooOld { .. })
        ));
        let mint = Operation::Mint {
            to: mine,
            amount: Tokens::from_e8s(5_000_000),
        };
        assert!(matches!(
            check_block(&block(mint, NOW), 7, &mine, NOW, &s),
            Err(PaymentError::NotATransfer { kind, .. }) if kind == "mint"
        ));
    }
}
