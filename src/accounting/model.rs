//! Building the [`HeaderModel`] from a parsed haproxy.cfg: per frontend and backend, the headers
//! HAProxy adds, replaces or removes, with `defaults` inheritance. Pure: reads only the parsed config.

use super::*;
use crate::parse::haproxy::config::{Directive, HaproxyConfig, Section, SectionKind};

impl HeaderModel {
    /// Builds the model from a parsed configuration.
    pub fn from_config(cfg: &HaproxyConfig) -> HeaderModel {
        let mut model = HeaderModel::default();
        for (i, s) in cfg.sections.iter().enumerate() {
            if !matches!(
                s.kind,
                SectionKind::Frontend | SectionKind::Backend | SectionKind::Listen
            ) {
                continue;
            }
            let Some(name) = s.name.clone() else { continue };
            let defaults = find_defaults(cfg, i, s);
            let mut pm = proxy_model(&name, s, defaults);
            if let Some(view) = cfg.proxy(&name) {
                // Request headers captured by any mechanism (`http-request capture req.hdr(X)`
                // too): they are the request's headers as HAProxy forwards them.
                pm.captured_request = crate::parse::haproxy::captures::proxy_captures(cfg, &view)
                    .request
                    .into_iter()
                    .filter_map(|slot| match slot.content {
                        crate::parse::haproxy::captures::SlotContent::Header(h) => Some(h),
                        _ => None,
                    })
                    .collect();
            }
            if pm.is_frontend {
                model.frontend_order.push(name.clone());
            }
            model.proxies.insert(name, pm);
        }
        model
    }

    /// The backend used by a frontend by default (`default_backend`, or itself for `listen`).
    pub fn default_backend<'c>(cfg: &'c HaproxyConfig, frontend: &str) -> Vec<&'c str> {
        let mut out = Vec::new();
        for s in &cfg.sections {
            if s.name.as_deref() != Some(frontend) {
                continue;
            }
            if s.kind == SectionKind::Listen {
                out.push(frontend_name(s));
            }
            for d in &s.directives {
                if (d.starts_with(&["default_backend"]) || d.starts_with(&["use_backend"]))
                    && d.words.len() > 1
                {
                    out.push(d.words[1].as_str());
                }
            }
        }
        out
    }
}

fn frontend_name(s: &Section) -> &str {
    s.name.as_deref().unwrap_or("")
}

fn find_defaults<'c>(cfg: &'c HaproxyConfig, i: usize, s: &Section) -> Option<&'c Section> {
    match &s.from {
        Some(from) => cfg.sections[..i]
            .iter()
            .rev()
            .find(|d| d.kind == SectionKind::Defaults && d.name.as_deref() == Some(from.as_str())),
        None => cfg.sections[..i]
            .iter()
            .rev()
            .find(|d| d.kind == SectionKind::Defaults),
    }
}

/// The value of the last `option X` / `no option X` in the section, then its defaults.
fn option(s: &Section, defaults: Option<&Section>, names: &[&str]) -> bool {
    let own = |sec: &Section| {
        let mut v = None;
        for d in &sec.directives {
            if d.words.first().map(String::as_str) == Some("option")
                && d.words.get(1).is_some_and(|w| names.contains(&w.as_str()))
            {
                v = Some(true);
            } else if d.starts_with(&["no", "option"])
                && d.words.get(2).is_some_and(|w| names.contains(&w.as_str()))
            {
                v = Some(false);
            }
        }
        v
    };
    own(s).or_else(|| defaults.and_then(own)).unwrap_or(false)
}

fn last<'s>(s: &'s Section, defaults: Option<&'s Section>, kw: &str) -> Option<&'s Directive> {
    let own = |sec: &'s Section| sec.directives.iter().rev().find(|d| d.starts_with(&[kw]));
    own(s).or_else(|| defaults.and_then(own))
}

