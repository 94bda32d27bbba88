//! Types of the economics canister: tiers, subscriptions, payments, the policy engine, usage
//! metering and revenue.
//!
//! Amounts are ICP in e8s (`nat64`); times are IC nanoseconds since the Unix epoch. The same
//! types are stored (as CBOR) and sent (as Candid); stored fields added later get
//! `#[serde(default)]`.

use std::fmt;

use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

use crate::{InitArgs, InstallArgs, ModelId, Siblings, Tier, UpgradeArgs};

/// Economics' install argument: the common one plus the ledger it takes payments on.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum EconomicsInstallArgs {
    Init(EconomicsInitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EconomicsInitArgs {
    /// Administrators besides the controllers.
    pub admins: Vec<Principal>,
    pub siblings: Siblings,
    /// The ICP ledger (`ryjl3-tyaaa-aaaaa-aaaba-cai` on mainnet), fixed for the canister's life.
    pub ledger: Principal,
    /// The fee economics offers with each ledger transaction (the ICP ledger's is 10,000 e8s).
    pub ledger_fee_e8s: u64,
}

impl EconomicsInstallArgs {
    /// The common part, for the operations layer's lifecycle.
    pub fn common(&self) -> InstallArgs {
        match self {
            Self::Init(init) => InstallArgs::Init(InitArgs {
                admins: init.admins.clone(),
                siblings: init.siblings.clone(),
            }),
            Self::Upgrade(upgrade) => InstallArgs::Upgrade(upgrade.clone()),
        }
    }
}

/// How much of the inference budget a tier's requests get.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum InferencePriority {
    Standard,
    Priority,
    Premium,
}

/// A tier's price and limits. Administrators set them; `available = false` takes a tier off
/// sale (the free tier is off by default) without touching existing subscriptions.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TierConfig {
    pub tier: Tier,
    pub price_e8s_per_month: u64,
    pub max_agents: u32,
    pub agent_creations_per_month: u32,
    pub tokens_per_month: u64,
    pub requests_per_hour: u32,
    pub priority: InferencePriority,
    pub available: bool,
}

/// Economics' settings, admin-configurable (the ledger is fixed at install).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EconomicsSettings {
    /// The fee offered with each ledger transaction; it must be the ledger's, or the ledger
    /// refuses with BadFee.
    pub ledger_fee_e8s: u64,
    /// The platform's share of each payment in basis points (the rest goes to the creators' pool).
    pub platform_share_bps: u16,
    /// How long a subscription whose renewal failed keeps working before it expires.
    pub grace_period_seconds: u64,
    /// The smallest deposit credited.
    pub min_deposit_e8s: u64,
    /// Deposit blocks older than this are not credited.
    pub deposit_max_age_seconds: u64,
    /// An uncommitted reservation is released after this long.
    pub reservation_ttl_seconds: u64,
}

/// `economics_config`: the ledger and the settings.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EconomicsConfig {
    pub ledger: Principal,
    pub treasury: Account,
    pub settings: EconomicsSettings,
}

/// An ICRC-1 account.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct Account {
    pub owner: Principal,
    pub subaccount: Option<[u8; 32]>,
}

// ---------------------------------------------------------------------------------------------
// Subscriptions and payments

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Paid up to `current_period_end`.
    Active,
    /// A renewal failed; the subscription works until `grace_until`, then expires.
    Grace,
    /// Ended; the owner may subscribe again.
    Expired,
    /// Cancelled by the owner: works until `current_period_end`, then expires, no renewal.
    Cancelled,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub owner: Principal,
    pub tier: Tier,
    pub state: SubscriptionState,
    pub started_at: u64,
    pub current_period_start: u64,
    pub current_period_end: u64,
    pub grace_until: Option<u64>,
    pub auto_renew: bool,
    /// Payment id of the last payment for this subscription.
    pub last_payment: Option<u64>,
    /// Why the last renewal failed, while in grace.
    pub renewal_error: Option<String>,
}

