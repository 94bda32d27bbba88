//! The repository's active models, as the factory last fetched them (`find_models` with no
//! capability: every active model). `analyze_instructions` is a query and cannot call the
//! repository, so it suggests from this copy; `create_agents` refreshes it first.

use ohms_types::{Error, ModelMatch, ModelSummary, Tier};

use crate::state::{mutate_state, read_state};

/// Fetches the active models `tier` may use; keeps the copy when fetched for the highest tier.
pub async fn fetch(tier: Tier) -> Result<Vec<ModelSummary>, Error> {
    let repo = ohms_ops::calls::sibling("model_repo")?;
    let matches: Vec<ModelMatch> = ohms_ops::calls::call(
        repo,
        "find_models",
        (Vec::<ohms_types::Capability>::new(), tier),
    )
    .await?;
    let models: Vec<ModelSummary> = matches.into_iter().map(|m| m.model).collect();
    if tier == Tier::Enterprise {
        let now = ic_cdk::api::time();
        mutate_state(|s| {
            s.catalogue.set(ohms_ops::Cbor(models.clone()));
            s.update_config(|c| c.catalogue_at = now);
        });
    }
    Ok(models)
}

/// Refreshes the kept copy (timer).
pub async fn refresh() {
    if let Err(err) = fetch(Tier::Enterprise).await {
        ic_cdk::println!("model catalogue not refreshed: {err}");
    }
}

pub fn cached() -> Vec<ModelSummary> {
    read_state(|s| s.catalogue())
}
