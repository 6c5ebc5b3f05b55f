//! The Apache 2.4 config language against Debian's live Apache (loopback): `Include` (a glob
//! relative to `ServerRoot`) defining a LogFormat and CustomLog, `%{c}a`, `%{remote}p`, `%L`,
//! mod_ssl's `%{SSL_PROTOCOL}x`, and an `ErrorLogFormat` with optional fields (`[client\ %a]`
//! left out when there is no client). `quill parse --apache-config` must find every format
//! itself, and the access line's `%L` must equal the error line's. Needs `apache2`; bounded.

use std::ffi::OsStr;

use crate::support::*;

const ACCESS: &str = r#"%h %{c}a %{remote}p %L "%r" %>s %O %{SSL_PROTOCOL}x %{X-Request-ID}i"#;

#[test]
fn live_include_errorlogformat_and_directives() {
    if !servers_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("www")).unwrap();
    std::fs::create_dir_all(d.join("inc")).unwrap();
    std::fs::write(d.join("www/a.txt"), "apache formats\n".repeat(5)).unwrap();
    std::fs::write(
        d.join("inc/logs.conf"),
        format!(
            "LogFormat \"%h %>s %B %{{remote}}p\" short\nCustomLog \"{}/other.log\" short\n",
            d.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let extra = r#"LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LogLevel info
ErrorLogFormat "[%{cu}t] [%-m:%l] [pid %P]\ [client\ %a]\ [rid\ %L]\ %M"
Include inc/*.conf"#;
    let apache = start_apache(d, port, ACCESS, extra);
    let (cp_ok, n_ok) = fetch(
        port,
        "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Request-ID: rid-live-1\r\nConnection: close\r\n\r\n",
    );
    let (cp_missing, _) = fetch(
        port,
        "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(apache);

    let out = quill_parse(&[
        "--apache-config".as_ref(),
        d.join("httpd.conf").as_os_str(),
        "--format".as_ref(),
        "apache".as_ref(),
        d.join("apache-access.log").as_os_str(),
        d.join("other.log").as_os_str(),
        d.join("apache-error.log").as_os_str(),
    ] as &[&OsStr]);
    let s = |j: &serde_json::Value, k: &str| j[k].as_str().map(str::to_owned);
    for j in &out {
        assert!(j.get("_parse_error").is_none(), "{j:#}");
    }
    let access: Vec<_> = out
        .iter()
        .filter(|j| s(j, "_source").is_some_and(|p| p.ends_with("apache-access.log")))
        .collect();
    assert_eq!(access.len(), 2, "{out:#?}");
    let ok = access
        .iter()
        .find(|j| j["_client_port"].as_u64() == Some(u64::from(cp_ok)))
        .unwrap_or_else(|| panic!("{access:#?}"));
    assert_eq!(s(ok, "_peer_ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(s(ok, "_txn_id").as_deref(), Some("rid-live-1"));
    assert_eq!(ok["_bytes_sent"].as_u64(), Some(n_ok as u64), "{ok:#}");
    assert!(ok.get("_ssl_protocol").is_none(), "plain HTTP: `-`");
    let missing = access
        .iter()
        .find(|j| j["_client_port"].as_u64() == Some(u64::from(cp_missing)))
        .unwrap();
    let rid = s(missing, "_log_id").unwrap_or_else(|| panic!("{missing:#}"));

    // The included CustomLog, with the included LogFormat.
    let other: Vec<_> = out
        .iter()
        .filter(|j| s(j, "_source").is_some_and(|p| p.ends_with("other.log")))
        .collect();
    assert_eq!(other.len(), 2);
    assert!(
        other
            .iter()
            .all(|j| j["_client_port"].is_u64() && j["_status"].is_u64())
    );

    // The error log: startup lines without a client, and the 404's line with the same %L.
    let errors: Vec<_> = out
        .iter()
        .filter(|j| s(j, "_source").is_some_and(|p| p.ends_with("apache-error.log")))
        .collect();
    assert!(errors.len() >= 3, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|j| s(j, "_log_format").as_deref() == Some("apache-error"))
    );
    assert!(
        errors
            .iter()
            .any(|j| j["_client_ip"].is_null() && j["_pid"].is_null())
    );
    let e404 = errors
        .iter()
        .find(|j| s(j, "_log_id").as_deref() == Some(rid.as_str()))
        .unwrap_or_else(|| panic!("no error line with log id {rid}: {errors:#?}"));
    assert_eq!(e404["_client_port"].as_u64(), Some(u64::from(cp_missing)));
    assert_eq!(s(e404, "_error_code").as_deref(), Some("AH00128"));
    assert_eq!(e404["level"].as_u64(), Some(6));
}
