//! `ohms local serve`: a local network, saved in a folder, served over the IC HTTP interface
//! for icp-cli, dfx, `@icp-sdk/core` agents and browsers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candid::Principal;
use local_ic::management_types::CanisterSettings;
use local_ic::{LocalIc, NetworkState};
use local_ic_gateway::{ServeConfig, Started};

use crate::local::{CANISTERS, install_suite_code, upload_agent_module};
use crate::{model, pay};

/// The seed of a served network unless told otherwise: the same as every in-process local
/// network's, so its root key is the one `icp.yaml`'s `ohms-local` network names.
pub const DEFAULT_SEED: [u8; 32] = [0; 32];

#[derive(clap::Args)]
pub struct Args {
    /// The folder the network lives in: created (with the suite) on first use, resumed after.
    #[arg(long, default_value = "target/ohms-local/served")]
    pub dir: PathBuf,
    /// The address to listen on (loopback only unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:4943")]
    pub listen: SocketAddr,
    /// On first use, only create the suite's canisters (and install the ICP ledger at its
    /// mainnet id), leaving their code to `icp deploy -e ENVIRONMENT`.
    #[arg(long)]
    pub empty_suite: bool,
    /// On first use, also make this principal a controller of the suite's canisters (e.g.
    /// `$(icp identity principal)`); repeatable.
    #[arg(long = "controller")]
    pub controllers: Vec<Principal>,
    /// The icp-cli environment whose canister id mappings are written
    /// (`.icp/data/mappings/<ENVIRONMENT>.ids.json` under --project).
    #[arg(long, default_value = "ohms-local")]
    pub environment: String,
    /// The icp-cli project folder the mappings are written to.
    #[arg(long, default_value = ".")]
    pub project: PathBuf,
    /// The folder `scripts/build` wrote the canisters to.
    #[arg(long, default_value = "wasm")]
    pub wasm_dir: PathBuf,
    /// On first use, start from the network `ohms local deploy --state FILE` saved (with
    /// everything the other `ohms` commands did on it) instead of a new one.
    #[arg(long)]
    pub from: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: serving on {}, beyond this machine: a local network's keys come from a \
             public seed, so anyone can forge its certificates; it is for development only",
            args.listen
        );
    }
    let ids_file = args.dir.join("canister_ids.json");
    let config = ServeConfig {
        dir: args.dir.clone(),
        listen: args.listen,
    };
    let dir = args.dir.clone();
    local_ic_gateway::serve(
        config,
        || {
            let (state, canisters) = match &args.from {
                Some(saved) => saved_network(saved)?,
                None => new_network(&args)?,
            };
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&ids_file, serde_json::to_vec_pretty(&canisters)?)
                .with_context(|| format!("writing {}", ids_file.display()))?;
            Ok(state)
        },
        |started| announce(started, &args),
    )
}

fn announce(started: &Started, args: &Args) {
    let canisters: BTreeMap<String, String> = std::fs::read(args.dir.join("canister_ids.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    match write_mappings(&args.project, &args.environment, &canisters) {
        Ok(path) => println!("icp-cli mappings: {}", path.display()),
        Err(e) => eprintln!("could not write icp-cli's mappings: {e:#}"),
    }
    for (name, id) in &canisters {
        println!("{name:<14} {id}");
    }
    println!("root key       {}", hex::encode(&started.root_key_der));
    println!(
        "network in {}: opened in {:.2} s ({} journal record(s) replayed)",
        args.dir.display(),
        started.open_seconds,
        started.replayed
    );
    // The last line, which scripts wait for.
    println!("serving http://{}", started.address);
}

/// `.icp/data/mappings/<environment>.ids.json`: the ids icp-cli deploys to and calls.
fn write_mappings(
    project: &Path,
    environment: &str,
    canisters: &BTreeMap<String, String>,
) -> Result<PathBuf> {
    let dir = project.join(".icp/data/mappings");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{environment}.ids.json"));
    let suite: BTreeMap<&String, &String> = canisters
        .iter()
        .filter(|(name, _)| CANISTERS.contains(&name.as_str()))
        .collect();
    std::fs::write(&path, serde_json::to_vec_pretty(&suite)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A network `ohms local deploy` saved, with the names of its canisters.
fn saved_network(path: &Path) -> Result<(NetworkState, BTreeMap<String, String>)> {
    let saved = model::SavedNetwork::load(path)?;
    let canisters = saved
        .canisters
        .iter()
        .map(|(name, id)| (name.clone(), id.to_text()))
        .collect();
    Ok((saved.network, canisters))
}

/// A new network: the ICP ledger at its mainnet id (`ryjl3-tyaaa-aaaaa-aaaba-cai`, the third
/// canister) between the suite's canisters, so the suite's install arguments in `icp.yaml`
/// name it; the suite installed and wired unless `--empty-suite`.
fn new_network(args: &Args) -> Result<(NetworkState, BTreeMap<String, String>)> {
    let mut ic = LocalIc::with_seed(DEFAULT_SEED);
    let admin = model::local_identity();
    let mut controllers = vec![admin];
    controllers.extend(args.controllers.iter().copied());
    let settings = CanisterSettings {
        controllers: Some(controllers),
        ..Default::default()
    };
    let create =
        |ic: &mut LocalIc| ic.create_canister_with_settings(Some(admin), Some(settings.clone()));
    let mut ids = vec![create(&mut ic), create(&mut ic)];
    let (ledger, _) = pay::install_icp_ledger(&mut ic, admin)?;
    ids.extend([create(&mut ic), create(&mut ic), create(&mut ic)]);
    if !args.empty_suite {
        install_suite_code(&mut ic, &args.wasm_dir, &ids, ledger, admin)?;
        upload_agent_module(&mut ic, ids[1], &args.wasm_dir)?;
    }
    let mut canisters: BTreeMap<String, String> = CANISTERS
        .iter()
        .map(|name| name.to_string())
        .zip(ids.iter().map(Principal::to_text))
        .collect();
    canisters.insert(pay::LEDGER.to_string(), ledger.to_text());
    Ok((ic.state().clone(), canisters))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `icp.yaml`'s `ohms-local` network names the root key of the networks this command
    /// creates: icp-cli verifies every certificate against it.
    #[test]
    fn icp_yaml_names_the_served_networks_root_key() {
        let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../icp.yaml"))
            .unwrap();
        let key = local_ic_gateway::keys::NetworkKeys::from_seed(DEFAULT_SEED);
        let expected = format!("root-key: \"{}\"", hex::encode(key.root_key_der()));
        assert!(
            yaml.contains(&expected),
            "icp.yaml's ohms-local network must have {expected}"
        );
        assert!(yaml.contains("url: http://127.0.0.1:4943"));
    }
}
