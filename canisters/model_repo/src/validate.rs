//! Checks of what `begin_upload` receives: the NOVAQ manifest (decoded here with the `novaq`
//! crate's no_std format code) against the configured limits, and the uploader's metadata.

use novaq::format::{Codec, FORMAT_NAME, FORMAT_VERSION, FormatError, Manifest};
use ohms_types::{
    CodebookLayout, Error, ModelArchitecture, ModelId, ModelMetadata, NovaqParams, RepoConfig,
    ShardInfo,
};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// More shards than any configuration allows: a shard table this long is refused from its
/// header, before a single entry is read. 16,384 shard entries (size and hex sha256) keep a
/// manifest within one message and `get_model`'s reply under 2 MiB.
pub const HARD_MAX_SHARDS: u32 = 16_384;

/// What the canister keeps of a validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub root_hash: String,
    pub architecture: ModelArchitecture,
    pub novaq: NovaqParams,
    pub original_bytes: u64,
    pub total_bytes: u64,
    pub shard_size: u64,
    pub shards: Vec<ShardInfo>,
}

fn manifest_error(reason: impl Into<String>) -> Error {
    Error::invalid_argument("manifest", reason)
}

/// Decodes and checks manifest bytes. Cheap refusals come first: the size of the bytes, then
/// the length of the shard table read from its CBOR header, then the full decode.
pub fn manifest(bytes: &[u8], config: &RepoConfig) -> Result<Checked, Error> {
    if bytes.is_empty() || bytes.len() as u64 > config.max_manifest_bytes {
        return Err(manifest_error(format!(
            "must have 1 to {} bytes, has {}",
            config.max_manifest_bytes,
            bytes.len()
        )));
    }
    let shard_count = count_shards(bytes)?;
    if shard_count == 0 || shard_count > u64::from(config.max_shards) {
        return Err(Error::invalid_argument(
            "manifest.shards",
            format!(
                "the shard table has {shard_count} entries; 1 to {} are allowed",
                config.max_shards
            ),
        ));
    }
    let manifest = Manifest::from_cbor(bytes).map_err(|err| match err {
        FormatError::Version { format, version } => Error::invalid_argument(
            "manifest.version",
            format!(
                "format {format:?} version {version} is not supported (expected {FORMAT_NAME:?} version {FORMAT_VERSION})"
            ),
        ),
        other => manifest_error(other.to_string()),
    })?;
    let total_bytes = manifest.stored_bytes();
    if total_bytes == 0 || total_bytes > config.max_model_bytes {
        return Err(Error::invalid_argument(
            "manifest.shards",
            format!(
                "the shards hold {total_bytes} bytes; 1 to {} are allowed (max_model_bytes)",
                config.max_model_bytes
            ),
        ));
    }
    for (i, shard) in manifest.shards.iter().enumerate() {
        if !shard
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::invalid_argument(
                format!("manifest.shards[{i}].sha256"),
                "must be 64 lowercase hex digits",
            ));
        }
    }
    let architecture = architecture(&manifest)?;
    let parameters = manifest.compression.parameters;
    let novaq = NovaqParams {
        mode: manifest.compression.mode.clone(),
        code_bits: manifest.compression.code_bits,
        bits_per_weight: if parameters == 0 {
            0.0
        } else {
            (total_bytes as f64 * 8.0 / parameters as f64) as f32
        },
        codebooks: manifest
            .codebooks
            .iter()
            .map(|c| CodebookLayout {
                books: c.books,
                dim: c.dim,
            })
            .collect(),
        group_size: manifest.tensors.iter().find_map(|t| match t.codec {
            Codec::Scalar { group, .. } | Codec::Affine { group } => Some(group),
            _ => None,
        }),
        parameters,
        tensors: manifest.tensors.len() as u32,
    };
    Ok(Checked {
        root_hash: Manifest::root_hash(bytes),
        architecture,
        novaq,
        original_bytes: manifest.compression.source_bytes,
        total_bytes,
        shard_size: manifest.shard_size,
        shards: manifest
            .shards
            .iter()
            .map(|s| ShardInfo {
                size: s.size,
                sha256: s.sha256.clone(),
            })
            .collect(),
    })
}

