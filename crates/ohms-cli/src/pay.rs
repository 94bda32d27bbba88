//! `ohms pay`: paying for a subscription with ICP on a saved local network, as a user does it:
//! the user approves economics on the ICP ledger (ICRC-2) for the price plus the ledger fee,
//! then subscribes; economics pulls the payment into its treasury with `icrc2_transfer_from`.
//!
//! `ohms local deploy` installs DFINITY's ICP ledger beside the canisters (recorded in the
//! network file as `icp_ledger`) with a demo user funded with 100 ICP; the commands act as that
//! user unless `--as` names another principal.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use candid::{Encode, Nat, Principal};
use clap::Subcommand;
use icp_ledger_fixture::{Funded, LedgerSetup, MAINNET_FEE_E8S};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use local_ic::LocalIc;
use local_ic::management_types::CanisterSettings;
use ohms_types::calendar::minute_label;
use ohms_types::{
    EconomicsConfig, Error, Page, Paged, PaymentMethod, PaymentPurpose, PaymentStatus, Purchase,
    Receipt, SubscribeArgs, Subscription, SubscriptionState, Tier, TierConfig,
};

use crate::model::{DEFAULT_STATE, SavedNetwork, parse_tier, with_local_network};
use crate::repo_client::{CanisterError, LocalCaller};

/// The name `ohms local deploy` records the ICP ledger under in the network file.
pub const LEDGER: &str = "icp_ledger";
/// What the demo user holds when the ledger is installed: 100 ICP.
pub const DEMO_USER_E8S: u64 = 100 * E8S_PER_ICP;
const E8S_PER_ICP: u64 = 100_000_000;

/// The user the local network's ledger funds, and whom `ohms pay` acts as by default.
pub fn demo_user() -> Principal {
    Principal::self_authenticating(b"ohms-demo-user")
}

/// The owner of the local ledger's minting account.
pub fn minting_owner() -> Principal {
    Principal::self_authenticating(b"ohms-minter")
}

/// Creates a canister controlled by `controller` and installs DFINITY's ICP ledger in it (fee
/// 10,000 e8s, ICRC-2 on, the demo user funded with 100 ICP). Returns its id and the module.
pub fn install_icp_ledger(ic: &mut LocalIc, controller: Principal) -> Result<(Principal, Vec<u8>)> {
    let wasm = icp_ledger_fixture::wasm().map_err(anyhow::Error::msg)?;
    let setup = LedgerSetup {
        minting_owner: minting_owner(),
        funded: vec![Funded::main_account(demo_user(), DEMO_USER_E8S)],
        fee_e8s: MAINNET_FEE_E8S,
        archive: None,
    };
    let settings = CanisterSettings {
        controllers: Some(vec![controller]),
        ..Default::default()
    };
    let id = ic.create_canister_with_settings(Some(controller), Some(settings));
    ic.install_canister(
        id,
        wasm.clone(),
        icp_ledger_fixture::init_arg(&setup),
        Some(controller),
    )
    .context("installing the ICP ledger")?;
    Ok((id, wasm))
}

#[derive(clap::Args)]
pub struct Args {
    /// The local network file (`ohms local deploy --state FILE`).
    #[arg(long, global = true, default_value = DEFAULT_STATE)]
    pub local_state: PathBuf,
    /// Act as this principal (default: the demo user the local ledger funds).
    #[arg(long = "as", global = true)]
    pub as_principal: Option<Principal>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// ICP ledger balances of the user and of economics' treasury account.
    Balances,
    /// Approves economics on the ICP ledger for the price plus the ledger fee (ICRC-2), then
    /// subscribes to a tier; prints the subscription, the receipt and the balances before and
    /// after, and checks that exactly the price and the fees left the user's account and exactly
    /// the price reached the treasury.
    Subscribe {
        /// basic, pro or enterprise.
        #[arg(long, value_parser = parse_tier)]
        tier: Tier,
        /// 1 to 12.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=12))]
        months: u32,
        /// Renew automatically at the end of the period (needs a standing approval).
        #[arg(long)]
        auto_renew: bool,
    },
    /// The user's payment receipts (`my_receipts`).
    Receipts,
}

pub fn run(args: Args) -> Result<()> {
    let user = args.as_principal.unwrap_or_else(demo_user);
    with_local_network(&args.local_state, |ic, saved| {
        let mut pay = Pay::new(ic, saved, user)?;
        match args.command {
            Command::Balances => pay.print_balances("balances").map(|_| ()),
            Command::Subscribe {
                tier,
                months,
                auto_renew,
            } => pay.subscribe(tier, months, auto_renew),
            Command::Receipts => pay.receipts(),
        }
    })
}

