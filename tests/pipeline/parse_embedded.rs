//! Access-log lines inside syslog messages: what the syslog header states explicitly is kept.
//! The header's severity is never replaced by the status default (a 5xx only makes it more
//! severe); the header's host is the GELF host; the access line's own time wins over the
//! header's (it is when the request happened; the header says when the message was sent).

use assert_cmd::Command;

use crate::support::json_lines;

fn gelf(lines: &str) -> Vec<serde_json::Value> {
    let out = Command::cargo_bin("quill")
        .unwrap()
        .args(["parse", "--tz", "UTC", "--host", "fallback"])
        .write_stdin(lines.to_owned())
        .output()
        .unwrap();
    json_lines(&out.stdout)
}

#[test]
fn syslog_header_severity_host_and_time() {
    let hap = |pri: u8, status: u16| {
        format!(
            "<{pri}>1 2026-11-23T01:09:00.000000+00:00 lb7 haproxy 8425 - - 127.0.0.1:58374 [23/Nov/2026:01:08:50.485] fe be/s1 0/0/0/0/0 {status} 297 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\"\n"
        )
    };
    let input = [hap(131, 200), hap(134, 503), hap(134, 200), hap(128, 503)].concat();
    let out = gelf(&input);
    assert_eq!(out.len(), 4);
    let levels: Vec<i64> = out.iter().map(|j| j["level"].as_i64().unwrap()).collect();
    // local0.err stays err with a 200; info with a 503 becomes err; info with a 200 is info;
    // emerg stays emerg.
    assert_eq!(levels, [3, 3, 6, 0]);
    for j in &out {
        assert_eq!(j["host"], "lb7");
        // %tr (01:08:50.485), not the header's 01:09:00.
        assert_eq!(j["timestamp"].as_f64().unwrap(), 1_795_396_130.485);
        assert!(j["_status"].as_i64().is_some());
    }
}
