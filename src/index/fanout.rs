//! Search across aggregators: one query sent to every search server at once, the answers merged
//! into one time-ordered result, and every server that did not answer named.
//!
//! With several aggregators a transaction's entries are split over independent indexes;
//! `quill search --server A --server B` (or `[search] peers`) asks all of them. Each server gets
//! the same request with the same `limit`, on a thread of its own, within its own time bound
//! ([`search_remote`]); [`merge`] (pure) orders the union by timestamp (ties keep the order of
//! the servers as given, then each server's own order) and keeps the newest `limit` entries.
//! A server that is down, too slow or answers an error is a [`RemoteSearchError`] in
//! [`FanOut::failures`], never a silently smaller result.
//!
//! This module touches the network only through [`super::http`].

use std::time::Duration;

use super::http::{RemotePage, RemoteSearchError, search_remote};
use super::reader::{SearchHit, SearchRequest};

/// The merged answer of several search servers.
#[derive(Debug, Default)]
pub struct FanOut {
    /// The newest `limit` entries of all answers, oldest first.
    pub hits: Vec<SearchHit>,
    /// More entries may match than `hits` holds (a server said so, or the union was cut).
    pub more: bool,
    /// Servers that answered.
    pub answered: usize,
    /// Servers that did not, in the order they were given (each error names its server).
    pub failures: Vec<RemoteSearchError>,
}

/// Runs `req` on every one of `servers` at once (each bounded by `timeout`) and merges.
pub fn search_all(
    servers: &[String],
    req: &SearchRequest,
    token: Option<&str>,
    timeout: Duration,
) -> FanOut {
    let answers: Vec<Result<RemotePage, RemoteSearchError>> = std::thread::scope(|scope| {
        let running: Vec<_> = servers
            .iter()
            .map(|server| {
                let job = move || search_remote(server, req, token, timeout);
                (server, scope.spawn(job))
            })
            .collect();
        running
            .into_iter()
            .map(|(server, handle)| {
                handle.join().unwrap_or_else(|_| {
                    Err(RemoteSearchError::BadResponse {
                        url: server.clone(),
                        reason: "the client thread failed".into(),
                    })
                })
            })
            .collect()
    });
    merge(answers, req.limit)
}

/// Merges the servers' answers (in the order the servers were given) by time and keeps the
/// newest `limit` entries (at least one), oldest first.
pub fn merge(answers: Vec<Result<RemotePage, RemoteSearchError>>, limit: usize) -> FanOut {
    let limit = limit.max(1);
    let mut out = FanOut::default();
    for answer in answers {
        match answer {
            Ok(page) => {
                out.answered += 1;
                out.more |= page.more;
                out.hits.extend(page.hits);
            }
            Err(e) => out.failures.push(e),
        }
    }
    // Stable: equal timestamps keep the servers' order, and each server's (timestamp, seq) order.
    out.hits.sort_by_key(|h| h.timestamp_ms);
    if out.hits.len() > limit {
        out.hits.drain(..out.hits.len() - limit);
        out.more = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(ts: i64, seq: u64, tag: &str) -> SearchHit {
        SearchHit {
            timestamp_ms: ts,
            seq,
            gelf: tag.to_string(),
        }
    }

    fn page(hits: Vec<SearchHit>, more: bool) -> Result<RemotePage, RemoteSearchError> {
        Ok(RemotePage { hits, more })
    }

    fn tags(f: &FanOut) -> Vec<&str> {
        f.hits.iter().map(|h| h.gelf.as_str()).collect()
    }

    #[test]
    fn interleaves_by_time_with_stable_ties() {
        let a = page(
            vec![hit(10, 1, "a10"), hit(30, 2, "a30"), hit(30, 3, "a30b")],
            false,
        );
        let b = page(
            vec![hit(5, 9, "b5"), hit(30, 1, "b30"), hit(40, 2, "b40")],
            false,
        );
        let f = merge(vec![a, b], 100);
        assert_eq!(tags(&f), ["b5", "a10", "a30", "a30b", "b30", "b40"]);
        assert_eq!((f.answered, f.failures.len(), f.more), (2, 0, false));
        // The other order of servers only swaps the ties.
        let a = page(vec![hit(30, 2, "a30")], false);
        let b = page(vec![hit(30, 1, "b30")], false);
        assert_eq!(tags(&merge(vec![b, a], 100)), ["b30", "a30"]);
    }

    #[test]
    fn limit_keeps_the_newest_of_the_union() {
        let a = page(vec![hit(1, 1, "a1"), hit(4, 2, "a4")], false);
        let b = page(vec![hit(2, 1, "b2"), hit(3, 2, "b3")], false);
        let f = merge(vec![a, b], 3);
        assert_eq!(tags(&f), ["b2", "b3", "a4"]);
        assert!(f.more, "the union was cut");
        // A server that had more says so even when the union fits.
        let f = merge(vec![page(vec![hit(1, 1, "a1")], true)], 3);
        assert!(f.more);
        // limit 0 is taken as 1.
        let f = merge(vec![page(vec![hit(1, 1, "x"), hit(2, 1, "y")], false)], 0);
        assert_eq!(tags(&f), ["y"]);
    }

    #[test]
    fn failures_are_kept_beside_the_answers() {
        let down = Err(RemoteSearchError::BadUrl("nope".into()));
        let f = merge(vec![down, page(vec![hit(1, 1, "a1")], false)], 10);
        assert_eq!(tags(&f), ["a1"]);
        assert_eq!((f.answered, f.failures.len()), (1, 1));
        assert!(f.failures[0].to_string().contains("nope"));
    }

    #[test]
    fn a_dead_server_is_reported_within_the_timeout() {
        // A listener that accepts and never answers, and a port nobody listens on.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let servers = [
            format!("http://{}", silent.local_addr().unwrap()),
            format!("http://{}", closed.local_addr().unwrap()),
        ];
        drop(closed);
        let req = SearchRequest {
            txn_id: Some("t".into()),
            limit: 10,
            ..SearchRequest::default()
        };
        let started = std::time::Instant::now();
        let f = search_all(&servers, &req, None, Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(3), "bounded");
        assert_eq!((f.answered, f.failures.len()), (0, 2));
        assert!(
            matches!(&f.failures[0], RemoteSearchError::Timeout { url, .. } if *url == servers[0])
        );
        assert!(matches!(&f.failures[1], RemoteSearchError::Io { url, .. } if *url == servers[1]));
    }
}
