//! The `syslog` sink against a real rsyslog (imtcp, octet counting), started as the test's own
//! process with its own config and port: every line arrives as its MSG, byte for byte.

use std::time::Duration;

use crate::support::*;

#[test]
fn rsyslog_imtcp_receives_every_line_byte_exact() {
    if !require(&[Need::Program("rsyslogd")], "apt-get install rsyslog") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rs_port = free_port();
    let work = root.join("rsyslog");
    std::fs::create_dir_all(&work).unwrap();
    let out = root.join("rsyslog.out");
    let conf = root.join("rsyslog.conf");
    write_file(
        &conf,
        &format!(
            "global(workDirectory=\"{}\" parser.escapeControlCharactersOnReceive=\"off\")\nmodule(load=\"imtcp\")\n\
             template(name=\"m\" type=\"string\" string=\"%msg%\\n\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{rs_port}\" ruleset=\"r\")\n\
             ruleset(name=\"r\") {{ action(type=\"omfile\" file=\"{}\" template=\"m\") }}\n",
            work.display(),
            out.display()
        ),
    );
    let rsyslog = start_rsyslogd(root, &conf, rs_port);
    std::fs::create_dir_all(root.join("in")).unwrap();
    const N: usize = 2000;
    let lines: Vec<String> = (0..N)
        .map(|i| format!("line {i} \"q\" ünïcode {}", "x".repeat(i % 200)))
        .collect();
    write_file(&root.join("in/a.log"), &(lines.join("\n") + "\n"));
    let cfg = root.join("quill.toml");
    write_file(
        &cfg,
        &format!(
            "data_dir = \"./data\"\n[sources.tail]\ntype = \"file\"\ninclude = [\"./in/*.log\"]\nformat = \"raw\"\npoll_interval = \"50ms\"\n\
             [sinks.out]\ntype = \"syslog\"\nto = \"tcp://127.0.0.1:{rs_port}\"\n"
        ),
    );
    let d = Daemon::start(root, &cfg);
    let read = || -> Vec<String> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let done = wait_until(Duration::from_secs(30), || read().len() >= N);
    d.stop();
    drop(rsyslog);
    let got = read();
    assert!(done, "{} of {N} arrived", got.len());
    assert_eq!(got, lines);
}
