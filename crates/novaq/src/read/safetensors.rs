//! safetensors: an 8-byte header length, a JSON header naming each tensor's dtype, shape and
//! byte range, then the raw little-endian data.

use std::path::Path;

use serde_json::Value;

use super::cursor::Cursor;
use super::dequant::dequantize;
use super::metadata::{Metadata, MetadataValue};
use super::{ReadError, ReadErrorKind};
use crate::tensor::{SourceDType, Tensor};

/// Where a tensor lives in a safetensors file and how it is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetensorsTensorInfo {
    pub name: String,
    /// Row-major shape, as the file lists it.
    pub shape: Vec<usize>,
    pub dtype: SourceDType,
    /// Byte range inside the file.
    pub start: u64,
    pub end: u64,
}

/// A safetensors file held in memory, its header validated on open.
#[derive(Debug)]
pub struct SafetensorsFile {
    file: String,
    bytes: Vec<u8>,
    /// The free-form `__metadata__` string map.
    pub metadata: Metadata,
    /// Tensors in data order.
    pub tensors: Vec<SafetensorsTensorInfo>,
}

impl SafetensorsFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ReadError::new(&file, e.into()))?;
        Self::from_bytes(file, bytes)
    }

    /// Parses a safetensors image; `file` names it in errors.
    pub fn from_bytes(file: impl Into<String>, bytes: Vec<u8>) -> Result<Self, ReadError> {
        let file = file.into();
        let (metadata, tensors) = parse_header(&file, &bytes)?;
        Ok(Self {
            file,
            bytes,
            metadata,
            tensors,
        })
    }

    pub fn tensor_info(&self, name: &str) -> Option<&SafetensorsTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn tensor(&self, name: &str) -> Result<Tensor, ReadError> {
        let info = self.tensor_info(name).ok_or_else(|| {
            ReadError::new(&self.file, ReadErrorKind::MissingTensor(name.to_owned()))
        })?;
        Ok(self.decode(info))
    }

    /// Decodes every tensor, in data order.
    pub fn read_tensors(&self) -> Vec<Tensor> {
        self.tensors.iter().map(|info| self.decode(info)).collect()
    }

    fn decode(&self, info: &SafetensorsTensorInfo) -> Tensor {
        let bytes = &self.bytes[info.start as usize..info.end as usize];
        let mut data = vec![0.0; info.shape.iter().product()];
        dequantize(info.dtype, bytes, &mut data)
            .expect("header validation matched the byte range to the shape");
        Tensor {
            name: info.name.clone(),
            shape: info.shape.clone(),
            data,
            source_dtype: info.dtype,
        }
    }
}

fn parse_header(
    file: &str,
    bytes: &[u8],
) -> Result<(Metadata, Vec<SafetensorsTensorInfo>), ReadError> {
    let mut c = Cursor::new(file, bytes);
    let header_len = c.u64("header length")?;
    let header = c.take(header_len, "JSON header")?;
    let data_start = c.position() as u64;
    let data_len = bytes.len() as u64 - data_start;
    let invalid = |msg: String| ReadError::new(file, ReadErrorKind::InvalidHeader(msg));

    let json: Value = serde_json::from_slice(header)
        .map_err(|e| invalid(format!("header is not valid JSON: {e}")))?;
    let Value::Object(entries) = json else {
        return Err(invalid("header is not a JSON object".into()));
    };

    let mut metadata = Metadata::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        if name == "__metadata__" {
            let Value::Object(map) = entry else {
                return Err(invalid("__metadata__ is not an object".into()));
            };
            for (key, value) in map {
                let Value::String(text) = value else {
                    return Err(invalid(format!(
                        "__metadata__ value {key:?} is not a string"
                    )));
                };
                metadata.insert(key, MetadataValue::String(text));
            }
            continue;
        }
        let info = parse_tensor_entry(&name, &entry, data_len)
            .map_err(|kind| ReadError::new(file, kind).in_tensor(&name))?;
        tensors.push(SafetensorsTensorInfo {
            name,
            start: data_start + info.0,
            end: data_start + info.1,
            shape: info.2,
            dtype: info.3,
        });
    }
    tensors.sort_by_key(|t| t.start);
    Ok((metadata, tensors))
}

/// Validates one tensor entry: returns (start, end, shape, dtype) relative to the data section.
fn parse_tensor_entry(
    name: &str,
    entry: &Value,
    data_len: u64,
) -> Result<(u64, u64, Vec<usize>, SourceDType), ReadErrorKind> {
    let invalid = |msg: &str| ReadErrorKind::InvalidHeader(format!("tensor {name:?}: {msg}"));
    let dtype = match entry.get("dtype").and_then(Value::as_str) {
        Some("F32") => SourceDType::F32,
        Some("F16") => SourceDType::F16,
        Some("BF16") => SourceDType::BF16,
        Some(other) => return Err(ReadErrorKind::UnsupportedDType(other.to_owned())),
        None => return Err(invalid("missing dtype")),
    };
    let shape: Vec<u64> = entry
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("missing shape"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .ok_or_else(|| invalid("shape entry is not a non-negative integer"))
        })
        .collect::<Result<_, _>>()?;
    let offsets: Vec<u64> = entry
        .get("data_offsets")
        .and_then(Value::as_array)
        .filter(|a| a.len() == 2)
        .and_then(|a| a.iter().map(Value::as_u64).collect())
        .ok_or_else(|| invalid("data_offsets is not a pair of non-negative integers"))?;
    let (start, end) = (offsets[0], offsets[1]);
    if start > end || end > data_len {
        return Err(ReadErrorKind::OffsetOutOfRange {
            start,
            end,
            data_len,
        });
    }
    let expected = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|numel| numel.checked_mul(dtype.block_bytes()));
    if expected != Some(end - start) {
        return Err(ReadErrorKind::BadShape {
            shape,
            reason: format!("{} bytes of {dtype} data", end - start),
        });
    }
    Ok((
        start,
        end,
        shape.iter().map(|&d| d as usize).collect(),
        dtype,
    ))
}
