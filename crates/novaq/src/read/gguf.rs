//! GGUF (version 2 and 3): metadata and tensors, dequantized to f32.
//!
//! Layout: magic `GGUF`, version, tensor count, metadata count, the metadata key-values, the
//! tensor infos (name, dimensions fastest-varying first, ggml type, offset into the data
//! section), then the data section aligned to `general.alignment` (32 by default).

use std::path::Path;

use rayon::prelude::*;

use super::cursor::Cursor;
use super::dequant::dequantize;
use super::metadata::{Metadata, MetadataValue};
use super::{ReadError, ReadErrorKind};
use crate::tensor::{SourceDType, Tensor};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Dimensions GGML supports per tensor.
const MAX_DIMS: u32 = 4;
/// Array nesting beyond this is never produced by real writers; bounding it keeps a malicious
/// file from recursing the reader into a stack overflow.
const MAX_ARRAY_DEPTH: u32 = 4;

/// Where a tensor lives in a GGUF file and how it is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Row-major shape (GGUF's dimension list reversed).
    pub shape: Vec<usize>,
    pub dtype: SourceDType,
    /// Byte range inside the file.
    pub start: u64,
    pub end: u64,
}

impl GgufTensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A GGUF file held in memory: its header is parsed and validated on open, tensors are decoded on
/// demand.
#[derive(Debug)]
pub struct GgufFile {
    file: String,
    bytes: Vec<u8>,
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<GgufTensorInfo>,
}

impl GgufFile {
    /// Reads and validates the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ReadError::new(&file, e.into()))?;
        Self::from_bytes(file, bytes)
    }

    /// Parses a GGUF image; `file` names it in errors.
    pub fn from_bytes(file: impl Into<String>, bytes: Vec<u8>) -> Result<Self, ReadError> {
        let file = file.into();
        let header = parse_header(&file, &bytes)?;
        Ok(Self {
            file,
            bytes,
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
        })
    }

    /// The name errors use for this file.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Decodes one tensor to f32.
    pub fn tensor(&self, name: &str) -> Result<Tensor, ReadError> {
        let info = self.tensor_info(name).ok_or_else(|| {
            ReadError::new(&self.file, ReadErrorKind::MissingTensor(name.to_owned()))
        })?;
        self.decode(info)
    }

    /// Decodes every tensor, in file order, in parallel.
    pub fn read_tensors(&self) -> Result<Vec<Tensor>, ReadError> {
        self.tensors
            .par_iter()
            .map(|info| self.decode(info))
            .collect()
    }

    fn decode(&self, info: &GgufTensorInfo) -> Result<Tensor, ReadError> {
        // The header check guarantees the range lies in the file and matches the encoding.
        let bytes = &self.bytes[info.start as usize..info.end as usize];
        let mut data = vec![0.0; info.numel()];
        dequantize(info.dtype, bytes, &mut data).map_err(|m| {
            ReadError::new(
                &self.file,
                ReadErrorKind::InvalidHeader(format!(
                    "{} bytes of data where {} are needed",
                    m.actual_bytes, m.expected_bytes
                )),
            )
            .in_tensor(&info.name)
        })?;
        Ok(Tensor {
            name: info.name.clone(),
            shape: info.shape.clone(),
            data,
            source_dtype: info.dtype,
        })
    }
}

struct Header {
    version: u32,
    metadata: Metadata,
    tensors: Vec<GgufTensorInfo>,
}

