//! Economics through its wasm, against DFINITY's ICP ledger on the same test network: every
//! test checks ledger balances and economics' state.

use std::time::Duration;

use candid::{CandidType, Nat, Principal};
use ic_test_env::{Fault, RejectCode};
use icrc_ledger_types::icrc1::account::Account as IcrcAccount;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use ohms_integration_tests::{LEDGER_FEE_E8S, Suite, controller, encode, user};
use ohms_types::{
    Account, Action, Analytics, Balances, Decision, DenyReason, DepositAccount, DepositCredit,
    EconomicsInstallArgs, EconomicsSettings, Error, Grant, ModelId, MonthRevenue, Page, Paged,
    PaymentError, PaymentMethod, PaymentStatus, PendingSettlement, Purchase, Receipt, Siblings,
    SubscribeArgs, Subscription, SubscriptionState, Tier, TierConfig, UpgradeArgs, UsageReport,
    WithdrawArgs,
};
use serde::de::DeserializeOwned;

const BASIC_PRICE: u64 = 100_000_000;
const DAY: Duration = Duration::from_secs(86_400);

struct Econ {
    suite: Suite,
    economics: Principal,
    ledger: Principal,
}

impl Econ {
    fn new() -> Self {
        Self::on(Suite::deploy())
    }

    fn on(suite: Suite) -> Self {
        Self {
            economics: suite.id("economics"),
            ledger: suite.ledger,
            suite,
        }
    }

    fn update<A: CandidType, R: CandidType + DeserializeOwned>(
        &mut self,
        caller: Principal,
        method: &str,
        arg: A,
    ) -> R {
        let economics = self.economics;
        self.suite.update(economics, caller, method, (arg,))
    }

    fn query<A: CandidType, R: CandidType + DeserializeOwned>(
        &mut self,
        caller: Principal,
        method: &str,
        arg: A,
    ) -> R {
        let economics = self.economics;
        self.suite.query(economics, caller, method, (arg,))
    }

    fn query0<R: CandidType + DeserializeOwned>(&mut self, caller: Principal, method: &str) -> R {
        let economics = self.economics;
        self.suite.query(economics, caller, method, ())
    }

    fn balance(&mut self, owner: Principal, subaccount: Option<[u8; 32]>) -> u64 {
        let ledger = self.ledger;
        let balance: Nat = self.suite.query(
            ledger,
            owner,
            "icrc1_balance_of",
            (IcrcAccount { owner, subaccount },),
        );
        u64::try_from(balance.0).unwrap()
    }

    fn treasury(&mut self) -> u64 {
        let economics = self.economics;
        self.balance(economics, None)
    }

    fn approve(&mut self, owner: Principal, amount: u64) {
        let ledger = self.ledger;
        let args = ApproveArgs {
            from_subaccount: None,
            spender: IcrcAccount {
                owner: self.economics,
                subaccount: None,
            },
            amount: Nat::from(amount),
            expected_allowance: None,
            expires_at: None,
            fee: None,
            memo: None,
            created_at_time: None,
        };
        let result: Result<Nat, ApproveError> =
            self.suite.update(ledger, owner, "icrc2_approve", (args,));
        result.expect("approve");
    }

    fn transfer(&mut self, from: Principal, to: IcrcAccount, amount: u64) -> u64 {
        let ledger = self.ledger;
        let args = TransferArg {
            from_subaccount: None,
            to,
            fee: None,
            created_at_time: None,
            memo: None,
            amount: Nat::from(amount),
        };
        let result: Result<Nat, TransferError> =
            self.suite.update(ledger, from, "icrc1_transfer", (args,));
        u64::try_from(result.expect("transfer").0).unwrap()
    }

    fn subscribe(
        &mut self,
        caller: Principal,
        tier: Tier,
        months: u32,
        method: Option<PaymentMethod>,
    ) -> Result<Purchase, Error> {
        self.update(
            caller,
            "subscribe",
            SubscribeArgs {
                tier,
                months,
                auto_renew: true,
                method,
            },
        )
    }

    fn receipts(&mut self, caller: Principal) -> Vec<Receipt> {
        let page: Result<Paged<Receipt>, Error> =
            self.query(caller, "my_receipts", Page::default());
        page.unwrap().items
    }

    fn subscription(&mut self, caller: Principal) -> Option<Subscription> {
        let sub: Result<Option<Subscription>, Error> = self.query0(caller, "my_subscription");
        sub.unwrap()
    }

    fn pending(&mut self) -> Vec<PendingSettlement> {
        let page: Result<Paged<PendingSettlement>, Error> =
            self.query(controller(), "pending_settlements", Page::default());
        page.unwrap().items
    }

    /// Moves the clock and lets the housekeeping timer run.
    fn advance(&mut self, by: Duration) {
        self.suite.env.advance_time(by);
        // Enough rounds for the timer's sequence of ledger calls to finish.
        for _ in 0..20 {
            self.suite.env.tick();
        }
    }

    fn upgrade(&mut self, siblings: Option<Siblings>) {
        let arg = EconomicsInstallArgs::Upgrade(siblings.map(|siblings| UpgradeArgs {
            siblings: Some(siblings),
        }));
        let economics = self.economics;
        self.suite
            .env
            .upgrade_canister(
                economics,
                ohms_integration_tests::wasm("economics"),
                encode(&arg),
                Some(controller()),
            )
            .expect("upgrade economics");
    }

    fn instructions(&self) -> u64 {
        self.suite.env.last_call_instructions().unwrap_or(0)
    }
}

fn alice() -> Principal {
    user("alice")
}
fn bob() -> Principal {
    user("bob")
}

#[test]
fn subscribe_pulls_exactly_the_price_once_and_gives_one_receipt() {
    let mut e = Econ::new();
    let before = e.balance(alice(), None);
    e.approve(alice(), BASIC_PRICE + LEDGER_FEE_E8S);
    let purchase = e
        .subscribe(alice(), Tier::Basic, 1, None)
        .expect("subscribe");
    assert_eq!(purchase.subscription.state, SubscriptionState::Active);
    assert_eq!(purchase.receipt.status, PaymentStatus::Completed);
    assert_eq!(purchase.receipt.amount_e8s, BASIC_PRICE);
    let block = purchase.receipt.block_index.expect("a ledger block");
    // approve fee + price + transfer fee
    assert_eq!(
        e.balance(alice(), None),
        before - 2 * LEDGER_FEE_E8S - BASIC_PRICE
    );
    assert_eq!(e.treasury(), BASIC_PRICE);
    assert_eq!(e.receipts(alice()), vec![purchase.receipt.clone()]);
    assert_eq!(
        e.receipts(bob()),
        vec![],
        "Bob sees none of Alice's receipts"
    );
    assert!(block > 0);
    let analytics: Result<Analytics, Error> = e.query0(controller(), "analytics");
    let analytics = analytics.unwrap();
    assert_eq!(analytics.revenue_e8s, BASIC_PRICE);
    assert_eq!(analytics.treasury_e8s, BASIC_PRICE * 3 / 10);
}

