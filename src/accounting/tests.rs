//! Unit tests of the header model: built from haproxy.cfg text, applied to entries.

use super::correct::BUILTIN_400;
use super::*;
use crate::parse::haproxy::config::HaproxyConfig;

fn model(cfg: &str) -> HeaderModel {
    HeaderModel::from_config(&HaproxyConfig::parse(cfg).unwrap())
}

fn entry(fe: &str, be: &str, b: i64, ts: &str) -> HaproxyEntry {
    HaproxyEntry {
        frontend: fe.into(),
        backend: be.into(),
        server: "s1".into(),
        status: Some(200),
        bytes_read: Some(b),
        termination_state: ts.into(),
        http_version: "HTTP/1.1".into(),
        http_method: "GET".into(),
        ..HaproxyEntry::default()
    }
}

fn joined(o: i64) -> BackendLine {
    BackendLine {
        bytes_out: Some(o),
        aborted: false,
        request_id: None,
    }
}

const CFG: &str = "defaults\n mode http\nfrontend f\n capture response header Server len 64\n capture response header Cache-Control len 64\n capture response header Pragma len 32\n http-response add-header X-A \"b c\"\n http-response set-header Server mine\n default_backend b\nbackend b\n cookie K insert indirect nocache httponly domain .x.test maxlife 1h\n server s1 127.0.0.1:1 cookie v1\n";

#[test]
fn cookie_and_rules_from_the_cfg() {
    let mut m = model(CFG);
    // HTTP/1.1 on a keep-alive frontend: exact only on the operator's word (see
    // `client_close_is_never_a_wrong_exact` for the default).
    m.assume_clients_keep_alive = true;
    let mut l = LearnedCounts::new(16);
    let mut e = entry("f", "b", 1000, "--NI");
    e.captured_response = vec![("server".into(), "Apache".into())];
    let plain = e.clone();
    // O = B + 4·7 − 15 (7 header lines, no Connection header)
    let c = m.correct(&e, Some(&joined(1013)), &mut l);
    let cookie = "K=v1|xxxxx|xxxxx; path=/; domain=.x.test; HttpOnly".len();
    let want = 1013
        + header_line_len("Set-Cookie", cookie)
        + header_line_len("Cache-control", "private".len())
        + header_line_len("X-A", 3)
        + header_line_len("Server", 4)
        - header_line_len("Server", 6);
    assert_eq!((c.bytes_sent, c.basis), (Some(want), Basis::Exact), "{c:?}");
    assert_eq!(l.get("b", 200), Some(7));
    // Valid cookie: nothing inserted; server's Connection: close stripped (≡ 0 mod 4).
    let c = m.correct(
        &entry("f", "b", 1000, "--VN"),
        Some(&joined(1013 + 19)),
        &mut l,
    );
    // Server header not captured on this entry: captured-but-absent, so set adds it.
    let want = 1013 + header_line_len("X-A", 3) + header_line_len("Server", 4);
    assert_eq!((c.bytes_sent, c.basis), (Some(want), Basis::Exact), "{c:?}");
    // No partner: the learned count gives an estimate.
    let c = m.correct(&entry("f", "b", 1000, "--VN"), None, &mut l);
    assert_eq!(c.basis, Basis::Estimate);
    assert_eq!(c.bytes_sent, Some(want));

    // The server said `Cache-Control: no-cache`: no `Cache-control: private`.
    let mut e = plain.clone();
    e.captured_response
        .push(("cache-control".into(), "public, no-cache".into()));
    let c = m.correct(&e, Some(&joined(1013)), &mut l);
    let with_private = 1013
        + header_line_len("Set-Cookie", cookie)
        + header_line_len("X-A", 3)
        + header_line_len("Server", 4)
        - header_line_len("Server", 6);
    assert_eq!((c.bytes_sent, c.basis), (Some(with_private), Basis::Exact));
    // `Pragma: no-cache` too.
    let mut e = plain.clone();
    e.captured_response
        .push(("pragma".into(), "no-cache".into()));
    let c = m.correct(&e, Some(&joined(1013)), &mut l);
    assert_eq!((c.bytes_sent, c.basis), (Some(with_private), Basis::Exact));
    // Without the captures, the server's cache headers are unknown: an estimate.
    let mut m2 = model(&CFG.replace(" capture response header Pragma len 32\n", ""));
    m2.assume_clients_keep_alive = true;
    let c = m2.correct(&plain, Some(&joined(1013)), &mut l);
    assert_eq!((c.basis, c.reason), (Basis::Estimate, NOCACHE_UNKNOWN));
    // An HTTP/2 client: framing not modelled.
    let mut e = plain;
    e.http_version = "HTTP/2.0".into();
    let c = m.correct(&e, Some(&joined(1013)), &mut l);
    assert_eq!(c.basis, Basis::Estimate, "{c:?}");
    assert!(c.reason.contains("HTTP/2"), "{c:?}");
}

