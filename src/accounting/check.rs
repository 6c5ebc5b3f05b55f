//! `quill bytes check`'s findings: frontend by frontend, which byte counts a haproxy.cfg (and the
//! backend's LogFormat) lets Quill bill exactly, which it estimates and why, and the lines to add
//! to make them exact. Pure: the caller reads the files and prints the report.

use super::{HeaderAction, HeaderModel, HeaderValue, ProxyModel};
use crate::parse::haproxy::config::HaproxyConfig;

const ID_HEADER: &str = "X-Request-ID";

/// What `quill bytes check` says about a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Frontend by frontend: which counts are exact, which estimated and why, and the lines to
    /// add to haproxy.cfg and the backend's LogFormat (one finding a line).
    pub text: String,
    /// Every HTTP frontend can be exact for completed, uncompressed responses.
    pub all_exact: bool,
}

/// Checks `cfg` (with the backend's LogFormat, if known) under the operator setting of
/// `--assume-keep-alive-clients` ([`HeaderModel::assume_clients_keep_alive`]).
pub fn check(
    cfg: &HaproxyConfig,
    backend_log_format: Option<&str>,
    assume_keep_alive_clients: bool,
) -> CheckReport {
    use std::fmt::Write as _;
    let mut model = HeaderModel::from_config(cfg);
    model.assume_clients_keep_alive = assume_keep_alive_clients;
    let mut out = String::new();
    let mut all_exact = true;
    if model.frontend_order.is_empty() {
        out.push_str("no frontend or listen section: nothing is logged per request\n");
    }
    for fe_name in &model.frontend_order {
        let Some(fe) = model.proxies.get(fe_name) else {
            continue;
        };
        let _ = writeln!(out, "frontend {fe_name}");
        if fe.mode_tcp {
            let _ = writeln!(
                out,
                "  exact: mode tcp, %B is the relayed byte count\n  unknown: aborts (C/c/S/s with D/L): %B is what was read from the server\n"
            );
            continue;
        }
        let mut exact_blockers: Vec<String> = Vec::new();
        let mut estimates: Vec<String> = Vec::new();
        let mut partial: Vec<String> = Vec::new();
        let mut add_cfg: Vec<String> = Vec::new();
        let mut add_apache: Vec<String> = Vec::new();
        let lf = cfg
            .proxy(fe_name)
            .and_then(|p| p.log_format())
            .unwrap_or_default();
        let has_tsc = lf.contains("%tsc");
        let backends: Vec<String> = HeaderModel::default_backend(cfg, fe_name)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let id_header = fe.unique_id_header.clone().or_else(|| {
            backends.iter().find_map(|b| {
                model
                    .proxies
                    .get(b)
                    .and_then(|p| p.unique_id_header.clone())
            })
        });
        // 1. the join id: a request header both HAProxy and the backend log.
        let lf_sd = cfg
            .proxy(fe_name)
            .map(|p| {
                p.directives()
                    .filter(|d| d.starts_with(&["log-format-sd"]))
                    .map(|d| d.words[1..].join(" "))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let logs_id = lf.contains("%ID") || lf_sd.contains("%ID") || lf.contains("unique-id");
        let mut hap_ids: Vec<String> = Vec::new();
        if logs_id {
            hap_ids.extend(id_header.clone());
        }
        hap_ids.extend(fe.captured_request.iter().cloned());
        if let Some(p) = cfg.proxy(fe_name) {
            for d in p.directives() {
                for w in &d.words {
                    let mut rest = w.as_str();
                    while let Some(i) = rest.find("req.hdr(") {
                        rest = &rest[i + 8..];
                        if let Some(j) = rest.find([')', ',']) {
                            hap_ids.push(rest[..j].to_owned());
                        }
                    }
                }
            }
        }
        let backend_logs = |name: &str| {
            backend_log_format.is_some_and(|f| {
                f.to_ascii_lowercase()
                    .contains(&format!("%{{{}}}i", name.to_ascii_lowercase()))
            })
        };
        let joined_by = hap_ids.iter().find(|n| backend_logs(n)).cloned();
        let has_o = backend_log_format.is_some_and(|f| f.contains("%O"));
        let idh = joined_by
            .clone()
            .or_else(|| id_header.clone())
            .unwrap_or_else(|| ID_HEADER.to_owned());
        if joined_by.is_none() || !has_o {
            if fe.unique_id_format.is_none() {
                exact_blockers
                    .push("no unique-id-format: no id to join HAProxy and backend lines".into());
                add_cfg.push("unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid".to_owned());
            }
            if id_header.is_none() {
                exact_blockers.push("no unique-id-header: the backend never sees the id".into());
                add_cfg.push(format!("unique-id-header {ID_HEADER}"));
            }
            if !logs_id {
                exact_blockers.push("the log-format does not log %ID".into());
                add_cfg.push("log-format \"%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r %ID\"".to_owned());
            }
            exact_blockers.push(match backend_log_format {
                None => "backend LogFormat not given (--backend-log-format): assuming it lacks %O and the id".into(),
                Some(_) => format!("the backend LogFormat lacks %O or %{{{idh}}}i"),
            });
            add_apache.push(format!(
                "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %O \\\"%{{Referer}}i\\\" \\\"%{{User-Agent}}i\\\" %{{{idh}}}i\" haproxied"
            ));
        }
        // 2. header changes
        let mut describe = |p: &ProxyModel, out: &mut String| {
            if let Some(ck) = &p.cookie_insert {
                let _ = writeln!(
                    out,
                    "  {} line {}: cookie {} insert{}{}: Set-Cookie{} added when %tsc says I/U",
                    p.name,
                    ck.line,
                    ck.name,
                    if ck.nocache { " nocache" } else { "" },
                    if ck.httponly { " httponly" } else { "" },
                    if ck.nocache {
                        " + Cache-control: private"
                    } else {
                        ""
                    }
                );
                if !has_tsc {
                    exact_blockers.push(format!(
                        "{}: cookie insert but the log-format has no %tsc",
                        p.name
                    ));
                }
            }
            if p.cookie_insert.as_ref().is_some_and(|c| c.nocache) {
                partial.push(format!(
                    "{}: cookie nocache: on non-200 cacheable statuses, whether Cache-control: private is added depends on the server's headers",
                    p.name
                ));
            }
            if p.cookie_other {
                estimates.push(format!(
                    "{}: cookie rewrite/prefix changes server cookies by unknown sizes",
                    p.name
                ));
            }
            for r in &p.rules {
                let v = match &r.value {
                    Some(HeaderValue::Literal(v)) => format!(
                        "{v:?} ({} bytes on the wire)",
                        super::header_line_len(&r.name, v.len())
                    ),
                    Some(HeaderValue::Dynamic(v)) => format!("{v} (dynamic)"),
                    None => String::new(),
                };
                let _ = writeln!(
                    out,
                    "  {} line {}: http-response {} {} {}",
                    p.name,
                    r.line,
                    action_name(r.action),
                    r.name,
                    v
                );
                if r.conditional {
                    estimates.push(format!(
                        "{} line {}: conditional rule: applied or not is not logged",
                        p.name, r.line
                    ));
                }
                if let Some(HeaderValue::Dynamic(v)) = &r.value {
                    if v != "%[unique-id]" && v != "%ID" {
                        estimates.push(format!(
                            "{} line {}: dynamic value {v}: its length is not logged",
                            p.name, r.line
                        ));
                    }
                }
                if matches!(r.action, HeaderAction::Set | HeaderAction::Del)
                    && !fe
                        .captured_response
                        .iter()
                        .any(|c| c.name.eq_ignore_ascii_case(&r.name))
                {
                    estimates.push(format!(
                        "{} line {}: {} {} changes a server header the logs do not show",
                        p.name,
                        r.line,
                        action_name(r.action),
                        r.name
                    ));
                    add_cfg.push(format!("capture response header {} len 256", r.name));
                }
                if r.action == HeaderAction::Replace {
                    estimates.push(format!(
                        "{} line {}: replace-header: the size change is not logged",
                        p.name, r.line
                    ));
                }
            }
            if p.httpclose {
                let _ = writeln!(
                    out,
                    "  {}: option httpclose: `connection: close` added",
                    p.name
                );
            }
            if p.compression {
                estimates.push(format!("{}: compression: %B is the uncompressed size; compressed responses stay unknown on 2.6 (HAProxy >= 3.4: log %[res.bytes_out])", p.name));
                // With these, Quill can tell the responses HAProxy did not compress.
                if !fe
                    .captured_request
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case("Accept-Encoding"))
                {
                    add_cfg.push("capture request header Accept-Encoding len 64".into());
                }
                if !fe
                    .captured_response
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case("Content-Type"))
                {
                    add_cfg.push("capture response header Content-Type len 64".into());
                }
                if !fe
                    .captured_response
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case("Content-Encoding"))
                {
                    add_cfg.push("capture response header Content-Encoding len 16".into());
                }
            }
        };
        describe(fe, &mut out);
        for b in &backends {
            if b == fe_name {
                continue;
            }
            let _ = writeln!(out, "  backend {b}");
            if let Some(p) = model.proxies.get(b) {
                describe(p, &mut out);
            }
        }
        // HAProxy 2.6 strips a client's `Connection: close` before captures, rules and
        // log-formats (measured), so on a keep-alive frontend only the operator knows whether
        // HTTP/1.1 clients ask to close; `option httpclose` makes the answer known.
        // Under httpclose in the frontend, or in every backend it can use.
        let httpclose = fe.httpclose
            || (!backends.is_empty()
                && backends
                    .iter()
                    .all(|b| model.proxies.get(b).is_some_and(|p| p.httpclose)));
        let client_close_unknown = !httpclose && !model.assume_clients_keep_alive;
        add_cfg.sort();
        add_cfg.dedup();
        if exact_blockers.is_empty() && estimates.is_empty() {
            let _ = writeln!(
                out,
                "  exact: completed responses proxied to the backend (%O joined by {idh}){}",
                if client_close_unknown {
                    ", HTTP/1.1 ones only under `option httpclose` or --assume-keep-alive-clients (below)"
                } else {
                    ""
                }
            );
        } else {
            all_exact = false;
            let _ = writeln!(
                out,
                "  estimate: %B + 4N - 15 + HAProxy's header changes, N learned per backend and status"
            );
            for r in exact_blockers.iter().chain(&estimates) {
                let _ = writeln!(out, "    because {r}");
            }
        }
        for p in &partial {
            let _ = writeln!(out, "  estimate: {p}");
        }
        if client_close_unknown {
            all_exact = false;
            let _ = writeln!(
                out,
                "  estimate: HTTP/1.1 clients: one that sends `Connection: close` gets `connection: close` (19 bytes), and HAProxy 2.6 strips that request header before any capture, rule or log-format can show it; the value assumes keep-alive (at most 19 bytes low)"
            );
        } else if !httpclose {
            let _ = writeln!(
                out,
                "  exact: HTTP/1.1 clients, on your word (--assume-keep-alive-clients); one that sends `Connection: close` gets 19 bytes more than reported"
            );
        }
        if !httpclose {
            let _ = writeln!(
                out,
                "  estimate: HTTP/1.0 clients (the connection header HAProxy answers with is not logged)"
            );
        }

        let _ = writeln!(
            out,
            "  estimate: responses HAProxy generates (deny, redirect, 503, 504)"
        );
        let _ = writeln!(
            out,
            "  estimate: <BADREQ>/408 lines (HAProxy logs 0; Quill uses the size of HAProxy's built-in message)"
        );
        let _ = writeln!(out, "  unknown: aborts (C/c/S/s with D/L)");
        if !add_cfg.is_empty() {
            let _ = writeln!(out, "  add to frontend {fe_name} in haproxy.cfg:");
            for l in &add_cfg {
                let _ = writeln!(out, "    {l}");
            }
        }
        if !add_apache.is_empty() {
            let _ = writeln!(
                out,
                "  add to Apache (and use it in the backend's CustomLog):"
            );
            for l in &add_apache {
                let _ = writeln!(out, "    {l}");
            }
        }
        if client_close_unknown {
            // No capture, variable or backend log field can carry the client's wish (measured
            // on HAProxy 2.6.12 / Apache 2.4.71): the only changes that make it known.
            let _ = writeln!(
                out,
                "  to make HTTP/1.1 (and HTTP/1.0) entries exact, add to frontend {fe_name} in haproxy.cfg (every response then carries `connection: close`; clients lose keep-alive):\n    option httpclose"
            );
            let _ = writeln!(
                out,
                "  or, if no client of {fe_name} sends `Connection: close`, correct with: quill parse --assume-keep-alive-clients"
            );
        }
        out.push('\n');
    }
    CheckReport {
        text: out,
        all_exact,
    }
}

