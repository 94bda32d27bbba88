use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

use crate::Error;

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

    /// Checks that every registered sibling can be trusted as one, for the canister
    /// `canister_self` (whose role is `own_role`: `model_repo`, …, or `agent`, which has no slot)
    /// registering them. A sibling passes the privileged-caller check, so each must be another
    /// canister: not the anonymous principal (anyone), not the management canister (`aaaaa-aa`,
    /// the caller of every timer), not this canister in another canister's slot, not a user's
    /// principal pasted by mistake, and no canister in two roles (a role would be ambiguous).
    ///
    /// The one record wiring the suite may be given to every canister, so a canister's own slot
    /// may name itself; that entry is never trusted as a caller (the sibling check refuses the
    /// canister itself). The error names the field, e.g. `siblings.economics`.
    pub fn validate(&self, canister_self: &Principal, own_role: &str) -> Result<(), Error> {
        let mut seen: Vec<(&'static str, Principal)> = Vec::new();
        for (role, id) in self.registered() {
            let refuse =
                |reason: String| Err(Error::invalid_argument(format!("siblings.{role}"), reason));
            if id == Principal::anonymous() {
                return refuse("the anonymous principal cannot be a sibling canister".into());
            }
            if id == Principal::management_canister() {
                return refuse(
                    "the management canister (aaaaa-aa) cannot be a sibling canister".into(),
                );
            }
            if id == *canister_self && role != own_role {
                return refuse(format!(
                    "{id} is this canister itself (the {own_role}), not the {role}"
                ));
            }
            if !is_canister_id(&id) {
                return refuse(format!(
                    "{id} is not a canister id (a user's principal?); give the id of the {role} canister"
                ));
            }
            if let Some((other, _)) = seen.iter().find(|(_, seen_id)| *seen_id == id) {
                return refuse(format!("{id} is already registered as {other}"));
            }
            seen.push((role, id));
        }
        Ok(())
    }
}

/// Canister ids are opaque principals: their last byte is the class tag 0x01 (user principals
/// end in 0x02, derived ones in 0x03, the anonymous principal in 0x04).
pub fn is_canister_id(principal: &Principal) -> bool {
    principal.as_slice().last() == Some(&OPAQUE_ID_CLASS)
}

const OPAQUE_ID_CLASS: u8 = 0x01;

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

    /// A canister id as the IC allocates them: an 8-byte index and the opaque class tag.
    fn canister(index: u64) -> Principal {
        let mut bytes = index.to_be_bytes().to_vec();
        bytes.extend([0x01, 0x01]);
        Principal::from_slice(&bytes)
    }

    #[test]
    fn sibling_roles_are_found_by_principal() {
        let economics = canister(7);
        let siblings = Siblings {
            economics: Some(economics),
            ..Default::default()
        };
        assert_eq!(siblings.role_of(&economics), Some("economics"));
        assert_eq!(siblings.role_of(&Principal::anonymous()), None);
        assert_eq!(siblings.registered().count(), 1);
    }

    #[test]
    fn valid_siblings_pass() {
        let siblings = Siblings {
            model_repo: Some(canister(1)),
            agent_factory: Some(canister(3)),
            coordinator: None,
            economics: Some(Principal::from_text("ryjl3-tyaaa-aaaaa-aaaba-cai").unwrap()),
        };
        assert_eq!(siblings.validate(&canister(9), "coordinator"), Ok(()));
        assert_eq!(Siblings::default().validate(&canister(9), "agent"), Ok(()));
        // The record wiring the whole suite names each canister in its own slot.
        assert_eq!(siblings.validate(&canister(1), "model_repo"), Ok(()));
    }

    #[test]
    fn untrustworthy_siblings_are_refused_with_the_field_named() {
        let this = canister(9);
        let user = Principal::self_authenticating(b"a user's public key");
        for (siblings, field, reason) in [
            (
                Siblings {
                    economics: Some(Principal::anonymous()),
                    ..Default::default()
                },
                "siblings.economics",
                "anonymous",
            ),
            (
                Siblings {
                    coordinator: Some(Principal::management_canister()),
                    ..Default::default()
                },
                "siblings.coordinator",
                "management canister",
            ),
            (
                Siblings {
                    model_repo: Some(this),
                    ..Default::default()
                },
                "siblings.model_repo",
                "this canister itself",
            ),
            (
                Siblings {
                    agent_factory: Some(user),
                    ..Default::default()
                },
                "siblings.agent_factory",
                "not a canister id",
            ),
            (
                Siblings {
                    model_repo: Some(canister(1)),
                    economics: Some(canister(1)),
                    ..Default::default()
                },
                "siblings.economics",
                "already registered as model_repo",
            ),
        ] {
            match siblings.validate(&this, "economics") {
                Err(Error::InvalidArgument {
                    field: f,
                    reason: r,
                }) => {
                    assert_eq!(f, field, "{siblings:?}");
                    assert!(r.contains(reason), "{r}");
                }
                other => panic!("{siblings:?} accepted: {other:?}"),
            }
        }
        // An agent has no slot of its own: its id is refused in every one.
        let agent_itself = Siblings {
            economics: Some(this),
            ..Default::default()
        };
        assert!(matches!(
            agent_itself.validate(&this, "agent"),
            Err(Error::InvalidArgument { field, .. }) if field == "siblings.economics"
        ));
    }
}