/// The ledger and economics of a local network, called as `user`.
struct Pay<'a> {
    calls: LocalCaller<'a>,
    ledger: Principal,
    economics: Principal,
    config: EconomicsConfig,
}

impl<'a> Pay<'a> {
    fn new(ic: &'a mut LocalIc, saved: &SavedNetwork, user: Principal) -> Result<Self> {
        let ledger = saved.canister(LEDGER)?;
        let economics = saved.canister("economics")?;
        let mut calls = LocalCaller { ic, sender: user };
        let config: EconomicsConfig = calls.query(economics, "economics_config", ())?;
        if config.ledger != ledger {
            bail!(
                "economics takes payments on {}, not on the network's ICP ledger {ledger}",
                config.ledger
            );
        }
        Ok(Self {
            calls,
            ledger,
            economics,
            config,
        })
    }

    fn balance_of(&mut self, account: Account) -> Result<u64> {
        let balance: Nat = self
            .calls
            .query(self.ledger, "icrc1_balance_of", (account,))?;
        nat_to_u64(balance, "icrc1_balance_of")
    }

    fn treasury(&self) -> Account {
        Account {
            owner: self.config.treasury.owner,
            subaccount: self.config.treasury.subaccount,
        }
    }

    /// Prints and returns (user, treasury) balances.
    fn print_balances(&mut self, label: &str) -> Result<(u64, u64)> {
        let user = self.balance_of(Account::from(self.calls.sender))?;
        let treasury = self.balance_of(self.treasury())?;
        println!("{label} on the ICP ledger {}:", self.ledger);
        println!(
            "  user               {:<63} {}",
            self.calls.sender.to_text(),
            icp(user)
        );
        println!(
            "  economics treasury {:<63} {}",
            self.treasury().to_string(),
            icp(treasury)
        );
        Ok((user, treasury))
    }

    fn subscribe(&mut self, tier: Tier, months: u32, auto_renew: bool) -> Result<()> {
        let tiers: Vec<TierConfig> = self.calls.query(self.economics, "list_tiers", ())?;
        let config = tiers
            .iter()
            .find(|t| t.tier == tier)
            .ok_or_else(|| anyhow!("economics has no {tier:?} tier"))?;
        if !config.available {
            bail!("the {tier:?} tier is not on sale");
        }
        let price = config
            .price_e8s_per_month
            .checked_mul(u64::from(months))
            .ok_or_else(|| anyhow!("{months} months of {tier:?} overflow"))?;
        let fee = self.config.settings.ledger_fee_e8s;
        println!(
            "{tier:?} costs {} a month: {months} month(s) = {}; ledger fee {}",
            icp(config.price_e8s_per_month),
            icp(price),
            icp(fee)
        );
        let (user_before, treasury_before) = self.print_balances("before")?;

        let spender = Account::from(self.economics);
        let approve = ApproveArgs {
            from_subaccount: None,
            spender,
            amount: Nat::from(price + fee),
            expected_allowance: None,
            expires_at: None,
            fee: Some(Nat::from(fee)),
            memo: None,
            created_at_time: None,
        };
        let approved: Result<Nat, ApproveError> =
            self.calls
                .update(self.ledger, "icrc2_approve", (approve,))?;
        let block = approved.map_err(|e| anyhow!("icrc2_approve refused: {e}"))?;
        println!(
            "icrc2_approve: economics ({spender}) may take {} from the user's account (price + fee; ledger block {block}, the approval cost the fee)",
            icp(price + fee)
        );
        let user_approved = self.balance_of(Account::from(self.calls.sender))?;

        let args = SubscribeArgs {
            tier,
            months,
            auto_renew,
            method: None,
        };
        let purchase: Result<Purchase, Error> =
            self.calls.update(self.economics, "subscribe", (args,))?;
        let purchase = purchase.map_err(|error| CanisterError {
            canister: "economics",
            method: "subscribe",
            error,
        })?;
        print_subscription(&purchase.subscription);
        print!("receipt: ");
        print_receipt(&purchase.receipt);
        let (user_after, treasury_after) = self.print_balances("after")?;

        let mut wrong = Vec::new();
        if user_before.checked_sub(user_approved) != Some(fee) {
            wrong.push(format!(
                "the approval took {} e8s from the user, not the fee of {fee} e8s",
                user_before as i128 - user_approved as i128
            ));
        }
        if user_approved.checked_sub(user_after) != Some(price + fee) {
            wrong.push(format!(
                "the payment took {} e8s from the user, not price + fee = {} e8s",
                user_approved as i128 - user_after as i128,
                price + fee
            ));
        }
        if treasury_after.checked_sub(treasury_before) != Some(price) {
            wrong.push(format!(
                "the treasury received {} e8s, not the price of {price} e8s",
                treasury_after as i128 - treasury_before as i128
            ));
        }
        if purchase.receipt.amount_e8s != price {
            wrong.push(format!(
                "the receipt says {} e8s, not the price of {price} e8s",
                purchase.receipt.amount_e8s
            ));
        }
        if !wrong.is_empty() {
            bail!("the payment does not add up: {}", wrong.join("; "));
        }
        println!(
            "checked: the payment took price + fee = {} from the user ({} in all with the approval's fee), and the treasury received the price, {}",
            icp(price + fee),
            icp(price + 2 * fee),
            icp(price)
        );
        Ok(())
    }

