//! Reading: searches the day partitions, newest first, and returns entries in time order.
//!
//! Read-only: a reader never takes the writer lock, so it works while a daemon in another process
//! keeps indexing (it sees the last commit). Partitions are opened lazily; a long-lived reader
//! (the HTTP API) re-lists the days and reloads each partition's last commit at most every
//! [`REFRESH_INTERVAL`], so it sees new commits and new days well within the ~2 s promise
//! without reading `meta.json` on every lookup. A partition that retention deleted under it is
//! dropped from the cache.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DateTime, DocId, Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use super::IndexError;
use super::limits::{BudgetCollector, Deadline, SearchLimits};
use super::partition::{self, Day, PartitionDir};
use super::schema::{IndexFields, SEQ, TIMESTAMP};

/// How stale a long-lived reader's view may get.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(250);

/// Default number of entries a search returns.
pub const DEFAULT_LIMIT: usize = 1000;

/// What to look for. Exactly one of `txn_id` and `query` is normally set; with both, entries
/// must match both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRequest {
    pub txn_id: Option<String>,
    /// tantivy query syntax over the schema's fields (`status:503 AND host:web1`).
    pub query: Option<String>,
    /// Inclusive lower bound, milliseconds since the epoch.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, milliseconds since the epoch.
    pub until_ms: Option<i64>,
    /// At most this many entries: the newest ones, returned oldest first.
    pub limit: usize,
}

/// Which end of the matching entries a page is taken from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageOrder {
    /// The newest matching entries (before the cursor, if any).
    #[default]
    Newest,
    /// The oldest matching entries (after the cursor, if any).
    Oldest,
}

/// A position between entries: `(timestamp_ms, seq)` of the entry a page starts next to,
/// exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub timestamp_ms: i64,
    pub seq: u64,
}

/// Paging and extra filters on top of a [`SearchRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageOptions {
    pub order: PageOrder,
    /// Newest: only entries before this; oldest: only entries after it.
    pub cursor: Option<Cursor>,
    /// Only entries of this host (exact match).
    pub host: Option<String>,
}

/// One page of entries, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// The `limit` really used (the requested one, capped).
    pub limit: usize,
    /// More entries match beyond this page (in the direction of the page's order).
    pub more: bool,
}

/// One matching entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub timestamp_ms: i64,
    pub seq: u64,
    /// The entry's GELF JSON document, as indexed.
    pub gelf: String,
}

struct OpenPartition {
    index: Index,
    reader: IndexReader,
    fields: IndexFields,
    reloaded: Mutex<Instant>,
}

/// Read-only access to every partition under an index root.
pub struct IndexReaderSet {
    root: PathBuf,
    cache: Mutex<HashMap<Day, Arc<OpenPartition>>>,
    /// The last listing of the partitions, and when it was made.
    listing: Mutex<Option<(Instant, Vec<PartitionDir>)>>,
    limits: SearchLimits,
}

impl IndexReaderSet {
    /// A reader under the default [`SearchLimits`].
    pub fn new(root: &Path) -> IndexReaderSet {
        IndexReaderSet::with_limits(root, SearchLimits::default())
    }

    pub fn with_limits(root: &Path, limits: SearchLimits) -> IndexReaderSet {
        IndexReaderSet {
            root: root.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
            listing: Mutex::new(None),
            limits,
        }
    }

    pub fn limits(&self) -> &SearchLimits {
        &self.limits
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Entries matching `req`, oldest first: the newest `req.limit` (capped) of them.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        Ok(self.search_page(req, &PageOptions::default())?.hits)
    }

