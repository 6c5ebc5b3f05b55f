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
use tantivy::{DateTime, Index, IndexReader, Order, ReloadPolicy, TantivyDocument, Term};

use super::IndexError;
use super::partition::{self, Day, PartitionDir};
use super::schema::{IndexFields, TIMESTAMP};

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
}

impl IndexReaderSet {
    pub fn new(root: &Path) -> IndexReaderSet {
        IndexReaderSet {
            root: root.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
            listing: Mutex::new(None),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Entries matching `req`, oldest first.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        let limit = if req.limit == 0 {
            DEFAULT_LIMIT
        } else {
            req.limit
        };
        let mut parts = self.partitions()?;
        parts.retain(|p| {
            req.since_ms.is_none_or(|s| p.day.end_ms() > s)
                && req.until_ms.is_none_or(|u| p.day.start_ms() < u)
        });
        self.forget_missing(&parts);
        let mut hits: Vec<SearchHit> = Vec::new();
        // Newest day first: once `limit` entries are found, older days cannot contribute.
        for p in parts.iter().rev() {
            let Some(open) = self.open_partition(p)? else {
                continue;
            };
            let query = build_query(&open, req)?;
            self.search_partition(&open, p, query.as_ref(), limit, &mut hits)?;
            if hits.len() >= limit {
                break;
            }
        }
        hits.sort_by_key(|h| (h.timestamp_ms, h.seq));
        let excess = hits.len().saturating_sub(limit);
        hits.drain(..excess);
        Ok(hits)
    }

    fn search_partition(
        &self,
        open: &OpenPartition,
        p: &PartitionDir,
        query: &dyn Query,
        limit: usize,
        hits: &mut Vec<SearchHit>,
    ) -> Result<(), IndexError> {
        let searcher = open.reader.searcher();
        let top =
            TopDocs::with_limit(limit).order_by_fast_field::<DateTime>(TIMESTAMP, Order::Desc);
        let found = searcher
            .search(query, &top)
            .map_err(|e| IndexError::tantivy(&p.path, e))?;
        for (ts, addr) in found {
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
                timestamp_ms: ts.into_timestamp_millis(),
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

fn build_query(open: &OpenPartition, req: &SearchRequest) -> Result<Box<dyn Query>, IndexError> {
    let f = &open.fields;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
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
        let mut parser = QueryParser::for_index(&open.index, f.default_query_fields());
        parser.set_conjunction_by_default();
        let parsed = parser.parse_query(q).map_err(|e| IndexError::BadQuery {
            query: q.to_string(),
            reason: e.to_string(),
        })?;
        clauses.push((Occur::Must, parsed));
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
    if req.since_ms.is_some() || req.until_ms.is_some() {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                bound(req.since_ms, true),
                bound(req.until_ms, false),
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
