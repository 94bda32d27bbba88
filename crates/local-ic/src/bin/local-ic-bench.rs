//! Measures the runtime: trivial updates per second through the test API and the instructions
//! the runtime counts for one; and IC instructions executed per wall second on a compute-bound
//! float loop (`burn_float`, dot products shaped like inference); and trivial updates per
//! second once the canister's heap holds 100 MiB (what committing a message costs when the heap
//! is large: the runtime keeps a copy of the heap for rollback). Prints one JSON object.
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

    // About 3.7 billion IC instructions (61.5 k per 4,096-float dot product round).
    let rounds = 60_000u64;
    ic.update_call(canister, sender, "burn_float", Encode!(&100u64)?)?;
    let start = Instant::now();
    ic.update_call(canister, sender, "burn_float", Encode!(&rounds)?)?;
    let seconds = start.elapsed().as_secs_f64();
    let burned = ic.last_call_instructions().ok_or("no instruction count")?;
    let ic_per_sec = burned as f64 / seconds;

    ic.update_call(canister, sender, "grow_heap", Encode!(&100u64)?)?;
    let big_calls = (calls / 10).max(10);
    let start = Instant::now();
    for _ in 0..big_calls {
        ic.update_call(canister, sender, "noop", arg.clone())?;
    }
    let big_heap_per_sec = f64::from(big_calls) / start.elapsed().as_secs_f64();
    println!(
        "{{\"runtime.trivial_update_per_sec\": {per_sec:.1}, \"runtime.instructions.trivial_update\": {instructions}, \"runtime.ic_instructions_per_sec\": {ic_per_sec:.0}, \"runtime.instructions.burn_float_round\": {}, \"runtime.trivial_update_per_sec_100mib_heap\": {big_heap_per_sec:.1}}}",
        burned / rounds
    );
    Ok(())
}
