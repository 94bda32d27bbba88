use std::ops::Range;

use candid::{CandidType, Deserialize};
use serde::Serialize;

/// A window into a list: at most `limit` items starting at position `start`.
///
/// Every list endpoint takes one, so no reply can grow with the size of the state.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub start: u64,
    pub limit: u32,
}

impl Page {
    /// The most items one page returns, whatever `limit` asks for.
    pub const MAX_LIMIT: u32 = 100;

    pub fn first(limit: u32) -> Self {
        Self { start: 0, limit }
    }

    /// The positions this page covers in a list of `total` items, with `limit` capped at
    /// [`Page::MAX_LIMIT`]. Empty when `start` is past the end.
    pub fn range(&self, total: u64) -> Range<u64> {
        let start = self.start.min(total);
        let end = start
            .saturating_add(u64::from(self.limit.min(Self::MAX_LIMIT)))
            .min(total);
        start..end
    }

    /// Takes this page out of `items` (which holds the whole list in order).
    pub fn slice<T: Clone>(&self, items: &[T]) -> Paged<T> {
        let range = self.range(items.len() as u64);
        Paged::new(
            items[range.start as usize..range.end as usize].to_vec(),
            range,
            items.len() as u64,
        )
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::first(Self::MAX_LIMIT)
    }
}

/// One page of a list and where the next page starts.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// How many items the whole list has.
    pub total: u64,
    /// The `start` of the next page, absent on the last page.
    pub next_start: Option<u64>,
}

impl<T> Paged<T> {
    /// `items` are the list's entries at positions `range` of a list of `total` entries.
    pub fn new(items: Vec<T>, range: Range<u64>, total: u64) -> Self {
        let next_start = (range.end < total).then_some(range.end);
        Self {
            items,
            total,
            next_start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_capped_at_the_maximum() {
        let page = Page {
            start: 0,
            limit: u32::MAX,
        };
        assert_eq!(page.range(1_000), 0..u64::from(Page::MAX_LIMIT));
    }

    #[test]
    fn start_past_the_end_is_an_empty_last_page() {
        let page = Page {
            start: 50,
            limit: 10,
        };
        assert_eq!(page.range(20), 20..20);
        let paged = page.slice(&[1u8; 20]);
        assert!(paged.items.is_empty());
        assert_eq!(paged.next_start, None);
    }

    #[test]
    fn next_start_walks_the_whole_list() {
        let list: Vec<u32> = (0..250).collect();
        let mut page = Page::first(100);
        let mut seen = Vec::new();
        loop {
            let paged = page.slice(&list);
            assert_eq!(paged.total, 250);
            seen.extend(paged.items);
            match paged.next_start {
                Some(start) => page.start = start,
                None => break,
            }
        }
        assert_eq!(seen, list);
    }

    #[test]
    fn start_near_u64_max_does_not_overflow() {
        let page = Page {
            start: u64::MAX,
            limit: 10,
        };
        assert_eq!(page.range(u64::MAX), u64::MAX..u64::MAX);
    }
}