/// How a payment is made.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentMethod {
    /// `icrc2_transfer_from` from the payer's own account under their approval.
    Icrc2,
    /// From credit bought by verified deposits.
    DepositCredit,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubscribeArgs {
    pub tier: Tier,
    /// 1 to 12.
    pub months: u32,
    pub auto_renew: bool,
    /// ICRC-2 when absent.
    pub method: Option<PaymentMethod>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradeSubscriptionArgs {
    /// A higher tier than the current one; the rest of the paid period moves to it.
    pub tier: Tier,
    pub method: Option<PaymentMethod>,
}

/// What a payment bought.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PaymentPurpose {
    Subscribe {
        tier: Tier,
        months: u32,
    },
    Renew {
        tier: Tier,
        months: u32,
    },
    /// The prorated difference for the rest of the current period.
    Upgrade {
        from: Tier,
        to: Tier,
    },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Journaled; the ledger call's outcome is not known yet (settled by a timer).
    Pending,
    Completed,
    Failed {
        reason: String,
    },
    /// Refunded by an administrator: to the payer's account at this block, or to their credit.
    Refunded {
        block_index: Option<u64>,
    },
}

/// A payment and what it bought, as its owner sees it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub payment_id: u64,
    pub owner: Principal,
    pub amount_e8s: u64,
    pub method: PaymentMethod,
    pub purpose: PaymentPurpose,
    pub status: PaymentStatus,
    /// The ledger block of the transfer (ICRC-2), absent for credit payments.
    pub block_index: Option<u64>,
    pub period_start: u64,
    pub period_end: u64,
    pub created_at: u64,
}

/// `subscribe` and `upgrade_subscription`'s answer.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    pub subscription: Subscription,
    pub receipt: Receipt,
}

/// Where a caller sends ICP to buy credit: economics' own account with a subaccount derived
/// from the caller.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DepositAccount {
    pub account: Account,
    /// The same account as a legacy account identifier (hex), for wallets without ICRC-1.
    pub account_id: String,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DepositCredit {
    pub block_index: u64,
    pub amount_e8s: u64,
    /// The caller's credit after this deposit.
    pub credit_e8s: u64,
}

/// A caller's money at economics.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Balances {
    /// Deposit credit, spent on subscriptions.
    pub credit_e8s: u64,
    /// Creator earnings, withdrawable.
    pub earnings_e8s: u64,
    pub subscription: Option<Subscription>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WithdrawArgs {
    /// Debited from the balance; the destination receives it less the ledger fee.
    pub amount_e8s: u64,
    pub to: Account,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PayoutKind {
    CreatorWithdrawal,
    TreasuryWithdrawal,
    Refund { payment_id: u64 },
    DepositSweep,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PayoutStatus {
    Pending,
    Completed { block_index: u64 },
    Failed { reason: String },
}

/// An `icrc1_transfer` out of economics, journaled before the call.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    pub id: u64,
    pub kind: PayoutKind,
    /// Whose balance was debited (the platform's own id for the treasury and sweeps).
    pub owner: Principal,
    pub to: Account,
    /// Debited; the destination receives `amount_e8s - fee_e8s`.
    pub amount_e8s: u64,
    pub fee_e8s: u64,
    pub status: PayoutStatus,
    pub created_at: u64,
}

/// Names a journal entry: a payment or a payout, by id.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettlementRef {
    Payment(u64),
    Payout(u64),
}

/// A payment or payout whose ledger outcome is not known yet.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PendingSettlement {
    Payment(Receipt),
    Payout(Payout),
}

// ---------------------------------------------------------------------------------------------
// Policy engine

/// What a principal asks to do.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateAgents {
        count: u32,
    },
    Inference {
        estimated_tokens: u64,
    },
    /// A coordinator task: its reservation holds the task's whole token budget (counted
    /// against the monthly quota) for as long as the task may run.
    SubmitTask {
        budget_tokens: u64,
    },
    /// An agent run of a coordinator task: its tokens are drawn from the budget the task's
    /// `SubmitTask` reservation holds, not from the monthly quota, and it does not count
    /// against the hourly rate.
    TaskInference {
        task_reservation: u64,
        estimated_tokens: u64,
    },
    UploadModel,
}

