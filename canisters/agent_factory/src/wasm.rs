//! The agent wasm administrators upload in chunks; it becomes the module new agent canisters
//! get (and upgrades install) once every byte arrived and its sha256 matched.

use ohms_ops::Env;
use ohms_types::{AgentWasmChunk, AgentWasmStatus, Error, MAX_CHUNK_BYTES};
use sha2::{Digest, Sha256};

use crate::state::{WasmMeta, mutate_state, read_state};

/// Largest agent module accepted (the IC's limit for chunked installs is 100 MiB).
pub const MAX_WASM_BYTES: u64 = 100 << 20;

/// Stores one chunk. Chunks arrive in order; resending one already stored changes nothing.
/// A chunk of another module (another sha256) starts a new upload.
pub fn upload(env: &impl Env, chunk: AgentWasmChunk) -> Result<AgentWasmStatus, Error> {
    ohms_ops::access::admin(env)?;
    let sha256 = chunk.sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid_argument("sha256", "must be 64 hex digits"));
    }
    if chunk.total_bytes == 0 || chunk.total_bytes > MAX_WASM_BYTES {
        return Err(Error::invalid_argument(
            "total_bytes",
            format!("must be from 1 to {MAX_WASM_BYTES}"),
        ));
    }
    let len = chunk.bytes.len() as u64;
    if len == 0 || len > MAX_CHUNK_BYTES {
        return Err(Error::invalid_argument(
            "bytes",
            format!("a chunk holds 1 to {MAX_CHUNK_BYTES} bytes"),
        ));
    }
    if chunk
        .offset
        .checked_add(len)
        .is_none_or(|end| end > chunk.total_bytes)
    {
        return Err(Error::invalid_argument(
            "offset",
            "the chunk ends past total_bytes",
        ));
    }
    let completed = mutate_state(|s| {
        let mut staging = match s.config().staging_wasm {
            Some(w) if w.sha256 == sha256 && w.total_bytes == chunk.total_bytes => w,
            previous => {
                if let Some(previous) = previous {
                    drop_version(s, previous.version);
                }
                let version = s.update_config(|c| {
                    c.next_wasm_version += 1;
                    c.next_wasm_version - 1
                });
                WasmMeta {
                    version,
                    sha256: sha256.clone(),
                    total_bytes: chunk.total_bytes,
                    received: 0,
                }
            }
        };
        if chunk.offset < staging.received {
            // A retry of a stored chunk.
            if s.wasm.get(&(staging.version, chunk.offset)).as_deref() != Some(&chunk.bytes[..]) {
                return Err(Error::invalid_argument(
                    "offset",
                    format!("bytes at {} differ from those stored", chunk.offset),
                ));
            }
        } else if chunk.offset == staging.received {
            s.wasm
                .insert((staging.version, chunk.offset), chunk.bytes.clone());
            staging.received += len;
        } else {
            return Err(Error::invalid_argument(
                "offset",
                format!("expected the chunk at {} next", staging.received),
            ));
        }
        let complete = staging.received == staging.total_bytes;
        s.update_config(|c| c.staging_wasm = Some(staging.clone()));
        Ok(complete.then_some(staging))
    })?;
    if let Some(staging) = completed {
        activate(env, staging)?;
    }
    Ok(status())
}

/// Checks the complete upload's sha256 and makes it the active module.
fn activate(env: &impl Env, staging: WasmMeta) -> Result<(), Error> {
    let found = read_state(|s| {
        let mut hasher = Sha256::new();
        for chunk in s
            .wasm
            .range((staging.version, 0)..=(staging.version, u64::MAX))
        {
            hasher.update(chunk.value());
        }
        hex::encode(hasher.finalize())
    });
    if found != staging.sha256 {
        mutate_state(|s| {
            drop_version(s, staging.version);
            s.update_config(|c| c.staging_wasm = None);
        });
        return Err(Error::invalid_argument(
            "sha256",
            format!(
                "the uploaded module hashes to {found}, not {}; the upload was discarded",
                staging.sha256
            ),
        ));
    }
    if !read_state(|s| {
        s.wasm
            .get(&(staging.version, 0))
            .is_some_and(|b| b.starts_with(b"\0asm") || b.starts_with(&[0x1f, 0x8b]))
    }) {
        mutate_state(|s| {
            drop_version(s, staging.version);
            s.update_config(|c| c.staging_wasm = None);
        });
        return Err(Error::invalid_argument(
            "bytes",
            "not a wasm module (nor a gzipped one); the upload was discarded",
        ));
    }
    mutate_state(|s| {
        if let Some(old) = s.config().active_wasm {
            drop_version(s, old.version);
        }
        s.update_config(|c| {
            c.active_wasm = Some(staging.clone());
            c.staging_wasm = None;
        });
    });
    ohms_ops::audit::record(
        env,
        "upload_agent_wasm",
        format!(
            "agent wasm {} ({} bytes) active",
            staging.sha256, staging.total_bytes
        ),
    );
    Ok(())
}