fn parse_header(file: &str, bytes: &[u8]) -> Result<Header, ReadError> {
    let mut c = Cursor::new(file, bytes);
    let magic = c.take(4, "magic").map_err(|_| bad_magic(file, bytes))?;
    if magic != MAGIC {
        return Err(bad_magic(file, bytes));
    }
    let version = c.u32("version")?;
    // Version 1 used 32-bit counts and lengths; it predates every model this project reads.
    if !(2..=3).contains(&version) {
        return Err(c.error(ReadErrorKind::UnsupportedVersion {
            format: "GGUF",
            version,
        }));
    }
    // A tensor info takes at least 8 (name length) + 4 (dims) + 4 (type) + 8 (offset) bytes; a
    // metadata entry at least 8 (key length) + 4 (type) + 1 (smallest value).
    let tensor_count = c.u64("tensor count")?;
    let metadata_count = c.count(13, "metadata count")?;
    let limit = c.remaining() as u64 / 24;
    if tensor_count > limit {
        return Err(c.error(ReadErrorKind::AbsurdCount {
            what: "tensor count".into(),
            count: tensor_count,
            limit,
        }));
    }

    let mut metadata = Metadata::new();
    for _ in 0..metadata_count {
        let key = read_string(&mut c, "metadata key")?;
        let value_type = c.u32("metadata value type")?;
        let value = read_value(&mut c, value_type, 0, &key)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(c.error(ReadErrorKind::Duplicate {
                what: "metadata key",
                name: key,
            }));
        }
    }

    let mut raw = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        raw.push(read_tensor_info(&mut c)?);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => a,
            _ => {
                return Err(c.error(ReadErrorKind::InvalidHeader(format!(
                    "general.alignment {v:?} is not a power of two"
                ))));
            }
        },
    };
    let data_start = (c.position() as u64).next_multiple_of(alignment);
    let file_len = bytes.len() as u64;
    let data_len = file_len.saturating_sub(data_start);

    let mut tensors = Vec::with_capacity(raw.len());
    let mut names = std::collections::HashSet::new();
    for t in raw {
        let in_tensor = |kind| ReadError::new(file, kind).in_tensor(&t.name);
        if !names.insert(t.name.clone()) {
            return Err(c.error(ReadErrorKind::Duplicate {
                what: "tensor",
                name: t.name,
            }));
        }
        let dtype = t.dtype.map_err(in_tensor)?;
        // Every encoding spends at least 4 bits per value, so a tensor with more than 8 values
        // per byte of file cannot be in it; the bound also keeps the size arithmetic below
        // from overflowing.
        let numel = t
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= file_len.saturating_mul(8))
            .ok_or_else(|| {
                in_tensor(ReadErrorKind::BadShape {
                    shape: t.dims.clone(),
                    reason: "more elements than the file could encode".into(),
                })
            })?;
        let block = dtype.block_elements();
        if !t.dims.first().copied().unwrap_or(1).is_multiple_of(block) {
            return Err(in_tensor(ReadErrorKind::BadShape {
                shape: t.dims.clone(),
                reason: format!("rows are not a whole number of {dtype} blocks of {block}"),
            }));
        }
        if !t.offset.is_multiple_of(alignment) {
            return Err(in_tensor(ReadErrorKind::InvalidHeader(format!(
                "data offset {} is not aligned to {alignment}",
                t.offset
            ))));
        }
        let size = dtype.encoded_bytes(numel);
        let end = t.offset.checked_add(size).filter(|&e| e <= data_len);
        let Some(end) = end else {
            return Err(in_tensor(ReadErrorKind::OffsetOutOfRange {
                start: t.offset,
                end: t.offset.saturating_add(size),
                data_len,
            }));
        };
        let shape = t
            .dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                in_tensor(ReadErrorKind::BadShape {
                    shape: t.dims.clone(),
                    reason: "a dimension exceeds this platform's address space".into(),
                })
            })?;
        tensors.push(GgufTensorInfo {
            name: t.name,
            shape,
            dtype,
            start: data_start + t.offset,
            end: data_start + end,
        });
    }
    Ok(Header {
        version,
        metadata,
        tensors,
    })
}

fn bad_magic(file: &str, bytes: &[u8]) -> ReadError {
    ReadError::new(
        file,
        ReadErrorKind::BadMagic {
            format: "GGUF",
            found: bytes.iter().take(4).copied().collect(),
        },
    )
}

struct RawTensorInfo {
    name: String,
    dims: Vec<u64>,
    dtype: Result<SourceDType, ReadErrorKind>,
    offset: u64,
}