/// What the principal's tier allows now.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub tier: Tier,
    pub priority: InferencePriority,
    pub max_agents: u32,
    pub agents: u32,
    pub agent_creations_left: u32,
    pub tokens_left: u64,
    pub requests_left_this_hour: u32,
    /// Until when the subscription (or grace) lasts.
    pub valid_until: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum DenyReason {
    NoSubscription,
    SubscriptionExpired {
        since: u64,
    },
    QuotaExceeded {
        quota: String,
        limit: u64,
        used: u64,
        requested: u64,
    },
    RateLimited {
        limit: u32,
        retry_after_seconds: u64,
    },
    /// The action needs a higher tier.
    TierTooLow {
        required: Tier,
    },
    Paused,
}

impl DenyReason {
    /// The quota a `TaskInference` exceeds when its task's budget has fewer tokens left than
    /// it asks for (`limit`: the tokens left, `used`: 0).
    pub const TASK_BUDGET_QUOTA: &'static str = "task_budget";
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSubscription => write!(f, "no subscription: subscribe to a tier first"),
            Self::SubscriptionExpired { .. } => {
                write!(f, "the subscription has expired: renew or subscribe again")
            }
            Self::QuotaExceeded {
                quota,
                limit,
                requested,
                ..
            } if quota == Self::TASK_BUDGET_QUOTA => write!(
                f,
                "the task's budget has {limit} tokens left; {requested} requested"
            ),
            Self::QuotaExceeded {
                quota,
                limit,
                used,
                requested,
            } => write!(
                f,
                "`{quota}` allows {limit} this month; {used} used, {requested} more requested"
            ),
            Self::RateLimited {
                limit,
                retry_after_seconds,
            } => write!(
                f,
                "at most {limit} requests an hour; try again in {retry_after_seconds} s"
            ),
            Self::TierTooLow { required } => {
                write!(f, "this needs the {required:?} tier or higher")
            }
            Self::Paused => write!(f, "economics is paused by an administrator"),
        }
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow { limits: Limits },
    Deny { reason: DenyReason, message: String },
}

impl Decision {
    pub fn deny(reason: DenyReason) -> Self {
        Self::Deny {
            message: reason.to_string(),
            reason,
        }
    }
}

/// Quota held for a principal's action until it is committed, released or expires.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub id: u64,
    pub principal: Principal,
    pub action: Action,
    /// The sibling canister that holds it (only it may commit or release it).
    pub holder: Principal,
    pub limits: Limits,
    pub expires_at: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    Reserved(Reservation),
    Denied { reason: DenyReason, message: String },
}

/// What an action used, as the sibling that ran it reports.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UsageReport {
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub agents_created: u32,
    /// The model that ran the inference (economics learns its creator from the repository).
    pub model: Option<ModelId>,
    /// The agent that ran it.
    pub agent: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Metering and analytics

/// Counters of one month.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UsageCounters {
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub calls: u64,
    pub agents_created: u64,
}

/// A month as `YYYY-MM` (UTC) with its counters.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MonthUsage {
    pub month: String,
    pub usage: UsageCounters,
}