#[test]
fn ledger_errors_are_typed_and_credit_nothing() {
    let mut e = Econ::new();
    // No approval.
    let err = e.subscribe(alice(), Tier::Basic, 1, None).unwrap_err();
    assert!(
        matches!(err, Error::Payment(PaymentError::InsufficientAllowance { allowance: 0, required }) if required == BASIC_PRICE + LEDGER_FEE_E8S),
        "{err:?}"
    );
    // An approval above a balance too small: insufficient funds.
    let eve = user("eve");
    e.transfer(
        alice(),
        IcrcAccount {
            owner: eve,
            subaccount: None,
        },
        50_000_000,
    );
    e.approve(eve, 10 * BASIC_PRICE);
    let err = e.subscribe(eve, Tier::Basic, 1, None).unwrap_err();
    assert!(
        matches!(err, Error::Payment(PaymentError::InsufficientFunds { .. })),
        "{err:?}"
    );
    // Economics configured with a fee the ledger does not charge.
    let config: ohms_types::EconomicsConfig = e.query0(controller(), "economics_config");
    let wrong = EconomicsSettings {
        ledger_fee_e8s: 20_000,
        ..config.settings.clone()
    };
    let set: Result<(), Error> = e.update(controller(), "set_settings", wrong);
    set.unwrap();
    e.approve(alice(), BASIC_PRICE + 20_000);
    let err = e.subscribe(alice(), Tier::Basic, 1, None).unwrap_err();
    assert_eq!(
        err,
        Error::Payment(PaymentError::BadFee {
            expected_fee: LEDGER_FEE_E8S
        })
    );
    assert!(err.to_string().contains("fee"), "{err}");
    // Nothing was credited: no subscription, no revenue, the treasury account is empty.
    assert_eq!(e.subscription(alice()), None);
    assert_eq!(e.subscription(eve), None);
    assert_eq!(e.treasury(), 0);
    assert!(
        e.receipts(alice())
            .iter()
            .all(|r| matches!(r.status, PaymentStatus::Failed { .. }))
    );
    assert!(e.pending().is_empty());
}

#[test]
fn bob_cannot_pay_with_alices_allowance() {
    let mut e = Econ::new();
    e.approve(alice(), 10 * BASIC_PRICE);
    let alice_before = e.balance(alice(), None);
    let err = e.subscribe(bob(), Tier::Basic, 1, None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Payment(PaymentError::InsufficientAllowance { allowance: 0, .. })
        ),
        "{err:?}"
    );
    assert_eq!(e.balance(alice(), None), alice_before);
    assert_eq!(e.subscription(bob()), None);
    // Her allowance is untouched: she can still pay for herself.
    e.subscribe(alice(), Tier::Basic, 1, None).unwrap();
}

#[test]
fn concurrent_subscribes_of_one_principal_move_money_once() {
    let mut e = Econ::new();
    e.approve(alice(), 10 * BASIC_PRICE);
    let before = e.balance(alice(), None);
    let args = SubscribeArgs {
        tier: Tier::Basic,
        months: 1,
        auto_renew: false,
        method: None,
    };
    let economics = e.economics;
    let first = e
        .suite
        .env
        .submit_call(economics, alice(), "subscribe", encode(&args))
        .unwrap();
    let second = e
        .suite
        .env
        .submit_call(economics, alice(), "subscribe", encode(&args))
        .unwrap();
    let decode = |bytes: Vec<u8>| candid::decode_one::<Result<Purchase, Error>>(&bytes).unwrap();
    let results = [
        decode(e.suite.env.await_call(first).unwrap()),
        decode(e.suite.env.await_call(second).unwrap()),
    ];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.contains(&Err(Error::Busy)));
    assert_eq!(
        e.balance(alice(), None),
        before - BASIC_PRICE - LEDGER_FEE_E8S
    );
    assert_eq!(e.receipts(alice()).len(), 1);
    // A later call succeeds.
    e.subscribe(alice(), Tier::Basic, 1, None).unwrap();
    assert_eq!(e.receipts(alice()).len(), 2);
}

#[test]
fn a_trap_after_the_ledger_replied_is_settled_by_the_retry_charging_once() {
    let mut e = Econ::new();
    e.approve(alice(), 10 * BASIC_PRICE);
    let before = e.balance(alice(), None);
    if !e.fault_on_next_transfer_from(FaultKind::TrapInCallback) {
        return;
    }
    let economics = e.economics;
    let err = e
        .suite
        .env
        .update_call(
            economics,
            alice(),
            "subscribe",
            encode(&SubscribeArgs {
                tier: Tier::Basic,
                months: 1,
                auto_renew: false,
                method: None,
            }),
        )
        .unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterError, "{err:?}");
    // The ledger charged; the journal shows the payment pending, not lost.
    assert_eq!(
        e.balance(alice(), None),
        before - BASIC_PRICE - LEDGER_FEE_E8S
    );
    let pending = e.pending();
    assert!(
        matches!(&pending[..], [PendingSettlement::Payment(r)] if r.status == PaymentStatus::Pending),
        "{pending:?}"
    );
    // The lock did not outlive the fault: the retry is not Busy, and the ledger deduplicates it.
    let purchase = e
        .subscribe(alice(), Tier::Basic, 1, None)
        .expect("the retry settles the payment");
    assert_eq!(purchase.receipt.status, PaymentStatus::Completed);
    assert_eq!(
        e.balance(alice(), None),
        before - BASIC_PRICE - LEDGER_FEE_E8S,
        "charged once"
    );
    assert_eq!(e.receipts(alice()).len(), 1, "one receipt");
    assert!(e.pending().is_empty());
    assert_eq!(e.treasury(), BASIC_PRICE);
}

#[test]
fn a_lost_reply_is_settled_by_the_timer_exactly_once() {
    let mut e = Econ::new();
    e.approve(alice(), 10 * BASIC_PRICE);
    let before = e.balance(alice(), None);
    if !e.fault_on_next_transfer_from(FaultKind::LoseReply) {
        return;
    }
    let err = e.subscribe(alice(), Tier::Basic, 1, None).unwrap_err();
    let Error::Payment(PaymentError::Pending { payment_id }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.subscription(alice()), None);
    assert_eq!(e.pending().len(), 1);
    // Survives an upgrade; the re-armed timer settles it.
    e.upgrade(None);
    e.advance(Duration::from_secs(61));
    assert!(e.pending().is_empty());
    let receipts = e.receipts(alice());
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        (receipts[0].payment_id, &receipts[0].status),
        (payment_id, &PaymentStatus::Completed)
    );
    assert_eq!(
        e.subscription(alice()).unwrap().state,
        SubscriptionState::Active
    );
    assert_eq!(
        e.balance(alice(), None),
        before - BASIC_PRICE - LEDGER_FEE_E8S
    );
}

fn deposit_account(e: &mut Econ, who: Principal) -> DepositAccount {
    let account: Result<DepositAccount, Error> = e.query0(who, "deposit_account");
    account.unwrap()
}

fn verify(e: &mut Econ, who: Principal, block: u64) -> Result<DepositCredit, Error> {
    e.update(who, "verify_deposit", block)
}

