//! Money that moves: subscription payments (ICRC-2 pulls and deposit credit), deposits,
//! payouts (withdrawals, refunds, deposit sweeps), and the settlement of outcomes a lost reply
//! left unknown.
//!
//! Every ledger transaction is journaled before the call with its `created_at_time` and memo,
//! so repeating it is deduplicated by the ledger: a lost reply, or a fault after the ledger
//! answered, leaves a `Pending` entry that a retry (the owner's, or the settlement timer's)
//! resolves exactly once. Payouts debit before the call and restore only on a definite
//! failure. One value-moving call per principal at a time: each flow holds the principal's
//! [`CallerLock`], and the timer skips principals whose lock is taken.

use candid::Principal;
use ohms_ops::{CallerLock, Env, UserUpdate, access, audit};
use ohms_types::{
    Account, DepositCredit, Error, PaymentError, PaymentMethod, PaymentPurpose, PaymentStatus,
    Payout, PayoutKind, PayoutStatus, Purchase, Receipt, SettlementRef, SubscribeArgs,
    Subscription, UpgradeSubscriptionArgs, WithdrawArgs,
};

use crate::deposits;
use crate::ledger::{self, Outcome, Transaction};
use crate::revenue;
use crate::state::{Journal, PaymentEntry, PayoutEntry, State, mutate_state, read_state};
use crate::subscriptions::{self, DueAction};
use crate::tiers::tier_config_in;

/// Memos: an 8-byte tag and the journal id, so a transaction names its journal entry.
fn memo(tag: &[u8; 8], id: u64) -> Vec<u8> {
    let mut memo = tag.to_vec();
    memo.extend_from_slice(&id.to_be_bytes());
    memo
}

const PAYMENT_MEMO: &[u8; 8] = b"ohms-pay";
const PAYOUT_MEMO: &[u8; 8] = b"ohms-out";

fn ledger_id() -> Principal {
    read_state(|s| s.stored().ledger)
}

// ---------------------------------------------------------------------------------------------
// Subscription payments

/// Buys `months` of a tier. A payment of the caller's that a lost reply left pending is
/// settled first, and its outcome is the answer (that is what the caller's retry is for).
pub async fn subscribe(call: &UserUpdate, args: SubscribeArgs) -> Result<Purchase, Error> {
    let caller = call.caller();
    let _lock = call.lock()?;
    if let Some(id) = pending_payment_of(&caller, call.env().now_nanos()) {
        return settle_payment(call.env(), id).await;
    }
    let now = call.env().now_nanos();
    let price = read_state(|s| {
        let config = tier_config_in(s, args.tier);
        subscriptions::check_subscribe(s.subscription(&caller).as_ref(), &config, args.months, now)
    })?;
    let purpose = PaymentPurpose::Subscribe {
        tier: args.tier,
        months: args.months,
    };
    let method = args.method.unwrap_or(PaymentMethod::Icrc2);
    pay(call.env(), caller, price, method, purpose, args.auto_renew).await
}

/// Moves the rest of the paid period to a higher tier for the prorated difference.
pub async fn upgrade(call: &UserUpdate, args: UpgradeSubscriptionArgs) -> Result<Purchase, Error> {
    let caller = call.caller();
    let _lock = call.lock()?;
    if let Some(id) = pending_payment_of(&caller, call.env().now_nanos()) {
        return settle_payment(call.env(), id).await;
    }
    let now = call.env().now_nanos();
    let (price, from, auto_renew) = read_state(|s| {
        let current = s.subscription(&caller);
        let from = current
            .as_ref()
            .map(|sub| sub.tier)
            .ok_or_else(|| Error::invalid_state("no subscription to upgrade: subscribe instead"))?;
        let price = subscriptions::upgrade_price(
            current.as_ref(),
            &tier_config_in(s, from),
            &tier_config_in(s, args.tier),
            now,
        )?;
        Ok::<_, Error>((price, from, current.is_some_and(|sub| sub.auto_renew)))
    })?;
    let purpose = PaymentPurpose::Upgrade {
        from,
        to: args.tier,
    };
    let method = args.method.unwrap_or(PaymentMethod::Icrc2);
    pay(call.env(), caller, price, method, purpose, auto_renew).await
}

