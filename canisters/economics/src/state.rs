//! Economics' stable state, reached only through `read_state` / `mutate_state`.

use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::{StableBTreeMap, StableCell};
use ohms_ops::Cbor;
use ohms_types::{
    Account, EconomicsSettings, MonthRevenue, Payout, Receipt, Reservation, Subscription,
    TierConfig, UsageCounters,
};
use serde::{Deserialize, Serialize};

use crate::memory::{self, Memory};

/// The settings cell: what install fixed, what administrators set, counters and totals.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub ledger: Principal,
    pub settings: EconomicsSettings,
    pub next_payment_id: u64,
    pub next_payout_id: u64,
    pub next_reservation_id: u64,
    /// The platform's withdrawable share (e8s).
    pub treasury_e8s: u64,
    /// Every completed payment, ever (e8s).
    pub revenue_e8s: u64,
    /// Ledger fees economics paid itself (deposit sweeps).
    pub fees_paid_e8s: u64,
}

impl Stored {
    pub fn new(ledger: Principal, ledger_fee_e8s: u64) -> Self {
        Self {
            ledger,
            settings: crate::tiers::default_settings(ledger_fee_e8s),
            next_payment_id: 1,
            next_payout_id: 1,
            next_reservation_id: 1,
            treasury_e8s: 0,
            revenue_e8s: 0,
            fees_paid_e8s: 0,
        }
    }
}

/// A journaled payment: the receipt its owner sees and what the ledger call needs to be
/// repeated identically (so the ledger deduplicates a retry).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PaymentEntry {
    pub receipt: Receipt,
    /// `created_at_time` of the ledger transaction.
    pub created_at_time: u64,
    /// The fee offered with it.
    pub fee_e8s: u64,
    /// Whether the bought subscription renews itself.
    pub auto_renew: bool,
    /// The platform's share booked at completion (the rest went to the month's pool).
    #[serde(default)]
    pub platform_e8s: u64,
    /// The month the payment was booked in (its completion's).
    #[serde(default)]
    pub revenue_month: u32,
}

/// A journaled payout (`icrc1_transfer` out of economics).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PayoutEntry {
    pub payout: Payout,
    pub from_subaccount: Option<[u8; 32]>,
    pub created_at_time: u64,
    /// A refund's part taken back from a month's unsplit creators' pool (month, e8s); the rest
    /// came from the treasury.
    #[serde(default)]
    pub pool_debit: Option<(u32, u64)>,
}

/// The two journals whose entries can be pending, as the pending index's first key part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    Payments = 0,
    Payouts = 1,
}

/// A creator's revenue.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Earnings {
    /// Withdrawable now.
    pub balance_e8s: u64,
    /// Credited by pool splits, ever.
    pub total_e8s: u64,
}

/// Quota held by a principal's open reservations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub tokens: u64,
    pub agent_creations: u32,
    pub reservations: u32,
}

/// A sliding-window request counter: the count of the current fixed hour and of the one
/// before, weighted by how much of the previous hour the sliding hour still covers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateWindow {
    /// Start of the current fixed hour (nanos).
    pub window_start: u64,
    pub current: u32,
    pub previous: u32,
}

pub struct State {
    pub stored: StableCell<Cbor<Stored>, Memory>,
    pub tiers: StableBTreeMap<u8, Cbor<TierConfig>, Memory>,
    pub subscriptions: StableBTreeMap<Principal, Cbor<Subscription>, Memory>,
    pub due: StableBTreeMap<(u64, Principal), (), Memory>,
    pub payments: StableBTreeMap<u64, Cbor<PaymentEntry>, Memory>,
    pub owner_payments: StableBTreeMap<(Principal, u64), (), Memory>,
    pub pending: StableBTreeMap<(u8, u64), Principal, Memory>,
    pub payouts: StableBTreeMap<u64, Cbor<PayoutEntry>, Memory>,
    pub credits: StableBTreeMap<Principal, u64, Memory>,
    pub credited_blocks: StableBTreeMap<u64, Principal, Memory>,
    pub sweeps: StableBTreeMap<Principal, u64, Memory>,
    pub earnings: StableBTreeMap<Principal, Cbor<Earnings>, Memory>,
    pub reservations: StableBTreeMap<u64, Cbor<Reservation>, Memory>,
    pub held: StableBTreeMap<Principal, Cbor<Held>, Memory>,
    pub usage: StableBTreeMap<Vec<u8>, Cbor<UsageCounters>, Memory>,
    pub rate: StableBTreeMap<Principal, Cbor<RateWindow>, Memory>,
    pub agents: StableBTreeMap<Principal, u32, Memory>,
    pub revenue: StableBTreeMap<u32, Cbor<MonthRevenue>, Memory>,
    pub agent_canisters: StableBTreeMap<Principal, Principal, Memory>,
    pub model_creators: StableBTreeMap<String, Principal, Memory>,
}

