//! Usage metering: tokens in and out, calls and agents created, per principal, per agent and
//! per model, per calendar month.

use candid::Principal;
use ohms_ops::Cbor;
use ohms_types::{ModelId, MonthUsage, UsageCounters, UsageReport};

use crate::state::State;
use ohms_types::calendar::month_label;

/// Whose usage a counter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Principal = 0,
    Agent = 1,
    Model = 2,
}

/// `scope | id length | id | month (big-endian)`: one id's months are contiguous and in order.
pub fn key(scope: Scope, id: &[u8], month: u32) -> Vec<u8> {
    let mut key = prefix(scope, id);
    key.extend_from_slice(&month.to_be_bytes());
    key
}

fn prefix(scope: Scope, id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 6);
    key.push(scope as u8);
    key.push(id.len() as u8);
    key.extend_from_slice(id);
    key
}

/// The month of a key, and its id.
fn split_key(key: &[u8]) -> (&[u8], u32) {
    let len = key[1] as usize;
    let month = u32::from_be_bytes(key[2 + len..6 + len].try_into().expect("4 bytes"));
    (&key[2..2 + len], month)
}

pub fn counters(state: &State, scope: Scope, id: &[u8], month: u32) -> UsageCounters {
    state
        .usage
        .get(&key(scope, id, month))
        .map(|c| c.0)
        .unwrap_or_default()
}

fn add(state: &mut State, scope: Scope, id: &[u8], month: u32, report: &UsageReport) {
    let key = key(scope, id, month);
    let mut counters = state.usage.get(&key).map(|c| c.0).unwrap_or_default();
    counters.tokens_in = counters.tokens_in.saturating_add(report.tokens_in);
    counters.tokens_out = counters.tokens_out.saturating_add(report.tokens_out);
    counters.calls = counters.calls.saturating_add(1);
    counters.agents_created = counters
        .agents_created
        .saturating_add(u64::from(report.agents_created));
    state.usage.insert(key, Cbor(counters));
}

/// Adds a report to the principal's, the agent's and the model's counters of `month`.
pub fn record(state: &mut State, principal: Principal, report: &UsageReport, month: u32) {
    add(state, Scope::Principal, principal.as_slice(), month, report);
    if let Some(agent) = &report.agent {
        add(state, Scope::Agent, agent.as_bytes(), month, report);
    }
    if let Some(model) = &report.model {
        add(
            state,
            Scope::Model,
            model.as_str().as_bytes(),
            month,
            report,
        );
    }
}

/// One id's months, oldest first, a page at a time.
pub fn history(state: &State, scope: Scope, id: &[u8]) -> Vec<MonthUsage> {
    let prefix = prefix(scope, id);
    state
        .usage
        .range(prefix.clone()..)
        .take_while(|entry| entry.key().starts_with(&prefix))
        .map(|entry| MonthUsage {
            month: month_label(split_key(entry.key()).1),
            usage: entry.value().0,
        })
        .collect()
}

/// Every model's counters of `month`.
pub fn models_in_month(state: &State, month: u32) -> Vec<(ModelId, UsageCounters)> {
    let start = vec![Scope::Model as u8];
    state
        .usage
        .range(start..)
        .take_while(|entry| entry.key()[0] == Scope::Model as u8)
        .filter_map(|entry| {
            let key = entry.key();
            let (id, key_month) = split_key(key);
            (key_month == month).then(|| {
                let id = String::from_utf8_lossy(id).into_owned();
                (ModelId::parse(&id, "model").ok(), entry.value().0)
            })
        })
        .filter_map(|(id, counters)| id.map(|id| (id, counters)))
        .collect()
}

pub fn tokens(counters: &UsageCounters) -> u64 {
    counters.tokens_in.saturating_add(counters.tokens_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_an_ids_months_together_and_in_order() {
        let a = key(Scope::Model, b"m", 24_300);
        let b = key(Scope::Model, b"m", 24_301);
        let other = key(Scope::Model, b"ma", 0);
        assert!(a < b);
        assert!(!other.starts_with(&prefix(Scope::Model, b"m")));
        assert_eq!(split_key(&b), (&b"m"[..], 24_301));
    }
}