/// Stops renewals; the subscription works to the end of its paid period.
pub fn cancel(call: &UserUpdate) -> Result<Subscription, Error> {
    let caller = call.caller();
    // Not while a payment of the caller (a renewal included) is in flight.
    let _lock = call.lock()?;
    let now = call.env().now_nanos();
    mutate_state(|s| {
        let sub = subscriptions::cancel(s.subscription(&caller), now)?;
        s.put_subscription(sub.clone());
        Ok(sub)
    })
}

pub fn set_auto_renew(call: &UserUpdate, auto_renew: bool) -> Result<Subscription, Error> {
    let caller = call.caller();
    let _lock = call.lock()?;
    let now = call.env().now_nanos();
    mutate_state(|s| {
        let mut sub = s
            .subscription(&caller)
            .filter(|sub| subscriptions::is_usable(sub, now))
            .ok_or_else(|| Error::invalid_state("no subscription"))?;
        if sub.state == ohms_types::SubscriptionState::Cancelled {
            return Err(Error::invalid_state(
                "the subscription is cancelled: subscribe again to renew it",
            ));
        }
        sub.auto_renew = auto_renew;
        s.put_subscription(sub.clone());
        Ok(sub)
    })
}

/// The caller's payment still pending and still settleable by repeating it.
fn pending_payment_of(owner: &Principal, now: u64) -> Option<u64> {
    read_state(|s| {
        s.pending
            .range((Journal::Payments as u8, 0)..(Journal::Payments as u8 + 1, 0))
            .filter(|entry| entry.value() == *owner)
            .map(|entry| entry.key().1)
            .find(|id| {
                s.payment(*id)
                    .is_some_and(|p| settleable(p.created_at_time, now))
            })
    })
}

/// How long after its `created_at_time` a transaction can still be repeated for the ledger to
/// deduplicate it: the ICP ledger's window is 24 hours; an hour is kept in reserve. Past it, a
/// repeat proves nothing (TooOld), so the entry waits for an administrator
/// (`resolve_settlement`) and blocks nobody.
const SETTLEMENT_WINDOW_NANOS: u64 = 23 * 3_600 * 1_000_000_000;

fn settleable(created_at_time: u64, now: u64) -> bool {
    now.saturating_sub(created_at_time) < SETTLEMENT_WINDOW_NANOS
}

/// Pays `amount` for `purpose`: from deposit credit at once, or journaled and pulled with
/// ICRC-2.
async fn pay(
    env: &impl Env,
    owner: Principal,
    amount: u64,
    method: PaymentMethod,
    purpose: PaymentPurpose,
    auto_renew: bool,
) -> Result<Purchase, Error> {
    let now = env.now_nanos();
    let id = mutate_state(|s| {
        if method == PaymentMethod::DepositCredit {
            let credit = s.credit(&owner);
            if credit < amount {
                return Err(Error::Payment(PaymentError::InsufficientCredit {
                    credit,
                    required: amount,
                }));
            }
            s.set_credit(owner, credit - amount);
        }
        let mut id = 0;
        s.update_stored(|stored| {
            id = stored.next_payment_id;
            stored.next_payment_id += 1;
        });
        let fee_e8s = s.settings().ledger_fee_e8s;
        s.put_payment(PaymentEntry {
            receipt: Receipt {
                payment_id: id,
                owner,
                amount_e8s: amount,
                method,
                purpose,
                status: PaymentStatus::Pending,
                block_index: None,
                period_start: 0,
                period_end: 0,
                created_at: now,
            },
            created_at_time: now,
            fee_e8s,
            auto_renew,
            platform_e8s: 0,
            revenue_month: 0,
        });
        Ok(id)
    })?;
    if method == PaymentMethod::DepositCredit || amount == 0 {
        return Ok(complete_payment(id, None, now));
    }
    settle_payment(env, id).await
}