    /// One page of entries matching `req` and `page`, oldest first. The query is checked against
    /// the [`SearchLimits`] before it is parsed; the search stops once its time budget is spent.
    pub fn search_page(
        &self,
        req: &SearchRequest,
        page: &PageOptions,
    ) -> Result<SearchPage, IndexError> {
        let deadline = Deadline::after(self.limits.time_budget);
        if let Some(q) = &req.query {
            self.limits.check_query(q)?;
        }
        let limit = self.limits.effective_limit(req.limit, DEFAULT_LIMIT);
        let mut parts = self.partitions()?;
        parts.retain(|p| {
            req.since_ms.is_none_or(|s| p.day.end_ms() > s)
                && req.until_ms.is_none_or(|u| p.day.start_ms() < u)
        });
        self.forget_missing(&parts);
        if let Some(c) = page.cursor {
            match page.order {
                PageOrder::Newest => parts.retain(|p| p.day.start_ms() <= c.timestamp_ms),
                PageOrder::Oldest => parts.retain(|p| p.day.end_ms() > c.timestamp_ms),
            }
        }
        if page.order == PageOrder::Newest {
            parts.reverse();
        }
        // One more than asked tells whether more match.
        let want = limit + 1;
        let mut hits: Vec<SearchHit> = Vec::new();
        // Nearest day first: once `want` entries are found, farther days cannot contribute.
        for p in &parts {
            deadline.check()?;
            let Some(open) = self.open_partition(p)? else {
                continue;
            };
            let query = build_query(&open, req, page)?;
            self.search_partition(&open, p, query.as_ref(), page, want, &deadline, &mut hits)?;
            if hits.len() >= want {
                break;
            }
        }
        hits.sort_by_key(|h| (h.timestamp_ms, h.seq));
        let more = hits.len() > limit;
        let excess = hits.len().saturating_sub(limit);
        match page.order {
            PageOrder::Newest => drop(hits.drain(..excess)),
            PageOrder::Oldest => hits.truncate(limit),
        }
        Ok(SearchPage { hits, limit, more })
    }

    #[allow(clippy::too_many_arguments)]
    fn search_partition(
        &self,
        open: &OpenPartition,
        p: &PartitionDir,
        query: &dyn Query,
        page: &PageOptions,
        want: usize,
        deadline: &Deadline,
        hits: &mut Vec<SearchHit>,
    ) -> Result<(), IndexError> {
        let searcher = open.reader.searcher();
        let (order, cursor) = (page.order, page.cursor);
        let top =
            TopDocs::with_limit(want).custom_score(move |segment: &tantivy::SegmentReader| {
                let fast = segment.fast_fields();
                let ts = fast
                    .date(TIMESTAMP)
                    .ok()
                    .map(|c| c.first_or_default_col(DateTime::MIN));
                let seq = fast.u64(SEQ).ok().map(|c| c.first_or_default_col(0));
                move |doc: DocId| {
                    let t = ts
                        .as_ref()
                        .map_or(0, |c| c.get_val(doc).into_timestamp_millis());
                    let s = seq.as_ref().map_or(0, |c| c.get_val(doc));
                    rank(order, cursor, t, s)
                }
            });
        let collector = BudgetCollector {
            inner: top,
            deadline,
        };
        let found = searcher.search(query, &collector).map_err(|e| {
            if deadline.passed() {
                IndexError::Rejected(super::limits::QueryRejected::OverBudget(
                    self.limits.time_budget,
                ))
            } else {
                IndexError::tantivy(&p.path, e)
            }
        })?;
        for (score, addr) in found {
            if score == 0 {
                continue; // on the wrong side of the cursor
            }
            deadline.check()?;
            let doc: TantivyDocument = searcher
                .doc(addr)
                .map_err(|e| IndexError::tantivy(&p.path, e))?;
            let gelf = doc
                .get_first(open.fields.gelf)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            let seq = doc
                .get_first(open.fields.seq)
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            hits.push(SearchHit {
                timestamp_ms: unrank(order, score),
                seq,
                gelf,
            });
        }
        Ok(())
    }

    /// The partitions, listed again when the last listing is older than [`REFRESH_INTERVAL`].
    fn partitions(&self) -> Result<Vec<PartitionDir>, IndexError> {
        let mut listing = self.listing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, parts)) = listing.as_ref() {
            if at.elapsed() < REFRESH_INTERVAL {
                return Ok(parts.clone());
            }
        }
        let parts = partition::list(&self.root)?;
        *listing = Some((Instant::now(), parts.clone()));
        Ok(parts)
    }

    fn forget_missing(&self, present: &[PartitionDir]) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|day, _| present.iter().any(|p| p.day == *day));
    }

    /// The partition, opened or reloaded to its last commit; `None` when it vanished meanwhile.
    fn open_partition(&self, p: &PartitionDir) -> Result<Option<Arc<OpenPartition>>, IndexError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&p.day)
            .cloned();
        if let Some(open) = cached {
            let mut reloaded = open.reloaded.lock().unwrap_or_else(|p| p.into_inner());
            if reloaded.elapsed() < REFRESH_INTERVAL {
                drop(reloaded);
                return Ok(Some(open));
            }
            if open.reader.reload().is_ok() {
                *reloaded = Instant::now();
                drop(reloaded);
                return Ok(Some(open));
            }
        }
        // A writer's garbage collection may delete files between reading meta.json and opening
        // them: retry a few times before giving up.
        let mut last_err = None;
        for _ in 0..3 {
            if !p.path.join("meta.json").is_file() {
                return Ok(None);
            }
            match open_read_only(&p.path) {
                Ok(open) => {
                    let open = Arc::new(open);
                    self.cache
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(p.day, open.clone());
                    return Ok(Some(open));
                }
                Err(e) => last_err = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        match last_err {
            Some(e) => Err(IndexError::tantivy(&p.path, e)),
            None => Ok(None),
        }
    }
}

