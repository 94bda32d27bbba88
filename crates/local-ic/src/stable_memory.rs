//! Stable memory: sparse 64 KiB pages with an undo journal, so that a trapped message can be
//! rolled back without copying the whole memory (agent canisters keep models there).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Wasm page size, the unit of `ic0.stable64_grow`.
pub const PAGE_SIZE: u64 = 64 * 1024;
/// The IC's stable memory limit: 500 GiB.
pub const MAX_STABLE_PAGES: u64 = 500 * 1024 * 1024 * 1024 / PAGE_SIZE;

/// Accessing bytes beyond the current size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stable memory out of bounds: offset {offset} + size {size} > {stable_size} bytes")]
pub struct OutOfBounds {
    pub offset: u64,
    pub size: u64,
    pub stable_size: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StableMemory {
    size_pages: u64,
    /// Pages ever written; absent pages read as zeros.
    pages: BTreeMap<u64, ByteBuf>,
    #[serde(skip)]
    journal: Journal,
}

/// What a message changed, kept until it commits or rolls back.
#[derive(Debug, Clone, Default)]
struct Journal {
    size_pages_before: Option<u64>,
    /// The content of each page before its first write in this message (`None`: was absent).
    pages_before: HashMap<u64, Option<ByteBuf>>,
}

impl StableMemory {
    pub fn size_pages(&self) -> u64 {
        self.size_pages
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_pages * PAGE_SIZE
    }

    /// Bytes actually held (pages written at least once).
    pub fn resident_bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE_SIZE
    }

    /// Grows by `new_pages` and returns the previous size, or `None` past `max_pages`.
    pub fn grow(&mut self, new_pages: u64, max_pages: u64) -> Option<u64> {
        let old = self.size_pages;
        let new = old.checked_add(new_pages).filter(|n| *n <= max_pages)?;
        self.journal.size_pages_before.get_or_insert(old);
        self.size_pages = new;
        Some(old)
    }

    fn check(&self, offset: u64, size: u64) -> Result<(), OutOfBounds> {
        match offset.checked_add(size) {
            Some(end) if end <= self.size_bytes() => Ok(()),
            _ => Err(OutOfBounds {
                offset,
                size,
                stable_size: self.size_bytes(),
            }),
        }
    }

    pub fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len() as u64)?;
        let mut done = 0usize;
        while done < dst.len() {
            let at = offset + done as u64;
            let (page, within) = (at / PAGE_SIZE, (at % PAGE_SIZE) as usize);
            let n = (PAGE_SIZE as usize - within).min(dst.len() - done);
            match self.pages.get(&page) {
                Some(bytes) => dst[done..done + n].copy_from_slice(&bytes[within..within + n]),
                None => dst[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }

    pub fn write(&mut self, offset: u64, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, src.len() as u64)?;
        let mut done = 0usize;
        while done < src.len() {
            let at = offset + done as u64;
            let (page, within) = (at / PAGE_SIZE, (at % PAGE_SIZE) as usize);
            let n = (PAGE_SIZE as usize - within).min(src.len() - done);
            let existing = self.pages.get(&page);
            self.journal
                .pages_before
                .entry(page)
                .or_insert_with(|| existing.cloned());
            let bytes = self
                .pages
                .entry(page)
                .or_insert_with(|| ByteBuf::from(vec![0; PAGE_SIZE as usize]));
            bytes[within..within + n].copy_from_slice(&src[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Keeps everything written since the last commit or rollback.
    pub fn commit(&mut self) {
        self.journal = Journal::default();
    }

    /// Undoes everything written since the last commit or rollback.
    pub fn rollback(&mut self) {
        let journal = std::mem::take(&mut self.journal);
        if let Some(size) = journal.size_pages_before {
            self.size_pages = size;
        }
        for (page, before) in journal.pages_before {
            match before {
                Some(bytes) => self.pages.insert(page, bytes),
                None => self.pages.remove(&page),
            };
        }
    }

    /// Empties the memory (reinstall).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_writes_across_pages() {
        let mut m = StableMemory::default();
        assert_eq!(m.grow(2, MAX_STABLE_PAGES), Some(0));
        let data: Vec<u8> = (0..100).collect();
        m.write(PAGE_SIZE - 50, &data).unwrap();
        let mut out = vec![0; 100];
        m.read(PAGE_SIZE - 50, &mut out).unwrap();
        assert_eq!(out, data);
        let mut zeros = vec![1; 10];
        m.read(0, &mut zeros).unwrap();
        assert_eq!(zeros, vec![0; 10]);
    }

    #[test]
    fn rollback_restores_size_and_contents() {
        let mut m = StableMemory::default();
        m.grow(1, MAX_STABLE_PAGES);
        m.write(0, b"kept").unwrap();
        m.commit();
        m.grow(3, MAX_STABLE_PAGES);
        m.write(0, b"lost").unwrap();
        m.write(PAGE_SIZE * 2, b"gone").unwrap();
        m.rollback();
        assert_eq!(m.size_pages(), 1);
        let mut out = [0; 4];
        m.read(0, &mut out).unwrap();
        assert_eq!(&out, b"kept");
        assert_eq!(m.resident_bytes(), PAGE_SIZE);
    }

    #[test]
    fn out_of_bounds_and_limit() {
        let mut m = StableMemory::default();
        assert!(m.write(0, b"x").is_err());
        assert_eq!(m.grow(5, 4), None);
        assert_eq!(m.grow(u64::MAX, MAX_STABLE_PAGES), None);
        m.grow(1, 4);
        assert!(m.read(PAGE_SIZE - 1, &mut [0; 2]).is_err());
    }
}
