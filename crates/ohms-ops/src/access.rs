//! Who may call what: every check here runs inside the method it guards.
//!
//! - [`user`]: any signed-in principal acting for itself (the anonymous principal is refused);
//! - [`admin`]: a controller of the canister or a principal added with [`add_admin`];
//! - [`sibling`]: one of the OHMS canisters registered at install (privileged inter-canister
//!   methods).

use candid::Principal;
use ohms_types::{Error, Page, Paged};

use crate::state::{mutate_ops, read_ops};
use crate::{Env, audit};

/// The caller, unless it is the anonymous principal.
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

/// The caller and its role, if it is a registered sibling canister.
pub fn sibling(env: &impl Env) -> Result<(Principal, &'static str), Error> {
    let caller = env.caller();
    read_ops(|s| s.config().siblings.role_of(&caller))
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

/// Adds administrators at install, on behalf of the installing controller.
pub(crate) fn install_admins(env: &impl Env, admins: &[Principal]) -> Result<(), String> {
    if admins.contains(&Principal::anonymous()) {
        return Err(
            "install argument `admins`: the anonymous principal cannot be an administrator".into(),
        );
    }
    for admin in admins {
        mutate_ops(|s| s.admins.insert(*admin, ()));
        audit::record(env, "install", format!("added administrator {admin}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::{TestEnv, principal};

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
        assert!(install_admins(&env, &[Principal::anonymous()]).is_err());
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
        let economics = principal(40);
        mutate_ops(|s| s.update_config(|c| c.siblings.economics = Some(economics)));
        env.as_caller(economics);
        assert_eq!(sibling(&env), Ok((economics, "economics")));
        env.as_caller(principal(41));
        assert!(matches!(sibling(&env), Err(Error::NotAuthorized { .. })));
    }
}
