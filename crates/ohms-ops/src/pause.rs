//! The emergency brake: while paused, state-changing user calls are refused with `Paused`;
//! administrators keep working (they have to be able to unpause and repair).

use ohms_types::Error;

use crate::state::{mutate_ops, read_ops};
use crate::{Env, access, audit};

/// The longest pause reason kept.
pub const MAX_REASON_CHARS: usize = 256;

/// Refuses the call with `Paused` while the canister is paused. Not public: state-changing user
/// methods check the pause through [`UserUpdate`](crate::access::UserUpdate), together with the
/// caller, so no method can do one without the other.
pub(crate) fn ensure_running() -> Result<(), Error> {
    match read_ops(|s| s.config().paused.clone()) {
        Some(reason) => Err(Error::Paused { reason }),
        None => Ok(()),
    }
}

pub fn is_paused() -> bool {
    read_ops(|s| s.config().paused.is_some())
}

/// Pauses the canister. Administrators only.
pub fn pause(env: &impl Env, reason: String) -> Result<(), Error> {
    access::admin(env)?;
    let reason = reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::invalid_argument(
            "reason",
            format!("must have 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    if is_paused() {
        return Err(Error::invalid_state("the canister is already paused"));
    }
    mutate_ops(|s| s.update_config(|c| c.paused = Some(reason.clone())));
    audit::record(env, "pause", format!("paused: {reason}"));
    Ok(())
}

/// Lifts a pause. Administrators only.
pub fn unpause(env: &impl Env) -> Result<(), Error> {
    access::admin(env)?;
    if !is_paused() {
        return Err(Error::invalid_state("the canister is not paused"));
    }
    mutate_ops(|s| s.update_config(|c| c.paused = None));
    audit::record(env, "unpause", "resumed service");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::{TestEnv, principal};

    #[test]
    fn pause_refuses_user_changes_until_unpaused() {
        let env = TestEnv::new();
        assert_eq!(ensure_running(), Ok(()));
        pause(&env, "ledger incident".into()).unwrap();
        assert_eq!(
            ensure_running(),
            Err(Error::Paused {
                reason: "ledger incident".into()
            })
        );
        assert!(matches!(
            pause(&env, "again".into()),
            Err(Error::InvalidState { .. })
        ));
        unpause(&env).unwrap();
        assert_eq!(ensure_running(), Ok(()));
        assert_eq!(audit::len(), 2);
    }

    #[test]
    fn only_admins_pause_and_bad_reasons_change_nothing() {
        let env = TestEnv::new();
        assert!(matches!(
            pause(&env, "  ".into()),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            pause(&env, "x".repeat(MAX_REASON_CHARS + 1)),
            Err(Error::InvalidArgument { .. })
        ));
        env.as_caller(principal(9));
        assert!(matches!(
            pause(&env, "mine".into()),
            Err(Error::NotAuthorized { .. })
        ));
        assert!(!is_paused());
        assert_eq!(audit::len(), 0);
    }
}
