//! Measures the runtime on a trivial update: calls per second through the test API and the
//! instructions the runtime counts for one call. Prints one JSON object.
//!
//!     local-ic-bench <fixture_state.wasm> [calls]

use std::time::Instant;

use candid::{Encode, Principal};
use local_ic::LocalIc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let wasm_path = args
        .next()
        .ok_or("usage: local-ic-bench <fixture_state.wasm> [calls]")?;
    let calls: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(2_000);
    let wasm = std::fs::read(&wasm_path).map_err(|e| format!("{wasm_path}: {e}"))?;

    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    ic.install_canister(canister, wasm, Encode!(&0u64)?, None)?;
    let sender = Principal::from_slice(&[1]);
    let arg = Encode!()?;

    ic.update_call(canister, sender, "noop", arg.clone())?;
    let instructions = ic.last_call_instructions().ok_or("no instruction count")?;

    let start = Instant::now();
    for _ in 0..calls {
        ic.update_call(canister, sender, "noop", arg.clone())?;
    }
    let per_sec = f64::from(calls) / start.elapsed().as_secs_f64();
    println!(
        "{{\"runtime.trivial_update_per_sec\": {per_sec:.1}, \"runtime.instructions.trivial_update\": {instructions}}}"
    );
    Ok(())
}
