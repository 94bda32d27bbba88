//! Economics: subscriptions, ICP payments, quotas and the policy engine that authorizes every costly action.
//!
//! Entry points only: decode, check the caller, call the library, encode.

mod memory;

use ohms_ops::IcEnv;
use ohms_types::InstallArgs;

#[ic_cdk::init]
fn init(args: InstallArgs) {
    ohms_ops::lifecycle::init(&IcEnv::capture(), "economics", args)
        .unwrap_or_else(|err| ic_cdk::trap(err));
}

#[ic_cdk::post_upgrade]
fn post_upgrade(args: Option<InstallArgs>) {
    ohms_ops::lifecycle::post_upgrade(&IcEnv::capture(), "economics", args)
        .unwrap_or_else(|err| ic_cdk::trap(err));
}

ohms_ops::export_ops_endpoints!(canister = "economics");

#[cfg(test)]
mod tests {
    use super::*;

    // Expanded last, after every endpoint has registered its Candid signature.
    candid::export_service!();

    #[test]
    fn interface_is_the_committed_did() {
        ohms_ops::candid_check::assert_service_equal(
            __export_service(),
            include_str!("../../../candid/economics.did"),
        );
    }
}
