//! Model directories on disk: `manifest.cbor`, `root.sha256` and the shard files.

use super::shards::shard_file_name;
use super::{FormatError, Manifest, verify};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

pub const MANIFEST_FILE: &str = "manifest.cbor";
pub const ROOT_HASH_FILE: &str = "root.sha256";

/// A model read back from its directory.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub root_hash: String,
    pub shards: Vec<Vec<u8>>,
}

impl ModelFiles {
    pub fn shard_slices(&self) -> Vec<&[u8]> {
        self.shards.iter().map(Vec::as_slice).collect()
    }
}

fn io(context: &str, path: &Path, e: std::io::Error) -> FormatError {
    FormatError::Io(format!("{context} {}: {e}", path.display()))
}

/// Writes the model into `dir` (created if needed; stale shard files of an earlier model are
/// removed). Returns the root hash.
pub fn write(dir: &Path, manifest: &Manifest, shards: &[Vec<u8>]) -> Result<String, FormatError> {
    fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let entries = fs::read_dir(dir).map_err(|e| io("cannot list", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("shard-") && name.ends_with(".bin") {
            fs::remove_file(entry.path()).map_err(|e| io("cannot remove", &entry.path(), e))?;
        }
    }
    for (i, shard) in shards.iter().enumerate() {
        let path = dir.join(shard_file_name(i));
        fs::write(&path, shard).map_err(|e| io("cannot write", &path, e))?;
    }
    let bytes = manifest.to_cbor();
    let root = Manifest::root_hash(&bytes);
    let path = dir.join(MANIFEST_FILE);
    fs::write(&path, &bytes).map_err(|e| io("cannot write", &path, e))?;
    let path = dir.join(ROOT_HASH_FILE);
    fs::write(&path, format!("{root}\n")).map_err(|e| io("cannot write", &path, e))?;
    Ok(root)
}

/// Reads and fully verifies the model in `dir`: root hash, then every shard's size and hash.
pub fn read_verified(dir: &Path) -> Result<ModelFiles, FormatError> {
    if !dir.is_dir() {
        return Err(FormatError::Io(format!(
            "{} is not a model directory",
            dir.display()
        )));
    }
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_bytes =
        fs::read(&manifest_path).map_err(|e| io("cannot read", &manifest_path, e))?;
    let root_path = dir.join(ROOT_HASH_FILE);
    let expected_root = match fs::read_to_string(&root_path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io("cannot read", &root_path, e)),
    };
    let manifest = Manifest::from_cbor(&manifest_bytes)?;
    let mut shards = Vec::with_capacity(manifest.shards.len());
    for i in 0..manifest.shards.len() {
        let path = dir.join(shard_file_name(i));
        match fs::read(&path) {
            Ok(bytes) => shards.push(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => shards.push(None),
            Err(e) => return Err(io("cannot read", &path, e)),
        }
    }
    let views: Vec<Option<&[u8]>> = shards.iter().map(|s| s.as_deref()).collect();
    verify(&manifest_bytes, expected_root.as_deref(), &views)?;
    let root_hash = Manifest::root_hash(&manifest_bytes);
    Ok(ModelFiles {
        manifest,
        manifest_bytes,
        root_hash,
        shards: shards.into_iter().map(Option::unwrap_or_default).collect(),
    })
}
