//! The operations HTTP server on `metrics_listen`: `/metrics` (Prometheus text), `/health/live`,
//! `/health/ready` and `/status` (JSON: sources, sinks, state, lag, losses, last errors: the
//! [`StatusReport`] that `crate::telemetry::report` builds).
//!
//! The server renders what it is handed ([`Reporter`], a Prometheus handle); it counts nothing
//! itself and touches nothing but its listener.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::component::{ComponentError, Shutdown};
use crate::status::StatusReport;

/// Builds the current [`StatusReport`] (called per request).
pub type Reporter = Arc<dyn Fn() -> StatusReport + Send + Sync>;

#[derive(Clone)]
struct Ops {
    prometheus: PrometheusHandle,
    report: Reporter,
}

/// Installs the Prometheus recorder (once per process: the `metrics` macros record into it).
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))
}

/// The routes, for a listener of the caller's.
pub fn router(prometheus: PrometheusHandle, report: Reporter) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .route("/status", get(status))
        .with_state(Ops { prometheus, report })
}

/// Binds `addr` and serves the routes on `runtime` until `shutdown`.
pub fn serve(
    addr: &str,
    prometheus: PrometheusHandle,
    report: Reporter,
    runtime: &tokio::runtime::Runtime,
    shutdown: &Shutdown,
) -> Result<std::net::SocketAddr, ComponentError> {
    let bind_err = |source| ComponentError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let _guard = runtime.enter();
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_err)?;
    let mut sd = shutdown.clone();
    let app = router(prometheus, report);
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { sd.triggered().await })
            .await
        {
            tracing::error!("Operations server stopped: {e}.");
        }
    });
    Ok(local)
}

async fn metrics(State(ops): State<Ops>) -> Response {
    ops.prometheus.run_upkeep();
    (
        [("content-type", "text/plain; version=0.0.4")],
        ops.prometheus.render(),
    )
        .into_response()
}

async fn ready(State(ops): State<Ops>) -> Response {
    let report = (ops.report)();
    if report.ready {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn status(State(ops): State<Ops>) -> Json<StatusReport> {
    Json((ops.report)())
}
