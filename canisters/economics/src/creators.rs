//! Who created each metered model, as the model repository records it: a creator's share of a
//! month's pool is paid to the principal the repository names, never to one a usage report
//! names.

use candid::{CandidType, Principal};
use ic_cdk::call::Call;
use ohms_types::{Error, ModelId};
use serde::Deserialize;

use crate::state::mutate_state;

/// Looks up and keeps the creators of `models` (a model the repository no longer has is kept
/// as created by the anonymous principal: its tokens earn nobody). False when the repository is
/// not registered or did not answer: the split waits for the next run.
pub async fn learn(models: &[ModelId]) -> bool {
    if models.is_empty() {
        return true;
    }
    let Some(repo) = ohms_ops::registered_siblings().model_repo else {
        return false;
    };
    for model in models {
        let Ok(response) = Call::bounded_wait(repo, "get_model").with_arg(model).await else {
            return false;
        };
        let creator = match response.candid::<Result<Creator, Error>>() {
            Ok(Ok(Creator { creator })) => creator,
            Ok(Err(Error::NotFound { .. })) => Principal::anonymous(),
            _ => return false,
        };
        mutate_state(|s| s.model_creators.insert(model.as_str().to_string(), creator));
    }
    true
}

/// The one field of the repository's `ModelRecord` economics reads (Candid skips the others,
/// and economics carries no decoder for the rest of the record).
#[derive(CandidType, Deserialize)]
struct Creator {
    creator: Principal,
}