fn drop_version(s: &mut crate::state::State, version: u64) {
    let keys: Vec<(u64, u64)> = s
        .wasm
        .range((version, 0)..=(version, u64::MAX))
        .map(|e| *e.key())
        .collect();
    for key in keys {
        s.wasm.remove(&key);
    }
}

pub fn status() -> AgentWasmStatus {
    let config = read_state(|s| s.config());
    AgentWasmStatus {
        active_sha256: config.active_wasm.as_ref().map(|w| w.sha256.clone()),
        active_bytes: config.active_wasm.as_ref().map_or(0, |w| w.total_bytes),
        staging_sha256: config.staging_wasm.as_ref().map(|w| w.sha256.clone()),
        staging_received: config.staging_wasm.as_ref().map_or(0, |w| w.received),
        staging_total: config.staging_wasm.as_ref().map_or(0, |w| w.total_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ohms_ops::test_env::{TestEnv, principal};

    fn chunk(module: &[u8], sha256: &str, offset: usize, len: usize) -> AgentWasmChunk {
        AgentWasmChunk {
            sha256: sha256.into(),
            total_bytes: module.len() as u64,
            offset: offset as u64,
            bytes: module[offset..offset + len].to_vec(),
        }
    }

    fn module() -> (Vec<u8>, String) {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend((0..3_000u32).map(|i| (i % 251) as u8));
        let sha = hex::encode(Sha256::digest(&module));
        (module, sha)
    }

    #[test]
    fn chunks_in_order_activate_the_module_retries_change_nothing() {
        let env = TestEnv::new();
        let (module, sha) = module();
        let refused = upload(env.as_caller(principal(2)), chunk(&module, &sha, 0, 1_000));
        assert!(
            matches!(refused, Err(Error::NotAuthorized { .. })),
            "{refused:?}"
        );
        let admin = env.as_caller(principal(1));
        upload(admin, chunk(&module, &sha, 0, 1_000)).unwrap();
        // A retry of the first chunk, then a gap: the gap is refused.
        upload(admin, chunk(&module, &sha, 0, 1_000)).unwrap();
        let gap = upload(admin, chunk(&module, &sha, 2_000, 1_000));
        assert!(matches!(gap, Err(Error::InvalidArgument { .. })), "{gap:?}");
        let status = upload(admin, chunk(&module, &sha, 1_000, 1_000)).unwrap();
        assert_eq!(
            (status.staging_received, status.active_sha256),
            (2_000, None)
        );
        let status = upload(admin, chunk(&module, &sha, 2_000, module.len() - 2_000)).unwrap();
        assert_eq!(status.active_sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(status.staging_sha256, None);
        let (meta, bytes) = read_state(|s| s.active_wasm()).unwrap();
        assert_eq!((meta.sha256, bytes), (sha, module));
    }

    #[test]
    fn a_module_that_does_not_match_its_hash_is_discarded() {
        let env = TestEnv::new();
        let admin = env.as_caller(principal(1));
        let (module, _) = module();
        let wrong = "ab".repeat(32);
        let refused = upload(admin, chunk(&module, &wrong, 0, module.len()));
        assert!(
            matches!(refused, Err(Error::InvalidArgument { ref field, .. }) if field == "sha256"),
            "{refused:?}"
        );
        assert_eq!(status().active_sha256, None);
        assert_eq!(status().staging_sha256, None);
        assert_eq!(read_state(|s| s.wasm.len()), 0);
        let not_hex = upload(admin, chunk(&module, "xyz", 0, 10));
        assert!(matches!(not_hex, Err(Error::InvalidArgument { .. })));
    }
}
