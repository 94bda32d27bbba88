//! One value-moving call per principal at a time.
//!
//! A [`CallerLock`] is taken before the first await of a call that moves value and released
//! when it is dropped — at the end of the call, or by ic-cdk's cleanup when a callback traps —
//! so a fault never leaves a principal locked out. The set lives on the heap on purpose: an
//! upgrade, which can only happen with no calls in flight, starts with no locks.

use std::cell::RefCell;
use std::collections::BTreeSet;

use candid::Principal;
use ohms_types::Error;

thread_local! {
    static LOCKED: RefCell<BTreeSet<Principal>> = const { RefCell::new(BTreeSet::new()) };
}

#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct CallerLock {
    principal: Principal,
}

impl CallerLock {
    /// Takes the lock of `principal`, or `Busy` while another call holds it.
    pub fn acquire(principal: Principal) -> Result<Self, Error> {
        if LOCKED.with(|locked| locked.borrow_mut().insert(principal)) {
            Ok(Self { principal })
        } else {
            Err(Error::Busy)
        }
    }

    pub fn is_locked(principal: &Principal) -> bool {
        LOCKED.with(|locked| locked.borrow().contains(principal))
    }
}

impl Drop for CallerLock {
    fn drop(&mut self) {
        LOCKED.with(|locked| locked.borrow_mut().remove(&self.principal));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::principal;

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
}
