//! Bounds-checked little-endian reads over an in-memory file.

use super::{ReadError, ReadErrorKind};

/// Reads little-endian values from a byte slice. Every read is checked against the end of the
/// file, so a truncated or lying header becomes an error instead of a panic or a huge allocation.
pub(crate) struct Cursor<'a> {
    file: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(file: &'a str, bytes: &'a [u8]) -> Self {
        Self {
            file,
            bytes,
            pos: 0,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn error(&self, kind: ReadErrorKind) -> ReadError {
        ReadError::new(self.file, kind)
    }

    pub(crate) fn take(&mut self, len: u64, what: &str) -> Result<&'a [u8], ReadError> {
        let needed = (self.pos as u64).saturating_add(len);
        if len > self.remaining() as u64 {
            return Err(self.error(ReadErrorKind::Truncated {
                what: what.to_owned(),
                needed,
                file_len: self.bytes.len() as u64,
            }));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ReadError> {
        let bytes = self.take(N as u64, what)?;
        Ok(bytes.try_into().expect("take returned exactly N bytes"))
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, ReadError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn i8(&mut self, what: &str) -> Result<i8, ReadError> {
        Ok(i8::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, ReadError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i16(&mut self, what: &str) -> Result<i16, ReadError> {
        Ok(i16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i32(&mut self, what: &str) -> Result<i32, ReadError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, ReadError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f32(&mut self, what: &str) -> Result<f32, ReadError> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f64(&mut self, what: &str) -> Result<f64, ReadError> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// Reads a count of items that each take at least `min_item_bytes` in the file, rejecting a
    /// count the rest of the file could not possibly hold. This bounds every allocation sized
    /// from a header field by the file size.
    pub(crate) fn count(&mut self, min_item_bytes: u64, what: &str) -> Result<u64, ReadError> {
        let count = self.u64(what)?;
        let limit = self.remaining() as u64 / min_item_bytes.max(1);
        if count > limit {
            return Err(self.error(ReadErrorKind::AbsurdCount {
                what: what.to_owned(),
                count,
                limit,
            }));
        }
        Ok(count)
    }
}
