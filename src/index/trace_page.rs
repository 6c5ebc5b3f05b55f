//! The transaction trace page: plain HTML, CSS and JavaScript embedded in the binary
//! (`include_str!`), served by the search API's listener at `/`, `/trace/ID` and `/search`.
//!
//! The page reads only this server's JSON API (`/api/search`, `/api/neighbours`); its
//! Content-Security-Policy forbids any other origin, so it never fetches from elsewhere. The
//! assets hold no data and need no token; the API calls do (the page asks for it on a 401).
//!
//! This module serves three constant strings and touches nothing else.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("trace_page/index.html");
const APP_JS: &str = include_str!("trace_page/app.js");
const STYLE_CSS: &str = include_str!("trace_page/style.css");

/// Only this origin, no inline script, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page's routes (no state).
pub fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { page() }))
        .route("/search", get(|| async { page() }))
        .route("/trace/{id}", get(|| async { page() }))
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
}

fn page() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_reference_only_this_origin() {
        for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("//cdn"));
        }
        assert!(INDEX_HTML.contains("/assets/app.js") && INDEX_HTML.contains("/assets/style.css"));
    }
}
