//! `ohms novaq verify`.

use novaq::format::dir;
use std::path::Path;

pub fn run(dir: &Path) -> anyhow::Result<()> {
    let model = dir::read_verified(dir)?;
    println!(
        "ok: manifest and {} shards ({} bytes) match; root hash {}",
        model.manifest.shards.len(),
        model.manifest.stored_bytes(),
        model.root_hash
    );
    Ok(())
}
