//! What a manifest records about the model beyond its weights, taken from GGUF metadata, and
//! back again for running the compressed model.

use novaq::Tensor;
use novaq::format::{Architecture, TokenizerSpec};
use novaq::read::Metadata;
use ohms_llm::Config;

/// The Llama configuration, when the metadata describes one this project can run.
pub fn architecture(metadata: &Metadata, tensors: &[Tensor]) -> Option<Architecture> {
    let has_output = tensors.iter().any(|t| t.name == "output.weight");
    let c = Config::from_gguf(metadata, has_output).ok()?;
    Some(Architecture {
        family: "llama".into(),
        hidden_size: c.dim as u32,
        intermediate_size: c.hidden_dim as u32,
        layers: c.n_layers as u32,
        heads: c.n_heads as u32,
        kv_heads: c.n_kv_heads as u32,
        vocab_size: c.vocab_size as u32,
        context_length: c.context_length as u32,
        rope_dim: c.rope_dim as u32,
        rope_theta: c.rope_theta,
        norm_eps: c.norm_eps,
        tied_embeddings: c.tied_embeddings,
    })
}

pub fn config(a: &Architecture) -> Config {
    Config {
        dim: a.hidden_size as usize,
        hidden_dim: a.intermediate_size as usize,
        n_layers: a.layers as usize,
        n_heads: a.heads as usize,
        n_kv_heads: a.kv_heads as usize,
        vocab_size: a.vocab_size as usize,
        context_length: a.context_length as usize,
        rope_dim: a.rope_dim as usize,
        rope_theta: a.rope_theta,
        norm_eps: a.norm_eps,
        tied_embeddings: a.tied_embeddings,
    }
}

/// The `tokenizer.ggml.*` description, when the metadata has a vocabulary.
pub fn tokenizer(metadata: &Metadata) -> Option<TokenizerSpec> {
    let tokens: Vec<String> = metadata
        .get_str_array("tokenizer.ggml.tokens")?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let id = |key: &str| {
        metadata
            .get_u64(key)
            .filter(|&v| v < tokens.len() as u64)
            .map(|v| v as u32)
    };
    Some(TokenizerSpec {
        model: metadata
            .get_str("tokenizer.ggml.model")
            .unwrap_or("llama")
            .to_owned(),
        scores: metadata
            .get_f32_array("tokenizer.ggml.scores")
            .unwrap_or_default(),
        token_types: metadata
            .get_i64_array("tokenizer.ggml.token_type")
            .unwrap_or_default()
            .into_iter()
            .map(|t| t as i32)
            .collect(),
        merges: metadata
            .get_str_array("tokenizer.ggml.merges")
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        bos: id("tokenizer.ggml.bos_token_id"),
        eos: id("tokenizer.ggml.eos_token_id"),
        unknown: id("tokenizer.ggml.unknown_token_id"),
        padding: id("tokenizer.ggml.padding_token_id"),
        add_bos: metadata
            .get_bool("tokenizer.ggml.add_bos_token")
            .unwrap_or(metadata.get_str("tokenizer.ggml.model") == Some("llama")),
        chat_template: metadata
            .get_str("tokenizer.chat_template")
            .map(str::to_owned),
        tokens,
    })
}
