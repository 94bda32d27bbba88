//! Who may call what: every check here runs inside the method it guards, on the caller the
//! entry point captured ([`IcEnv::capture`](crate::IcEnv::capture)).
//!
//! - [`UserUpdate`]: a signed-in principal changing state for itself — the anonymous principal
//!   is refused and so is every call while the canister is paused;
//! - [`user`]: a signed-in principal reading its own data;
//! - [`admin`]: a controller of the canister or a principal added with [`add_admin`];
//! - [`sibling`]: one of the OHMS canisters registered at install (privileged inter-canister
//!   methods).

use candid::Principal;
use ohms_types::{Error, Page, Paged};

use crate::state::{mutate_ops, read_ops};
use crate::{CallerLock, Env, IcEnv, audit, pause};

/// A state-changing call by a signed-in user, checked at the entry point: the caller is
/// captured once, the anonymous principal is refused, and the call is refused with `Paused`
/// while an administrator has paused the canister.
///
/// The pause check cannot be forgotten separately: it is part of the one check that yields the
/// caller, and logic that changes state for a user takes a `UserUpdate` (or its caller) from
/// here.
///
/// ```ignore
/// #[update]
/// async fn subscribe(tier: Tier) -> Result<Receipt, Error> {
///     let call = UserUpdate::begin()?;
///     let _lock = call.lock()?; // moves value: one call per principal at a time
///     economics::subscribe(&call, tier).await
/// }
/// ```
#[derive(Clone, Debug)]
pub struct UserUpdate<E: Env = IcEnv> {
    env: E,
}

impl UserUpdate<IcEnv> {
    /// Captures and checks the caller of the message now executing. Call it first thing in the
    /// entry point, before any await.
    pub fn begin() -> Result<Self, Error> {
        Self::check(IcEnv::capture())
    }
}

impl<E: Env> UserUpdate<E> {
    /// Checks the caller `env` captured: signed in, and the canister not paused.
    pub fn check(env: E) -> Result<Self, Error> {
        user(&env)?;
        pause::ensure_running()?;
        Ok(Self { env })
    }

    pub fn caller(&self) -> Principal {
        self.env.caller()
    }

    pub fn env(&self) -> &E {
        &self.env
    }

    /// Takes the caller's lock, for a call that moves value; hold it across the awaits.
    pub fn lock(&self) -> Result<CallerLock, Error> {
        CallerLock::acquire(self.caller())
    }
}

/// The caller, unless it is the anonymous principal. For methods that read the caller's own
/// data; a method that changes state checks the caller with [`UserUpdate`].
pub fn user(env: &impl Env) -> Result<Principal, Error> {
    let caller = env.caller();
    if caller == Principal::anonymous() {
        Err(Error::Anonymous)
    } else {
        Ok(caller)
    }
}

/// The caller, if it is an administrator.
pub fn admin(env: &impl Env) -> Result<Principal, Error> {
    let caller = user(env)?;
    if is_admin(env, &caller) {
        Ok(caller)
    } else {
        Err(Error::not_authorized(format!(
            "{caller} is not an administrator of this canister"
        )))
    }
}

/// The caller and its role, if it is a registered sibling canister. Never the canister itself,
/// though the record wiring the suite names it in its own slot: its own calls come from its
/// own code, which a caller may be steering, and get no sibling's rights.
pub fn sibling(env: &impl Env) -> Result<(Principal, &'static str), Error> {
    let caller = env.caller();
    read_ops(|s| s.config().siblings.role_of(&caller))
        .filter(|_| caller != env.canister_id())
        .map(|role| (caller, role))
        .ok_or_else(|| Error::not_authorized(format!("{caller} is not a registered OHMS canister")))
}

pub fn is_admin(env: &impl Env, principal: &Principal) -> bool {
    env.is_controller(principal) || read_ops(|s| s.admins.contains_key(principal))
}

/// Makes `principal` an administrator. Administrators only.
pub fn add_admin(env: &impl Env, principal: Principal) -> Result<(), Error> {
    admin(env)?;
    if principal == Principal::anonymous() {
        return Err(Error::invalid_argument(
            "principal",
            "the anonymous principal cannot be an administrator",
        ));
    }
    if mutate_ops(|s| s.admins.insert(principal, ())).is_some() {
        return Err(Error::already_exists("administrator", principal));
    }
    audit::record(env, "add_admin", format!("added administrator {principal}"));
    Ok(())
}

/// Takes the administrator role from `principal`. Controllers stay administrators regardless:
/// their rights come from the IC, not from this list. Administrators only.
pub fn remove_admin(env: &impl Env, principal: Principal) -> Result<(), Error> {
    admin(env)?;
    if mutate_ops(|s| s.admins.remove(&principal)).is_none() {
        return Err(Error::not_found("administrator", principal));
    }
    audit::record(
        env,
        "remove_admin",
        format!("removed administrator {principal}"),
    );
    Ok(())
}

/// The administrators added with [`add_admin`] (controllers are not listed). Administrators only.
pub fn list_admins(env: &impl Env, page: Page) -> Result<Paged<Principal>, Error> {
    admin(env)?;
    Ok(read_ops(|s| {
        let total = s.admins.len();
        let range = page.range(total);
        let items = s
            .admins
            .keys()
            .skip(range.start as usize)
            .take((range.end - range.start) as usize)
            .collect();
        Paged::new(items, range, total)
    }))
}

