//! Pages of a stable map: every list endpoint reads one page, never the whole map.

use ic_stable_structures::{Memory, StableBTreeMap, Storable};
use ohms_types::{Page, Paged};

/// The order a list is paged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Key order (oldest first for sequential ids).
    Ascending,
    /// Newest first for sequential ids.
    Descending,
}

/// One page of `map`'s values in `order`, each turned into an item by `item`.
pub fn page_values<K, V, M, T>(
    map: &StableBTreeMap<K, V, M>,
    page: Page,
    order: Order,
    item: impl Fn(V) -> T,
) -> Paged<T>
where
    K: Storable + Ord + Clone,
    V: Storable,
    M: Memory,
{
    let total = map.len();
    let range = page.range(total);
    let (skip, take) = (range.start as usize, (range.end - range.start) as usize);
    let items = match order {
        Order::Ascending => map
            .iter()
            .skip(skip)
            .take(take)
            .map(|e| item(e.value()))
            .collect(),
        Order::Descending => map
            .iter()
            .rev()
            .skip(skip)
            .take(take)
            .map(|e| item(e.value()))
            .collect(),
    };
    Paged::new(items, range, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::DefaultMemoryImpl;

    #[test]
    fn pages_cover_the_map_once_in_either_order() {
        let mut map: StableBTreeMap<u64, u64, _> =
            StableBTreeMap::init(DefaultMemoryImpl::default());
        for i in 1..=7 {
            map.insert(i, i * 10);
        }
        let first = page_values(&map, Page { start: 0, limit: 3 }, Order::Ascending, |v| v);
        assert_eq!(
            (first.items, first.total, first.next_start),
            (vec![10, 20, 30], 7, Some(3))
        );
        let last = page_values(&map, Page { start: 6, limit: 3 }, Order::Ascending, |v| v);
        assert_eq!((last.items, last.next_start), (vec![70], None));
        let newest = page_values(&map, Page { start: 0, limit: 2 }, Order::Descending, |v| {
            v + 1
        });
        assert_eq!(newest.items, vec![71, 61]);
        let past = page_values(
            &map,
            Page {
                start: 99,
                limit: 2,
            },
            Order::Descending,
            |v| v,
        );
        assert!(past.items.is_empty());
    }
}
