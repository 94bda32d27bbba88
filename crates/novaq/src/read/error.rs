//! The one error type of the readers: which file, which tensor, and what is wrong.

use std::fmt;

/// Reading a model file failed. Names the file and, when known, the tensor.
#[derive(Debug, thiserror::Error)]
pub struct ReadError {
    pub file: String,
    pub tensor: Option<String>,
    pub kind: ReadErrorKind,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tensor {
            Some(tensor) => write!(f, "{}: tensor {tensor:?}: {}", self.file, self.kind),
            None => write!(f, "{}: {}", self.file, self.kind),
        }
    }
}

/// What is wrong with a model file.
#[derive(Debug, thiserror::Error)]
pub enum ReadErrorKind {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a {format} file (magic bytes {found:02x?})")]
    BadMagic {
        format: &'static str,
        found: Vec<u8>,
    },
    #[error("unsupported {format} version {version}")]
    UnsupportedVersion { format: &'static str, version: u32 },
    #[error("file ends at byte {file_len} but {what} needs bytes up to {needed}")]
    Truncated {
        what: String,
        needed: u64,
        file_len: u64,
    },
    #[error("{what} is {count}, more than the file could hold (at most {limit})")]
    AbsurdCount {
        what: String,
        count: u64,
        limit: u64,
    },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },
    #[error("unknown metadata value type {0}")]
    UnknownValueType(u32),
    #[error("unsupported tensor type {0}")]
    UnsupportedDType(String),
    #[error("data range {start}..{end} lies outside the data section of {data_len} bytes")]
    OffsetOutOfRange { start: u64, end: u64, data_len: u64 },
    #[error("shape {shape:?} does not fit its encoding: {reason}")]
    BadShape { shape: Vec<u64>, reason: String },
    #[error("duplicate {what} {name:?}")]
    Duplicate { what: &'static str, name: String },
    #[error("no tensor named {0:?}")]
    MissingTensor(String),
    #[error("invalid header: {0}")]
    InvalidHeader(String),
}

impl ReadError {
    pub(crate) fn new(file: &str, kind: ReadErrorKind) -> Self {
        Self {
            file: file.to_owned(),
            tensor: None,
            kind,
        }
    }

    pub(crate) fn in_tensor(mut self, tensor: &str) -> Self {
        self.tensor = Some(tensor.to_owned());
        self
    }
}
