//! The HAProxy 2.6 config language beyond captures, against Debian's live HAProxy (Apache 2.4
//! behind it, on loopback): named `defaults` inherited with `from` (a chain of two), a
//! log-format inherited through it, `+X` hex addresses and ports, `+E` escaping, `%[…]` samples,
//! `log-format-sd` over RFC 5424 (its parameters become fields named for what they hold, `%ID`
//! the unique id and so the `_txn_id`), and `error-log-format` (a bad PROXY header). The lines
//! HAProxy wrote must parse into the values it was given. Needs `haproxy` and `apache2`;
//! bounded (<30 s).

use std::ffi::OsStr;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};

use crate::support::*;

#[test]
fn live_defaults_from_hex_escape_sd_and_error_format() {
    if !servers_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("www")).unwrap();
    std::fs::write(d.join("www/f.txt"), "formats\n".repeat(10)).unwrap();
    let aport = free_port();
    let (p_hex, p_sd, p_err) = (free_port(), free_port(), free_port());
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let lport = udp.local_addr().unwrap().port();
    let _apache = start_apache(d, aport, "%h %l %u %t \"%r\" %>s %O", "");
    let cfg = format!(
        r#"global
    log 127.0.0.1:{lport} local0
    nbthread 1

defaults base
    mode http
    log global
    option dontlognull
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    log-format "%{{+X}}o %ci:%cp [%tr] %ft %b/%s %ST %B %{{-X}}o %[var(txn.tag)] %{{+Q,+E}}HQ"

defaults web from base
    unique-id-format %{{+X}}o%ci%cp-%rt

frontend fe_hex from web
    bind 127.0.0.1:{p_hex}
    http-request set-var(txn.tag) req.hdr(x-tag)
    default_backend be

frontend fe_sd from web
    bind 127.0.0.1:{p_sd}
    log 127.0.0.1:{lport} format rfc5424 local1
    no log
    log 127.0.0.1:{lport} format rfc5424 local1
    log-format "%ci:%cp [%tr] %ft %ST %B"
    log-format-sd "[quill@32473 uid=\"%ID\" bytes=\"%B\" st=\"%ST\" q=\"%{{+E}}HQ\"]"
    default_backend be

frontend fe_err from web
    bind 127.0.0.1:{p_err} accept-proxy
    error-log-format "%ci:%cp [%tr] %ft conn_err=%[fc_err] feconn=%fc"
    default_backend be

backend be from web
    server web1 127.0.0.1:{aport}
"#
    );
    let cfg_path = d.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let haproxy = start_haproxy(&cfg_path, &[p_hex, p_sd, p_err]);

    let (cp_hex, _) = fetch(
        p_hex,
        "GET /f.txt?a=%5Bb%5D\"c HTTP/1.1\r\nHost: h\r\nX-Tag: tag-1\r\n\r\n",
    );
    let (cp_sd, _) = fetch(p_sd, "GET /f.txt?x=]\"\\ HTTP/1.1\r\nHost: h\r\n\r\n");
    // A connection whose PROXY header is garbage: an error line in error-log-format.
    let mut bad = TcpStream::connect(("127.0.0.1", p_err)).unwrap();
    let cp_err = bad.local_addr().unwrap().port();
    bad.write_all(b"NOT A PROXY HEADER\r\n\r\n").unwrap();
    drop(bad);
    let hap = collect_udp(&udp, "fe_", 3);
    drop(haproxy);
    eprintln!("{hap}");
    let hap_path = d.join("haproxy.log");
    std::fs::write(&hap_path, &hap).unwrap();

    let args: Vec<&OsStr> = vec![
        "--haproxy-config".as_ref(),
        cfg_path.as_os_str(),
        "--format".as_ref(),
        "syslog".as_ref(),
        hap_path.as_os_str(),
    ];
    let out = quill_parse(&args);
    let s = |j: &serde_json::Value, k: &str| j[k].as_str().map(str::to_owned);
    let by_fe = |fe: &str| {
        out.iter()
            .find(|j| s(j, "_frontend").as_deref() == Some(fe))
            .unwrap_or_else(|| panic!("no {fe} entry\n{hap}\n{out:#?}"))
    };

    // fe_hex: the log-format of `defaults base`, through `web from base`; +X address/port.
    let a = by_fe("fe_hex");
    assert_eq!(
        s(a, "_client_ip").as_deref(),
        Some("127.0.0.1"),
        "{hap}\n{a:#}"
    );
    assert_eq!(a["_client_port"].as_u64(), Some(u64::from(cp_hex)), "{a:#}");
    assert_eq!(a["_status"].as_i64(), Some(200));
    assert!(a["_bytes_read"].as_i64().unwrap() > 80, "{a:#}");
    assert_eq!(s(a, "_var_txn.tag").as_deref(), Some("tag-1"), "{a:#}");
    assert_eq!(
        s(a, "_http_query").as_deref(),
        Some("?a=%5Bb%5D\"c"),
        "{a:#}"
    );

    // fe_sd: the SD parameters are named for what they hold; %ID is the txn id.
    let b = by_fe("fe_sd");
    let uid = s(b, "_sd_unique_id").unwrap_or_else(|| panic!("{hap}\n{b:#}"));
    assert!(uid.starts_with("7F000001"), "{b:#}");
    assert_eq!(s(b, "_txn_id").as_deref(), Some(uid.as_str()), "{b:#}");
    assert_eq!(
        b["_sd_bytes_read"].as_i64(),
        b["_bytes_read"].as_i64(),
        "{b:#}"
    );
    assert_eq!(b["_sd_status"].as_i64(), Some(200));
    assert_eq!(b["_client_port"].as_u64(), Some(u64::from(cp_sd)));
    assert_eq!(s(b, "_sd_http_query").as_deref(), Some("?x=]\"\\"), "{b:#}");
    assert!(
        b.get("_sd_uid").is_none() && b.get("_sd_bytes").is_none(),
        "{b:#}"
    );

    // fe_err: error-log-format.
    let c = by_fe("fe_err");
    assert_eq!(
        c["_client_port"].as_u64(),
        Some(u64::from(cp_err)),
        "{hap}\n{c:#}"
    );
    assert!(c["_fc_err"].as_i64().is_some_and(|e| e > 0), "{c:#}");
    assert!(c.get("_parse_error").is_none(), "{c:#}");
}
