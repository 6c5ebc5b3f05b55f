//! The JSON search API's handlers: `/api/search` (entries of a txn id or a query, paged) and
//! `/api/neighbours` (what happened just before and after a transaction on the same hosts).
//!
//! Every answer names the server it came from (`server`, also on every hit), so a federated
//! front can merge answers of several aggregators. Searches run on the blocking pool under a
//! semaphore (at most `max_concurrent` at once; others wait up to the time budget, then get 503)
//! and under the reader's [`SearchLimits`](super::SearchLimits): a query too long or too deep is
//! a 400 before it is parsed, a search past its time budget a 503.
//!
//! This module reads the index through [`IndexReaderSet`] and nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::reader::{Cursor, IndexReaderSet, PageOptions, PageOrder, SearchHit, SearchRequest};
use super::{IndexError, QueryRejected};

/// Most hosts `/api/neighbours` looks at.
pub const MAX_NEIGHBOUR_HOSTS: usize = 16;
/// Most entries per side and host `/api/neighbours` returns.
pub const MAX_NEIGHBOURS: usize = 50;

/// What the handlers share.
pub struct ApiState {
    pub readers: Arc<IndexReaderSet>,
    /// This aggregator's name, stamped on every answer.
    pub server: String,
    /// One per running search; held by the blocking job itself, so a client that goes away
    /// does not free its slot while its search still runs.
    pub permits: Arc<Semaphore>,
}

impl ApiState {
    pub fn new(readers: IndexReaderSet, server: String, max_concurrent: usize) -> ApiState {
        ApiState {
            readers: Arc::new(readers),
            server,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    txn: Option<String>,
    q: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    limit: Option<u64>,
    /// `newest` (default) or `oldest`.
    order: Option<PageOrder>,
    /// `TIMESTAMP_MS:SEQ`: with `newest`, entries before it; with `oldest`, after it.
    cursor: Option<String>,
    host: Option<String>,
}

/// One hit as the API sends it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiHit {
    #[serde(flatten)]
    pub hit: SearchHit,
    pub server: String,
}

#[derive(Debug, Serialize)]
struct SearchResponse {
    server: String,
    limit: usize,
    /// More entries match past this page; `next` continues in the same order.
    more: bool,
    next: Option<String>,
    hits: Vec<ApiHit>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct NeighbourParams {
    txn: String,
    n: Option<usize>,
}

#[derive(Debug, Serialize)]
struct HostNeighbours {
    host: String,
    before: Vec<ApiHit>,
    after: Vec<ApiHit>,
}

#[derive(Debug, Serialize)]
struct NeighbourResponse {
    server: String,
    hosts: Vec<HostNeighbours>,
}

pub(crate) fn parse_cursor(s: &str) -> Option<Cursor> {
    let (ts, seq) = s.split_once(':')?;
    Some(Cursor {
        timestamp_ms: ts.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

fn cursor_text(h: &SearchHit) -> String {
    format!("{}:{}", h.timestamp_ms, h.seq)
}

fn stamp(hits: Vec<SearchHit>, server: &str) -> Vec<ApiHit> {
    hits.into_iter()
        .map(|hit| ApiHit {
            hit,
            server: server.to_string(),
        })
        .collect()
}

/// Runs `job` on the blocking pool once a permit is free (waiting at most the time budget).
async fn run_limited<T: Send + 'static>(
    state: &Arc<ApiState>,
    job: impl FnOnce(&IndexReaderSet) -> Result<T, IndexError> + Send + 'static,
) -> Result<T, Response> {
    let budget = state.readers.limits().time_budget;
    let permit = match tokio::time::timeout(budget, state.permits.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many searches at once; try again".into(),
            ));
        }
    };
    let readers = state.readers.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job(&readers)
    })
    .await;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(index_error(e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn index_error(e: IndexError) -> Response {
    let status = match &e {
        IndexError::BadQuery { .. } => StatusCode::BAD_REQUEST,
        IndexError::Rejected(QueryRejected::OverBudget(_)) => StatusCode::SERVICE_UNAVAILABLE,
        IndexError::Rejected(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

pub fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorResponse { error: message })).into_response()
}

pub async fn search_handler(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<SearchParams>,
) -> Response {
    let cursor = match params.cursor.as_deref().map(parse_cursor) {
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "cursor must be TIMESTAMP_MS:SEQ".into(),
            );
        }
        Some(c) => c,
        None => None,
    };
    let req = SearchRequest {
        txn_id: params.txn.filter(|t| !t.is_empty()),
        query: params.q.filter(|q| !q.trim().is_empty()),
        since_ms: params.since_ms,
        until_ms: params.until_ms,
        limit: usize::try_from(params.limit.unwrap_or(0)).unwrap_or(usize::MAX),
    };
    let page = PageOptions {
        order: params.order.unwrap_or_default(),
        cursor,
        host: params.host,
    };
    let order = page.order;
    match run_limited(&state, move |r| r.search_page(&req, &page)).await {
        Ok(p) => {
            let next = if p.more {
                match order {
                    PageOrder::Newest => p.hits.first().map(cursor_text),
                    PageOrder::Oldest => p.hits.last().map(cursor_text),
                }
            } else {
                None
            };
            Json(SearchResponse {
                server: state.server.clone(),
                limit: p.limit,
                more: p.more,
                next,
                hits: stamp(p.hits, &state.server),
            })
            .into_response()
        }
        Err(r) => r,
    }
}