fn proxy_model(name: &str, s: &Section, defaults: Option<&Section>) -> ProxyModel {
    let mut pm = ProxyModel {
        name: name.to_owned(),
        is_frontend: matches!(s.kind, SectionKind::Frontend | SectionKind::Listen),
        ..ProxyModel::default()
    };
    pm.mode_tcp = last(s, defaults, "mode")
        .and_then(|d| d.words.get(1))
        .map(String::as_str)
        == Some("tcp");
    pm.httpclose = option(s, defaults, &["httpclose", "forceclose"]);
    if let Some(d) = s
        .directives
        .iter()
        .rev()
        .chain(defaults.into_iter().flat_map(|d| d.directives.iter().rev()))
        .find(|d| d.starts_with(&["compression", "algo"]))
    {
        pm.compression_algos = d.words[2..]
            .iter()
            .filter(|a| *a != "identity")
            .cloned()
            .collect();
        pm.compression = !pm.compression_algos.is_empty();
    }
    if let Some(d) = s
        .directives
        .iter()
        .rev()
        .chain(defaults.into_iter().flat_map(|d| d.directives.iter().rev()))
        .find(|d| d.starts_with(&["compression", "type"]))
    {
        pm.compression_types = d.words[2..].to_vec();
    }
    if let Some(d) = last(s, defaults, "cookie") {
        let opts = &d.words[1.min(d.words.len())..];
        let cname = opts.first().cloned().unwrap_or_default();
        let has = |w: &str| opts.iter().any(|o| o == w);
        if has("insert") {
            let mut ck = CookieInsert {
                name: cname,
                nocache: has("nocache"),
                indirect: has("indirect"),
                httponly: has("httponly"),
                secure: has("secure"),
                postonly: has("postonly"),
                line: d.line,
                ..CookieInsert::default()
            };
            let mut it = opts.iter().skip(1);
            while let Some(w) = it.next() {
                match w.as_str() {
                    "domain" => ck.domains.extend(it.next().cloned()),
                    "maxidle" => {
                        ck.maxidle = it.next().is_some_and(|v| v != "0");
                    }
                    "maxlife" => {
                        ck.maxlife = it.next().is_some_and(|v| v != "0");
                    }
                    "attr" => ck.attrs.extend(it.next().cloned()),
                    _ => {}
                }
            }
            pm.cookie_insert = Some(ck);
        } else if has("rewrite") || has("prefix") {
            pm.cookie_other = true;
        }
    }
    for d in &s.directives {
        if d.starts_with(&["server"]) && d.words.len() > 1 {
            if let Some(p) = d.words.iter().position(|w| w == "cookie") {
                if let Some(v) = d.words.get(p + 1) {
                    pm.server_cookies.insert(d.words[1].clone(), v.clone());
                }
            }
        }
    }
    // http-response rules: the section's own (rules in an anonymous defaults section are not
    // inherited by HAProxy; a named `from` defaults section's are).
    let rule_sections: Vec<&Section> = match (defaults, &s.from) {
        (Some(d), Some(_)) => vec![d, s],
        _ => vec![s],
    };
    for sec in rule_sections {
        for d in &sec.directives {
            if let Some(r) = header_rule(d) {
                pm.rules.push(r);
            }
        }
    }
    pm.unique_id_header =
        last(s, defaults, "unique-id-header").and_then(|d| d.words.get(1).cloned());
    pm.unique_id_format = last(s, defaults, "unique-id-format").map(|d| d.words[1..].join(" "));
    for d in &s.directives {
        if d.starts_with(&["capture", "response", "header"]) {
            if let Some(n) = d.words.get(3) {
                let len = d
                    .words
                    .iter()
                    .position(|w| w == "len")
                    .and_then(|p| d.words.get(p + 1))
                    .and_then(|v| v.parse().ok());
                pm.captured_response.push(Capture {
                    name: n.clone(),
                    len,
                });
            }
        }
    }
    pm.errorfile_override = s
        .directives
        .iter()
        .chain(defaults.into_iter().flat_map(|d| d.directives.iter()))
        .any(|d| {
            matches!(
                d.words.first().map(String::as_str),
                Some(
                    "errorfile"
                        | "errorfiles"
                        | "http-error"
                        | "errorloc"
                        | "errorloc302"
                        | "errorloc303"
                )
            )
        });
    pm.log_format = last(s, defaults, "log-format").map(|d| d.words[1..].join(" "));
    pm
}

fn header_rule(d: &Directive) -> Option<HeaderRule> {
    if d.words.first().map(String::as_str) != Some("http-response") {
        return None;
    }
    let action = match d.words.get(1)?.as_str() {
        "add-header" => HeaderAction::Add,
        "set-header" => HeaderAction::Set,
        "del-header" => HeaderAction::Del,
        "replace-header" | "replace-value" => HeaderAction::Replace,
        _ => return None,
    };
    let name = d.words.get(2)?.clone();
    let cond_at = d
        .words
        .iter()
        .position(|w| w == "if" || w == "unless")
        .unwrap_or(d.words.len());
    let value = match action {
        HeaderAction::Add | HeaderAction::Set => {
            let v = d
                .words
                .get(3..cond_at)
                .map(|w| w.join(" "))
                .unwrap_or_default();
            Some(if v.contains('%') {
                HeaderValue::Dynamic(v)
            } else {
                HeaderValue::Literal(v)
            })
        }
        _ => None,
    };
    Some(HeaderRule {
        action,
        name,
        value,
        conditional: cond_at < d.words.len(),
        line: d.line,
    })
}