impl State {
    fn init() -> Self {
        use memory::*;
        Self {
            stored: StableCell::init(
                get(SETTINGS_MEMORY_ID),
                Cbor(Stored::new(Principal::management_canister(), 0)),
            ),
            tiers: StableBTreeMap::init(get(TIERS_MEMORY_ID)),
            subscriptions: StableBTreeMap::init(get(SUBSCRIPTIONS_MEMORY_ID)),
            due: StableBTreeMap::init(get(DUE_MEMORY_ID)),
            payments: StableBTreeMap::init(get(PAYMENTS_MEMORY_ID)),
            owner_payments: StableBTreeMap::init(get(OWNER_PAYMENTS_MEMORY_ID)),
            pending: StableBTreeMap::init(get(PENDING_MEMORY_ID)),
            payouts: StableBTreeMap::init(get(PAYOUTS_MEMORY_ID)),
            credits: StableBTreeMap::init(get(CREDITS_MEMORY_ID)),
            credited_blocks: StableBTreeMap::init(get(CREDITED_BLOCKS_MEMORY_ID)),
            sweeps: StableBTreeMap::init(get(SWEEPS_MEMORY_ID)),
            earnings: StableBTreeMap::init(get(EARNINGS_MEMORY_ID)),
            reservations: StableBTreeMap::init(get(RESERVATIONS_MEMORY_ID)),
            held: StableBTreeMap::init(get(HELD_MEMORY_ID)),
            usage: StableBTreeMap::init(get(USAGE_MEMORY_ID)),
            rate: StableBTreeMap::init(get(RATE_MEMORY_ID)),
            agents: StableBTreeMap::init(get(AGENTS_MEMORY_ID)),
            revenue: StableBTreeMap::init(get(REVENUE_MEMORY_ID)),
            agent_canisters: StableBTreeMap::init(get(AGENT_CANISTERS_MEMORY_ID)),
            model_creators: StableBTreeMap::init(get(MODEL_CREATORS_MEMORY_ID)),
        }
    }

    pub fn stored(&self) -> Stored {
        self.stored.get().0.clone()
    }

    pub fn update_stored(&mut self, f: impl FnOnce(&mut Stored)) {
        let mut stored = self.stored();
        f(&mut stored);
        self.stored.set(Cbor(stored));
    }

    pub fn settings(&self) -> EconomicsSettings {
        self.stored.get().0.settings.clone()
    }

    /// The account payments go to and payouts come from: economics' own main account.
    pub fn treasury(canister: Principal) -> Account {
        Account {
            owner: canister,
            subaccount: None,
        }
    }

    pub fn subscription(&self, owner: &Principal) -> Option<Subscription> {
        self.subscriptions.get(owner).map(|s| s.0)
    }

    /// Writes a subscription and keeps the due index (when the timer must look at it next) in
    /// step.
    pub fn put_subscription(&mut self, subscription: Subscription) {
        let owner = subscription.owner;
        if let Some(old) = self.subscription(&owner)
            && let Some(due) = crate::subscriptions::due_at(&old)
        {
            self.due.remove(&(due, owner));
        }
        if let Some(due) = crate::subscriptions::due_at(&subscription) {
            self.due.insert((due, owner), ());
        }
        self.subscriptions.insert(owner, Cbor(subscription));
    }

    pub fn payment(&self, id: u64) -> Option<PaymentEntry> {
        self.payments.get(&id).map(|p| p.0)
    }

    /// Writes a payment and keeps the owner and pending indexes in step.
    pub fn put_payment(&mut self, entry: PaymentEntry) {
        let id = entry.receipt.payment_id;
        let owner = entry.receipt.owner;
        self.owner_payments.insert((owner, id), ());
        let key = (Journal::Payments as u8, id);
        if entry.receipt.status == ohms_types::PaymentStatus::Pending {
            self.pending.insert(key, owner);
        } else {
            self.pending.remove(&key);
        }
        self.payments.insert(id, Cbor(entry));
    }

    pub fn payout(&self, id: u64) -> Option<PayoutEntry> {
        self.payouts.get(&id).map(|p| p.0)
    }

    pub fn put_payout(&mut self, entry: PayoutEntry) {
        let id = entry.payout.id;
        let key = (Journal::Payouts as u8, id);
        if entry.payout.status == ohms_types::PayoutStatus::Pending {
            self.pending.insert(key, entry.payout.owner);
        } else {
            self.pending.remove(&key);
        }
        self.payouts.insert(id, Cbor(entry));
    }

    pub fn credit(&self, owner: &Principal) -> u64 {
        self.credits.get(owner).unwrap_or(0)
    }

    pub fn set_credit(&mut self, owner: Principal, e8s: u64) {
        if e8s == 0 {
            self.credits.remove(&owner);
        } else {
            self.credits.insert(owner, e8s);
        }
    }

    pub fn earnings(&self, owner: &Principal) -> Earnings {
        self.earnings.get(owner).map(|e| e.0).unwrap_or_default()
    }

    pub fn held(&self, owner: &Principal) -> Held {
        self.held.get(owner).map(|h| h.0).unwrap_or_default()
    }

    pub fn set_held(&mut self, owner: Principal, held: Held) {
        if held == Held::default() {
            self.held.remove(&owner);
        } else {
            self.held.insert(owner, Cbor(held));
        }
    }

    pub fn agents_of(&self, owner: &Principal) -> u32 {
        self.agents.get(owner).unwrap_or(0)
    }

    pub fn month_revenue(&self, month: u32) -> MonthRevenue {
        self.revenue
            .get(&month)
            .map(|r| r.0)
            .unwrap_or_else(|| MonthRevenue {
                month: ohms_types::calendar::month_label(month),
                ..MonthRevenue::default()
            })
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

pub fn read_state<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(s.borrow_mut().get_or_insert_with(State::init)))
}

pub fn mutate_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(s.borrow_mut().get_or_insert_with(State::init)))
}
