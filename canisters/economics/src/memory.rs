//! Stable memory layout of the economics canister (virtual memories of the one `MemoryManager`,
//! which `ohms_ops::memory` owns):
//!
//! ```text
//!   id 0 .. 9   the operations layer: admins, audit log, pause and siblings (see ohms_ops::memory)
//!   id 10  SETTINGS_MEMORY_ID        Cell<Cbor<Stored>>               ledger, settings, id counters,
//!                                                                     treasury and revenue totals
//!   id 11  TIERS_MEMORY_ID           BTreeMap<u8 tier, Cbor<TierConfig>>
//!   id 12  SUBSCRIPTIONS_MEMORY_ID   BTreeMap<Principal, Cbor<Subscription>>
//!   id 13  DUE_MEMORY_ID             BTreeMap<(u64 due, Principal), ()>  when each subscription
//!                                                                     next needs the timer
//!   id 14  PAYMENTS_MEMORY_ID        BTreeMap<u64 id, Cbor<PaymentEntry>>  the payment journal
//!   id 15  OWNER_PAYMENTS_MEMORY_ID  BTreeMap<(Principal, u64 id), ()>  receipts by owner
//!   id 16  PENDING_MEMORY_ID         BTreeMap<(u8 kind, u64 id), Principal>  unsettled payments
//!                                                                     and payouts, with owner
//!   id 17  PAYOUTS_MEMORY_ID         BTreeMap<u64 id, Cbor<PayoutEntry>>  the payout journal
//!   id 18  CREDITS_MEMORY_ID         BTreeMap<Principal, u64>         deposit credit (e8s)
//!   id 19  CREDITED_BLOCKS_MEMORY_ID BTreeMap<u64 block, Principal>   deposit blocks credited
//!   id 20  SWEEPS_MEMORY_ID          BTreeMap<Principal, u64>         credited e8s still in the
//!                                                                     deposit subaccount
//!   id 21  EARNINGS_MEMORY_ID        BTreeMap<Principal, Cbor<Earnings>>  creators' balances
//!   id 22  RESERVATIONS_MEMORY_ID    BTreeMap<u64 id, Cbor<Reservation>>
//!   id 23  HELD_MEMORY_ID            BTreeMap<Principal, Cbor<Held>>  quota held by reservations
//!   id 24  USAGE_MEMORY_ID           BTreeMap<Vec<u8> key, Cbor<UsageCounters>>  per principal,
//!                                                                     agent and model, per month
//!   id 25  RATE_MEMORY_ID            BTreeMap<Principal, Cbor<RateWindow>>  requests per hour
//!   id 26  AGENTS_MEMORY_ID          BTreeMap<Principal, u32>         agents each principal has
//!   id 27  REVENUE_MEMORY_ID         BTreeMap<u32 month, Cbor<MonthRevenue>>
//!   id 28  AGENT_CANISTERS_MEMORY_ID BTreeMap<Principal, Principal>   agent canisters the
//!                                                                     factory registered, with
//!                                                                     their owners
//!   id 29  MODEL_CREATORS_MEMORY_ID  BTreeMap<String model id, Principal>  creators of metered
//!                                                                     models, as the repository
//!                                                                     records them (anonymous:
//!                                                                     the model is gone)
//! ```
//! A retired id is never reused: it stays listed here, marked "abandoned, do not use".

use ic_stable_structures::memory_manager::MemoryId;
pub use ohms_ops::memory::{Memory, get};

pub const SETTINGS_MEMORY_ID: MemoryId = MemoryId::new(10);
pub const TIERS_MEMORY_ID: MemoryId = MemoryId::new(11);
pub const SUBSCRIPTIONS_MEMORY_ID: MemoryId = MemoryId::new(12);
pub const DUE_MEMORY_ID: MemoryId = MemoryId::new(13);
pub const PAYMENTS_MEMORY_ID: MemoryId = MemoryId::new(14);
pub const OWNER_PAYMENTS_MEMORY_ID: MemoryId = MemoryId::new(15);
pub const PENDING_MEMORY_ID: MemoryId = MemoryId::new(16);
pub const PAYOUTS_MEMORY_ID: MemoryId = MemoryId::new(17);
pub const CREDITS_MEMORY_ID: MemoryId = MemoryId::new(18);
pub const CREDITED_BLOCKS_MEMORY_ID: MemoryId = MemoryId::new(19);
pub const SWEEPS_MEMORY_ID: MemoryId = MemoryId::new(20);
pub const EARNINGS_MEMORY_ID: MemoryId = MemoryId::new(21);
pub const RESERVATIONS_MEMORY_ID: MemoryId = MemoryId::new(22);
pub const HELD_MEMORY_ID: MemoryId = MemoryId::new(23);
pub const USAGE_MEMORY_ID: MemoryId = MemoryId::new(24);
pub const RATE_MEMORY_ID: MemoryId = MemoryId::new(25);
pub const AGENTS_MEMORY_ID: MemoryId = MemoryId::new(26);
pub const REVENUE_MEMORY_ID: MemoryId = MemoryId::new(27);
pub const AGENT_CANISTERS_MEMORY_ID: MemoryId = MemoryId::new(28);
pub const MODEL_CREATORS_MEMORY_ID: MemoryId = MemoryId::new(29);
