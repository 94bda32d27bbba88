//! Install and upgrade handling shared by every canister.
//!
//! There is no `pre_upgrade`: all state already lives in stable structures, so an upgrade
//! cannot fail for lack of instructions while serialising the heap.

use ohms_types::{InstallArgs, Siblings};

use crate::state::mutate_ops;
use crate::{Env, access, audit};

/// Runs at install. An `Upgrade` argument is refused with a message (the canister traps).
pub fn init(env: &impl Env, args: InstallArgs) -> Result<(), String> {
    let init = args.into_init()?;
    access::install_admins(env, &init.admins)?;
    register_siblings(env, "install", init.siblings);
    audit::record(env, "install", "installed");
    Ok(())
}

/// Runs after an upgrade. No argument counts as `Upgrade` with no changes; an `Init` argument is
/// refused with a message (the canister traps and the upgrade is rolled back).
pub fn post_upgrade(env: &impl Env, args: Option<InstallArgs>) -> Result<(), String> {
    let upgrade = args
        .map(InstallArgs::into_upgrade)
        .transpose()?
        .unwrap_or_default();
    if let Some(siblings) = upgrade.siblings {
        register_siblings(env, "upgrade", siblings);
    }
    audit::record(env, "upgrade", "upgraded");
    Ok(())
}

fn register_siblings(env: &impl Env, method: &str, siblings: Siblings) {
    let summary = siblings
        .registered()
        .map(|(role, id)| format!("{role}={id}"))
        .collect::<Vec<_>>()
        .join(", ");
    mutate_ops(|s| s.update_config(|c| c.siblings = siblings));
    audit::record(env, method, format!("registered siblings: [{summary}]"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::read_ops;
    use crate::test_env::{TestEnv, principal};
    use ohms_types::{InitArgs, UpgradeArgs};

    #[test]
    fn install_registers_admins_and_siblings() {
        let env = TestEnv::new();
        let siblings = Siblings {
            coordinator: Some(principal(30)),
            ..Default::default()
        };
        init(
            &env,
            InstallArgs::Init(InitArgs {
                admins: vec![principal(20)],
                siblings: siblings.clone(),
            }),
        )
        .unwrap();
        assert!(access::is_admin(&env, &principal(20)));
        assert_eq!(read_ops(|s| s.config().siblings.clone()), siblings);
        assert_eq!(audit::len(), 3);
    }

    #[test]
    fn mismatched_variants_are_refused() {
        let env = TestEnv::new();
        assert!(
            init(&env, InstallArgs::Upgrade(None))
                .unwrap_err()
                .contains("mismatch")
        );
        let wrong = InstallArgs::Init(InitArgs::default());
        assert!(
            post_upgrade(&env, Some(wrong))
                .unwrap_err()
                .contains("mismatch")
        );
        assert_eq!(audit::len(), 0);
    }

    #[test]
    fn upgrade_without_argument_keeps_siblings() {
        let env = TestEnv::new();
        let siblings = Siblings {
            economics: Some(principal(31)),
            ..Default::default()
        };
        init(
            &env,
            InstallArgs::Init(InitArgs {
                admins: vec![],
                siblings: siblings.clone(),
            }),
        )
        .unwrap();
        post_upgrade(&env, None).unwrap();
        assert_eq!(read_ops(|s| s.config().siblings.clone()), siblings);
        let replaced = Siblings {
            economics: Some(principal(32)),
            ..Default::default()
        };
        post_upgrade(
            &env,
            Some(InstallArgs::Upgrade(Some(UpgradeArgs {
                siblings: Some(replaced.clone()),
            }))),
        )
        .unwrap();
        assert_eq!(read_ops(|s| s.config().siblings.clone()), replaced);
    }
}