/// `my_usage`: this month so far, what is left and what it costs.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UsageSummary {
    pub month: String,
    pub usage: UsageCounters,
    pub limits: Option<Limits>,
    /// This month's tokens priced at the tier's price per token.
    pub cost_estimate_e8s: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModelTokens {
    pub model_id: ModelId,
    /// Known once the month's pool was split (anonymous: the model no longer exists).
    pub creator: Option<Principal>,
    pub usage: UsageCounters,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct MonthRevenue {
    pub month: String,
    pub payments_e8s: u64,
    pub platform_e8s: u64,
    pub creators_pool_e8s: u64,
    pub refunds_e8s: u64,
    /// Whether the pool has been split among the creators.
    pub split: bool,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Analytics {
    pub subscriptions_by_tier: Vec<(Tier, u64)>,
    pub subscriptions_by_state: Vec<(String, u64)>,
    pub revenue_e8s: u64,
    pub treasury_e8s: u64,
    pub open_reservations: u64,
    pub pending_settlements: u64,
}

/// Errors of payments and deposits; nothing was charged or credited when one is returned
/// (except `Pending`, whose outcome a timer settles).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PaymentError {
    InsufficientAllowance {
        allowance: u64,
        required: u64,
    },
    InsufficientFunds {
        balance: u64,
        required: u64,
    },
    BadFee {
        expected_fee: u64,
    },
    TooOld,
    CreatedInFuture,
    TemporarilyUnavailable,
    LedgerError {
        code: u64,
        message: String,
    },
    /// The ledger's answer was lost; the payment is journaled and settled by a timer.
    Pending {
        payment_id: u64,
    },
    /// The same for a payout (a withdrawal or refund).
    PayoutPending {
        payout_id: u64,
    },
    InsufficientCredit {
        credit: u64,
        required: u64,
    },
    /// The block does not pay the caller's deposit account.
    NotYours {
        block_index: u64,
        reason: String,
    },
    /// A mint, burn or approval, not a transfer.
    NotATransfer {
        block_index: u64,
        kind: String,
    },
    AlreadyCredited {
        block_index: u64,
    },
    BelowMinimum {
        amount: u64,
        minimum: u64,
    },
    BlockTooOld {
        block_index: u64,
        max_age_seconds: u64,
    },
    BlockNotFound {
        block_index: u64,
    },
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InsufficientAllowance {
                allowance,
                required,
            } => write!(
                f,
                "your approval for economics is {allowance} e8s; {required} e8s needed (approve it with icrc2_approve)"
            ),
            Self::InsufficientFunds { balance, required } => {
                write!(f, "your account holds {balance} e8s; {required} e8s needed")
            }
            Self::BadFee { expected_fee } => write!(
                f,
                "the ledger charges a fee of {expected_fee} e8s, not the one economics is configured with; an administrator must set ledger_fee_e8s"
            ),
            Self::TooOld => write!(f, "the ledger refused the transaction as too old"),
            Self::CreatedInFuture => write!(
                f,
                "the ledger refused the transaction as created in the future"
            ),
            Self::TemporarilyUnavailable => {
                write!(f, "the ledger is temporarily unavailable; try again")
            }
            Self::LedgerError { code, message } => {
                write!(f, "the ledger refused: {message} (code {code})")
            }
            Self::Pending { payment_id } => write!(
                f,
                "the ledger's answer for payment {payment_id} was lost; it will be settled shortly and charged at most once"
            ),
            Self::PayoutPending { payout_id } => write!(
                f,
                "the ledger's answer for payout {payout_id} was lost; it will be settled shortly and paid at most once"
            ),
            Self::InsufficientCredit { credit, required } => write!(
                f,
                "your deposit credit is {credit} e8s; {required} e8s needed"
            ),
            Self::NotYours {
                block_index,
                reason,
            } => {
                write!(f, "block {block_index} is not a deposit of yours: {reason}")
            }
            Self::NotATransfer { block_index, kind } => {
                write!(f, "block {block_index} is a {kind}, not a transfer")
            }
            Self::AlreadyCredited { block_index } => {
                write!(f, "block {block_index} has been credited already")
            }
            Self::BelowMinimum { amount, minimum } => write!(
                f,
                "the deposit of {amount} e8s is below the minimum of {minimum} e8s"
            ),
            Self::BlockTooOld {
                block_index,
                max_age_seconds,
            } => write!(
                f,
                "block {block_index} is older than {max_age_seconds} s; deposits must be verified sooner"
            ),
            Self::BlockNotFound { block_index } => {
                write!(f, "the ledger has no block {block_index}")
            }
        }
    }
}