/// Sends (or repeats) a journaled ICRC-2 pull and records its outcome.
async fn settle_payment(env: &impl Env, id: u64) -> Result<Purchase, Error> {
    let entry = read_state(|s| s.payment(id))
        .ok_or_else(|| Error::internal(format!("payment {id} is not journaled")))?;
    if entry.receipt.status != PaymentStatus::Pending {
        return purchase_of(&entry);
    }
    let canister = env.canister_id();
    let from = Account {
        owner: entry.receipt.owner,
        subaccount: None,
    };
    let tx = Transaction {
        amount_e8s: entry.receipt.amount_e8s,
        fee_e8s: entry.fee_e8s,
        memo: memo(PAYMENT_MEMO, id),
        created_at_time: entry.created_at_time,
    };
    let retry = env.now_nanos() != entry.created_at_time;
    let outcome = ledger::transfer_from(ledger_id(), &from, &State::treasury(canister), &tx).await;
    match outcome {
        Outcome::Done { block_index } => {
            Ok(complete_payment(id, Some(block_index), env.now_nanos()))
        }
        // A repeat's refusal proves the first attempt failed only when the ledger checked the
        // transaction against its deduplication record first; otherwise it stays pending.
        Outcome::Refused(err) if retry && !ledger::proves_first_attempt_failed(&err) => {
            Err(Error::Payment(PaymentError::Pending { payment_id: id }))
        }
        Outcome::Refused(err) => {
            fail_payment(id, &err);
            Err(err)
        }
        Outcome::Unknown(_) => Err(Error::Payment(PaymentError::Pending { payment_id: id })),
    }
}

fn purchase_of(entry: &PaymentEntry) -> Result<Purchase, Error> {
    match &entry.receipt.status {
        PaymentStatus::Failed { reason } => Err(Error::invalid_state(format!(
            "payment {} failed: {reason}",
            entry.receipt.payment_id
        ))),
        _ => {
            let subscription = read_state(|s| s.subscription(&entry.receipt.owner))
                .ok_or_else(|| Error::internal("a completed payment without a subscription"))?;
            Ok(Purchase {
                subscription,
                receipt: entry.receipt.clone(),
            })
        }
    }
}

/// Records a payment as done: the subscription gets what it bought, revenue is booked. A
/// payment completed already is left as it is.
fn complete_payment(id: u64, block_index: Option<u64>, now: u64) -> Purchase {
    mutate_state(|s| {
        let mut entry = s.payment(id).expect("journaled before completion");
        if entry.receipt.status != PaymentStatus::Pending {
            let subscription = s
                .subscription(&entry.receipt.owner)
                .expect("completed payments have a subscription");
            return Purchase {
                subscription,
                receipt: entry.receipt,
            };
        }
        let owner = entry.receipt.owner;
        let (subscription, start, end) = subscriptions::apply_payment(
            s.subscription(&owner),
            owner,
            &entry.receipt.purpose,
            entry.auto_renew,
            id,
            now,
        );
        entry.receipt.status = PaymentStatus::Completed;
        entry.receipt.block_index = block_index;
        entry.receipt.period_start = start;
        entry.receipt.period_end = end;
        entry.platform_e8s = revenue::record_payment(s, entry.receipt.amount_e8s, now);
        entry.revenue_month = ohms_types::calendar::month_of(now);
        s.put_subscription(subscription.clone());
        s.put_payment(entry.clone());
        Purchase {
            subscription,
            receipt: entry.receipt,
        }
    })
}

