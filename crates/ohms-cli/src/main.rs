//! `ohms` — the OHMS command line.
//!
//! Exit codes: 0 success, 1 failure (bad input, failed verification), 2 usage error.

mod agents;
mod local;
mod model;
mod novaq;
mod pay;
mod repo_client;
mod serve;
mod tasks;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ohms", version, about = "OHMS command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// NOVAQ model compression into the OHMS model format.
    #[command(subcommand)]
    Novaq(novaq::Command),
    /// The OHMS canisters on the project's local IC runtime.
    #[command(subcommand)]
    Local(local::Command),
    /// NOVAQ models in the model repository canister: upload (resumable, several chunks in
    /// flight), list, show, activate, deprecate, delete, download, stats.
    Model(model::Args),
    /// Paying for a subscription with ICP on the local network: ledger balances, approving
    /// economics and subscribing (ICRC-2), receipts.
    Pay(pay::Args),
    /// Agents on the local network: what the agent factory makes of instructions, creating
    /// agents in the user's agent canister, running one on a prompt (the model loads and
    /// generates inside the canister) and listing them with their statistics.
    Agents(agents::Args),
    /// Coordinated tasks on the local network: submit a task to the user's agents and follow
    /// its parallel rounds to the aggregated result; list, show, cancel, alerts, and the
    /// administrators' statistics.
    Tasks(tasks::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Novaq(command) => novaq::run(command),
        Command::Local(command) => local::run(command),
        Command::Model(args) => model::run(args),
        Command::Pay(args) => pay::run(args),
        Command::Agents(args) => agents::run(args),
        Command::Tasks(args) => tasks::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