#[test]
fn client_close_is_never_a_wrong_exact() {
    let mut l = LearnedCounts::new(16);
    // Keep-alive frontend, default: whether the HTTP/1.1 client sent `Connection: close`
    // is not in the log, so the keep-alive value is an estimate (19 bytes low if it did).
    let m = model(CFG);
    let mut e = entry("f", "b", 1000, "--VN");
    e.captured_response = vec![("server".into(), "Apache".into())];
    let keep_alive = 1013 + header_line_len("X-A", 3) + header_line_len("Server", 4)
        - header_line_len("Server", 6);
    let c = m.correct(&e, Some(&joined(1013)), &mut l);
    assert_eq!((c.bytes_sent, c.basis), (Some(keep_alive), Basis::Estimate));
    assert!(c.reason.contains("Connection: close"), "{c:?}");
    // The header HAProxy strips from the request is not a signal either: a capture of it
    // only ever shows the other tokens.
    e.captured_request = vec![("connection".into(), "TE".into())];
    assert_eq!(
        m.correct(&e, Some(&joined(1013)), &mut l).basis,
        Basis::Estimate
    );
    // Unknown HTTP version: never exact.
    e.http_version.clear();
    let c = m.correct(&e, Some(&joined(1013)), &mut l);
    assert_eq!(c.basis, Basis::Estimate, "{c:?}");
    // The operator's setting: exact, keep-alive value.
    let mut m = model(CFG);
    m.assume_clients_keep_alive = true;
    e.http_version = "HTTP/1.1".into();
    let c = m.correct(&e, Some(&joined(1013)), &mut l);
    assert_eq!((c.bytes_sent, c.basis), (Some(keep_alive), Basis::Exact));
    // HTTP/1.0 stays an estimate whatever the setting says.
    e.http_version = "HTTP/1.0".into();
    assert_eq!(
        m.correct(&e, Some(&joined(1013)), &mut l).basis,
        Basis::Estimate
    );
    // `option httpclose`: every response carries `connection: close`, so HTTP/1.1 entries
    // are exact by default, with the 19 bytes added.
    let m = model(&CFG.replace(
        " default_backend b\n",
        " option httpclose\n default_backend b\n",
    ));
    e.http_version = "HTTP/1.1".into();
    let c = m.correct(&e, Some(&joined(1013)), &mut l);
    assert_eq!(
        (c.bytes_sent, c.basis),
        (
            Some(keep_alive + header_line_len("connection", 5)),
            Basis::Exact
        ),
        "{c:?}"
    );
}

#[test]
fn never_exact_on_aborts_compression_badreq() {
    let m = model(
        "frontend f\n mode http\n compression algo gzip\n default_backend b\nbackend b\n server s1 127.0.0.1:1\nfrontend t\n mode tcp\n default_backend b\n",
    );
    let mut l = LearnedCounts::new(16);
    let c = m.correct(&entry("f", "b", 5000, "CD--"), Some(&joined(99999)), &mut l);
    assert_eq!(c.basis, Basis::Unknown);
    let c = m.correct(&entry("f", "b", 5000, "----"), Some(&joined(5013)), &mut l);
    assert_eq!(c.basis, Basis::Unknown);
    let mut bad = entry("f", "b", 0, "PR--");
    bad.http_method = "<BADREQ>".into();
    bad.status = Some(400);
    bad.server = "<NOSRV>".into();
    let c = m.correct(&bad, None, &mut l);
    assert_eq!(c.basis, Basis::Estimate);
    assert_eq!(c.bytes_sent, Some(BUILTIN_400.len() as i64));
    let mut tcp = entry("t", "b", 777, "--");
    tcp.http_method.clear();
    assert_eq!(m.correct(&tcp, None, &mut l).basis, Basis::Exact);
    tcp.termination_state = "cD".into();
    assert_eq!(m.correct(&tcp, None, &mut l).basis, Basis::Unknown);
}

#[test]
fn dynamic_unique_id_and_httpclose() {
    let m = model(
        "frontend f\n mode http\n option httpclose\n http-response set-header X-Id %[unique-id]\n capture response header X-Id len 80\n default_backend b\nbackend b\n server s1 127.0.0.1:1\n",
    );
    let mut l = LearnedCounts::new(16);
    let mut e = entry("f", "b", 1000, "----");
    e.unique_id = Some("ABC123".into());
    let c = m.correct(&e, Some(&joined(1013 + 19)), &mut l);
    let want = 1013 + header_line_len("X-Id", 6) + header_line_len("connection", 5);
    assert_eq!((c.bytes_sent, c.basis), (Some(want), Basis::Exact), "{c:?}");
    e.unique_id = None;
    let c = m.correct(&e, Some(&joined(1013 + 19)), &mut l);
    assert_eq!(c.basis, Basis::Estimate);
}
