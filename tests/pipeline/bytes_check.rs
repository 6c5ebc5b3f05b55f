//! `quill bytes check` on the corpus haproxy.cfg (copied in tests/fixtures/parse/) and on a
//! configuration written here: what it says is exact, estimated, and what to add.

use std::process::Command;

use crate::support::FIX;

fn check(cfg: &std::path::Path, backend: Option<&str>) -> (i32, String) {
    check_with(cfg, backend, &[])
}

fn check_with(cfg: &std::path::Path, backend: Option<&str>, extra: &[&str]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_quill"));
    c.args(["bytes", "check"]).arg(cfg).args(extra);
    if let Some(b) = backend {
        c.args(["--backend-log-format", b]);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

/// The frontend's block of the report.
fn block<'a>(report: &'a str, fe: &str) -> &'a str {
    let start = report.find(&format!("frontend {fe}\n")).unwrap();
    let rest = &report[start..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

#[test]
fn corpus_config() {
    let exp = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" tid=%{X-Test-Id}i I=%I O=%O b=%b B=%B uid=%{UNIQUE_ID}e xrid=%{X-Request-ID}i"#;
    let cfg = std::path::Path::new(FIX).join("haproxy-2.6.cfg");
    let (code, r) = check(&cfg, Some(exp));
    assert_eq!(code, 1, "{r}");
    assert!(
        block(&r, "fe_plain")
            .contains("exact: completed responses proxied to the backend (%O joined by X-Test-Id)"),
        "{r}"
    );
    assert!(block(&r, "fe_tcp").contains("exact: mode tcp"), "{r}");
    // Keep-alive frontends: the client's `Connection: close` is not loggable on HAProxy 2.6,
    // so HTTP/1.1 entries are estimates and the check names the two ways to exact.
    let plain = block(&r, "fe_plain");
    assert!(
        plain.contains("estimate: HTTP/1.1 clients: one that sends `Connection: close`"),
        "{plain}"
    );
    assert!(plain.contains("add to frontend fe_plain in haproxy.cfg (every response then carries `connection: close`; clients lose keep-alive):\n    option httpclose\n"), "{plain}");
    assert!(
        plain.contains("quill parse --assume-keep-alive-clients"),
        "{plain}"
    );
    let httpclose = block(&r, "fe_httpclose");
    assert!(!httpclose.contains("HTTP/1.1 clients"), "{httpclose}");
    assert!(!httpclose.contains("option httpclose\n"), "{httpclose}");
    let hdrs = block(&r, "fe_hdrs");
    assert!(
        hdrs.contains("set-header Cache-Control changes a server header"),
        "{hdrs}"
    );
    assert!(
        hdrs.contains("capture response header Cache-Control len 256"),
        "{hdrs}"
    );
    assert!(hdrs.contains("(46 bytes on the wire)"), "{hdrs}");
    let comp = block(&r, "fe_comp");
    assert!(comp.contains("compression"), "{comp}");
    assert!(
        comp.contains("capture response header Content-Type len 64"),
        "{comp}"
    );

    // Without the backend's format, every HTTP frontend needs the id and %O lines.
    let (_, r) = check(&cfg, None);
    let plain = block(&r, "fe_plain");
    assert!(plain.contains("unique-id-header X-Request-ID"), "{plain}");
    assert!(plain.contains("%O"), "{plain}");
}

#[test]
fn exact_config_and_empty_config() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.cfg");
    std::fs::write(
        &p,
        "defaults\n mode http\n option httplog\nfrontend web\n bind :80\n unique-id-format %{+X}o\\ %ci:%cp_%Ts\n unique-id-header X-Req\n log-format \"%ci:%cp [%tr] %ft %b/%s %ST %B %tsc %{+Q}r %ID\"\n http-response add-header X-A b\n default_backend app\nbackend app\n server s1 127.0.0.1:8080\n",
    )
    .unwrap();
    let backend = Some(r#"%h %t "%r" %>s %O %{X-Req}i"#);
    // Keep-alive frontend: HTTP/1.1 entries are exact only with one of the two changes.
    let (code, r) = check(&p, backend);
    assert_eq!(code, 1, "{r}");
    assert!(
        r.contains("exact: completed responses proxied to the backend (%O joined by X-Req), HTTP/1.1 ones only under `option httpclose` or --assume-keep-alive-clients (below)"),
        "{r}"
    );
    assert!(r.contains("    option httpclose\n"), "{r}");
    let (code, r) = check_with(&p, backend, &["--assume-keep-alive-clients"]);
    assert_eq!(code, 0, "{r}");
    assert!(
        r.contains("exact: completed responses proxied to the backend (%O joined by X-Req)\n"),
        "{r}"
    );
    assert!(r.contains("exact: HTTP/1.1 clients, on your word"), "{r}");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text.replace(
            " default_backend app\n",
            " option httpclose\n default_backend app\n",
        ),
    )
    .unwrap();
    let (code, r) = check(&p, backend);
    assert_eq!(code, 0, "{r}");
    assert!(
        r.contains("exact: completed responses proxied to the backend (%O joined by X-Req)\n"),
        "{r}"
    );
    assert!(!r.contains("HTTP/1.1 clients"), "{r}");
    // httpclose in only one of the frontend's backends: the other's HTTP/1.1 entries are not.
    std::fs::write(
        &p,
        text.replace(
            " default_backend app\n",
            " use_backend closing if { path_beg /c }\n default_backend app\n",
        ) + "backend closing\n option httpclose\n server s2 127.0.0.1:8081\n",
    )
    .unwrap();
    let (code, r) = check(&p, backend);
    assert_eq!(code, 1, "{r}");
    assert!(r.contains("estimate: HTTP/1.1 clients"), "{r}");
    std::fs::write(&p, "global\n log /dev/log local0\ndefaults\n mode http\n").unwrap();
    let (code, r) = check(&p, None);
    assert_eq!(code, 0);
    assert!(r.contains("no frontend"), "{r}");
}
