//! Economics' figures on `/metrics`, after the operations layer's.

use ic_metrics_encoder::MetricsEncoder;

use crate::state::read_state;
use crate::views;

pub fn encode(w: &mut MetricsEncoder<Vec<u8>>) -> std::io::Result<()> {
    let now = ic_cdk::api::time();
    let (counts, stored, reservations, pending) = read_state(|s| {
        (
            views::subscription_counts(s, now),
            s.stored(),
            s.reservations.len(),
            s.pending.len(),
        )
    });
    let mut states = w.gauge_vec("economics_subscriptions", "Subscriptions by state.")?;
    for (state, count) in &counts.by_state {
        states = states.value(&[("state", state)], *count as f64)?;
    }
    let mut tiers = w.gauge_vec(
        "economics_subscriptions_usable",
        "Subscriptions giving access now, by tier.",
    )?;
    for (tier, count) in &counts.by_tier {
        tiers = tiers.value(
            &[("tier", &format!("{tier:?}").to_lowercase())],
            *count as f64,
        )?;
    }
    w.encode_counter(
        "economics_revenue_e8s",
        stored.revenue_e8s as f64,
        "Completed payments, ever (e8s).",
    )?;
    w.encode_gauge(
        "economics_treasury_e8s",
        stored.treasury_e8s as f64,
        "The platform's withdrawable share (e8s).",
    )?;
    w.encode_gauge(
        "economics_open_reservations",
        reservations as f64,
        "Reservations neither committed, released nor expired.",
    )?;
    w.encode_gauge(
        "economics_pending_settlements",
        pending as f64,
        "Payments and payouts whose ledger outcome is not known yet.",
    )?;
    Ok(())
}
