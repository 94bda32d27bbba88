use std::fmt;

use candid::{CandidType, Deserialize};
use serde::Serialize;

use crate::Error;

/// The id of a model in the repository: 1 to 64 characters of `a-z 0-9 - _ .`, starting with a
/// letter or digit (e.g. `smollm2-135m-instruct.novaq2`). Chosen by the uploader, stable for life.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(transparent)]
pub struct ModelId(String);

impl ModelId {
    pub const MAX_LEN: usize = 64;

    /// Validates `id`; `field` names the argument in the error.
    pub fn parse(id: &str, field: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Err(Error::invalid_argument(field, reason));
        if id.is_empty() || id.len() > Self::MAX_LEN {
            return invalid(format!(
                "must have 1 to {} characters, has {}",
                Self::MAX_LEN,
                id.len()
            ));
        }
        if !id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return invalid("must start with a lowercase letter or a digit".to_string());
        }
        let allowed = |c: &char| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.');
        if let Some(c) = id.chars().find(|c| !allowed(c)) {
            return invalid(format!("may hold only a-z 0-9 - _ . (found {c:?})"));
        }
        Ok(Self(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! sequential_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

sequential_id!(
    /// An agent, numbered by the factory in creation order.
    AgentId
);
sequential_id!(
    /// A coordinated task, numbered by the coordinator in submission order.
    TaskId
);
sequential_id!(
    /// A model upload in progress, numbered by the repository.
    UploadId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_validated_with_the_field_named() {
        assert!(ModelId::parse("smollm2-135m.novaq2", "id").is_ok());
        for bad in ["", "Upper", "-lead", "has space", &"x".repeat(65)] {
            match ModelId::parse(bad, "manifest.id") {
                Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "manifest.id"),
                other => panic!("{bad:?} accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn ids_are_plain_candid_values() {
        // Newtypes encode as their inner value, so clients can pass `42 : nat64` and `"id" : text`.
        assert_eq!(
            candid::encode_one(AgentId(42)).unwrap(),
            candid::encode_one(42u64).unwrap()
        );
        let model = ModelId::parse("m", "id").unwrap();
        assert_eq!(
            candid::encode_one(&model).unwrap(),
            candid::encode_one("m").unwrap()
        );
    }
}
