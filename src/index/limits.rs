//! What one search may cost: a cap on `limit`, on the query's length and nesting depth (checked
//! before tantivy's parser sees the text), and a time budget enforced while documents are
//! collected ([`BudgetCollector`]).
//!
//! Why the depth cap is small: tantivy's query grammar re-parses a parenthesized group that holds a
//! single clause once per alternative it tries, so parsing costs about 2^depth (measured: 16
//! levels 0.05 s, 22 levels 2.4 s in a release build) and very deep input overflows the stack. The
//! parser cannot be interrupted, so the only safe defence is refusing deep input up front.
//!
//! This module touches no files; it only measures query text and wraps collectors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::Weight;
use tantivy::{DocId, DocSet, Score, SegmentOrdinal, SegmentReader, TERMINATED};
use thiserror::Error;

/// Default largest `limit` of one search.
pub const DEFAULT_MAX_LIMIT: usize = 10_000;
/// Default longest query text, in bytes.
pub const DEFAULT_MAX_QUERY_BYTES: usize = 4096;
/// Default deepest parenthesis nesting (about 2^12 re-parses at worst: a few milliseconds).
pub const DEFAULT_MAX_DEPTH: usize = 12;
/// Deepest nesting a config may allow (2^16 re-parses: ~0.05 s).
pub const MAX_CONFIGURABLE_DEPTH: usize = 16;
/// Default time budget of one search.
pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(5);
/// Documents collected between two looks at the clock.
const CLOCK_EVERY: u32 = 4096;

/// The caps every search runs under (`quill search --data` and the HTTP API alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchLimits {
    /// Largest number of entries one search returns; larger `limit`s are lowered to this.
    pub max_limit: usize,
    /// Longest query text in bytes.
    pub max_query_bytes: usize,
    /// Deepest parenthesis (and `[`/`{` range) nesting.
    pub max_depth: usize,
    /// Wall-clock budget of one search; past it the search stops with [`QueryRejected::OverBudget`].
    pub time_budget: Duration,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            max_limit: DEFAULT_MAX_LIMIT,
            max_query_bytes: DEFAULT_MAX_QUERY_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            time_budget: DEFAULT_TIME_BUDGET,
        }
    }
}

/// Why a search was refused or stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryRejected {
    #[error("query is {len} bytes long; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("query nests parentheses {depth} deep; at most {max} levels are accepted")]
    TooDeep { depth: usize, max: usize },
    #[error("search exceeded its time budget of {0:?}; narrow the query or the time range")]
    OverBudget(Duration),
}

impl SearchLimits {
    /// The `limit` a search really uses: 0 means the default, anything above the cap is the cap.
    pub fn effective_limit(&self, requested: usize, default: usize) -> usize {
        let wanted = if requested == 0 { default } else { requested };
        wanted.clamp(1, self.max_limit.max(1))
    }

    /// Refuses query text that is too long or too deeply nested, without parsing it.
    pub fn check_query(&self, query: &str) -> Result<(), QueryRejected> {
        if query.len() > self.max_query_bytes {
            return Err(QueryRejected::TooLong {
                len: query.len(),
                max: self.max_query_bytes,
            });
        }
        let depth = nesting_depth(query);
        if depth > self.max_depth {
            return Err(QueryRejected::TooDeep {
                depth,
                max: self.max_depth,
            });
        }
        Ok(())
    }
}

/// The deepest nesting of `(`, `[` and `{` outside double quotes, counting unbalanced openers
/// too (they make the parser backtrack just as deep). Linear time, no recursion.
pub fn nesting_depth(query: &str) -> usize {
    let (mut depth, mut deepest, mut quoted, mut escaped) = (0usize, 0usize, false, false);
    for b in query.bytes() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' => escaped = true,
            b'"' => quoted = !quoted,
            b'(' | b'[' | b'{' if !quoted => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A point in time a search must finish by; remembers whether it was passed.
#[derive(Debug)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
    passed: AtomicBool,
}

