//! Exactly-once checks: every expected item present once, nothing duplicated, nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

/// Asserts `got` holds each of `expected` exactly once and nothing else; the failure names the
/// first missing, duplicated and unexpected items and ends with `context`.
pub fn assert_once_each<T: Ord + Debug + Clone>(
    got: impl IntoIterator<Item = T>,
    expected: impl IntoIterator<Item = T>,
    context: &str,
) {
    let mut counts: BTreeMap<T, u32> = BTreeMap::new();
    for item in got {
        *counts.entry(item).or_insert(0) += 1;
    }
    let (mut missing, mut dups) = (Vec::new(), Vec::new());
    let (mut n_missing, mut n_dups) = (0usize, 0usize);
    for item in expected {
        match counts.remove(&item) {
            Some(1) => {}
            Some(c) => {
                n_dups += 1;
                if dups.len() < 10 {
                    dups.push((item, c));
                }
            }
            None => {
                n_missing += 1;
                if missing.len() < 10 {
                    missing.push(item);
                }
            }
        }
    }
    assert!(
        n_missing == 0 && n_dups == 0,
        "{n_missing} missing (first {missing:?}), {n_dups} duplicated (first, with counts, \
         {dups:?})\n{context}"
    );
    let unexpected: Vec<&T> = counts.keys().take(10).collect();
    assert!(
        counts.is_empty(),
        "{} unexpected, first {unexpected:?}\n{context}",
        counts.len()
    );
}

/// Asserts `got` is exactly `0..count` in order: every number once, nothing else.
pub fn assert_exactly_once_in_order(label: &str, got: &[u64], count: u64) {
    assert_once_each(got.iter().copied(), 0..count, label);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "{label}: lines out of order"
    );
}

/// Asserts `got` holds no item twice and nothing outside `allowed` (items of `allowed` may be
/// missing: a lossy transport); the failure names the first duplicated or foreign item and
/// ends with `context`.
pub fn assert_at_most_once_each<T: Ord + Debug>(got: &[T], allowed: &[T], context: &str) {
    let mut seen = BTreeSet::new();
    let twice: Vec<&T> = got.iter().filter(|g| !seen.insert(*g)).collect();
    assert!(
        twice.is_empty(),
        "{} messages twice, first {:?}\n{context}",
        twice.len(),
        twice.first()
    );
    let allowed: BTreeSet<&T> = allowed.iter().collect();
    let foreign: Vec<&T> = got.iter().filter(|g| !allowed.contains(g)).collect();
    assert!(
        foreign.is_empty(),
        "{} messages differ from what was sent (changed on the way), first {:?}\n{context}",
        foreign.len(),
        foreign.first()
    );
}
