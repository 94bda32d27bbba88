//! Compiled modules kept on disk between processes: every test binary and every `ohms` command
//! is a new process, and Cranelift takes seconds for a large canister (the ICP ledger: ~2.4 MB).
//!
//! A file is named by the sha256 of the instrumented wasm it was compiled from and holds the
//! sha256 of its own contents in front of wasmtime's serialized module: a file that was cut
//! short or damaged is compiled again instead of loaded, and wasmtime itself refuses artifacts
//! of another version or engine configuration. Files are written to a temporary name and
//! renamed, so processes sharing the folder never read half a file.
//!
//! The folder is `$OHMS_LOCAL_IC_CACHE`, or `ohms-local-ic-cache` in the system's temporary
//! folder; `OHMS_LOCAL_IC_CACHE=off` turns the cache off.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

const ENV: &str = "OHMS_LOCAL_IC_CACHE";

fn folder() -> Option<PathBuf> {
    match std::env::var_os(ENV) {
        Some(value) if value == "off" => None,
        Some(value) => Some(PathBuf::from(value)),
        None => Some(std::env::temp_dir().join("ohms-local-ic-cache")),
    }
}

fn file_of(dir: &Path, key: &[u8; 32]) -> PathBuf {
    let name: String = key.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.cwasm"))
}

/// The module compiled earlier from the wasm whose sha256 is `key`, if a sound copy is kept.
pub fn load(engine: &Engine, key: &[u8; 32]) -> Option<Module> {
    load_from(&folder()?, engine, key)
}

/// Keeps `module` for later processes; a failure only means the next process compiles again.
pub fn store(key: &[u8; 32], module: &Module) {
    if let Some(dir) = folder() {
        store_in(&dir, key, module);
    }
}

fn load_from(dir: &Path, engine: &Engine, key: &[u8; 32]) -> Option<Module> {
    let bytes = std::fs::read(file_of(dir, key)).ok()?;
    let (digest, artifact) = bytes.split_at_checked(32)?;
    if Sha256::digest(artifact).as_slice() != digest {
        return None;
    }
    // SAFETY: the artifact is byte for byte what `Module::serialize` wrote for this key (its
    // digest matches), in a folder only this runtime writes to; wasmtime checks that its
    // version and the engine's configuration match before it uses it.
    unsafe { Module::deserialize(engine, artifact) }.ok()
}

fn store_in(dir: &Path, key: &[u8; 32], module: &Module) {
    let Ok(artifact) = module.serialize() else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let path = file_of(dir, key);
    let mut bytes = Sha256::digest(&artifact).to_vec();
    bytes.extend_from_slice(&artifact);
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    if std::fs::write(&partial, &bytes).is_ok() && std::fs::rename(&partial, &path).is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    prune(dir);
}

/// Files kept at most: every rebuild of a canister is a new module, and old ones are not asked
/// for again.
const MAX_FILES: usize = 64;

/// Removes the least recently written files beyond [`MAX_FILES`].
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= MAX_FILES {
        return;
    }
    files.sort();
    for (_, path) in &files[..files.len() - MAX_FILES] {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_module_loads_and_a_damaged_one_does_not() {
        let dir =
            std::env::temp_dir().join(format!("ohms-module-cache-test-{}", std::process::id()));
        let engine = Engine::default();
        let wasm =
            wat::parse_str(r#"(module (func (export "f") (result i32) i32.const 7))"#).unwrap();
        let module = Module::new(&engine, &wasm).unwrap();
        let key = [7; 32];
        assert!(load_from(&dir, &engine, &key).is_none(), "nothing kept yet");
        store_in(&dir, &key, &module);
        let loaded = load_from(&dir, &engine, &key).expect("kept");
        assert_eq!(
            loaded
                .exports()
                .map(|e| e.name().to_string())
                .collect::<Vec<_>>(),
            ["f"]
        );
        // One flipped byte, or a file cut short: compiled again, never loaded.
        let path = file_of(&dir, &key);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(load_from(&dir, &engine, &key).is_none());
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(load_from(&dir, &engine, &key).is_none());
        // At most MAX_FILES are kept.
        for i in 0..MAX_FILES + 3 {
            store_in(&dir, &[i as u8; 32], &module);
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), MAX_FILES);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
