//! The search API's listener: routes (JSON API and the trace page), an optional bearer token,
//! optional TLS, and limits on connections so idle or slow peers cannot hold the listener.
//!
//! Connections are accepted in one loop and each is served on its own task: a TLS handshake
//! has [`HANDSHAKE_TIMEOUT`], request headers [`HEADER_TIMEOUT`], and at most
//! `max_connections` are open at once (more are closed on accept). With a token, every `/api/`
//! request needs `Authorization: Bearer TOKEN` (401 otherwise); the page's static assets carry no
//! data and are served without it (the page asks for the token).
//!
//! This module opens no files; TLS material and the token come in [`ApiOptions`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use super::api::{self, ApiState};
use super::limits::SearchLimits;
use super::reader::IndexReaderSet;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of searches that run at once.
pub const DEFAULT_MAX_CONCURRENT: usize = 2;
/// Default number of open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How the API is served.
#[derive(Clone)]
pub struct ApiOptions {
    pub limits: SearchLimits,
    /// Searches running at once (each on a blocking thread).
    pub max_concurrent: usize,
    pub max_connections: usize,
    /// Required as `Authorization: Bearer TOKEN` on `/api/` when set.
    pub token: Option<String>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// This aggregator's name in answers.
    pub server_name: String,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            limits: SearchLimits::default(),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            token: None,
            tls: None,
            server_name: gethostname::gethostname().to_string_lossy().into_owned(),
        }
    }
}

/// The API's and the page's routes over the index at `index_root`.
pub fn router(index_root: PathBuf, opts: &ApiOptions) -> Router {
    let readers = IndexReaderSet::with_limits(&index_root, opts.limits.clone());
    let state = Arc::new(ApiState::new(
        readers,
        opts.server_name.clone(),
        opts.max_concurrent,
    ));
    let api = Router::new()
        .route("/api/search", get(api::search_handler))
        .route("/api/neighbours", get(api::neighbours_handler))
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            Arc::new(opts.token.clone()),
            require_token,
        ));
    api.merge(super::trace_page::routes())
}

async fn require_token(
    State(token): State<Arc<Option<String>>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(want) = token.as_deref() {
        let got = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(got.as_bytes(), want.as_bytes()) {
            let mut r = api::error(
                StatusCode::UNAUTHORIZED,
                "this search API needs `Authorization: Bearer TOKEN`".into(),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// Compares without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves `router` on `listener` (TLS when `tls` is set) until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(|c| {
        let mut c = (*c).clone();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(c))
    });
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("Search API accept failed: {e}.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "Search API: too many connections, closing one.");
            continue;
        };
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            match acceptor {
                Some(a) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, a.accept(stream)).await {
                    Ok(Ok(tls)) => serve_connection(tls, router).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "Search API TLS handshake failed: {e}."),
                    Err(_) => tracing::debug!(%peer, "Search API TLS handshake timed out."),
                },
                None => serve_connection(stream, router).await,
            }
        });
    }
}

async fn serve_connection<IO>(io: IO, router: Router)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
        tracing::debug!("Search API connection ended: {e}.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"x"));
    }
}
