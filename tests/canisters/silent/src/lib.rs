//! Accepts `run`, `get_run` and `cancel_run` (any argument) and never answers: each call waits
//! on a call to itself that waits in turn, so its call context stays open for as long as the
//! test runs. A caller's bounded-wait call to it ends only by its deadline.

use ic_cdk::call::Call;

/// Waits on the next link of an endless chain of calls to this canister.
async fn wait_forever() {
    let _ = Call::unbounded_wait(ic_cdk::api::canister_self(), "park").await;
}

#[ic_cdk::update(decode_with = "ignore")]
async fn park() {
    wait_forever().await;
}

#[ic_cdk::update(decode_with = "ignore")]
async fn run() {
    wait_forever().await;
}

#[ic_cdk::update(decode_with = "ignore")]
async fn get_run() {
    wait_forever().await;
}

#[ic_cdk::update(decode_with = "ignore")]
async fn cancel_run() {
    wait_forever().await;
}

fn ignore(_: Vec<u8>) {}
