//! Hyper-parameters of a Llama-family model, read from GGUF metadata or a NOVAQ manifest.

use alloc::string::{String, ToString};
use core::fmt;
use novaq::format::Architecture;
use novaq::read::Metadata;
use serde::{Deserialize, Serialize};

/// Shape and numerics of a Llama-family transformer. Serializable so a model manifest can carry
/// it next to the compressed weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Width of the residual stream (`embedding_length`).
    pub dim: usize,
    /// Width of the SwiGLU feed-forward layer (`feed_forward_length`).
    pub hidden_dim: usize,
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads; fewer than `n_heads` means grouped-query attention.
    pub n_kv_heads: usize,
    pub vocab_size: usize,
    /// Longest sequence the model was trained for.
    pub context_length: usize,
    /// Leading dimensions of each head that RoPE rotates (usually the whole head).
    pub rope_dim: usize,
    pub rope_theta: f32,
    pub norm_eps: f32,
    /// The output projection reuses the token embedding matrix.
    pub tied_embeddings: bool,
}

/// The metadata does not describe a model this crate can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    UnsupportedArchitecture(String),
    Missing(String),
    Invalid { key: String, reason: &'static str },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedArchitecture(a) => write!(f, "unsupported architecture {a:?}"),
            Self::Missing(key) => write!(f, "metadata key {key} is missing"),
            Self::Invalid { key, reason } => write!(f, "metadata key {key}: {reason}"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// RoPE base frequency when the metadata leaves it out (Llama 2's value).
const DEFAULT_ROPE_THETA: f32 = 10_000.0;
const DEFAULT_NORM_EPS: f32 = 1e-5;

impl Config {
    /// Builds the configuration from GGUF metadata (`llama.*` keys). `has_output_weight` says
    /// whether the file carries `output.weight`; without it the embeddings are tied.
    pub fn from_gguf(metadata: &Metadata, has_output_weight: bool) -> Result<Self, ConfigError> {
        let arch = metadata
            .get_str("general.architecture")
            .ok_or_else(|| ConfigError::Missing("general.architecture".into()))?;
        if arch != "llama" {
            return Err(ConfigError::UnsupportedArchitecture(arch.into()));
        }
        let key = |name: &str| alloc::format!("{arch}.{name}");
        let count = |name: &str| -> Result<usize, ConfigError> {
            let key = key(name);
            let value = metadata
                .get(&key)
                .ok_or_else(|| ConfigError::Missing(key.clone()))?;
            value
                .as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v > 0)
                .ok_or(ConfigError::Invalid {
                    key,
                    reason: "must be a positive integer",
                })
        };
        let dim = count("embedding_length")?;
        let n_heads = count("attention.head_count")?;
        let n_kv_heads = match metadata.get(&key("attention.head_count_kv")) {
            Some(_) => count("attention.head_count_kv")?,
            None => n_heads,
        };
        let head_dim = dim / n_heads;
        let rope_dim = match metadata.get(&key("rope.dimension_count")) {
            Some(_) => count("rope.dimension_count")?,
            None => head_dim,
        };
        // Older conversions leave the vocabulary size to the tokenizer's token list.
        let vocab_size = match metadata.get(&key("vocab_size")) {
            Some(_) => count("vocab_size")?,
            None => metadata
                .get_array("tokenizer.ggml.tokens")
                .map(<[_]>::len)
                .filter(|&n| n > 0)
                .ok_or_else(|| ConfigError::Missing(key("vocab_size")))?,
        };
        let float = |name: &str, default: f32| -> Result<f32, ConfigError> {
            let key = key(name);
            match metadata.get(&key) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .map(|x| x as f32)
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or(ConfigError::Invalid {
                        key,
                        reason: "must be a positive number",
                    }),
            }
        };
        let config = Self {
            dim,
            hidden_dim: count("feed_forward_length")?,
            n_layers: count("block_count")?,
            n_heads,
            n_kv_heads,
            vocab_size,
            context_length: count("context_length")?,
            rope_dim,
            rope_theta: float("rope.freq_base", DEFAULT_ROPE_THETA)?,
            norm_eps: float("attention.layer_norm_rms_epsilon", DEFAULT_NORM_EPS)?,
            tied_embeddings: !has_output_weight,
        };
        config.validate().map_err(|reason| ConfigError::Invalid {
            key: key("attention.head_count").to_string(),
            reason,
        })?;
        Ok(config)
    }

    /// The configuration a NOVAQ manifest records. Manifests come from outside (uploads), so it
    /// is checked like GGUF metadata.
    pub fn from_architecture(a: &Architecture) -> Result<Self, ConfigError> {
        if a.family != "llama" {
            return Err(ConfigError::UnsupportedArchitecture(a.family.clone()));
        }
        let size = |v: u32| v as usize;
        let config = Self {
            dim: size(a.hidden_size),
            hidden_dim: size(a.intermediate_size),
            n_layers: size(a.layers),
            n_heads: size(a.heads),
            n_kv_heads: size(a.kv_heads),
            vocab_size: size(a.vocab_size),
            context_length: size(a.context_length),
            rope_dim: size(a.rope_dim),
            rope_theta: a.rope_theta,
            norm_eps: a.norm_eps,
            tied_embeddings: a.tied_embeddings,
        };
        config.validate().map_err(|reason| ConfigError::Invalid {
            key: "architecture".into(),
            reason,
        })?;
        Ok(config)
    }

    /// What a manifest records: the inverse of [`Config::from_architecture`].
    pub fn to_architecture(&self) -> Architecture {
        let size = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Architecture {
            family: "llama".into(),
            hidden_size: size(self.dim),
            intermediate_size: size(self.hidden_dim),
            layers: size(self.n_layers),
            heads: size(self.n_heads),
            kv_heads: size(self.n_kv_heads),
            vocab_size: size(self.vocab_size),
            context_length: size(self.context_length),
            rope_dim: size(self.rope_dim),
            rope_theta: self.rope_theta,
            norm_eps: self.norm_eps,
            tied_embeddings: self.tied_embeddings,
        }
    }

    /// Checks the relations between dimensions the forward pass relies on.
    pub fn validate(&self) -> Result<(), &'static str> {
        let sizes = [
            self.dim,
            self.hidden_dim,
            self.n_layers,
            self.n_heads,
            self.n_kv_heads,
        ];
        if sizes.contains(&0) || self.vocab_size == 0 || self.context_length == 0 {
            return Err("every dimension must be positive");
        }
        if !self.dim.is_multiple_of(self.n_heads) {
            return Err("embedding length is not a multiple of the head count");
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err("head count is not a multiple of the key/value head count");
        }
        if self.rope_dim > self.head_dim() || !self.rope_dim.is_multiple_of(2) {
            return Err("rope dimension must be even and at most the head size");
        }
        let positive = |x: f32| x.is_finite() && x > 0.0;
        if !positive(self.rope_theta) || !positive(self.norm_eps) {
            return Err("rope theta and norm epsilon must be positive numbers");
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Width of the key and value projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use novaq::read::MetadataValue;

    fn llama_metadata() -> Metadata {
        let u32 = |v| MetadataValue::U32(v);
        [
            (
                "general.architecture",
                MetadataValue::String("llama".into()),
            ),
            ("llama.embedding_length", u32(576)),
            ("llama.feed_forward_length", u32(1536)),
            ("llama.block_count", u32(30)),
            ("llama.attention.head_count", u32(9)),
            ("llama.attention.head_count_kv", u32(3)),
            ("llama.context_length", u32(8192)),
            ("llama.vocab_size", u32(49152)),
            ("llama.rope.freq_base", MetadataValue::F32(100_000.0)),
            (
                "llama.attention.layer_norm_rms_epsilon",
                MetadataValue::F32(1e-5),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v))
        .collect()
    }

    #[test]
    fn reads_llama_keys_with_defaults_for_optional_ones() {
        let c = Config::from_gguf(&llama_metadata(), false).unwrap();
        assert_eq!(
            (c.dim, c.head_dim(), c.kv_dim(), c.rope_dim),
            (576, 64, 192, 64)
        );
        assert_eq!((c.rope_theta, c.tied_embeddings), (100_000.0, true));
        let mut m = llama_metadata();
        m.insert("llama.rope.freq_base".into(), MetadataValue::U64(500_000));
        assert_eq!(Config::from_gguf(&m, true).unwrap().rope_theta, 500_000.0);
    }

    #[test]
    fn rejects_missing_and_inconsistent_metadata() {
        let mut m = llama_metadata();
        m.insert(
            "general.architecture".into(),
            MetadataValue::String("gpt2".into()),
        );
        assert_eq!(
            Config::from_gguf(&m, true),
            Err(ConfigError::UnsupportedArchitecture("gpt2".into()))
        );
        let without: Metadata = llama_metadata()
            .iter()
            .filter(|(k, _)| *k != "llama.block_count")
            .map(|(k, v)| (k.into(), v.clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            Config::from_gguf(&without, true),
            Err(ConfigError::Missing("llama.block_count".into()))
        );
        let mut m = llama_metadata();
        m.insert(
            "llama.attention.head_count_kv".into(),
            MetadataValue::U32(4),
        );
        assert!(matches!(
            Config::from_gguf(&m, true),
            Err(ConfigError::Invalid { .. })
        ));
        let mut m = llama_metadata();
        m.insert("llama.embedding_length".into(), MetadataValue::I32(-1));
        assert!(matches!(
            Config::from_gguf(&m, true),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn architecture_round_trips_and_is_validated() {
        let c = Config::from_gguf(&llama_metadata(), true).unwrap();
        let a = c.to_architecture();
        assert_eq!((a.hidden_size, a.kv_heads, a.rope_dim), (576, 3, 64));
        assert_eq!(Config::from_architecture(&a), Ok(c));

        let other = Architecture {
            family: "gpt2".into(),
            ..a.clone()
        };
        assert_eq!(
            Config::from_architecture(&other),
            Err(ConfigError::UnsupportedArchitecture("gpt2".into()))
        );
        let broken = [
            Architecture {
                heads: 0,
                ..a.clone()
            },
            Architecture {
                kv_heads: 4,
                ..a.clone()
            },
            Architecture {
                rope_dim: 65,
                ..a.clone()
            },
            Architecture {
                context_length: 0,
                ..a.clone()
            },
            Architecture {
                norm_eps: f32::NAN,
                ..a.clone()
            },
            Architecture {
                rope_theta: -1.0,
                ..a.clone()
            },
        ];
        for b in broken {
            assert!(
                matches!(
                    Config::from_architecture(&b),
                    Err(ConfigError::Invalid { .. })
                ),
                "{b:?}"
            );
        }
    }
}
