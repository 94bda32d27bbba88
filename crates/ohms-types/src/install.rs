use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

/// The one argument every OHMS canister takes at install and upgrade.
///
/// `dfx deploy` and `icp deploy` pass the same Candid type both times; the variant says which it
/// is meant for. Installing with `Upgrade`, or upgrading with `Init`, traps with a message so a
/// wrong deployment never half-initialises a canister.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum InstallArgs {
    Init(InitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct InitArgs {
    /// Administrators besides the controllers (controllers are always administrators).
    pub admins: Vec<Principal>,
    /// The other OHMS canisters, the only callers of privileged inter-canister methods.
    pub siblings: Siblings,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UpgradeArgs {
    /// Replaces the registered siblings when present.
    pub siblings: Option<Siblings>,
}

/// The OHMS canisters a canister trusts for privileged inter-canister calls.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Siblings {
    pub model_repo: Option<Principal>,
    pub agent_factory: Option<Principal>,
    pub coordinator: Option<Principal>,
    pub economics: Option<Principal>,
}

impl Siblings {
    /// The registered sibling canisters, each with its role name.
    pub fn registered(&self) -> impl Iterator<Item = (&'static str, Principal)> + '_ {
        [
            ("model_repo", self.model_repo),
            ("agent_factory", self.agent_factory),
            ("coordinator", self.coordinator),
            ("economics", self.economics),
        ]
        .into_iter()
        .filter_map(|(role, id)| id.map(|id| (role, id)))
    }

    /// The role of `principal` when it is a registered sibling.
    pub fn role_of(&self, principal: &Principal) -> Option<&'static str> {
        self.registered()
            .find(|(_, id)| id == principal)
            .map(|(role, _)| role)
    }
}

impl InstallArgs {
    /// The init arguments, or a message naming the mismatch when this is an upgrade argument.
    pub fn into_init(self) -> Result<InitArgs, String> {
        match self {
            Self::Init(args) => Ok(args),
            Self::Upgrade(_) => {
                Err("install argument mismatch: a fresh install needs `variant { Init = record { ... } }`, got Upgrade".into())
            }
        }
    }

    /// The upgrade arguments, or a message naming the mismatch when this is an init argument.
    pub fn into_upgrade(self) -> Result<UpgradeArgs, String> {
        match self {
            Self::Upgrade(args) => Ok(args.unwrap_or_default()),
            Self::Init(_) => Err(
                "install argument mismatch: an upgrade needs `variant { Upgrade }` (or no argument), got Init; \
                 reinstall instead if you mean to wipe the state"
                    .into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_variant_is_named_in_the_error() {
        let init = InstallArgs::Init(InitArgs::default());
        assert!(
            init.clone()
                .into_upgrade()
                .unwrap_err()
                .contains("got Init")
        );
        assert!(
            InstallArgs::Upgrade(None)
                .into_init()
                .unwrap_err()
                .contains("got Upgrade")
        );
        assert_eq!(init.into_init().unwrap(), InitArgs::default());
        assert_eq!(
            InstallArgs::Upgrade(None).into_upgrade().unwrap(),
            UpgradeArgs::default()
        );
    }

    #[test]
    fn sibling_roles_are_found_by_principal() {
        let economics = Principal::from_slice(&[7; 10]);
        let siblings = Siblings {
            economics: Some(economics),
            ..Default::default()
        };
        assert_eq!(siblings.role_of(&economics), Some("economics"));
        assert_eq!(siblings.role_of(&Principal::anonymous()), None);
        assert_eq!(siblings.registered().count(), 1);
    }
}
