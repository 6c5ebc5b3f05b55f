//! Every HAProxy capture mechanism against Debian's live HAProxy 2.6 (Apache 2.4 behind it, on
//! loopback): `capture request/response header`, `capture cookie`, `http-request capture … len`,
//! `tcp-request content capture … len`, `declare capture` filled by `http-request`/
//! `http-response capture … id` in the frontend and in a backend, in `%hr`/`%hs` and in CLF's
//! `%hrl`. The slots are declared in an order that mixes the mechanisms; the fields must hold
//! the values HAProxy logged for them (so the slot order is HAProxy's), `_txn_id` must come from
//! the request-id header whatever slot holds it, and no `exact` byte label may be wrong.
//! Needs the `haproxy` and `apache2` packages; bounded (<30 s).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::UdpSocket;

use crate::support::*;

const APACHE_FORMAT: &str = r#"%h %l %u %t "%r" %>s %O rid=%{X-Request-ID}i"#;

#[test]
fn live_capture_slots_fields_and_txn_id() {
    if !servers_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("www")).unwrap();
    std::fs::write(d.join("www/note.txt"), "capture slots\n".repeat(20)).unwrap();
    let aport = free_port();
    let (p_slots, p_backend, p_clf) = (free_port(), free_port(), free_port());
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let lport = udp.local_addr().unwrap().port();
    let _apache = start_apache(d, aport, APACHE_FORMAT, "");
    let cfg = format!(
        r#"global
    log 127.0.0.1:{lport} local0
    nbthread 1

defaults
    mode http
    log global
    option dontlognull
    timeout connect 2s
    timeout client 5s
    timeout server 5s

frontend fe_slots
    bind 127.0.0.1:{p_slots}
    option httplog
    declare capture request len 40
    capture request header Host len 20
    http-request set-var(txn.tag) str(tagged)
    http-request capture req.hdr(X-Request-ID) len 40
    http-request capture var(txn.tag) id 0
    declare capture response len 30
    capture response header Server len 40
    http-response capture res.hdr(Content-Type) id 0
    capture cookie SID len 40
    default_backend be_web

frontend fe_backend_id
    bind 127.0.0.1:{p_backend}
    option httplog
    declare capture request len 64
    tcp-request content capture src len 20
    default_backend be_corr

frontend fe_clf
    bind 127.0.0.1:{p_clf}
    option httplog clf
    capture request header User-Agent len 30
    http-request capture req.hdr(X-Request-ID) len 40
    default_backend be_web

backend be_corr
    http-request capture req.hdr(X-Correlation-ID) id 0
    server web1 127.0.0.1:{aport}

backend be_web
    server web1 127.0.0.1:{aport}
"#
    );
    let cfg_path = d.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let haproxy = start_haproxy(&cfg_path, &[p_slots, p_backend, p_clf]);

    let reqs = [
        (
            p_slots,
            "GET /note.txt HTTP/1.1\r\nHost: h1\r\nX-Request-ID: rid-slots-1\r\nCookie: SID=s3ss10n\r\n\r\n",
        ),
        (p_slots, "GET /note.txt HTTP/1.1\r\nHost: h2\r\n\r\n"),
        (
            p_backend,
            "GET /note.txt HTTP/1.1\r\nHost: b\r\nX-Correlation-ID: corr-77\r\nConnection: close\r\n\r\n",
        ),
        (
            p_clf,
            "GET /note.txt HTTP/1.1\r\nHost: c\r\nUser-Agent: live-ua/1\r\nX-Request-ID: rid-clf-1\r\n\r\n",
        ),
    ];
    let mut truth: HashMap<u16, usize> = HashMap::new();
    for (port, r) in reqs {
        let (cp, n) = fetch(port, r);
        truth.insert(cp, n);
    }
    let hap = collect_udp(&udp, "fe_", reqs.len());
    drop(haproxy);
    let hap_path = d.join("haproxy.log");
    std::fs::write(&hap_path, &hap).unwrap();

    let args: Vec<&OsStr> = vec![
        "--haproxy-config".as_ref(),
        cfg_path.as_os_str(),
        "--apache-format".as_ref(),
        APACHE_FORMAT.as_ref(),
        "--txn-id".as_ref(),
        "X-Correlation-ID".as_ref(),
        "--txn-id".as_ref(),
        "X-Request-ID".as_ref(),
        "--host".as_ref(),
        "t".as_ref(),
        hap_path.as_os_str(),
        d.join("apache-access.log").into_os_string().leak(),
    ];
    let out = quill_parse(&args);
    let entries: Vec<&serde_json::Value> =
        out.iter().filter(|j| j["_frontend"].is_string()).collect();
    assert_eq!(entries.len(), reqs.len(), "{hap}\n{out:#?}");
    let s = |j: &serde_json::Value, k: &str| j[k].as_str().map(str::to_owned);
    let by = |path_host: &str| {
        entries
            .iter()
            .find(|j| {
                s(j, "_request_header_host").as_deref() == Some(path_host)
                    || s(j, "_request_header_user-agent").as_deref() == Some(path_host)
                    || s(j, "_request_header_x-correlation-id").as_deref() == Some(path_host)
            })
            .unwrap_or_else(|| panic!("no entry for {path_host}\n{hap}\n{entries:#?}"))
    };

    // fe_slots: request slots [var(txn.tag) via id 0, Host, X-Request-ID], response slots
    // [Content-Type via id 0, Server], cookie SID.
    let a = by("h1");
    assert_eq!(
        s(a, "_request_capture_var_txn.tag").as_deref(),
        Some("tagged"),
        "{a:#}"
    );
    assert_eq!(
        s(a, "_request_header_x-request-id").as_deref(),
        Some("rid-slots-1")
    );
    assert_eq!(
        s(a, "_response_header_content-type").as_deref(),
        Some("text/plain")
    );
    assert!(
        s(a, "_response_header_server").is_some_and(|v| v.starts_with("Apache")),
        "{a:#}"
    );
    assert_eq!(s(a, "_request_cookie_sid").as_deref(), Some("s3ss10n"));
    assert_eq!(s(a, "_txn_id").as_deref(), Some("rid-slots-1"));
    let b = by("h2");
    assert_eq!(s(b, "_txn_id"), None, "{b:#}");
    assert_eq!(s(b, "_request_header_x-request-id"), None);

    // fe_backend_id: slot 0 declared in the frontend, filled in the backend; then `src`.
    let c = by("corr-77");
    assert_eq!(
        s(c, "_request_capture_src").as_deref(),
        Some("127.0.0.1"),
        "{c:#}"
    );
    assert_eq!(s(c, "_txn_id").as_deref(), Some("corr-77"));

    // fe_clf: `%hrl`, each slot quoted.
    let e = by("live-ua/1");
    assert_eq!(
        s(e, "_request_header_x-request-id").as_deref(),
        Some("rid-clf-1"),
        "{e:#}"
    );
    assert_eq!(s(e, "_txn_id").as_deref(), Some("rid-clf-1"));

    // The Apache lines joined by txn id; no exact label is wrong.
    for j in &entries {
        let basis = s(j, "_bytes_sent_basis").unwrap_or_default();
        let cp = j["_client_port"].as_u64().unwrap() as u16;
        if basis == "exact" {
            assert_eq!(
                j["_bytes_sent"].as_i64(),
                truth.get(&cp).map(|n| *n as i64),
                "{j:#}"
            );
        }
    }
}
