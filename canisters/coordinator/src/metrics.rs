//! The coordinator's figures on `/metrics`, after the operations layer's.

use crate::state::read_state;
use ic_metrics_encoder::MetricsEncoder;

pub fn encode(w: &mut MetricsEncoder<Vec<u8>>) -> std::io::Result<()> {
    let (total, active, running, alerts) = read_state(|s| {
        (
            s.tasks.len(),
            s.active.len(),
            s.running_tasks(),
            s.alerts.len(),
        )
    });
    w.encode_gauge("coordinator_tasks", total as f64, "Tasks ever submitted.")?;
    w.encode_gauge(
        "coordinator_tasks_running",
        running as f64,
        "Tasks running now.",
    )?;
    w.encode_gauge(
        "coordinator_tasks_unsettled",
        active as f64,
        "Tasks running or with a reservation not yet released.",
    )?;
    w.encode_gauge(
        "coordinator_alerts",
        alerts as f64,
        "Alerts kept in every feed.",
    )?;
    Ok(())
}