pub async fn neighbours_handler(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<NeighbourParams>,
) -> Response {
    let n = params.n.unwrap_or(5).clamp(1, MAX_NEIGHBOURS);
    let txn = params.txn;
    let job = move |r: &IndexReaderSet| neighbours(r, &txn, n);
    match run_limited(&state, job).await {
        Ok(found) => Json(NeighbourResponse {
            server: state.server.clone(),
            hosts: found
                .into_iter()
                .map(|(host, before, after)| HostNeighbours {
                    host,
                    before: stamp(before, &state.server),
                    after: stamp(after, &state.server),
                })
                .collect(),
        })
        .into_response(),
        Err(r) => r,
    }
}

type Neighbours = Vec<(String, Vec<SearchHit>, Vec<SearchHit>)>;

/// Per host of the transaction: the `n` entries just before its first entry there and just
/// after its last, other transactions only. Stops adding hosts once the time budget is spent.
fn neighbours(r: &IndexReaderSet, txn: &str, n: usize) -> Result<Neighbours, IndexError> {
    let started = Instant::now();
    let budget: Duration = r.limits().time_budget;
    let own = r.search(&SearchRequest {
        txn_id: Some(txn.to_string()),
        limit: r.limits().max_limit,
        ..SearchRequest::default()
    })?;
    let mut spans: Vec<(String, &SearchHit, &SearchHit)> = Vec::new();
    for h in &own {
        let host = host_of(h);
        if let Some(span) = spans.iter_mut().find(|(name, _, _)| *name == host) {
            span.2 = h;
        } else if spans.len() < MAX_NEIGHBOUR_HOSTS {
            spans.push((host, h, h));
        }
    }
    let mut out = Vec::new();
    for (host, first, last) in spans {
        if started.elapsed() > budget {
            break;
        }
        let side = |order: PageOrder, at: &SearchHit| {
            r.search_page(
                &SearchRequest {
                    limit: n + own.len().min(MAX_NEIGHBOURS),
                    ..SearchRequest::default()
                },
                &PageOptions {
                    order,
                    cursor: Some(Cursor {
                        timestamp_ms: at.timestamp_ms,
                        seq: at.seq,
                    }),
                    host: Some(host.clone()),
                },
            )
            .map(|p| {
                let mut hits: Vec<SearchHit> =
                    p.hits.into_iter().filter(|h| txn_of(h) != txn).collect();
                match order {
                    PageOrder::Newest => drop(hits.drain(..hits.len().saturating_sub(n))),
                    PageOrder::Oldest => hits.truncate(n),
                }
                hits
            })
        };
        let before = side(PageOrder::Newest, first)?;
        let after = side(PageOrder::Oldest, last)?;
        out.push((host, before, after));
    }
    Ok(out)
}

fn gelf_str(h: &SearchHit, key: &str) -> String {
    serde_json::from_str::<serde_json::Value>(&h.gelf)
        .ok()
        .and_then(|v| v.get(key).and_then(|s| s.as_str()).map(str::to_string))
        .unwrap_or_default()
}

fn host_of(h: &SearchHit) -> String {
    gelf_str(h, "host")
}

fn txn_of(h: &SearchHit) -> String {
    gelf_str(h, "_txn_id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = parse_cursor("1795396130505:42").unwrap();
        assert_eq!((c.timestamp_ms, c.seq), (1_795_396_130_505, 42));
        assert!(parse_cursor("x:1").is_none());
        assert!(parse_cursor("12").is_none());
        assert_eq!(parse_cursor("-5:0").unwrap().timestamp_ms, -5);
    }
}
