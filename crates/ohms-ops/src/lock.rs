//! One value-moving call per principal at a time.
//!
//! A [`CallerLock`] is taken before the first await of a call that moves value and released
//! when it is dropped: at the end of the call, or — when a callback traps — by ic-cdk's cleanup
//! callback, which drops the call's future. The set lives on the heap on purpose: an upgrade,
//! which can only happen with no calls in flight, starts with no locks.
//!
//! The release is only as sure as that cleanup: if the cleanup itself traps (out of
//! instructions, or a fault in another value's `Drop`), the IC discards what it did and the
//! principal stays locked out. [`clear`] lets an administrator release such a stale lock.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use candid::Principal;
use ohms_types::Error;

use crate::{Env, access, audit};

thread_local! {
    /// The locked principals, each with the id of the guard holding its lock.
    static LOCKED: RefCell<BTreeMap<Principal, u64>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT_GUARD_ID: Cell<u64> = const { Cell::new(0) };
}

#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct CallerLock {
    principal: Principal,
    /// Which acquisition this guard stands for: after an administrator cleared the lock and a
    /// new call took it, dropping this (stale) guard must not release the new call's lock.
    id: u64,
}

impl CallerLock {
    /// Takes the lock of `principal`, or `Busy` while another call holds it.
    pub fn acquire(principal: Principal) -> Result<Self, Error> {
        LOCKED.with(|locked| {
            let mut locked = locked.borrow_mut();
            if locked.contains_key(&principal) {
                return Err(Error::Busy);
            }
            let id = NEXT_GUARD_ID.with(|next| next.replace(next.get() + 1));
            locked.insert(principal, id);
            Ok(Self { principal, id })
        })
    }

    pub fn is_locked(principal: &Principal) -> bool {
        LOCKED.with(|locked| locked.borrow().contains_key(principal))
    }
}

impl Drop for CallerLock {
    fn drop(&mut self) {
        LOCKED.with(|locked| {
            let mut locked = locked.borrow_mut();
            if locked.get(&self.principal) == Some(&self.id) {
                locked.remove(&self.principal);
            }
        });
    }
}

/// Releases the lock of `principal` whatever holds it. Administrators only; audited.
///
/// Meant for a lock whose guard will never be dropped (see the module documentation). Clearing
/// the lock of a call still in flight lets a second call of that principal run beside it, so
/// clear a lock only when the principal has no call in progress.
pub fn clear(env: &impl Env, principal: Principal) -> Result<(), Error> {
    access::admin(env)?;
    if LOCKED
        .with(|locked| locked.borrow_mut().remove(&principal))
        .is_none()
    {
        return Err(Error::not_found("lock of", principal));
    }
    audit::record(
        env,
        "clear_lock",
        format!("cleared the lock of {principal}"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::{TestEnv, principal};

    #[test]
    fn second_acquire_is_busy_until_the_first_is_dropped() {
        let alice = principal(1);
        let guard = CallerLock::acquire(alice).unwrap();
        assert_eq!(CallerLock::acquire(alice).unwrap_err(), Error::Busy);
        let bob = CallerLock::acquire(principal(2)).expect("locks are per principal");
        drop(guard);
        assert!(!CallerLock::is_locked(&alice));
        let _again = CallerLock::acquire(alice).unwrap();
        drop(bob);
    }

    #[test]
    fn released_on_unwind() {
        let alice = principal(3);
        let result = std::panic::catch_unwind(|| {
            let _guard = CallerLock::acquire(alice).unwrap();
            panic!("fault after the ledger replied");
        });
        assert!(result.is_err());
        assert!(!CallerLock::is_locked(&alice));
    }

    #[test]
    fn admins_clear_a_stale_lock_and_the_audit_log_says_so() {
        let env = TestEnv::new();
        let carol = principal(4);
        std::mem::forget(CallerLock::acquire(carol).unwrap());
        assert_eq!(CallerLock::acquire(carol).unwrap_err(), Error::Busy);

        env.as_caller(principal(9));
        assert!(matches!(
            clear(&env, carol),
            Err(Error::NotAuthorized { .. })
        ));
        assert!(
            CallerLock::is_locked(&carol),
            "a refused clear released the lock"
        );
        assert_eq!(audit::len(), 0);

        env.as_caller(env.controller);
        clear(&env, carol).unwrap();
        let _lock = CallerLock::acquire(carol).expect("the stale lock is gone");
        assert_eq!(audit::len(), 1);
        let entry = audit::page(&env, ohms_types::Page::default())
            .unwrap()
            .items[0]
            .clone();
        assert_eq!(
            (entry.method.as_str(), entry.caller),
            ("clear_lock", env.controller)
        );
        assert!(entry.summary.contains(&carol.to_string()));
    }

    #[test]
    fn clearing_an_unlocked_principal_is_not_found() {
        let env = TestEnv::new();
        assert!(matches!(
            clear(&env, principal(5)),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(audit::len(), 0);
    }

    #[test]
    fn a_cleared_guard_dropped_late_leaves_the_new_lock_alone() {
        let env = TestEnv::new();
        let dave = principal(6);
        let stale = CallerLock::acquire(dave).unwrap();
        clear(&env, dave).unwrap();
        let current = CallerLock::acquire(dave).unwrap();
        drop(stale);
        assert!(
            CallerLock::is_locked(&dave),
            "the stale guard released the lock of the call holding it now"
        );
        drop(current);
        assert!(!CallerLock::is_locked(&dave));
    }
}
