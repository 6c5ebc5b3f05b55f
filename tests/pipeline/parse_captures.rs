//! HAProxy capture slots from a haproxy.cfg written for every mechanism (`capture … header`,
//! `capture cookie`, `http-request capture … len|id`, `tcp-request content capture`, `declare
//! capture` filled in a frontend and in a backend), over lines Debian's HAProxy 2.6 wrote with it
//! (tests/pipeline/haproxy_captures_live.rs produces them live).

use std::path::PathBuf;

use quill::parse::haproxy::config::HaproxyConfig;
use quill::parse::{FieldList, Format, ParserConfig, TxnIdSources};

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/captures")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn every_slot_is_a_field_named_for_what_it_holds() {
    let cfg = HaproxyConfig::parse_with_env(&fixture("haproxy.cfg"), &|_| None).unwrap();
    let p = ParserConfig {
        format: Format::Syslog,
        haproxy_config: Some(cfg),
        txn_id_sources: TxnIdSources::new(&["X-Correlation-ID", "X-Request-ID", "SID"]),
        ..ParserConfig::default()
    }
    .compile()
    .unwrap();
    let log = fixture("haproxy.log");
    let lines: Vec<FieldList> = log
        .lines()
        .map(|l| {
            let mut f = FieldList::default();
            let info = p
                .parse_line(Format::Syslog, l.as_bytes(), 1_796_299_393_000, &mut f)
                .unwrap();
            if let Some((_, v)) = info.txn_id {
                f.fields.push((
                    "txn".into(),
                    quill::parse::FieldValue::Str(v.text().unwrap().into()),
                ));
            }
            f
        })
        .collect();
    let a = &lines[0];
    assert_eq!(a.get_str("request_capture_var_txn.tag"), Some("tagged"));
    assert_eq!(a.get_str("request_header_host"), Some("h1"));
    assert_eq!(
        a.get_str("request_header_x-request-id"),
        Some("rid-slots-1")
    );
    assert_eq!(
        a.get_str("response_header_content-type"),
        Some("text/plain")
    );
    assert_eq!(
        a.get_str("response_header_server"),
        Some("Apache/2.4.71 (Debian)")
    );
    assert_eq!(a.get_str("request_cookie_sid"), Some("s3ss10n"));
    assert_eq!(a.get_str("captured_request_cookie"), Some("SID=s3ss10n"));
    // The request-id header wins over the cookie (priority order of the txn-id names).
    assert_eq!(a.get_str("txn"), Some("rid-slots-1"));
    // No X-Request-ID: the session cookie is not there either; no txn id.
    let b = &lines[1];
    assert_eq!(b.get_str("request_header_x-request-id"), None);
    assert_eq!(b.get_str("txn"), None);
    // A slot declared in the frontend, filled by the backend.
    let c = &lines[2];
    assert_eq!(
        c.get_str("request_header_x-correlation-id"),
        Some("corr-77")
    );
    assert_eq!(c.get_str("request_capture_src"), Some("127.0.0.1"));
    assert_eq!(c.get_str("txn"), Some("corr-77"));
    // CLF `%hrl`.
    let d = &lines[3];
    assert_eq!(d.get_str("request_header_user-agent"), Some("live-ua/1"));
    assert_eq!(d.get_str("txn"), Some("rid-clf-1"));
}