/// Refuses install-argument administrators that cannot be one.
pub(crate) fn validate_install_admins(admins: &[Principal]) -> Result<(), Error> {
    if admins.contains(&Principal::anonymous()) {
        return Err(Error::invalid_argument(
            "admins",
            "the anonymous principal cannot be an administrator",
        ));
    }
    Ok(())
}

/// Adds administrators at install, on behalf of the installing controller. Validate them with
/// [`validate_install_admins`] first.
pub(crate) fn install_admins(env: &impl Env, admins: &[Principal]) {
    for admin in admins {
        mutate_ops(|s| s.admins.insert(*admin, ()));
        audit::record(env, "install", format!("added administrator {admin}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::{TestEnv, canister, principal};

    #[test]
    fn anonymous_is_rejected_everywhere() {
        let env = TestEnv::new();
        env.as_caller(Principal::anonymous());
        assert_eq!(user(&env), Err(Error::Anonymous));
        assert_eq!(admin(&env), Err(Error::Anonymous));
        assert_eq!(add_admin(&env, principal(5)), Err(Error::Anonymous));
    }

    #[test]
    fn controllers_are_admins_and_plain_users_are_not() {
        let env = TestEnv::new();
        assert_eq!(admin(&env), Ok(env.controller));
        env.as_caller(principal(7));
        assert!(matches!(admin(&env), Err(Error::NotAuthorized { .. })));
        assert!(matches!(
            add_admin(&env, principal(7)),
            Err(Error::NotAuthorized { .. })
        ));
        assert!(
            !read_ops(|s| s.admins.contains_key(&principal(7))),
            "a refused call changed state"
        );
    }

    #[test]
    fn added_admin_acts_until_removed() {
        let env = TestEnv::new();
        add_admin(&env, principal(7)).unwrap();
        assert_eq!(
            add_admin(&env, principal(7)),
            Err(Error::already_exists("administrator", principal(7)))
        );
        env.as_caller(principal(7));
        assert_eq!(admin(&env), Ok(principal(7)));
        add_admin(&env, principal(8)).unwrap();
        assert_eq!(
            list_admins(&env, Page::default()).unwrap().items,
            vec![principal(7), principal(8)]
        );

        env.as_caller(env.controller);
        remove_admin(&env, principal(7)).unwrap();
        env.as_caller(principal(7));
        assert!(matches!(admin(&env), Err(Error::NotAuthorized { .. })));
        env.as_caller(env.controller);
        assert!(matches!(
            remove_admin(&env, principal(7)),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(audit::len(), 3);
    }

    #[test]
    fn anonymous_cannot_become_admin() {
        let env = TestEnv::new();
        assert!(matches!(
            add_admin(&env, Principal::anonymous()),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            validate_install_admins(&[principal(7), Principal::anonymous()]),
            Err(Error::InvalidArgument { field, .. }) if field == "admins"
        ));
    }

    #[test]
    fn user_updates_refuse_anonymous_callers_and_pauses() {
        let env = TestEnv::new();
        env.as_caller(Principal::anonymous());
        assert_eq!(UserUpdate::check(&env).unwrap_err(), Error::Anonymous);

        env.as_caller(principal(7));
        let call = UserUpdate::check(&env).unwrap();
        assert_eq!(call.caller(), principal(7));
        let lock = call.lock().unwrap();
        assert_eq!(call.lock().unwrap_err(), Error::Busy);
        drop(lock);

        env.as_caller(env.controller);
        pause::pause(&env, "incident".into()).unwrap();
        env.as_caller(principal(7));
        assert_eq!(
            UserUpdate::check(&env).unwrap_err(),
            Error::Paused {
                reason: "incident".into()
            }
        );
        // Reading one's own data goes on during a pause.
        assert_eq!(user(&env), Ok(principal(7)));
    }

    #[test]
    fn list_admins_caps_the_page() {
        let env = TestEnv::new();
        for n in 10..=250u8 {
            add_admin(&env, principal(n)).unwrap();
        }
        let page = list_admins(&env, Page::first(u32::MAX)).unwrap();
        assert_eq!(page.items.len(), Page::MAX_LIMIT as usize);
        assert_eq!(page.total, 241);
    }

    #[test]
    fn only_registered_siblings_pass_the_sibling_check() {
        let env = TestEnv::new();
        let economics = canister(40);
        mutate_ops(|s| s.update_config(|c| c.siblings.economics = Some(economics)));
        env.as_caller(economics);
        assert_eq!(sibling(&env), Ok((economics, "economics")));
        env.as_caller(canister(41));
        assert!(matches!(sibling(&env), Err(Error::NotAuthorized { .. })));
        mutate_ops(|s| s.update_config(|c| c.siblings.coordinator = Some(env.canister)));
        env.as_caller(env.canister);
        assert!(
            matches!(sibling(&env), Err(Error::NotAuthorized { .. })),
            "the canister itself passed as a sibling"
        );
    }
}
