//! The append-only audit log of administrative actions.

use ohms_types::{AuditEntry, Error, Page, Paged};

use crate::state::{AuditRecord, mutate_ops, read_ops};
use crate::{Cbor, Env, access};

/// The longest summary kept; longer ones are cut (the log must stay cheap to page through).
pub const MAX_SUMMARY_CHARS: usize = 512;

/// Appends an entry for an admin action by the current caller.
pub fn record(env: &impl Env, method: &str, summary: impl Into<String>) {
    let mut summary: String = summary.into();
    if let Some((cut, _)) = summary.char_indices().nth(MAX_SUMMARY_CHARS) {
        summary.truncate(cut);
    }
    let record = AuditRecord {
        timestamp_nanos: env.now_nanos(),
        caller: env.caller(),
        method: method.to_string(),
        summary,
    };
    mutate_ops(|s| s.audit.append(&Cbor(record)))
        .expect("the audit log cannot grow: stable memory is exhausted");
}

/// A page of the log, oldest first. Administrators only.
pub fn page(env: &impl Env, page: Page) -> Result<Paged<AuditEntry>, Error> {
    access::admin(env)?;
    Ok(read_ops(|s| {
        let range = page.range(s.audit.len());
        let items = range
            .clone()
            .filter_map(|index| s.audit.get(index).map(|Cbor(r)| (index, r)))
            .map(|(index, r)| AuditEntry {
                index,
                timestamp_nanos: r.timestamp_nanos,
                caller: r.caller,
                method: r.method,
                summary: r.summary,
            })
            .collect();
        Paged::new(items, range, s.audit.len())
    }))
}

pub fn len() -> u64 {
    read_ops(|s| s.audit.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::{TestEnv, principal};

    #[test]
    fn entries_are_appended_in_order_and_paginated() {
        let env = TestEnv::new();
        for i in 0..150u64 {
            env.now.set(1_000 + i);
            record(&env, "set_tier", format!("change {i}"));
        }
        let first = page(&env, Page::first(u32::MAX)).unwrap();
        assert_eq!(first.items.len(), Page::MAX_LIMIT as usize);
        assert_eq!(first.total, 150);
        assert_eq!(first.items[7].summary, "change 7");
        assert_eq!(first.items[7].index, 7);
        assert_eq!(first.items[7].timestamp_nanos, 1_007);
        assert_eq!(first.items[7].caller, env.controller);
        let second = page(
            &env,
            Page {
                start: first.next_start.unwrap(),
                limit: 100,
            },
        )
        .unwrap();
        assert_eq!(second.items.len(), 50);
        assert_eq!(second.items[0].summary, "change 100");
        assert_eq!(second.next_start, None);
    }

    #[test]
    fn only_admins_read_the_log() {
        let env = TestEnv::new();
        record(&env, "pause", "maintenance");
        env.as_caller(principal(9));
        assert!(matches!(
            page(&env, Page::default()),
            Err(Error::NotAuthorized { .. })
        ));
    }

    #[test]
    fn long_summaries_are_cut() {
        let env = TestEnv::new();
        record(&env, "m", "é".repeat(MAX_SUMMARY_CHARS + 10));
        let entry = &page(&env, Page::default()).unwrap().items[0];
        assert_eq!(entry.summary.chars().count(), MAX_SUMMARY_CHARS);
    }
}
