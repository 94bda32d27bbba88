//! The models' tokenizers, to count a prompt's tokens exactly as the agent will: read from the
//! model repository's manifest once per model and kept on the heap (an upgrade reads them
//! again on first use).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use novaq::format::Manifest;
use ohms_llm::Tokenizer;
use ohms_types::{Error, ModelId, ModelRecord};
use serde_bytes::ByteBuf;

/// A model as prompts see it.
pub struct ModelText {
    pub tokenizer: Tokenizer,
    pub context: u32,
}

impl ModelText {
    /// Tokens of `prompt` under `system`, chat template included: what the agent feeds.
    pub fn count(&self, system: &str, prompt: &str) -> usize {
        self.tokenizer.encode_instruction(system, prompt).len()
    }
}

thread_local! {
    static MODELS: RefCell<BTreeMap<String, Rc<ModelText>>> = RefCell::default();
}

/// The tokenizer and context of `model`, read from the repository on first use.
pub async fn model_text(model: &ModelId) -> Result<Rc<ModelText>, Error> {
    if let Some(found) = MODELS.with(|m| m.borrow().get(model.as_str()).cloned()) {
        return Ok(found);
    }
    let repo = ohms_ops::calls::sibling("model_repo")?;
    let record: ModelRecord = ohms_ops::calls::call(repo, "get_model", (model,)).await?;
    let bytes: ByteBuf = ohms_ops::calls::call(repo, "get_manifest", (model,)).await?;
    let manifest = Manifest::from_cbor(&bytes)
        .map_err(|err| Error::invalid_state(format!("manifest of {model}: {err}")))?;
    let spec = manifest
        .tokenizer
        .as_ref()
        .ok_or_else(|| Error::invalid_state(format!("model {model} carries no tokenizer")))?;
    let tokenizer = Tokenizer::from_spec(spec)
        .map_err(|err| Error::invalid_state(format!("tokenizer of {model}: {err}")))?;
    let text = Rc::new(ModelText {
        tokenizer,
        context: record.architecture.context_length,
    });
    MODELS.with(|m| {
        m.borrow_mut()
            .insert(model.as_str().to_string(), text.clone())
    });
    Ok(text)
}