fn read_tensor_info(c: &mut Cursor<'_>) -> Result<RawTensorInfo, ReadError> {
    let name = read_string(c, "tensor name")?;
    let with_name = |e: ReadError| e.in_tensor(&name);
    let n_dims = c.u32("tensor dimension count").map_err(with_name)?;
    if n_dims > MAX_DIMS {
        return Err(with_name(c.error(ReadErrorKind::AbsurdCount {
            what: "tensor dimension count".into(),
            count: n_dims.into(),
            limit: MAX_DIMS.into(),
        })));
    }
    let dims = (0..n_dims)
        .map(|_| c.u64("tensor dimension"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(with_name)?;
    let ggml_type = c.u32("tensor type").map_err(with_name)?;
    let offset = c.u64("tensor offset").map_err(with_name)?;
    Ok(RawTensorInfo {
        dtype: dtype_from_ggml(ggml_type),
        name,
        dims,
        offset,
    })
}

/// ggml's `enum ggml_type` values for the encodings this reader decodes.
fn dtype_from_ggml(ggml_type: u32) -> Result<SourceDType, ReadErrorKind> {
    Ok(match ggml_type {
        0 => SourceDType::F32,
        1 => SourceDType::F16,
        2 => SourceDType::Q4_0,
        3 => SourceDType::Q4_1,
        8 => SourceDType::Q8_0,
        12 => SourceDType::Q4_K,
        14 => SourceDType::Q6_K,
        30 => SourceDType::BF16,
        other => {
            return Err(ReadErrorKind::UnsupportedDType(format!(
                "ggml type {other}"
            )));
        }
    })
}

fn read_string(c: &mut Cursor<'_>, what: &str) -> Result<String, ReadError> {
    let len = c.u64(what)?;
    let bytes = c.take(len, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        c.error(ReadErrorKind::InvalidUtf8 {
            what: what.to_owned(),
        })
    })
}

/// Smallest encoding of one value of a GGUF value type, to bound array lengths.
fn min_value_bytes(value_type: u32) -> u64 {
    match value_type {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        // Array: element type + count.
        9 => 12,
        _ => 1,
    }
}

fn read_value(
    c: &mut Cursor<'_>,
    value_type: u32,
    depth: u32,
    key: &str,
) -> Result<MetadataValue, ReadError> {
    let what = format!("metadata value {key:?}");
    Ok(match value_type {
        0 => MetadataValue::U8(c.u8(&what)?),
        1 => MetadataValue::I8(c.i8(&what)?),
        2 => MetadataValue::U16(c.u16(&what)?),
        3 => MetadataValue::I16(c.i16(&what)?),
        4 => MetadataValue::U32(c.u32(&what)?),
        5 => MetadataValue::I32(c.i32(&what)?),
        6 => MetadataValue::F32(c.f32(&what)?),
        7 => match c.u8(&what)? {
            0 => MetadataValue::Bool(false),
            1 => MetadataValue::Bool(true),
            b => {
                return Err(c.error(ReadErrorKind::InvalidHeader(format!(
                    "{what}: boolean byte {b}"
                ))));
            }
        },
        8 => MetadataValue::String(read_string(c, &what)?),
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(c.error(ReadErrorKind::InvalidHeader(format!(
                    "{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                ))));
            }
            let item_type = c.u32(&what)?;
            if !(0..=12).contains(&item_type) {
                return Err(c.error(ReadErrorKind::UnknownValueType(item_type)));
            }
            let count = c.count(min_value_bytes(item_type), &format!("{what} length"))?;
            let mut items = Vec::with_capacity(count as usize);
            for _ in 0..count {
                items.push(read_value(c, item_type, depth + 1, key)?);
            }
            MetadataValue::Array(items)
        }
        10 => MetadataValue::U64(c.u64(&what)?),
        11 => MetadataValue::I64(c.i64(&what)?),
        12 => MetadataValue::F64(c.f64(&what)?),
        other => return Err(c.error(ReadErrorKind::UnknownValueType(other))),
    })
}