#[test]
fn a_deposit_is_checked_completely_and_credited_once() {
    let mut e = Econ::new();
    let mine = deposit_account(&mut e, alice());
    assert_eq!(mine.account.owner, e.economics);
    assert_eq!(mine.account_id.len(), 64);
    let to_mine = IcrcAccount {
        owner: mine.account.owner,
        subaccount: mine.account.subaccount,
    };
    let block = e.transfer(alice(), to_mine, 2 * BASIC_PRICE);
    // Someone else's block.
    let err = verify(&mut e, bob(), block).unwrap_err();
    assert!(
        matches!(err, Error::Payment(PaymentError::NotYours { .. })),
        "{err:?}"
    );
    // Concurrent verifications: one credits, the other is Busy.
    let economics = e.economics;
    let calls: Vec<_> = (0..2)
        .map(|_| {
            e.suite
                .env
                .submit_call(economics, alice(), "verify_deposit", encode(&block))
                .unwrap()
        })
        .collect();
    let results: Vec<Result<DepositCredit, Error>> = calls
        .into_iter()
        .map(|call| candid::decode_one(&e.suite.env.await_call(call).unwrap()).unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    // Repeated: credited already.
    assert_eq!(
        verify(&mut e, alice(), block).unwrap_err(),
        Error::Payment(PaymentError::AlreadyCredited { block_index: block })
    );
    let balances: Result<Balances, Error> = e.query0(alice(), "my_balances");
    assert_eq!(balances.unwrap().credit_e8s, 2 * BASIC_PRICE);
    // The mint that funded Alice at install (block 0) is not a transfer.
    assert!(
        matches!(verify(&mut e, alice(), 0), Err(Error::Payment(PaymentError::NotATransfer { kind, .. })) if kind == "mint")
    );
    // An approval block.
    e.approve(alice(), 1);
    let approve_block = block + 1;
    assert!(
        matches!(verify(&mut e, alice(), approve_block), Err(Error::Payment(PaymentError::NotATransfer { kind, .. })) if kind == "approval")
    );
    // Wrong destination: Alice paid Bob.
    let to_bob = e.transfer(
        alice(),
        IcrcAccount {
            owner: bob(),
            subaccount: None,
        },
        BASIC_PRICE,
    );
    assert!(matches!(
        verify(&mut e, alice(), to_bob),
        Err(Error::Payment(PaymentError::NotYours { .. }))
    ));
    // Too small.
    let small = e.transfer(alice(), to_mine, 10_000);
    assert!(matches!(
        verify(&mut e, alice(), small),
        Err(Error::Payment(PaymentError::BelowMinimum {
            amount: 10_000,
            ..
        }))
    ));
    // Past the end of the chain.
    assert!(matches!(
        verify(&mut e, alice(), 10_000),
        Err(Error::Payment(PaymentError::BlockNotFound { .. }))
    ));
    // Too old.
    let late = e.transfer(alice(), to_mine, BASIC_PRICE);
    e.advance(8 * DAY);
    assert!(matches!(
        verify(&mut e, alice(), late),
        Err(Error::Payment(PaymentError::BlockTooOld { .. }))
    ));
    let balances: Result<Balances, Error> = e.query0(alice(), "my_balances");
    assert_eq!(
        balances.unwrap().credit_e8s,
        2 * BASIC_PRICE,
        "only the good block was credited"
    );
    // Credit buys a subscription; the sweep moved the credited deposit to the treasury.
    let purchase = e
        .subscribe(alice(), Tier::Basic, 1, Some(PaymentMethod::DepositCredit))
        .unwrap();
    assert_eq!(purchase.receipt.block_index, None);
    let balances: Result<Balances, Error> = e.query0(alice(), "my_balances");
    assert_eq!(balances.unwrap().credit_e8s, BASIC_PRICE);
    assert_eq!(
        e.treasury(),
        2 * BASIC_PRICE - LEDGER_FEE_E8S,
        "swept less the fee"
    );
    // What is left in the deposit account is the uncredited small and late deposits.
    assert_eq!(
        e.balance(mine.account.owner, mine.account.subaccount),
        10_000 + BASIC_PRICE
    );
}

/// Uploads a small synthetic model to the model repository as `creator`, who becomes its
/// creator there.
fn publish_model(e: &mut Econ, creator: Principal, id: &str) {
    use novaq::format::synthetic;
    let repo = e.suite.id("model_repo");
    let added: Result<(), Error> = e
        .suite
        .update(repo, controller(), "add_uploader", (creator,));
    added.unwrap();
    let (manifest, shards) = synthetic::model(1_000, 1_000, id.len() as u32);
    let metadata = ohms_types::ModelMetadata {
        id: ModelId::parse(id, "id").unwrap(),
        name: id.into(),
        version: "1".into(),
        description: "synthetic".into(),
        capabilities: vec![ohms_types::Capability::Chat],
        tags: vec![],
        min_tier: Tier::Basic,
    };
    e.suite.publish_model(creator, metadata, manifest, &shards);
}

/// Makes `relay` (a fixture that forwards raw calls) economics' agent factory.
fn relay_as_factory(e: &mut Econ) -> Principal {
    let relay = e.suite.install_fixture("relay");
    let mut siblings = e.suite.siblings.clone();
    siblings.agent_factory = Some(relay);
    e.upgrade(Some(siblings));
    relay
}

fn relayed<A: candid::utils::ArgumentEncoder, R: CandidType + DeserializeOwned>(
    e: &mut Econ,
    relay: Principal,
    method: &str,
    args: A,
) -> R {
    let economics = e.economics;
    let bytes = candid::encode_args(args).unwrap();
    let reply: Result<Vec<u8>, String> = e.suite.update(
        relay,
        controller(),
        "relay",
        (economics, method.to_string(), bytes),
    );
    candid::decode_one(&reply.expect("relayed call")).unwrap()
}

#[test]
fn quotas_and_rate_limits_deny_at_the_boundary_and_reset_monthly() {
    let mut e = Econ::new();
    let relay = relay_as_factory(&mut e);
    // Without a subscription.
    let decision: Result<Decision, Error> = e.authorize(alice(), alice(), task(1));
    assert!(matches!(
        decision.unwrap(),
        Decision::Deny {
            reason: DenyReason::NoSubscription,
            ..
        }
    ));
    // Strangers may not ask about Alice.
    let economics = e.economics;
    let stranger: Result<Decision, Error> = e.authorize(bob(), alice(), task(1));
    assert!(matches!(stranger, Err(Error::NotAuthorized { .. })));
    // Nor reserve for her.
    let denied: Result<Grant, Error> =
        e.suite
            .update(economics, bob(), "reserve", (alice(), task(1)));
    assert!(matches!(denied, Err(Error::NotAuthorized { .. })));

    e.approve(alice(), 10 * BASIC_PRICE);
    e.subscribe(alice(), Tier::Basic, 3, None).unwrap();
    let decision: Result<Decision, Error> = e.authorize(alice(), alice(), inference(1_000));
    let Decision::Allow { limits } = decision.unwrap() else {
        panic!()
    };
    assert_eq!(
        (limits.tier, limits.tokens_left, limits.max_agents),
        (Tier::Basic, 100_000, 5)
    );

    // Tokens: 100,000 a month. Reserve 60,000 and commit 60,000; 40,001 more is denied.
    let grant = e.reserve(relay, alice(), inference(60_000));
    let reservation = reserved(grant);
    let committed = e.commit(relay, reservation.id, tokens(10_000, 50_000));
    committed.unwrap();
    let over = e.reserve(relay, alice(), inference(40_001));
    assert!(
        matches!(over.unwrap(), Grant::Denied { reason: DenyReason::QuotaExceeded { quota, limit: 100_000, used: 60_000, requested: 40_001 }, .. } if quota == "tokens_per_month")
    );
    let exact = e.reserve(relay, alice(), inference(40_000));
    let held = reserved(exact);
    // Released, it is available again.
    let released = e.release(relay, held.id);
    released.unwrap();

    // Agents: 5 at most.
    let grant = e.reserve(relay, alice(), Action::CreateAgents { count: 5 });
    let r = reserved(grant);
    let done = e.commit(
        relay,
        r.id,
        UsageReport {
            agents_created: 5,
            ..UsageReport::default()
        },
    );
    done.unwrap();
    let sixth = e.reserve(relay, alice(), Action::CreateAgents { count: 1 });
    assert!(
        matches!(sixth.unwrap(), Grant::Denied { reason: DenyReason::QuotaExceeded { quota, .. }, .. } if quota == "agents")
    );

    // Rate limit: an administrator sets Basic to 8 requests an hour; 3 reservations were made
    // (denied requests do not count).
    let mut basic = e.tier(Tier::Basic);
    basic.requests_per_hour = 8;
    let set: Result<(), Error> = e.update(controller(), "set_tier", basic);
    set.unwrap();
    let tasks: Vec<_> = (0..5)
        .map(|_| reserved(e.reserve(relay, alice(), task(10))))
        .collect();
    let limited = e.reserve(relay, alice(), task(10));
    assert!(matches!(
        limited.unwrap(),
        Grant::Denied {
            reason: DenyReason::RateLimited { limit: 8, .. },
            ..
        }
    ));
    // A task's runs draw on its budget and are not rate-limited (the task was counted).
    let draw = e.reserve(
        relay,
        alice(),
        Action::TaskInference {
            task_reservation: tasks[0].id,
            estimated_tokens: 10,
        },
    );
    let run = reserved(draw);
    let over = e.reserve(
        relay,
        alice(),
        Action::TaskInference {
            task_reservation: tasks[0].id,
            estimated_tokens: 1,
        },
    );
    assert!(
        matches!(over.unwrap(), Grant::Denied { reason: DenyReason::QuotaExceeded { quota, limit: 0, used: 0, requested: 1 }, .. } if quota == "task_budget")
    );
    // Tasks last a day: give their budgets back before the month ends.
    for id in tasks.iter().map(|t| t.id).chain([run.id]) {
        e.release(relay, id).unwrap();
    }

    // Next month: the token quota is back (the clock moves to the first day of the next month).
    let now = e
        .suite
        .env
        .get_time()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let to_next_month = next_month_start(now) - now + 60;
    e.advance(Duration::from_secs(to_next_month));
    let decision: Result<Decision, Error> = e.authorize(alice(), alice(), inference(100_000));
    assert!(
        matches!(decision.unwrap(), Decision::Allow { .. }),
        "the month's tokens reset"
    );
}

/// The first second of the month after the one holding `secs` (UTC).
fn next_month_start(secs: u64) -> u64 {
    use ohms_types::calendar::{NANOS_PER_SECOND, month_of, month_start};
    month_start(month_of(secs * NANOS_PER_SECOND) + 1) / NANOS_PER_SECOND
}

#[derive(Clone, Copy)]
enum FaultKind {
    TrapInCallback,
    LoseReply,
}

impl Econ {
    /// Injects a fault (`Fault::TrapInCallback` or `Fault::LoseReply`) on economics' next
    /// `icrc2_transfer_from`; false, with a notice, where the backend cannot inject faults.
    fn fault_on_next_transfer_from(&mut self, kind: FaultKind) -> bool {
        let (canister, callee) = (self.economics, self.ledger);
        let method = Some("icrc2_transfer_from".to_string());
        let fault = match kind {
            FaultKind::TrapInCallback => Fault::TrapInCallback {
                canister,
                callee,
                method,
            },
            FaultKind::LoseReply => Fault::LoseReply {
                canister,
                callee,
                method,
            },
        };
        let injected = self.suite.env.inject_fault(fault);
        if !injected {
            eprintln!("skipped: this backend cannot inject faults");
        }
        injected
    }
}

/// The reservation a grant holds (the test expected no denial).
fn reserved(grant: Result<Grant, Error>) -> ohms_types::Reservation {
    match grant {
        Ok(Grant::Reserved(reservation)) => reservation,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

/// A coordinator task with a budget of `tokens`.
fn task(budget_tokens: u64) -> Action {
    Action::SubmitTask { budget_tokens }
}

/// An inference estimated at `tokens`.
fn inference(tokens: u64) -> Action {
    Action::Inference {
        estimated_tokens: tokens,
    }
}

/// A usage report of tokens only.
fn tokens(tokens_in: u64, tokens_out: u64) -> UsageReport {
    UsageReport {
        tokens_in,
        tokens_out,
        ..UsageReport::default()
    }
}

/// The policy engine's sibling methods, called through `via` (a relay registered as the agent
/// factory, or an agent canister).
impl Econ {
    fn authorize(
        &mut self,
        caller: Principal,
        principal: Principal,
        action: Action,
    ) -> Result<Decision, Error> {
        let economics = self.economics;
        self.suite
            .query(economics, caller, "authorize", (principal, action))
    }

    fn reserve(
        &mut self,
        via: Principal,
        principal: Principal,
        action: Action,
    ) -> Result<Grant, Error> {
        relayed(self, via, "reserve", (principal, action))
    }

    fn commit(
        &mut self,
        via: Principal,
        reservation: u64,
        usage: UsageReport,
    ) -> Result<(), Error> {
        relayed(self, via, "commit", (reservation, usage))
    }

    fn release(&mut self, via: Principal, reservation: u64) -> Result<(), Error> {
        relayed(self, via, "release", (reservation,))
    }

    fn report_usage(
        &mut self,
        via: Principal,
        principal: Principal,
        usage: UsageReport,
    ) -> Result<(), Error> {
        relayed(self, via, "report_usage", (principal, usage))
    }
}

impl Econ {
    fn tier(&mut self, tier: Tier) -> TierConfig {
        let tiers: Vec<TierConfig> = self.query0(controller(), "list_tiers");
        tiers.into_iter().find(|t| t.tier == tier).unwrap()
    }
}

#[test]
fn auto_renew_charges_on_time_then_falls_to_grace_and_expiry() {
    let mut e = Econ::new();
    e.approve(alice(), 2 * (BASIC_PRICE + LEDGER_FEE_E8S));
    let first = e.subscribe(alice(), Tier::Basic, 1, None).unwrap();
    let end = first.subscription.current_period_end;
    e.upgrade(None);
    // The period ends: the timer renews through the standing allowance.
    e.advance(30 * DAY);
    let sub = e.subscription(alice()).unwrap();
    assert_eq!(
        (sub.state, sub.current_period_end),
        (SubscriptionState::Active, end + 30 * DAY.as_nanos() as u64)
    );
    let receipts = e.receipts(alice());
    assert_eq!(receipts.len(), 2);
    assert!(matches!(
        receipts[1].purpose,
        ohms_types::PaymentPurpose::Renew { months: 1, .. }
    ));
    assert_eq!(e.treasury(), 2 * BASIC_PRICE);
    // The allowance is used up: the next renewal fails, grace, then expiry.
    e.advance(30 * DAY);
    let sub = e.subscription(alice()).unwrap();
    assert_eq!(sub.state, SubscriptionState::Grace, "{sub:?}");
    assert!(sub.renewal_error.unwrap().contains("approval"));
    e.advance(7 * DAY);
    assert_eq!(
        e.subscription(alice()).unwrap().state,
        SubscriptionState::Expired
    );
    assert_eq!(e.treasury(), 2 * BASIC_PRICE, "nothing more was charged");
    let decision: Result<Decision, Error> = e.authorize(alice(), alice(), task(1));
    assert!(matches!(
        decision.unwrap(),
        Decision::Deny {
            reason: DenyReason::SubscriptionExpired { .. },
            ..
        }
    ));
}

#[test]
fn the_creators_pool_splits_exactly_and_withdrawals_move_money_once() {
    let mut e = Econ::new();
    let relay = relay_as_factory(&mut e);
    let (carol, dave) = (user("carol"), user("dave"));
    // Three payments this month.
    for who in [alice(), bob(), carol] {
        e.approve(who, BASIC_PRICE + LEDGER_FEE_E8S);
        e.subscribe(who, Tier::Basic, 1, None).unwrap();
    }
    // Usage of two models by two creators, 1 : 2 (the repository records who uploaded each),
    // and of a model the repository does not have, which earns nobody.
    publish_model(&mut e, carol, "model-a");
    publish_model(&mut e, dave, "model-b");
    for (model, tokens) in [
        ("model-a", 1_000u64),
        ("model-b", 2_000),
        ("model-gone", 5_000),
    ] {
        let report = UsageReport {
            tokens_in: tokens,
            tokens_out: 0,
            agents_created: 0,
            model: Some(ModelId::parse(model, "model").unwrap()),
            agent: Some("agent-1".into()),
        };
        let done = e.report_usage(relay, alice(), report);
        done.unwrap();
    }
    let now = e
        .suite
        .env
        .get_time()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    e.advance(Duration::from_secs(next_month_start(now) - now + 60));
    let months: Result<Paged<MonthRevenue>, Error> =
        e.query(controller(), "revenue_by_month", Page::default());
    let month = months
        .unwrap()
        .items
        .into_iter()
        .find(|m| m.payments_e8s > 0)
        .unwrap();
    assert!(month.split);
    let pool = month.creators_pool_e8s;
    assert_eq!(pool, 3 * BASIC_PRICE - month.platform_e8s);
    let earnings = |e: &mut Econ, who| {
        let b: Result<Balances, Error> = e.query0(who, "my_balances");
        b.unwrap().earnings_e8s
    };
    let (c, d) = (earnings(&mut e, carol), earnings(&mut e, dave));
    assert_eq!(c + d, pool, "the split sums exactly to the pool");
    assert_eq!(d, pool - pool / 3);

    // Two concurrent full withdrawals: one succeeds, the balance never goes negative.
    let args = WithdrawArgs {
        amount_e8s: d,
        to: Account {
            owner: dave,
            subaccount: None,
        },
    };
    let dave_before = e.balance(dave, None);
    let economics = e.economics;
    let calls: Vec<_> = (0..2)
        .map(|_| {
            e.suite
                .env
                .submit_call(economics, dave, "withdraw", encode(&args))
                .unwrap()
        })
        .collect();
    let results: Vec<Result<ohms_types::Payout, Error>> = calls
        .into_iter()
        .map(|call| candid::decode_one(&e.suite.env.await_call(call).unwrap()).unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(earnings(&mut e, dave), 0);
    assert_eq!(e.balance(dave, None), dave_before + d - LEDGER_FEE_E8S);
    // A second full withdrawal now finds nothing to take.
    let again: Result<ohms_types::Payout, Error> = e.update(dave, "withdraw", args);
    assert!(matches!(
        again,
        Err(Error::Payment(PaymentError::InsufficientFunds {
            balance: 0,
            ..
        }))
    ));
}

#[test]
fn anonymous_and_non_admin_callers_are_refused_and_change_nothing() {
    let mut e = Econ::new();
    let anonymous = Principal::anonymous();
    e.approve(alice(), BASIC_PRICE + LEDGER_FEE_E8S);
    e.subscribe(alice(), Tier::Basic, 1, None).unwrap();
    let snapshot = |e: &mut Econ| {
        let analytics: Result<Analytics, Error> = e.query0(controller(), "analytics");
        let audit: Result<Paged<ohms_types::AuditEntry>, Error> =
            e.query(controller(), "audit_log", Page::default());
        (analytics.unwrap(), audit.unwrap().total, e.treasury())
    };
    let before = snapshot(&mut e);
    let args = SubscribeArgs {
        tier: Tier::Basic,
        months: 1,
        auto_renew: false,
        method: None,
    };
    let anon: Result<Purchase, Error> = e.update(anonymous, "subscribe", args.clone());
    assert_eq!(anon.unwrap_err(), Error::Anonymous);
    let anon: Result<DepositCredit, Error> = e.update(anonymous, "verify_deposit", 1u64);
    assert_eq!(anon.unwrap_err(), Error::Anonymous);
    let anon: Result<ohms_types::Payout, Error> = e.update(
        anonymous,
        "withdraw",
        WithdrawArgs {
            amount_e8s: 1_000_000,
            to: Account {
                owner: alice(),
                subaccount: None,
            },
        },
    );
    assert_eq!(anon.unwrap_err(), Error::Anonymous);
    let economics = e.economics;
    let r: Result<Subscription, Error> =
        e.suite
            .update(economics, anonymous, "cancel_subscription", ());
    assert_eq!(r.unwrap_err(), Error::Anonymous);
    let r: Result<Subscription, Error> = e.update(anonymous, "set_auto_renew", false);
    assert_eq!(r.unwrap_err(), Error::Anonymous);
    for method in [
        "my_subscription",
        "my_balances",
        "deposit_account",
        "my_usage",
    ] {
        let bytes = e
            .suite
            .env
            .query_call(
                economics,
                anonymous,
                method,
                candid::encode_args(()).unwrap(),
            )
            .unwrap();
        let reply: Result<candid::Reserved, Error> = candid::decode_one(&bytes).unwrap();
        assert_eq!(reply.unwrap_err(), Error::Anonymous, "{method}");
    }
    // Administrators' methods refuse a plain user.
    let mut basic = e.tier(Tier::Basic);
    basic.price_e8s_per_month = 1;
    let r: Result<(), Error> = e.update(bob(), "set_tier", basic);
    assert!(matches!(r, Err(Error::NotAuthorized { .. })));
    let config: ohms_types::EconomicsConfig = e.query0(bob(), "economics_config");
    let r: Result<(), Error> = e.update(bob(), "set_settings", config.settings);
    assert!(matches!(r, Err(Error::NotAuthorized { .. })));
    let anon: Result<Purchase, Error> = e.update(
        anonymous,
        "upgrade_subscription",
        ohms_types::UpgradeSubscriptionArgs {
            tier: Tier::Pro,
            method: None,
        },
    );
    assert_eq!(anon.unwrap_err(), Error::Anonymous);
    let r: Result<ohms_types::Payout, Error> = e.update(
        bob(),
        "withdraw_treasury",
        WithdrawArgs {
            amount_e8s: 1_000_000,
            to: Account {
                owner: bob(),
                subaccount: None,
            },
        },
    );
    assert!(matches!(r, Err(Error::NotAuthorized { .. })));
    let r: Result<Receipt, Error> = e.update(bob(), "refund", 1u64);
    assert!(matches!(r, Err(Error::NotAuthorized { .. })));
    let r: Result<Analytics, Error> = e.query0(bob(), "analytics");
    assert!(matches!(r, Err(Error::NotAuthorized { .. })));
    let r: Result<Paged<PendingSettlement>, Error> =
        e.query(bob(), "pending_settlements", Page::default());
    assert!(matches!(r, Err(Error::NotAuthorized { .. })));
    let economics_id = e.economics;
    let r: Result<(), Error> = e.suite.update(
        economics_id,
        bob(),
        "register_agent_canister",
        (economics_id, bob()),
    );
    assert!(matches!(r, Err(Error::NotAuthorized { .. })));
    assert_eq!(snapshot(&mut e), before);
    assert_eq!(e.receipts(alice()).len(), 1);

    // An administrator's refund moves the money back once, audited.
    let refunded: Result<Receipt, Error> = e.update(controller(), "refund", 1u64);
    assert!(matches!(
        refunded.unwrap().status,
        PaymentStatus::Refunded {
            block_index: Some(_)
        }
    ));
    let again: Result<Receipt, Error> = e.update(controller(), "refund", 1u64);
    assert!(matches!(again, Err(Error::InvalidState { .. })));
}

#[test]
fn state_and_timers_survive_upgrades() {
    let mut e = Econ::new();
    let relay = relay_as_factory(&mut e);
    e.approve(alice(), 10 * BASIC_PRICE);
    e.subscribe(alice(), Tier::Basic, 1, None).unwrap();
    let mine = deposit_account(&mut e, bob());
    let block = e.transfer(
        bob(),
        IcrcAccount {
            owner: mine.account.owner,
            subaccount: mine.account.subaccount,
        },
        BASIC_PRICE,
    );
    verify(&mut e, bob(), block).unwrap();
    let grant = e.reserve(relay, alice(), inference(5));
    let reservation = reserved(grant);
    let reserve_commit_start = e.instructions();
    let committed = e.commit(relay, reservation.id, tokens(3, 2));
    committed.unwrap();
    let _ = reserve_commit_start;
    let snapshot = |e: &mut Econ| {
        let analytics: Result<Analytics, Error> = e.query0(controller(), "analytics");
        let bob_balances: Result<Balances, Error> = e.query0(bob(), "my_balances");
        let usage: Result<ohms_types::UsageSummary, Error> = e.query0(alice(), "my_usage");
        (
            analytics.unwrap(),
            bob_balances.unwrap(),
            usage.unwrap(),
            e.receipts(alice()),
            e.subscription(alice()),
        )
    };
    let before = snapshot(&mut e);
    e.upgrade(None);
    assert_eq!(snapshot(&mut e), before);
    e.upgrade(None);
    assert_eq!(snapshot(&mut e), before);
    // The credited block stays credited; the timer still sweeps and renews after the upgrades.
    assert!(matches!(
        verify(&mut e, bob(), block),
        Err(Error::Payment(PaymentError::AlreadyCredited { .. }))
    ));
    e.advance(30 * DAY);
    assert_eq!(e.receipts(alice()).len(), 2, "renewed after the upgrades");
    assert_eq!(
        e.balance(mine.account.owner, mine.account.subaccount),
        0,
        "swept"
    );
}

/// The benchmark figures (`scripts/bench economics`): instructions economics' own code executes
/// (the ledger's and the relay's work excluded), and authorize's throughput on this runtime.
#[test]
fn benchmark_figures() {
    let mut e = Econ::new();
    let relay = relay_as_factory(&mut e);
    let economics = e.economics;
    let own = |e: &Econ| e.suite.env.canister_instructions(economics);
    if own(&e).is_none() {
        eprintln!("skipped: this backend does not count instructions per canister");
        return;
    }
    let bench = |name: &str, instructions: u64| {
        println!("BENCH economics.instructions.{name} {instructions}")
    };

    // Steady state: each path runs once before it is measured (a canister instance encodes a
    // reply type's Candid header once, on first use).
    for who in [user("carol"), alice()] {
        e.approve(who, 10 * BASIC_PRICE);
        let before = own(&e).unwrap();
        e.subscribe(who, Tier::Basic, 1, None).unwrap();
        if who == alice() {
            bench("subscribe", own(&e).unwrap() - before);
        }
    }
    for who in [user("dave"), bob()] {
        let account = deposit_account(&mut e, who);
        let to = IcrcAccount {
            owner: account.account.owner,
            subaccount: account.account.subaccount,
        };
        let block = e.transfer(who, to, BASIC_PRICE);
        let before = own(&e).unwrap();
        verify(&mut e, who, block).unwrap();
        if who == bob() {
            bench("verify_deposit", own(&e).unwrap() - before);
        }
    }

    let before = own(&e).unwrap();
    let decision: Result<Decision, Error> = e.authorize(alice(), alice(), inference(100));
    assert!(matches!(decision.unwrap(), Decision::Allow { .. }));
    let authorize = own(&e).unwrap() - before;
    bench("authorize", authorize);

    for round in 0..2 {
        let before = own(&e).unwrap();
        let grant = e.reserve(relay, alice(), inference(100));
        let r = reserved(grant);
        let committed = e.commit(relay, r.id, tokens(50, 50));
        committed.unwrap();
        if round == 1 {
            bench("reserve_commit", own(&e).unwrap() - before);
        }
    }

    // Throughput of authorize through the runtime (wall clock, this machine).
    let start = std::time::Instant::now();
    let n = 2_000;
    for _ in 0..n {
        let _: Result<Decision, Error> = e.authorize(alice(), alice(), task(1));
    }
    let per_sec = n as f64 / start.elapsed().as_secs_f64();
    println!("BENCH economics.authorize_per_sec_local {per_sec:.0}");
    assert!(authorize > 0);
}

#[test]
fn a_pause_refuses_payments_and_reservations_and_metrics_show_the_books() {
    let mut e = Econ::new();
    let relay = relay_as_factory(&mut e);
    e.approve(alice(), 10 * BASIC_PRICE);
    e.subscribe(alice(), Tier::Basic, 1, None).unwrap();
    let paused: Result<(), Error> =
        e.update(controller(), "pause", "ledger maintenance".to_string());
    paused.unwrap();
    let before = e.balance(alice(), None);
    let refused = e.subscribe(alice(), Tier::Basic, 1, None).unwrap_err();
    assert!(matches!(refused, Error::Paused { .. }), "{refused:?}");
    let grant = e.reserve(relay, alice(), task(1));
    assert!(matches!(
        grant.unwrap(),
        Grant::Denied {
            reason: DenyReason::Paused,
            ..
        }
    ));
    // Every other state-changing method of a caller is refused too.
    let economics = e.economics;
    let paused_reply = |bytes: Vec<u8>| {
        let reply: Result<candid::Reserved, Error> = candid::decode_one(&bytes).unwrap();
        matches!(reply, Err(Error::Paused { .. }))
    };
    let calls: Vec<(&str, Vec<u8>)> = vec![
        (
            "upgrade_subscription",
            encode(&ohms_types::UpgradeSubscriptionArgs {
                tier: Tier::Pro,
                method: None,
            }),
        ),
        ("cancel_subscription", candid::encode_args(()).unwrap()),
        ("set_auto_renew", encode(&false)),
        ("verify_deposit", encode(&1u64)),
        (
            "withdraw",
            encode(&WithdrawArgs {
                amount_e8s: 1_000_000,
                to: Account {
                    owner: alice(),
                    subaccount: None,
                },
            }),
        ),
    ];
    for (method, arg) in calls {
        let bytes = e
            .suite
            .env
            .update_call(economics, alice(), method, arg)
            .unwrap();
        assert!(paused_reply(bytes), "{method} ran while paused");
    }
    assert_eq!(e.balance(alice(), None), before);
    assert_eq!(e.receipts(alice()).len(), 1);
    let resumed: Result<(), Error> = e.suite.update(e.economics, controller(), "unpause", ());
    resumed.unwrap();
    e.subscribe(alice(), Tier::Basic, 1, None).unwrap();

    let request = ohms_types::HttpRequest {
        method: "GET".into(),
        url: "/metrics".into(),
        headers: vec![],
        body: vec![],
    };
    let response: ohms_types::HttpResponse = e.query(controller(), "http_request", request);
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    for line in [
        "economics_subscriptions{state=\"active\"} 1",
        "economics_subscriptions_usable{tier=\"basic\"} 1",
        &format!("economics_revenue_e8s {}", 2 * BASIC_PRICE),
        "economics_open_reservations 0",
        "economics_pending_settlements 0",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line} missing from\n{text}"
        );
    }
}

#[test]
fn upgrade_is_prorated_cancel_ends_without_renewal_and_the_treasury_withdraws() {
    let mut e = Econ::new();
    e.approve(alice(), 100 * BASIC_PRICE);
    let basic = e.subscribe(alice(), Tier::Basic, 1, None).unwrap();
    // Halfway through the month, to Pro (5 ICP a month): half of the 4 ICP difference.
    e.advance(15 * DAY);
    let before = e.balance(alice(), None);
    let upgraded: Result<Purchase, Error> = e.update(
        alice(),
        "upgrade_subscription",
        ohms_types::UpgradeSubscriptionArgs {
            tier: Tier::Pro,
            method: None,
        },
    );
    let upgraded = upgraded.unwrap();
    assert_eq!(upgraded.subscription.tier, Tier::Pro);
    assert_eq!(
        upgraded.subscription.current_period_end, basic.subscription.current_period_end,
        "the period is unchanged"
    );
    let left = basic.subscription.current_period_end - upgraded.receipt.created_at;
    let expected = (4 * BASIC_PRICE as u128 * left as u128).div_ceil(30 * DAY.as_nanos()) as u64;
    assert_eq!(upgraded.receipt.amount_e8s, expected);
    assert_eq!(e.balance(alice(), None), before - expected - LEDGER_FEE_E8S);
    // A downgrade is not an upgrade.
    let down: Result<Purchase, Error> = e.update(
        alice(),
        "upgrade_subscription",
        ohms_types::UpgradeSubscriptionArgs {
            tier: Tier::Basic,
            method: None,
        },
    );
    assert!(
        matches!(down, Err(Error::InvalidArgument { .. })),
        "{down:?}"
    );

    // Cancelled: it works to the period end, then expires without a renewal charge.
    let economics = e.economics;
    let cancelled: Result<Subscription, Error> =
        e.suite
            .update(economics, alice(), "cancel_subscription", ());
    assert_eq!(cancelled.unwrap().state, SubscriptionState::Cancelled);
    let decision: Result<Decision, Error> = e.authorize(alice(), alice(), Action::UploadModel);
    assert!(
        matches!(decision.unwrap(), Decision::Allow { .. }),
        "Pro may upload models"
    );
    let before = e.balance(alice(), None);
    e.advance(16 * DAY);
    assert_eq!(
        e.subscription(alice()).unwrap().state,
        SubscriptionState::Expired
    );
    assert_eq!(
        e.balance(alice(), None),
        before,
        "no renewal after a cancel"
    );

    // The platform's share leaves with an administrator's withdrawal, audited.
    let analytics: Result<Analytics, Error> = e.query0(controller(), "analytics");
    let treasury = analytics.unwrap().treasury_e8s;
    assert!(treasury > LEDGER_FEE_E8S);
    let carol = user("carol");
    let carol_before = e.balance(carol, None);
    let payout: Result<ohms_types::Payout, Error> = e.update(
        controller(),
        "withdraw_treasury",
        WithdrawArgs {
            amount_e8s: treasury,
            to: Account {
                owner: carol,
                subaccount: None,
            },
        },
    );
    assert!(matches!(
        payout.unwrap().status,
        ohms_types::PayoutStatus::Completed { .. }
    ));
    assert_eq!(
        e.balance(carol, None),
        carol_before + treasury - LEDGER_FEE_E8S
    );
    let analytics: Result<Analytics, Error> = e.query0(controller(), "analytics");
    assert_eq!(analytics.unwrap().treasury_e8s, 0);
    let audit: Result<Paged<ohms_types::AuditEntry>, Error> =
        e.query(controller(), "audit_log", Page::default());
    assert!(
        audit
            .unwrap()
            .items
            .iter()
            .any(|entry| entry.method == "withdraw_treasury")
    );
}

#[test]
fn reservations_expire_and_registered_agent_canisters_report_usage() {
    let mut e = Econ::new();
    let factory = relay_as_factory(&mut e);
    e.approve(alice(), 10 * BASIC_PRICE);
    e.subscribe(alice(), Tier::Basic, 1, None).unwrap();
    let tokens_left = |e: &mut Econ| {
        let d: Result<Decision, Error> = e.authorize(alice(), alice(), task(1));
        match d.unwrap() {
            Decision::Allow { limits } => limits.tokens_left,
            other => panic!("{other:?}"),
        }
    };
    let held = e.reserve(factory, alice(), inference(30_000));
    assert!(matches!(held.unwrap(), Grant::Reserved(_)));
    assert_eq!(tokens_left(&mut e), 70_000, "held by the reservation");
    // Nobody commits: the timer releases it after its lifetime (600 s).
    e.advance(Duration::from_secs(661));
    assert_eq!(tokens_left(&mut e), 100_000);

    // An agent canister is trusted only once the factory registered it.
    let agent = e.suite.install_fixture("relay");
    let report = UsageReport {
        tokens_in: 100,
        tokens_out: 400,
        agents_created: 0,
        model: None,
        agent: Some("agent-7".into()),
    };
    let refused = e.report_usage(agent, alice(), report.clone());
    assert!(matches!(refused, Err(Error::NotAuthorized { .. })));
    let registered: Result<(), Error> =
        relayed(&mut e, factory, "register_agent_canister", (agent, alice()));
    registered.unwrap();
    // It acts for its owner only.
    let for_bob = e.report_usage(agent, bob(), report.clone());
    assert!(
        matches!(for_bob, Err(Error::NotAuthorized { .. })),
        "{for_bob:?}"
    );
    let removed: Result<(), Error> = relayed(&mut e, agent, "agents_removed", (alice(), 1u32));
    assert!(
        matches!(removed, Err(Error::NotAuthorized { .. })),
        "siblings only"
    );
    let reported = e.report_usage(agent, alice(), report);
    reported.unwrap();
    let usage: Result<ohms_types::UsageSummary, Error> = e.query0(alice(), "my_usage");
    let usage = usage.unwrap();
    assert_eq!(
        (
            usage.usage.tokens_in,
            usage.usage.tokens_out,
            usage.usage.calls
        ),
        (100, 400, 1)
    );
    assert_eq!(usage.limits.unwrap().tokens_left, 100_000 - 500);
    // 500 tokens of 100,000 at 1 ICP a month: 1,000 e8s a token.
    assert_eq!(usage.cost_estimate_e8s, 500_000);
}

#[test]
fn an_outcome_past_the_deduplication_window_waits_for_an_administrator() {
    let mut e = Econ::new();
    e.approve(alice(), 10 * BASIC_PRICE);
    let before = e.balance(alice(), None);
    if !e.fault_on_next_transfer_from(FaultKind::LoseReply) {
        return;
    }
    let Err(Error::Payment(PaymentError::Pending { payment_id })) =
        e.subscribe(alice(), Tier::Basic, 1, None)
    else {
        panic!("the lost reply leaves the payment pending")
    };
    // The ledger stops: the timer's repeats fail as calls, which proves nothing about the
    // first attempt (it went through), so the payment stays pending instead of failing.
    let ledger = e.ledger;
    e.suite
        .env
        .stop_canister(ledger, Some(controller()))
        .unwrap();
    e.advance(Duration::from_secs(120));
    assert_eq!(e.pending().len(), 1);
    // A day later the ledger is back, but a repeat could no longer be deduplicated: the entry
    // waits for an administrator and blocks nobody.
    e.advance(DAY);
    e.suite
        .env
        .start_canister(ledger, Some(controller()))
        .unwrap();
    e.advance(Duration::from_secs(120));
    assert_eq!(e.pending().len(), 1, "not repeated past the window");
    assert_eq!(
        e.balance(alice(), None),
        before - BASIC_PRICE - LEDGER_FEE_E8S
    );
    // An administrator looks the transfer up on the ledger (its last block) and records it.
    let chain: ic_ledger_types::QueryBlocksResponse = e.suite.query(
        ledger,
        alice(),
        "query_blocks",
        (ic_ledger_types::GetBlocksArgs {
            start: 0,
            length: 0,
        },),
    );
    let block = chain.chain_length - 1;
    let not_admin: Result<(), Error> = {
        let economics = e.economics;
        e.suite.update(
            economics,
            alice(),
            "resolve_settlement",
            (ohms_types::SettlementRef::Payment(payment_id), Some(block)),
        )
    };
    assert!(matches!(not_admin, Err(Error::NotAuthorized { .. })));
    let economics = e.economics;
    let resolved: Result<(), Error> = e.suite.update(
        economics,
        controller(),
        "resolve_settlement",
        (ohms_types::SettlementRef::Payment(payment_id), Some(block)),
    );
    resolved.unwrap();
    assert!(e.pending().is_empty());
    let receipts = e.receipts(alice());
    assert_eq!(
        (receipts[0].status.clone(), receipts[0].block_index),
        (PaymentStatus::Completed, Some(block))
    );
    assert_eq!(
        e.subscription(alice()).unwrap().state,
        SubscriptionState::Active
    );
    let audit: Result<Paged<ohms_types::AuditEntry>, Error> =
        e.query(controller(), "audit_log", Page::default());
    assert!(
        audit
            .unwrap()
            .items
            .iter()
            .any(|entry| entry.method == "resolve_settlement")
    );
}

#[test]
fn a_deposit_in_an_archived_block_is_read_from_the_archive() {
    // The ledger keeps at most 8 blocks and archives the oldest 4 each time.
    let archiving = icp_ledger_fixture::Archiving {
        trigger_threshold: 8,
        num_blocks_to_archive: 4,
        controller: controller(),
        cycles_for_archive_creation: 10_000_000_000_000,
    };
    let mut e = Econ::on(Suite::deploy_with_archiving(Some(archiving)));
    let mine = deposit_account(&mut e, alice());
    let to_mine = IcrcAccount {
        owner: mine.account.owner,
        subaccount: mine.account.subaccount,
    };
    let block = e.transfer(alice(), to_mine, 2 * BASIC_PRICE);
    let carol = IcrcAccount {
        owner: user("carol"),
        subaccount: None,
    };
    for _ in 0..12 {
        e.transfer(bob(), carol, 1_000_000);
    }
    for _ in 0..20 {
        e.suite.env.tick();
    }
    // The ledger itself no longer holds the block: it points to an archive.
    let ledger = e.ledger;
    let response: ic_ledger_types::QueryBlocksResponse = e.suite.query(
        ledger,
        alice(),
        "query_blocks",
        (ic_ledger_types::GetBlocksArgs {
            start: block,
            length: 1,
        },),
    );
    assert!(
        response.first_block_index > block,
        "block {block} is archived"
    );
    assert!(response.blocks.is_empty());
    assert_eq!(response.archived_blocks.len(), 1);
    // Economics follows the archive's callback, checks the block and credits it once.
    let credit = verify(&mut e, alice(), block).unwrap();
    assert_eq!(
        (credit.amount_e8s, credit.credit_e8s),
        (2 * BASIC_PRICE, 2 * BASIC_PRICE)
    );
    assert!(matches!(
        verify(&mut e, alice(), block),
        Err(Error::Payment(PaymentError::AlreadyCredited { .. }))
    ));
    // A transfer to someone else, archived too, is still not Alice's.
    assert!(matches!(
        verify(&mut e, alice(), block + 1),
        Err(Error::Payment(PaymentError::NotYours { .. }))
    ));
}