    fn receipts(&mut self) -> Result<()> {
        let mut receipts = Vec::new();
        let mut start = 0;
        loop {
            let reply: Result<Paged<Receipt>, Error> = self.calls.query(
                self.economics,
                "my_receipts",
                (Page {
                    start,
                    limit: Page::MAX_LIMIT,
                },),
            )?;
            let page = reply.map_err(|error| CanisterError {
                canister: "economics",
                method: "my_receipts",
                error,
            })?;
            receipts.extend(page.items);
            match page.next_start {
                Some(next) if next > start => start = next,
                _ => break,
            }
        }
        println!("{} receipt(s) of {}", receipts.len(), self.calls.sender);
        for receipt in &receipts {
            print!("  ");
            print_receipt(receipt);
        }
        Ok(())
    }
}

fn print_subscription(s: &Subscription) {
    let state = match s.state {
        SubscriptionState::Active => "active",
        SubscriptionState::Grace => "in grace",
        SubscriptionState::Expired => "expired",
        SubscriptionState::Cancelled => "cancelled",
    };
    println!(
        "subscription: {:?}, {state}, paid from {} until {}, auto-renew {}",
        s.tier,
        minute_label(s.current_period_start),
        minute_label(s.current_period_end),
        if s.auto_renew { "on" } else { "off" }
    );
    if let Some(until) = s.grace_until {
        println!("  grace until {}", minute_label(until));
    }
    if let Some(error) = &s.renewal_error {
        println!("  last renewal failed: {error}");
    }
}

fn print_receipt(r: &Receipt) {
    let method = match r.method {
        PaymentMethod::Icrc2 => "ICRC-2",
        PaymentMethod::DepositCredit => "deposit credit",
    };
    let status = match &r.status {
        PaymentStatus::Pending => "pending".to_string(),
        PaymentStatus::Completed => "completed".to_string(),
        PaymentStatus::Failed { reason } => format!("failed ({reason})"),
        PaymentStatus::Refunded {
            block_index: Some(block),
        } => format!("refunded at ledger block {block}"),
        PaymentStatus::Refunded { block_index: None } => "refunded to credit".to_string(),
    };
    let purpose = match &r.purpose {
        PaymentPurpose::Subscribe { tier, months } => format!("subscribe {tier:?}, {months} mo"),
        PaymentPurpose::Renew { tier, months } => format!("renew {tier:?}, {months} mo"),
        PaymentPurpose::Upgrade { from, to } => format!("upgrade {from:?} → {to:?}"),
    };
    let block = r
        .block_index
        .map_or_else(|| "none".to_string(), |b| b.to_string());
    println!(
        "payment {}: {}, {method}, {status}, ledger block {block}, {purpose}, period {} – {}",
        r.payment_id,
        icp(r.amount_e8s),
        minute_label(r.period_start),
        minute_label(r.period_end)
    );
}

fn nat_to_u64(n: Nat, method: &str) -> Result<u64> {
    u64::try_from(n.0).map_err(|_| anyhow!("{method} answered an amount beyond u64"))
}

/// `1.50000000 ICP (150000000 e8s)`.
fn icp(e8s: u64) -> String {
    format!(
        "{}.{:08} ICP ({e8s} e8s)",
        e8s / E8S_PER_ICP,
        e8s % E8S_PER_ICP
    )
}

/// The economics install argument for a fresh install on a network with this ledger.
pub fn economics_init(siblings: ohms_types::Siblings, ledger: Principal) -> Result<Vec<u8>> {
    Ok(Encode!(&ohms_types::EconomicsInstallArgs::Init(
        ohms_types::EconomicsInitArgs {
            admins: vec![],
            siblings,
            ledger,
            ledger_fee_e8s: MAINNET_FEE_E8S,
        }
    ))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_plainly() {
        assert_eq!(icp(150_000_000), "1.50000000 ICP (150000000 e8s)");
        assert_eq!(icp(10_000), "0.00010000 ICP (10000 e8s)");
    }
}