fn action_name(a: HeaderAction) -> &'static str {
    match a {
        HeaderAction::Add => "add-header",
        HeaderAction::Set => "set-header",
        HeaderAction::Del => "del-header",
        HeaderAction::Replace => "replace-header",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXACT: &str = "defaults\n mode http\nfrontend web\n bind :80\n unique-id-format %{+X}o\\ %ci:%cp_%Ts\n unique-id-header X-Req\n log-format \"%ci:%cp [%tr] %ft %b/%s %ST %B %tsc %{+Q}r %ID\"\n option httpclose\n default_backend app\nbackend app\n server s1 127.0.0.1:8080\n";
    const BACKEND: &str = r#"%h %t "%r" %>s %O %{X-Req}i"#;

    fn report(cfg: &str, backend: Option<&str>) -> CheckReport {
        check(&HaproxyConfig::parse(cfg).unwrap(), backend, false)
    }

    #[test]
    fn an_id_joined_httpclose_frontend_is_exact() {
        let r = report(EXACT, Some(BACKEND));
        assert!(r.all_exact, "{}", r.text);
        assert!(r.text.contains("frontend web\n"), "{}", r.text);
        assert!(r.text.contains("(%O joined by X-Req)\n"), "{}", r.text);
    }

    #[test]
    fn what_is_missing_is_named_with_the_line_to_add() {
        let r = report(EXACT, None);
        assert!(!r.all_exact);
        assert!(r.text.contains("backend LogFormat not given"), "{}", r.text);
        assert!(r.text.contains("%{X-Req}i\" haproxied"), "{}", r.text);
        let bare = EXACT
            .replace(" unique-id-format %{+X}o\\ %ci:%cp_%Ts\n", "")
            .replace(" unique-id-header X-Req\n", "");
        let r = report(&bare, Some(BACKEND));
        assert!(!r.all_exact);
        assert!(r.text.contains("because no unique-id-format"), "{}", r.text);
        assert!(
            r.text.contains("unique-id-header X-Request-ID"),
            "{}",
            r.text
        );
    }

    #[test]
    fn a_config_without_frontends_says_so() {
        let r = report("backend app\n server s1 127.0.0.1:8080\n", None);
        assert!(
            r.text.starts_with("no frontend or listen section"),
            "{}",
            r.text
        );
    }
}