impl Deadline {
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
            passed: AtomicBool::new(false),
        }
    }

    /// `Err` once the deadline has passed (and from then on).
    pub fn check(&self) -> Result<(), QueryRejected> {
        if self.passed.load(Ordering::Relaxed) || Instant::now() >= self.at {
            self.passed.store(true, Ordering::Relaxed);
            return Err(QueryRejected::OverBudget(self.budget));
        }
        Ok(())
    }

    pub fn passed(&self) -> bool {
        self.passed.load(Ordering::Relaxed)
    }
}

/// Wraps a collector so that collecting a segment looks at the clock every few thousand
/// documents and stops with an error once the [`Deadline`] has passed.
pub struct BudgetCollector<'d, C> {
    pub inner: C,
    pub deadline: &'d Deadline,
}

impl<C: Collector> Collector for BudgetCollector<'_, C> {
    type Fruit = C::Fruit;
    type Child = C::Child;

    fn for_segment(
        &self,
        segment_local_id: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        self.inner.for_segment(segment_local_id, segment)
    }

    fn requires_scoring(&self) -> bool {
        self.inner.requires_scoring()
    }

    fn merge_fruits(
        &self,
        segment_fruits: Vec<<Self::Child as SegmentCollector>::Fruit>,
    ) -> tantivy::Result<Self::Fruit> {
        self.inner.merge_fruits(segment_fruits)
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment_ord: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<<Self::Child as SegmentCollector>::Fruit> {
        let over = |e: QueryRejected| tantivy::TantivyError::InternalError(e.to_string());
        self.deadline.check().map_err(over)?;
        let mut child = self.inner.for_segment(segment_ord, reader)?;
        let scoring = self.inner.requires_scoring();
        let mut scorer = weight.scorer(reader, 1.0)?;
        let alive = reader.alive_bitset();
        let mut doc: DocId = scorer.doc();
        let mut since_clock = 0u32;
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                let score: Score = if scoring { scorer.score() } else { 0.0 };
                child.collect(doc, score);
            }
            since_clock += 1;
            if since_clock == CLOCK_EVERY {
                since_clock = 0;
                self.deadline.check().map_err(over)?;
            }
            doc = scorer.advance();
        }
        Ok(child.harvest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_quotes() {
        assert_eq!(nesting_depth("a AND b"), 0);
        assert_eq!(nesting_depth("(a OR (b AND c))"), 2);
        assert_eq!(nesting_depth("\"((((\" AND (x)"), 1);
        assert_eq!(nesting_depth("status:[200 TO 299]"), 1);
        assert_eq!(nesting_depth(&"(".repeat(5000)), 5000);
        assert_eq!(nesting_depth("a\\(\\(b"), 0);
        assert_eq!(nesting_depth(")))((("), 3);
    }

    #[test]
    fn checks_length_and_depth() {
        let l = SearchLimits::default();
        assert!(l.check_query("((a))").is_ok());
        assert!(matches!(
            l.check_query(&"(".repeat(1000)),
            Err(QueryRejected::TooDeep { depth: 1000, .. })
        ));
        assert!(matches!(
            l.check_query(&"a ".repeat(3000)),
            Err(QueryRejected::TooLong { len: 6000, .. })
        ));
    }

    #[test]
    fn limit_is_capped() {
        let l = SearchLimits::default();
        assert_eq!(l.effective_limit(0, 1000), 1000);
        assert_eq!(
            l.effective_limit(1_000_000_000_000, 1000),
            DEFAULT_MAX_LIMIT
        );
        assert_eq!(l.effective_limit(5, 1000), 5);
    }

    #[test]
    fn deadline_trips_and_stays_tripped() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.check().is_err());
        assert!(d.passed());
        let d = Deadline::after(Duration::from_secs(60));
        assert!(d.check().is_ok());
    }
}
