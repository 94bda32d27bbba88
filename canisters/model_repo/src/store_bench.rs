//! The measurement behind the blob store's design: the page store (1 MiB frames in a raw
//! memory, a page table, a free list) against a `StableBTreeMap<(blob, page), bytes>` of
//! fixed-size pages, on the same workload — a 75 MB model uploaded as a stream of 1.9 MiB chunks
//! (which do not line up with pages), then deleted, then a second model of the same size.
//!
//! On the IC a stable-memory access costs about one instruction per byte plus a fixed charge
//! per call (and 1,000 per 4 KiB page first dirtied), so bytes moved and calls made predict the
//! instructions; the memory's size is what the canister pays storage for.
//! `cargo test -p model_repo blob_store_comparison -- --nocapture` prints the figures.

use std::cell::Cell;
use std::rc::Rc;

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
use ic_stable_structures::{Memory, StableBTreeMap, VectorMemory};

use crate::state::{FRAME_BYTES, PageStore};

/// A memory that counts what passes through it.
#[derive(Clone, Default)]
struct Counting {
    inner: VectorMemory,
    read_bytes: Rc<Cell<u64>>,
    written_bytes: Rc<Cell<u64>>,
    calls: Rc<Cell<u64>>,
}

impl Memory for Counting {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn grow(&self, pages: u64) -> i64 {
        self.inner.grow(pages)
    }
    fn read(&self, offset: u64, dst: &mut [u8]) {
        self.read_bytes
            .set(self.read_bytes.get() + dst.len() as u64);
        self.calls.set(self.calls.get() + 1);
        self.inner.read(offset, dst)
    }
    fn write(&self, offset: u64, src: &[u8]) {
        self.written_bytes
            .set(self.written_bytes.get() + src.len() as u64);
        self.calls.set(self.calls.get() + 1);
        self.inner.write(offset, src)
    }
}

impl Counting {
    fn take(&self) -> (u64, u64, u64) {
        let figures = (
            self.read_bytes.get(),
            self.written_bytes.get(),
            self.calls.get(),
        );
        self.read_bytes.set(0);
        self.written_bytes.set(0);
        self.calls.set(0);
        figures
    }
    fn bytes(&self) -> u64 {
        self.size() * 65_536
    }
}

const MODEL: u64 = 75_000_000;
const CHUNK: u64 = ohms_types::MAX_CHUNK_BYTES;

/// Estimated IC instructions for stable-memory traffic: bytes moved, 20 per call, and 1,000 per
/// newly dirtied 4 KiB page of what is written.
fn instructions((read, written, calls): (u64, u64, u64)) -> u64 {
    read + written + 20 * calls + written.div_ceil(4096) * 1_000
}

fn chunk_bytes(offset: u64, len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((offset + i) as u8).wrapping_add(seed))
        .collect()
}

type Figures = (u64, (u64, u64, u64));

/// The median chunk's figures.
fn median(per_chunk: &mut [Figures]) -> Figures {
    per_chunk.sort();
    per_chunk[per_chunk.len() / 2]
}

#[test]
fn blob_store_comparison() {
    // The page store, over a memory manager as in the canister.
    let raw = Counting::default();
    let manager = MemoryManager::init(raw.clone());
    let mut store = PageStore {
        table: StableBTreeMap::init(manager.get(MemoryId::new(17))),
        free: StableBTreeMap::init(manager.get(MemoryId::new(18))),
        frames: manager.get(MemoryId::new(19)),
    };
    let mut frames = 0u32;
    raw.take();
    let base = raw.bytes();
    let mut per_chunk = Vec::new();
    for (blob, seed) in [(1u64, 1u8), (2, 2)] {
        let mut offset = 0;
        while offset < MODEL {
            let len = CHUNK.min(MODEL - offset);
            store
                .write(blob, offset, &chunk_bytes(offset, len, seed), &mut frames)
                .unwrap();
            if len == CHUNK {
                let t = raw.take();
                per_chunk.push((instructions(t), t));
            }
            offset += len;
        }
        if blob == 1 {
            let first = raw.bytes() - base;
            println!(
                "page store:    {:.4} memory bytes per model byte after one 75 MB model (growth past the structures' first buckets)",
                first as f64 / MODEL as f64
            );
            store.free_blob(1);
        }
    }
    let (page_store_chunk, page_store_traffic) = median(&mut per_chunk);
    let page_store_size = raw.bytes() - base;

    // The alternative: a B-tree of 1 MiB pages; a chunk that covers a page partly must read the
    // page and write it back whole.
    let raw_tree = Counting::default();
    let manager = MemoryManager::init(raw_tree.clone());
    let mut tree: StableBTreeMap<(u64, u32), Vec<u8>, _> =
        StableBTreeMap::init(manager.get(MemoryId::new(17)));
    raw_tree.take();
    let tree_base = raw_tree.bytes();
    let mut per_chunk = Vec::new();
    let mut tree_first = 0;
    for (blob, seed) in [(1u64, 1u8), (2, 2)] {
        let mut offset = 0;
        while offset < MODEL {
            let len = CHUNK.min(MODEL - offset);
            let bytes = chunk_bytes(offset, len, seed);
            let mut at = offset;
            while at < offset + len {
                let page = (at / FRAME_BYTES) as u32;
                let in_page = (at % FRAME_BYTES) as usize;
                let n = ((FRAME_BYTES as usize) - in_page).min((offset + len - at) as usize);
                let mut value = tree.get(&(blob, page)).unwrap_or_default();
                if value.len() < in_page + n {
                    value.resize(in_page + n, 0);
                }
                value[in_page..in_page + n]
                    .copy_from_slice(&bytes[(at - offset) as usize..(at - offset) as usize + n]);
                tree.insert((blob, page), value);
                at += n as u64;
            }
            if len == CHUNK {
                let t = raw_tree.take();
                per_chunk.push((instructions(t), t));
            }
            offset += len;
        }
        if blob == 1 {
            tree_first = raw_tree.bytes() - tree_base;
            let pages: Vec<_> = tree.keys_range((1, 0)..=(1, u32::MAX)).collect();
            for key in pages {
                tree.remove(&key);
            }
        }
    }
    let (tree_chunk, tree_traffic) = median(&mut per_chunk);
    let tree_size = raw_tree.bytes() - tree_base;
    println!(
        "page store:    ~{page_store_chunk} instructions of stable traffic per 1.9 MiB chunk (median) \
         (read, written, calls = {page_store_traffic:?}); {:.4} memory bytes per model byte after delete + re-upload",
        page_store_size as f64 / MODEL as f64
    );
    println!(
        "B-tree pages:  ~{tree_chunk} instructions of stable traffic per 1.9 MiB chunk (median) \
         (read, written, calls = {tree_traffic:?}); \
         {:.4} memory bytes per model byte after one model, {:.4} after delete + re-upload",
        tree_first as f64 / MODEL as f64,
        tree_size as f64 / MODEL as f64
    );
    // What the design rests on: the page store writes each byte once and reuses freed space.
    assert!(page_store_chunk < tree_chunk);
    assert!(page_store_size <= tree_size);
}
