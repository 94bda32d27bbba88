//! Install and upgrade handling shared by every canister.
//!
//! There is no `pre_upgrade`: all state already lives in stable structures, so an upgrade
//! cannot fail for lack of instructions while serialising the heap.

use ohms_types::{InstallArgs, Siblings};

use crate::state::mutate_ops;
use crate::{Env, access, audit};

/// Runs at install of the canister named `canister` (`model_repo`, …, `agent`: its role among
/// the siblings). An `Upgrade` argument, or one that fails validation, is refused with a
/// message (the canister traps) before anything is stored.
pub fn init(env: &impl Env, canister: &str, args: InstallArgs) -> Result<(), String> {
    let init = args.into_init()?;
    access::validate_install_admins(&init.admins).map_err(|err| err.to_string())?;
    validate_siblings(env, canister, &init.siblings)?;
    access::install_admins(env, &init.admins);
    register_siblings(env, "install", init.siblings);
    crate::metrics::certify_skipping(env);
    audit::record(env, "install", "installed");
    Ok(())
}

/// Runs after an upgrade. No argument counts as `Upgrade` with no changes; an `Init` argument,
/// or one that fails validation, is refused with a message (the canister traps and the upgrade
/// is rolled back).
pub fn post_upgrade(
    env: &impl Env,
    canister: &str,
    args: Option<InstallArgs>,
) -> Result<(), String> {
    let upgrade = args
        .map(InstallArgs::into_upgrade)
        .transpose()?
        .unwrap_or_default();
    if let Some(siblings) = upgrade.siblings {
        validate_siblings(env, canister, &siblings)?;
        register_siblings(env, "upgrade", siblings);
    }
    crate::metrics::certify_skipping(env);
    audit::record(env, "upgrade", "upgraded");
    Ok(())
}

fn validate_siblings(env: &impl Env, canister: &str, siblings: &Siblings) -> Result<(), String> {
    siblings
        .validate(&env.canister_id(), canister)
        .map_err(|err| err.to_string())
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
    use crate::test_env::{TestEnv, canister, principal};
    use ohms_types::{InitArgs, UpgradeArgs};

    #[test]
    fn install_registers_admins_and_siblings() {
        let env = TestEnv::new();
        let siblings = Siblings {
            coordinator: Some(canister(30)),
            ..Default::default()
        };
        init(
            &env,
            "coordinator",
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
            init(&env, "coordinator", InstallArgs::Upgrade(None))
                .unwrap_err()
                .contains("mismatch")
        );
        let wrong = InstallArgs::Init(InitArgs::default());
        assert!(
            post_upgrade(&env, "coordinator", Some(wrong))
                .unwrap_err()
                .contains("mismatch")
        );
        assert_eq!(audit::len(), 0);
    }

    #[test]
    fn upgrade_without_argument_keeps_siblings() {
        let env = TestEnv::new();
        let siblings = Siblings {
            economics: Some(canister(31)),
            ..Default::default()
        };
        init(
            &env,
            "coordinator",
            InstallArgs::Init(InitArgs {
                admins: vec![],
                siblings: siblings.clone(),
            }),
        )
        .unwrap();
        post_upgrade(&env, "coordinator", None).unwrap();
        assert_eq!(read_ops(|s| s.config().siblings.clone()), siblings);
        let replaced = Siblings {
            economics: Some(canister(32)),
            ..Default::default()
        };
        post_upgrade(
            &env,
            "coordinator",
            Some(InstallArgs::Upgrade(Some(UpgradeArgs {
                siblings: Some(replaced.clone()),
            }))),
        )
        .unwrap();
        assert_eq!(read_ops(|s| s.config().siblings.clone()), replaced);
    }

    #[test]
    fn bad_siblings_are_refused_at_install_and_upgrade_and_change_nothing() {
        let env = TestEnv::new();
        let itself = Siblings {
            economics: Some(env.canister),
            ..Default::default()
        };
        let err = init(
            &env,
            "coordinator",
            InstallArgs::Init(InitArgs {
                admins: vec![principal(20)],
                siblings: itself,
            }),
        )
        .unwrap_err();
        assert!(err.contains("`siblings.economics`"), "{err}");
        assert!(
            !access::is_admin(&env, &principal(20)),
            "a refused install added an admin"
        );
        assert_eq!(audit::len(), 0);

        let registered = Siblings {
            economics: Some(canister(31)),
            ..Default::default()
        };
        init(
            &env,
            "coordinator",
            InstallArgs::Init(InitArgs {
                admins: vec![],
                siblings: registered.clone(),
            }),
        )
        .unwrap();
        let entries = audit::len();
        for bad in [
            Siblings {
                coordinator: Some(candid::Principal::anonymous()),
                ..Default::default()
            },
            Siblings {
                model_repo: Some(candid::Principal::management_canister()),
                ..Default::default()
            },
            Siblings {
                model_repo: Some(canister(33)),
                agent_factory: Some(canister(33)),
                ..Default::default()
            },
        ] {
            let arg = InstallArgs::Upgrade(Some(UpgradeArgs {
                siblings: Some(bad.clone()),
            }));
            let err = post_upgrade(&env, "coordinator", Some(arg)).unwrap_err();
            assert!(
                err.contains("invalid argument `siblings."),
                "{bad:?}: {err}"
            );
            assert_eq!(read_ops(|s| s.config().siblings.clone()), registered);
            assert_eq!(audit::len(), entries);
        }
    }
}
