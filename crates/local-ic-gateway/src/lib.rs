//! A local IC network served over the IC's HTTP interface, so real clients (icp-cli, dfx,
//! `@icp-sdk/core` agents in Node or a browser) deploy to it and call it as they would call
//! the IC: they fetch the root key from `/api/v2/status`, and verify every certificate and
//! every query signature.
//!
//! - [`http`]: the endpoints, request decoding and the clients' CBOR;
//! - [`browser`]: browsers on `<canister-id>.localhost` (verified) and
//!   `<canister-id>.raw.localhost` (raw), the canisters' `http_request` as the IC's HTTP
//!   gateways serve it;
//! - `ic_ingress` (its own crate): request ids, signatures, delegations, expiry;
//! - [`state_tree`]: what `read_state` may reveal, and the certificates (`ic_certificate`);
//! - [`executor`]: the one thread that owns the network;
//! - [`node`] and [`journal`]: the network, its clock, and its persistence (snapshot plus a
//!   write-ahead journal synced before every answer that depends on it).

pub mod browser;
pub mod executor;
pub mod http;
pub mod journal;
pub mod keys;
pub mod management;
pub mod node;
pub mod refusal;
pub mod state_tree;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use local_ic::NetworkState;

use crate::http::Gateway;
use crate::node::Node;

pub struct ServeConfig {
    /// The folder the network lives in (created on first use).
    pub dir: PathBuf,
    pub listen: SocketAddr,
}

/// What the server reports once it listens.
pub struct Started {
    pub address: SocketAddr,
    pub root_key_der: Vec<u8>,
    pub replayed: usize,
    pub open_seconds: f64,
}

/// Opens (or creates from `initial`) the network in `config.dir` and serves it until Ctrl-C or
/// SIGTERM; then writes a final snapshot. `on_start` runs once the socket listens.
pub fn serve(
    config: ServeConfig,
    initial: impl FnOnce() -> Result<NetworkState>,
    on_start: impl FnOnce(&Started),
) -> Result<()> {
    let opening = Instant::now();
    let opened = Node::open(&config.dir, initial)?;
    let keys = opened.node.keys.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.listen))
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    on_start(&Started {
        address,
        root_key_der: keys.root_key_der().to_vec(),
        replayed: opened.replayed,
        open_seconds: opening.elapsed().as_secs_f64(),
    });

    let (commands, receiver) = std::sync::mpsc::channel();
    let node = opened.node;
    // If the network thread stops (a journal write failed), the server stops with it rather
    // than answer 503 to everything.
    let (stopped, network_stopped) = tokio::sync::oneshot::channel::<()>();
    let executor = std::thread::Builder::new()
        .name("local-ic-network".into())
        .spawn(move || {
            let result = executor::run(node, receiver);
            let _ = stopped.send(());
            result
        })
        .context("starting the network thread")?;
    let app = http::router(Gateway { commands, keys });
    runtime.block_on(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal(network_stopped))
            .await
    })?;
    // The router (and with it every command sender) is gone: the executor drains and saves.
    drop(runtime);
    executor
        .join()
        .map_err(|_| anyhow::anyhow!("the network thread panicked"))?
}

/// Ctrl-C, SIGTERM, or the network thread's end.
async fn shutdown_signal(network_stopped: tokio::sync::oneshot::Receiver<()>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
            _ = network_stopped => {}
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = ctrl_c => {}
        _ = network_stopped => {}
    }
}