fn fail_payment(id: u64, err: &Error) {
    mutate_state(|s| {
        if let Some(mut entry) = s.payment(id)
            && entry.receipt.status == PaymentStatus::Pending
        {
            entry.receipt.status = PaymentStatus::Failed {
                reason: err.to_string(),
            };
            s.put_payment(entry);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Deposits

/// Credits a ledger block that pays the caller's deposit account, once.
pub async fn verify_deposit(call: &UserUpdate, block_index: u64) -> Result<DepositCredit, Error> {
    let caller = call.caller();
    let _lock = call.lock()?;
    let already = |block_index| {
        read_state(|s| s.credited_blocks.contains_key(&block_index)).then_some(Error::Payment(
            PaymentError::AlreadyCredited { block_index },
        ))
    };
    if let Some(err) = already(block_index) {
        return Err(err);
    }
    let block = ledger::block(ledger_id(), block_index).await?;
    // Checked again after the await: nothing may have credited it meanwhile.
    if let Some(err) = already(block_index) {
        return Err(err);
    }
    let env = call.env();
    let expected = deposits::account_identifier(
        &deposits::deposit_account(env.canister_id(), &caller).account,
    );
    let settings = read_state(|s| s.settings());
    let amount = deposits::check_block(&block, block_index, &expected, env.now_nanos(), &settings)
        .map_err(Error::Payment)?;
    let credit_e8s = mutate_state(|s| {
        s.credited_blocks.insert(block_index, caller);
        let credit = s.credit(&caller).saturating_add(amount);
        s.set_credit(caller, credit);
        let to_sweep = s.sweeps.get(&caller).unwrap_or(0).saturating_add(amount);
        s.sweeps.insert(caller, to_sweep);
        credit
    });
    Ok(DepositCredit {
        block_index,
        amount_e8s: amount,
        credit_e8s,
    })
}

// ---------------------------------------------------------------------------------------------
// Payouts

/// Withdraws a creator's earnings.
pub async fn withdraw(call: &UserUpdate, args: WithdrawArgs) -> Result<Payout, Error> {
    let caller = call.caller();
    let _lock = call.lock()?;
    let id = mutate_state(|s| {
        let mut earnings = s.earnings(&caller);
        let fee = check_withdrawal(s, &args, earnings.balance_e8s)?;
        earnings.balance_e8s -= args.amount_e8s;
        s.earnings.insert(caller, ohms_ops::Cbor(earnings));
        Ok::<_, Error>(journal_payout(
            s,
            PayoutKind::CreatorWithdrawal,
            caller,
            None,
            args.to,
            args.amount_e8s,
            fee,
            call.env().now_nanos(),
        ))
    })?;
    settle_payout(call.env(), id).await
}

/// Withdraws the platform's share. Administrators only; audited.
pub async fn withdraw_treasury(env: &impl Env, args: WithdrawArgs) -> Result<Payout, Error> {
    access::admin(env)?;
    let platform = env.canister_id();
    let _lock = CallerLock::acquire(platform)?;
    let id = mutate_state(|s| {
        let stored = s.stored();
        let fee = check_withdrawal(s, &args, stored.treasury_e8s)?;
        s.update_stored(|stored| stored.treasury_e8s -= args.amount_e8s);
        Ok::<_, Error>(journal_payout(
            s,
            PayoutKind::TreasuryWithdrawal,
            platform,
            None,
            args.to,
            args.amount_e8s,
            fee,
            env.now_nanos(),
        ))
    })?;
    audit::record(
        env,
        "withdraw_treasury",
        format!("payout {id}: {} e8s to {:?}", args.amount_e8s, args.to),
    );
    settle_payout(env, id).await
}

/// Refunds a completed payment to its payer, from the treasury: an ICRC-2 payment to their
/// account (less the ledger fee), a credit payment to their credit. Administrators only;
/// audited.
pub async fn refund(env: &impl Env, payment_id: u64) -> Result<Receipt, Error> {
    access::admin(env)?;
    let entry = read_state(|s| s.payment(payment_id))
        .ok_or_else(|| Error::not_found("payment", payment_id))?;
    if entry.receipt.status != PaymentStatus::Completed {
        return Err(Error::invalid_state(format!(
            "payment {payment_id} is {:?}; only completed payments are refunded",
            entry.receipt.status
        )));
    }
    let owner = entry.receipt.owner;
    let _lock = CallerLock::acquire(owner)?;
    if let Some(payout) = pending_refund_of(payment_id) {
        return Err(Error::invalid_state(format!(
            "payout {payout} refunding payment {payment_id} is pending; it settles by itself"
        )));
    }
    let amount = entry.receipt.amount_e8s;
    if entry.receipt.method == PaymentMethod::Icrc2 && amount <= entry.fee_e8s {
        return Err(Error::invalid_state(format!(
            "payment {payment_id} of {amount} e8s does not cover the ledger fee of its refund"
        )));
    }
    let now = env.now_nanos();
    let payout = mutate_state(|s| {
        // The payment's pool part comes back from its month's pool while that is unsplit;
        // everything else from the treasury.
        let month = entry.revenue_month;
        let revenue = s.month_revenue(month);
        let pool_part = amount - entry.platform_e8s.min(amount);
        let pool_debit =
            (!revenue.split && revenue.creators_pool_e8s >= pool_part && pool_part > 0)
                .then_some((month, pool_part));
        let from_treasury = amount - pool_debit.map_or(0, |(_, e8s)| e8s);
        let treasury = s.stored().treasury_e8s;
        if treasury < from_treasury {
            return Err(Error::invalid_state(format!(
                "the treasury holds {treasury} e8s, less than the {from_treasury} e8s of the refund it must pay"
            )));
        }
        s.update_stored(|stored| stored.treasury_e8s -= from_treasury);
        if let Some((month, e8s)) = pool_debit {
            let mut revenue = revenue;
            revenue.creators_pool_e8s -= e8s;
            s.revenue.insert(month, ohms_ops::Cbor(revenue));
        }
        if entry.receipt.method == PaymentMethod::DepositCredit {
            let credit = s.credit(&owner).saturating_add(amount);
            s.set_credit(owner, credit);
            mark_refunded(s, payment_id, None);
            return Ok(None);
        }
        let fee = s.settings().ledger_fee_e8s;
        let to = Account {
            owner,
            subaccount: None,
        };
        let id = journal_payout(
            s,
            PayoutKind::Refund { payment_id },
            owner,
            None,
            to,
            amount,
            fee,
            now,
        );
        if let Some(mut journaled) = s.payout(id) {
            journaled.pool_debit = pool_debit;
            s.put_payout(journaled);
        }
        Ok(Some(id))
    })?;
    audit::record(
        env,
        "refund",
        format!(
            "payment {payment_id} of {owner}: {amount} e8s{}",
            payout
                .map(|id| format!(" (payout {id})"))
                .unwrap_or_else(|| " to credit".into())
        ),
    );
    if let Some(id) = payout {
        settle_payout(env, id).await?;
    }
    read_state(|s| s.payment(payment_id))
        .map(|entry| entry.receipt)
        .ok_or_else(|| Error::internal("the refunded payment vanished"))
}

/// The pending payout refunding `payment_id`, if one is.
fn pending_refund_of(payment_id: u64) -> Option<u64> {
    read_state(|s| {
        s.pending
            .range((Journal::Payouts as u8, 0)..(Journal::Payouts as u8 + 1, 0))
            .filter_map(|entry| s.payout(entry.key().1))
            .find(|p| p.payout.kind == PayoutKind::Refund { payment_id })
            .map(|p| p.payout.id)
    })
}

fn mark_refunded(s: &mut State, payment_id: u64, block_index: Option<u64>) {
    if let Some(mut payment) = s.payment(payment_id) {
        let amount = payment.receipt.amount_e8s;
        payment.receipt.status = PaymentStatus::Refunded { block_index };
        let month = payment.revenue_month;
        let mut revenue = s.month_revenue(month);
        revenue.refunds_e8s = revenue.refunds_e8s.saturating_add(amount);
        s.revenue.insert(month, ohms_ops::Cbor(revenue));
        s.put_payment(payment);
    }
}

fn check_withdrawal(s: &State, args: &WithdrawArgs, balance: u64) -> Result<u64, Error> {
    let fee = s.settings().ledger_fee_e8s;
    if args.amount_e8s <= fee {
        return Err(Error::invalid_argument(
            "args.amount_e8s",
            format!("must exceed the ledger fee of {fee} e8s"),
        ));
    }
    if args.to.owner == Principal::anonymous() {
        return Err(Error::invalid_argument(
            "args.to",
            "the anonymous principal's account",
        ));
    }
    if args.amount_e8s > balance {
        return Err(Error::Payment(PaymentError::InsufficientFunds {
            balance,
            required: args.amount_e8s,
        }));
    }
    Ok(fee)
}

#[allow(clippy::too_many_arguments)]
fn journal_payout(
    s: &mut State,
    kind: PayoutKind,
    owner: Principal,
    from_subaccount: Option<[u8; 32]>,
    to: Account,
    amount_e8s: u64,
    fee_e8s: u64,
    now: u64,
) -> u64 {
    let mut id = 0;
    s.update_stored(|stored| {
        id = stored.next_payout_id;
        stored.next_payout_id += 1;
    });
    s.put_payout(PayoutEntry {
        payout: Payout {
            id,
            kind,
            owner,
            to,
            amount_e8s,
            fee_e8s,
            status: PayoutStatus::Pending,
            created_at: now,
        },
        from_subaccount,
        created_at_time: now,
        pool_debit: None,
    });
    id
}

/// Sends (or repeats) a journaled payout and records its outcome.
async fn settle_payout(env: &impl Env, id: u64) -> Result<Payout, Error> {
    let entry = read_state(|s| s.payout(id))
        .ok_or_else(|| Error::internal(format!("payout {id} is not journaled")))?;
    if entry.payout.status != PayoutStatus::Pending {
        return Ok(entry.payout);
    }
    let tx = Transaction {
        amount_e8s: entry.payout.amount_e8s - entry.payout.fee_e8s,
        fee_e8s: entry.payout.fee_e8s,
        memo: memo(PAYOUT_MEMO, id),
        created_at_time: entry.created_at_time,
    };
    let retry = env.now_nanos() != entry.created_at_time;
    match ledger::transfer(ledger_id(), entry.from_subaccount, &entry.payout.to, &tx).await {
        // See settle_payment.
        Outcome::Refused(err) if retry && !ledger::proves_first_attempt_failed(&err) => {
            Err(Error::Payment(PaymentError::PayoutPending {
                payout_id: id,
            }))
        }
        Outcome::Done { block_index } => {
            Ok(finish_payout(id, PayoutStatus::Completed { block_index }))
        }
        Outcome::Refused(err) => {
            finish_payout(
                id,
                PayoutStatus::Failed {
                    reason: err.to_string(),
                },
            );
            Err(err)
        }
        Outcome::Unknown(_) => Err(Error::Payment(PaymentError::PayoutPending {
            payout_id: id,
        })),
    }
}

/// Records a payout's outcome once: a failure gives the debited amount back.
fn finish_payout(id: u64, status: PayoutStatus) -> Payout {
    mutate_state(|s| {
        let mut entry = s.payout(id).expect("journaled before the call");
        if entry.payout.status != PayoutStatus::Pending {
            return entry.payout;
        }
        let payout = &entry.payout;
        match (&status, &payout.kind) {
            (PayoutStatus::Failed { .. }, PayoutKind::CreatorWithdrawal) => {
                let mut earnings = s.earnings(&payout.owner);
                earnings.balance_e8s = earnings.balance_e8s.saturating_add(payout.amount_e8s);
                s.earnings.insert(payout.owner, ohms_ops::Cbor(earnings));
            }
            (
                PayoutStatus::Failed { .. },
                PayoutKind::TreasuryWithdrawal | PayoutKind::Refund { .. },
            ) => {
                let mut to_treasury = payout.amount_e8s;
                if let Some((month, e8s)) = entry.pool_debit {
                    // Back to the pool it came from, unless that month has been split since.
                    let mut revenue = s.month_revenue(month);
                    if !revenue.split {
                        revenue.creators_pool_e8s = revenue.creators_pool_e8s.saturating_add(e8s);
                        s.revenue.insert(month, ohms_ops::Cbor(revenue));
                        to_treasury -= e8s;
                    }
                }
                s.update_stored(|stored| {
                    stored.treasury_e8s = stored.treasury_e8s.saturating_add(to_treasury)
                });
            }
            (PayoutStatus::Failed { .. }, PayoutKind::DepositSweep) => {
                let left = s
                    .sweeps
                    .get(&payout.owner)
                    .unwrap_or(0)
                    .saturating_add(payout.amount_e8s);
                s.sweeps.insert(payout.owner, left);
            }
            (PayoutStatus::Completed { block_index }, PayoutKind::Refund { payment_id }) => {
                let (payment_id, block_index) = (*payment_id, *block_index);
                mark_refunded(s, payment_id, Some(block_index));
            }
            (PayoutStatus::Completed { .. }, PayoutKind::DepositSweep) => {
                let fee = payout.fee_e8s;
                s.update_stored(|stored| {
                    stored.fees_paid_e8s = stored.fees_paid_e8s.saturating_add(fee);
                    stored.treasury_e8s = stored.treasury_e8s.saturating_sub(fee);
                });
            }
            _ => {}
        }
        entry.payout.status = status;
        s.put_payout(entry.clone());
        entry.payout
    })
}

// ---------------------------------------------------------------------------------------------
// The timer's work

/// How much one timer run does at most of each kind of work.
const BATCH: usize = 20;

/// Renews, expires and moves to grace the subscriptions that are due.
pub async fn process_due_subscriptions(env: &impl Env) {
    let now = env.now_nanos();
    // Owners busy with a call of their own wait for the next run without taking a place.
    let due: Vec<Principal> = read_state(|s| {
        s.due
            .range(..(now.saturating_add(1), Principal::management_canister()))
            .filter(|entry| entry.key().0 <= now)
            .map(|entry| entry.key().1)
            .filter(|owner| !CallerLock::is_locked(owner))
            .take(BATCH)
            .collect()
    });
    for owner in due {
        // The owner's own call in progress, or a payment of theirs still pending, comes first.
        let Ok(_lock) = CallerLock::acquire(owner) else {
            continue;
        };
        if pending_payment_of(&owner, now).is_some() {
            continue;
        }
        let Some(sub) = read_state(|s| s.subscription(&owner)) else {
            continue;
        };
        match subscriptions::due_action(&sub, now) {
            DueAction::Nothing => {}
            DueAction::Expire => mutate_state(|s| s.put_subscription(subscriptions::expire(sub))),
            DueAction::Renew { .. } => renew(env, sub).await,
        }
    }
}

/// One month more, from credit when it covers the price, else through the standing allowance.
async fn renew(env: &impl Env, sub: Subscription) {
    let owner = sub.owner;
    let (price, credit, grace_seconds) = read_state(|s| {
        (
            tier_config_in(s, sub.tier).price_e8s_per_month,
            s.credit(&owner),
            s.settings().grace_period_seconds,
        )
    });
    let method = if credit >= price {
        PaymentMethod::DepositCredit
    } else {
        PaymentMethod::Icrc2
    };
    let purpose = PaymentPurpose::Renew {
        tier: sub.tier,
        months: 1,
    };
    match pay(env, owner, price, method, purpose, true).await {
        Ok(_) | Err(Error::Payment(PaymentError::Pending { .. })) => {}
        Err(err) => {
            let now = env.now_nanos();
            mutate_state(|s| {
                if let Some(current) = s.subscription(&owner) {
                    s.put_subscription(subscriptions::renewal_failed(
                        current,
                        now,
                        grace_seconds,
                        err.to_string(),
                    ));
                }
            });
        }
    }
}

/// Repeats the ledger transactions whose outcome is unknown, until the ledger tells.
pub async fn settle_pending(env: &impl Env) {
    let now = env.now_nanos();
    let platform = env.canister_id();
    // Entries past the window wait for an administrator; entries whose owner is busy wait for
    // the next run; neither takes the place of one that can be settled now.
    let pending: Vec<((u8, u64), Principal)> = read_state(|s| {
        s.pending
            .iter()
            .map(|entry| (*entry.key(), entry.value()))
            .filter_map(|((journal, id), owner)| {
                let (created_at_time, lock_owner) = if journal == Journal::Payments as u8 {
                    (s.payment(id)?.created_at_time, owner)
                } else {
                    let payout = s.payout(id)?;
                    let lock_owner = if payout.payout.kind == PayoutKind::TreasuryWithdrawal {
                        platform
                    } else {
                        owner
                    };
                    (payout.created_at_time, lock_owner)
                };
                (settleable(created_at_time, now) && !CallerLock::is_locked(&lock_owner))
                    .then_some(((journal, id), lock_owner))
            })
            .take(BATCH)
            .collect()
    });
    for ((journal, id), lock_owner) in pending {
        let Ok(_lock) = CallerLock::acquire(lock_owner) else {
            continue;
        };
        // Outcomes are recorded by the settle functions; errors here are the ledger's answers.
        if journal == Journal::Payments as u8 {
            let _ = settle_payment(env, id).await;
        } else {
            let _ = settle_payout(env, id).await;
        }
    }
}

/// Records the outcome of a pending payment or payout that can no longer be settled by
/// repeating it, as an administrator found it on the ledger: `Some(block)` — it happened in
/// that block; `None` — it did not (a payout's debit is restored). Administrators only;
/// audited.
pub fn resolve_settlement(
    env: &impl Env,
    settlement: SettlementRef,
    block_index: Option<u64>,
) -> Result<(), Error> {
    access::admin(env)?;
    let now = env.now_nanos();
    let (journal, id, created_at_time) = match settlement {
        SettlementRef::Payment(id) => {
            let entry =
                read_state(|s| s.payment(id)).ok_or_else(|| Error::not_found("payment", id))?;
            (Journal::Payments, id, entry.created_at_time)
        }
        SettlementRef::Payout(id) => {
            let entry =
                read_state(|s| s.payout(id)).ok_or_else(|| Error::not_found("payout", id))?;
            (Journal::Payouts, id, entry.created_at_time)
        }
    };
    if !read_state(|s| s.pending.contains_key(&(journal as u8, id))) {
        return Err(Error::invalid_state(format!(
            "{journal:?} entry {id} is not pending"
        )));
    }
    if settleable(created_at_time, now) {
        return Err(Error::invalid_state(format!(
            "{journal:?} entry {id} is still settled automatically (the ledger deduplicates its repeats)"
        )));
    }
    audit::record(
        env,
        "resolve_settlement",
        format!(
            "{journal:?} entry {id}: {}",
            block_index.map_or("did not happen".into(), |b| format!("in block {b}"))
        ),
    );
    match (journal, block_index) {
        (Journal::Payments, Some(block)) => {
            complete_payment(id, Some(block), now);
        }
        (Journal::Payments, None) => fail_payment(
            id,
            &Error::invalid_state("resolved by an administrator: the ledger has no such transfer"),
        ),
        (Journal::Payouts, Some(block)) => {
            finish_payout(id, PayoutStatus::Completed { block_index: block });
        }
        (Journal::Payouts, None) => {
            finish_payout(
                id,
                PayoutStatus::Failed {
                    reason: "resolved by an administrator: the ledger has no such transfer".into(),
                },
            );
        }
    }
    Ok(())
}

/// Moves credited deposits from their deposit subaccounts to the treasury account.
pub async fn sweep_deposits(env: &impl Env) {
    let fee = read_state(|s| s.settings().ledger_fee_e8s);
    let due: Vec<Principal> = read_state(|s| {
        s.sweeps
            .iter()
            .filter(|entry| entry.value() > fee && !CallerLock::is_locked(entry.key()))
            .take(BATCH)
            .map(|entry| *entry.key())
            .collect()
    });
    let treasury = State::treasury(env.canister_id());
    for owner in due {
        let Ok(_lock) = CallerLock::acquire(owner) else {
            continue;
        };
        // Read again under the lock: a deposit may have been credited since the list was made.
        let Some(amount) = read_state(|s| s.sweeps.get(&owner)).filter(|amount| *amount > fee)
        else {
            continue;
        };
        let id = mutate_state(|s| {
            s.sweeps.remove(&owner);
            journal_payout(
                s,
                PayoutKind::DepositSweep,
                owner,
                Some(deposits::deposit_subaccount(&owner)),
                treasury,
                amount,
                fee,
                env.now_nanos(),
            )
        });
        let _ = settle_payout(env, id).await;
    }
}

/// A payment's receipt, for its owner.
pub fn receipts_of(owner: &Principal) -> Vec<Receipt> {
    read_state(|s| {
        s.owner_payments
            .range((*owner, 0)..=(*owner, u64::MAX))
            .filter_map(|entry| s.payment(entry.key().1))
            .map(|entry| entry.receipt)
            .collect()
    })
}
