//! The byte join pairs by transaction id even when the two logs' clocks or zones disagree:
//! the shared corpus's Apache log rewritten to claim a zone 7 hours off (same wall times,
//! `-0700` instead of `+0000`) must give every joined HAProxy entry the same `_bytes_sent` and
//! `exact` label as the original, although no line pair is within the 10 s log-time window.
//! (Estimates of unjoined entries may differ: they use counts learned from earlier pairs, and
//! the merge order changes which pairs came earlier.)

use std::collections::BTreeMap;
use std::process::Command;

use crate::support::{FIX, json_lines, output_ok, quill_bin};

fn join(apache_log: &std::path::Path) -> BTreeMap<String, (i64, String)> {
    let out = output_ok(
        Command::new(quill_bin())
            .args(["parse", "--haproxy-config"])
            .arg(format!("{FIX}/haproxy-2.6.cfg"))
            .arg("--apache-config")
            .arg(format!("{FIX}/apache-httpd.conf"))
            .args(["--txn-id", "X-Test-Id", "--txn-id", "tid", "--host", "t"])
            .arg(format!("{FIX}/haproxy-rfc5424.log"))
            .arg(apache_log),
    );
    json_lines(&out.stdout)
        .into_iter()
        .filter_map(|j| {
            let basis = j.get("_bytes_sent_basis")?.as_str()?.to_owned();
            let tid = j.get("_sd_var_txn.tid")?.as_str()?.to_owned();
            Some((tid, (j["_bytes_sent"].as_i64().unwrap_or(-1), basis)))
        })
        .collect()
}

#[test]
fn pairs_by_txn_id_when_the_zones_disagree() {
    let original = std::path::PathBuf::from(format!("{FIX}/apache-exp.log"));
    let text = std::fs::read_to_string(&original).unwrap();
    assert!(text.contains(" +0000] "));
    let dir = tempfile::tempdir().unwrap();
    let shifted = dir.path().join("apache-exp.log");
    std::fs::write(&shifted, text.replace(" +0000] ", " -0700] ")).unwrap();

    let a = join(&original);
    let b = join(&shifted);
    let exact = a.values().filter(|(_, basis)| basis == "exact").count();
    assert!(exact > 0, "the corpus has joined exact entries");
    assert_eq!(a.len(), b.len());
    let differ: Vec<_> = a
        .iter()
        .filter(|(tid, v)| {
            let w = b.get(*tid);
            (v.1 == "exact" || w.is_some_and(|w| w.1 == "exact")) && w != Some(v)
        })
        .map(|(tid, v)| (tid.clone(), v.clone(), b.get(tid).cloned()))
        .collect();
    assert!(
        differ.is_empty(),
        "{} entries differ: {:?}",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
}