fn architecture(manifest: &Manifest) -> Result<ModelArchitecture, Error> {
    let field = "manifest.architecture";
    let a = manifest.architecture.as_ref().ok_or_else(|| {
        Error::invalid_argument(field, "missing: the repository stores runnable models only")
    })?;
    let bad = |reason: &str| Err(Error::invalid_argument(field, reason.to_string()));
    if a.family != "llama" {
        return bad("family must be \"llama\"");
    }
    let dims = [
        a.hidden_size,
        a.intermediate_size,
        a.layers,
        a.heads,
        a.kv_heads,
        a.vocab_size,
        a.context_length,
    ];
    if dims.contains(&0) {
        return bad("every dimension must be positive");
    }
    if !a.hidden_size.is_multiple_of(a.heads) || !a.heads.is_multiple_of(a.kv_heads) {
        return bad("heads must divide hidden_size and kv_heads must divide heads");
    }
    if a.rope_dim > a.hidden_size / a.heads {
        return bad("rope_dim exceeds the head dimension");
    }
    if !(a.rope_theta.is_finite()
        && a.rope_theta > 0.0
        && a.norm_eps.is_finite()
        && a.norm_eps > 0.0)
    {
        return bad("rope_theta and norm_eps must be positive numbers");
    }
    Ok(ModelArchitecture {
        family: a.family.clone(),
        hidden_size: a.hidden_size,
        intermediate_size: a.intermediate_size,
        layers: a.layers,
        heads: a.heads,
        kv_heads: a.kv_heads,
        vocab_size: a.vocab_size,
        context_length: a.context_length,
        rope_dim: a.rope_dim,
        rope_theta: a.rope_theta,
        norm_eps: a.norm_eps,
        tied_embeddings: a.tied_embeddings,
    })
}

/// The length of the manifest's shard table, read without decoding its entries: from the CBOR
/// array header when it has a length, else by counting (and stopping past [`HARD_MAX_SHARDS`]).
fn count_shards(bytes: &[u8]) -> Result<u64, Error> {
    #[derive(Deserialize)]
    struct Probe {
        shards: ShardCount,
    }
    struct ShardCount(u64);
    impl<'de> Deserialize<'de> for ShardCount {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Count;
            impl<'de> Visitor<'de> for Count {
                type Value = ShardCount;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("the shard table")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ShardCount, A::Error> {
                    let too_many = || {
                        serde::de::Error::custom(format!(
                            "shard table longer than {HARD_MAX_SHARDS} entries"
                        ))
                    };
                    if seq
                        .size_hint()
                        .is_some_and(|n| n as u64 > u64::from(HARD_MAX_SHARDS))
                    {
                        return Err(too_many());
                    }
                    let mut n = 0u64;
                    while seq.next_element::<IgnoredAny>()?.is_some() {
                        n += 1;
                        if n > u64::from(HARD_MAX_SHARDS) {
                            return Err(too_many());
                        }
                    }
                    Ok(ShardCount(n))
                }
            }
            d.deserialize_seq(Count)
        }
    }
    let probe: Probe = ciborium::from_reader(bytes).map_err(|err| {
        let text = err.to_string();
        if text.contains("shard table longer") {
            Error::invalid_argument(
                "manifest.shards",
                format!("the shard table has more than {HARD_MAX_SHARDS} entries"),
            )
        } else {
            manifest_error(format!("not an OHMS model manifest (CBOR): {text}"))
        }
    })?;
    Ok(probe.shards.0)
}

fn text_field(field: &str, value: &str, max_chars: usize, allow_empty: bool) -> Result<(), Error> {
    let chars = value.chars().count();
    if (!allow_empty && value.trim().is_empty()) || chars > max_chars {
        return Err(Error::invalid_argument(
            field,
            format!(
                "must have {} to {max_chars} characters, has {chars}",
                if allow_empty { 0 } else { 1 }
            ),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid_argument(
            field,
            "must not hold control characters",
        ));
    }
    Ok(())
}

pub const MAX_CAPABILITIES: usize = 16;
pub const MAX_TAGS: usize = 16;
pub const MAX_TAG_CHARS: usize = 32;

/// Checks the uploader's metadata; returns it with capabilities and tags sorted and deduplicated.
pub fn metadata(mut m: ModelMetadata) -> Result<ModelMetadata, Error> {
    m.id = ModelId::parse(m.id.as_str(), "metadata.id")?;
    text_field("metadata.name", &m.name, 128, false)?;
    text_field("metadata.version", &m.version, 32, false)?;
    if !m
        .version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
    {
        return Err(Error::invalid_argument(
            "metadata.version",
            "may hold only A-Z a-z 0-9 . - + _",
        ));
    }
    text_field("metadata.description", &m.description, 2_048, true)?;
    if m.capabilities.len() > MAX_CAPABILITIES {
        return Err(Error::invalid_argument(
            "metadata.capabilities",
            format!("at most {MAX_CAPABILITIES}"),
        ));
    }
    m.capabilities.sort();
    m.capabilities.dedup();
    if m.tags.len() > MAX_TAGS {
        return Err(Error::invalid_argument(
            "metadata.tags",
            format!("at most {MAX_TAGS}"),
        ));
    }
    for tag in &m.tags {
        tag_text(tag, "metadata.tags")?;
    }
    m.tags.sort();
    m.tags.dedup();
    Ok(m)
}

pub fn tag_text(tag: &str, field: &str) -> Result<(), Error> {
    if tag.is_empty()
        || tag.len() > MAX_TAG_CHARS
        || !tag
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
    {
        return Err(Error::invalid_argument(
            field,
            format!("a tag has 1 to {MAX_TAG_CHARS} characters a-z 0-9 - _ . (got {tag:?})"),
        ));
    }
    Ok(())
}
