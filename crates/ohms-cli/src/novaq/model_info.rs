//! What a manifest records about the model beyond its weights, taken from GGUF metadata.

use novaq::Tensor;
use novaq::format::{Architecture, TokenizerSpec};
use novaq::read::Metadata;
use ohms_llm::Config;

/// The Llama configuration, when the metadata describes one this project can run.
pub fn architecture(metadata: &Metadata, tensors: &[Tensor]) -> Option<Architecture> {
    let has_output = tensors.iter().any(|t| t.name == "output.weight");
    Some(
        Config::from_gguf(metadata, has_output)
            .ok()?
            .to_architecture(),
    )
}

/// The `tokenizer.ggml.*` description, when the metadata has a vocabulary.
pub fn tokenizer(metadata: &Metadata) -> Option<TokenizerSpec> {
    ohms_llm::tokenizer::spec_from_gguf(metadata).ok()
}
