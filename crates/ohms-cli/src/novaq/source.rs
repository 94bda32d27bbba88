//! Opening a source model file, whichever format it is in.

use anyhow::{Context, bail};
use novaq::Tensor;
use novaq::read::{GgufFile, Metadata, SafetensorsFile};
use std::io::Read;
use std::path::Path;

pub struct Source {
    /// `general.name`, or the file name without extension.
    pub name: String,
    pub metadata: Metadata,
    pub tensors: Vec<Tensor>,
}

pub fn open(path: &Path) -> anyhow::Result<Source> {
    let mut magic = [0u8; 4];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let read = file.read(&mut magic).unwrap_or(0);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if read == 4 && &magic == b"GGUF" {
        let gguf = GgufFile::open(path)?;
        let tensors = gguf.read_tensors()?;
        let name = gguf
            .metadata
            .get_str("general.name")
            .map(str::to_owned)
            .unwrap_or(stem);
        Ok(Source {
            name,
            metadata: gguf.metadata,
            tensors,
        })
    } else if is_safetensors {
        let st = SafetensorsFile::open(path)?;
        Ok(Source {
            name: stem,
            tensors: st.read_tensors(),
            metadata: st.metadata,
        })
    } else {
        bail!(
            "{} is neither a GGUF file (no GGUF magic) nor a .safetensors file",
            path.display()
        )
    }
}