fn open_read_only(path: &Path) -> Result<OpenPartition, tantivy::TantivyError> {
    let index = Index::open(super::search_directory::SearchDirectory::open(path)?)?;
    index.tokenizers().register(
        super::tokenizer::LOG_WORDS,
        super::tokenizer::LogWordsTokenizer::default(),
    );
    let fields = IndexFields::from_schema(index.schema())?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    Ok(OpenPartition {
        index,
        reader,
        fields,
        reloaded: Mutex::new(Instant::now()),
    })
}

/// A user's query text as tantivy parses it for these fields (AND between bare terms). Callers
/// check the text against the [`SearchLimits`] first: the parser's cost grows with nesting.
pub(crate) fn parse_user_query(
    index: &Index,
    fields: &IndexFields,
    q: &str,
) -> Result<Box<dyn Query>, IndexError> {
    let mut parser = QueryParser::for_index(index, fields.default_query_fields());
    parser.set_conjunction_by_default();
    parser.parse_query(q).map_err(|e| IndexError::BadQuery {
        query: q.to_string(),
        reason: e.to_string(),
    })
}

/// The sort key of an entry for a page: higher ranks first; 0 for entries on the wrong side of
/// the cursor (they only fill a page that has too few others, and are dropped).
pub(crate) fn rank(order: PageOrder, cursor: Option<Cursor>, ts_ms: i64, seq: u64) -> u128 {
    let key = |ts: i64, seq: u64| (((ts as u64) ^ (1 << 63)) as u128) << 64 | seq as u128;
    let k = key(ts_ms, seq);
    let c = cursor.map(|c| key(c.timestamp_ms, c.seq));
    match order {
        PageOrder::Newest if c.is_none_or(|c| k < c) => k + 1,
        PageOrder::Oldest if c.is_none_or(|c| k > c) => u128::MAX - k,
        _ => 0,
    }
}

/// The timestamp back from a [`rank`] (the timestamp is a fast field only, never stored).
fn unrank(order: PageOrder, score: u128) -> i64 {
    let k = match order {
        PageOrder::Newest => score - 1,
        PageOrder::Oldest => u128::MAX - score,
    };
    (((k >> 64) as u64) ^ (1 << 63)) as i64
}

fn build_query(
    open: &OpenPartition,
    req: &SearchRequest,
    page: &PageOptions,
) -> Result<Box<dyn Query>, IndexError> {
    let f = &open.fields;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if let Some(host) = &page.host {
        clauses.push((
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(f.host, host),
                IndexRecordOption::Basic,
            )),
        ));
    }
    if let Some(id) = &req.txn_id {
        clauses.push((
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(f.txn_id, id),
                IndexRecordOption::Basic,
            )),
        ));
    }
    if let Some(q) = req.query.as_deref().filter(|q| !q.trim().is_empty()) {
        clauses.push((Occur::Must, parse_user_query(&open.index, f, q)?));
    }
    let (mut since_ms, mut until_ms) = (req.since_ms, req.until_ms);
    match (page.order, page.cursor) {
        (PageOrder::Newest, Some(c)) => {
            let u = c.timestamp_ms.saturating_add(1);
            until_ms = Some(until_ms.map_or(u, |x| x.min(u)));
        }
        (PageOrder::Oldest, Some(c)) => {
            since_ms = Some(since_ms.map_or(c.timestamp_ms, |x| x.max(c.timestamp_ms)));
        }
        (_, None) => {}
    }
    let bound = |ms: Option<i64>, included: bool| match ms {
        None => Bound::Unbounded,
        Some(ms) => {
            let t = Term::from_field_date(f.timestamp, DateTime::from_timestamp_millis(ms));
            if included {
                Bound::Included(t)
            } else {
                Bound::Excluded(t)
            }
        }
    };
    if since_ms.is_some() || until_ms.is_some() {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                bound(since_ms, true),
                bound(until_ms, false),
            )),
        ));
    }
    if clauses.is_empty() {
        return Ok(Box::new(tantivy::query::AllQuery));
    }
    if clauses.len() == 1 {
        if let Some((_, q)) = clauses.pop() {
            return Ok(q);
        }
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}
