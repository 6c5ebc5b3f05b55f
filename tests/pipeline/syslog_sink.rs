//! The `syslog` sink against a real rsyslog, started as the test's own process with its own
//! config and ports: imtcp (octet counting), imudp, and imtcp over TLS (rsyslog's gtls driver,
//! Debian package rsyslog-gnutls, certificates from the real `openssl`). Every line arrives as
//! its MSG, byte for byte: all of them over TCP and TLS; over UDP, received + counted losses
//! (the sink's `dropped`, the kernel's drop counter of rsyslog's socket) = sent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

const N: usize = 2000;

fn have_rsyslog(tls: bool) -> bool {
    let mut needs = vec![Need::Program("rsyslogd")];
    if tls {
        needs.push(Need::File(
            "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so",
        ));
        needs.push(Need::Program("openssl"));
    }
    require(&needs, "apt-get install rsyslog rsyslog-gnutls openssl")
}

/// rsyslogd in the foreground with input module `module` (`imtcp`, `imudp`; `module_opts` on its
/// load line, `input_opts` on its input) on 127.0.0.1:`port`, writing every MSG to
/// `rsyslog.out`; killed on drop.
struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Rsyslog {
    fn start(
        root: &Path,
        global: &str,
        module: &str,
        module_opts: &str,
        port: u16,
        input_opts: &str,
    ) -> Rsyslog {
        let input = format!(
            "module(load=\"{module}\" {module_opts})\n\
             input(type=\"{module}\" address=\"127.0.0.1\" port=\"{port}\" {input_opts} ruleset=\"r\")"
        );
        let work = root.join("rsyslog");
        std::fs::create_dir_all(&work).unwrap();
        let out = root.join("rsyslog.out");
        let conf = root.join("rsyslog.conf");
        write_file(
            &conf,
            &format!(
                "global(workDirectory=\"{}\" parser.escapeControlCharactersOnReceive=\"off\" {global})\n{input}\n\
                 template(name=\"m\" type=\"string\" string=\"%msg%\\n\")\n\
                 ruleset(name=\"r\") {{ action(type=\"omfile\" file=\"{}\" template=\"m\") }}\n",
                work.display(),
                out.display()
            ),
        );
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(root.join("rsyslog.pid"))
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        Rsyslog { child, out }
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `N` lines for a file source and starts Quill with a syslog sink `to` (plus `extra`).
fn start_quill(root: &Path, to: &str, extra: &str) -> (Daemon, Vec<String>) {
    std::fs::create_dir_all(root.join("in")).unwrap();
    let lines: Vec<String> = (0..N)
        .map(|i| format!("line {i} \"q\" ünïcode {}", "x".repeat(i % 200)))
        .collect();
    write_file(&root.join("in/a.log"), &(lines.join("\n") + "\n"));
    let cfg = root.join("quill.toml");
    write_file(
        &cfg,
        &format!(
            "data_dir = \"./data\"\nstatus_interval = \"1h\"\n[sources.tail]\ntype = \"file\"\ninclude = [\"./in/*.log\"]\nformat = \"raw\"\npoll_interval = \"50ms\"\n\
             [sinks.out]\ntype = \"syslog\"\nto = \"{to}\"\n{extra}\n"
        ),
    );
    (Daemon::start(root, &cfg), lines)
}

/// Over a stream (`to`, rsyslog listening on its port): every line arrives, in order, byte-exact.
fn every_line_arrives(root: &Path, rs: &Rsyslog, to: &str, extra: &str) {
    let port: u16 = to
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    wait_port(port);
    let (d, lines) = start_quill(root, to, extra);
    let done = wait_until(Duration::from_secs(30), || rs.lines().len() >= N);
    let (_, stderr) = d.stop_for_status();
    let got = rs.lines();
    assert!(done, "{} of {N} arrived\n{stderr}", got.len());
    assert_eq!(got, lines);
}

#[test]
fn rsyslog_imtcp_receives_every_line_byte_exact() {
    if !have_rsyslog(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let rs = Rsyslog::start(root, "", "imtcp", "", port, "");
    every_line_arrives(root, &rs, &format!("tcp://127.0.0.1:{port}"), "");
}

#[test]
fn rsyslog_tls_receives_every_line_byte_exact() {
    if !have_rsyslog(true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_pki(root);
    let port = free_port();
    let rs = Rsyslog::start(
        root,
        &format!(
            "defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{0}/ca.pem\" defaultNetstreamDriverCertFile=\"{0}/server.pem\" defaultNetstreamDriverKeyFile=\"{0}/server.key\"",
            root.display()
        ),
        "imtcp",
        "streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\"",
        port,
        "",
    );
    every_line_arrives(
        root,
        &rs,
        &format!("tls://127.0.0.1:{port}"),
        "tls_ca = \"./ca.pem\"",
    );
}

/// The kernel's drop counter of the UDP socket bound to 127.0.0.1:`port` (`/proc/net/udp`).
fn udp_drops(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.get(1) == Some(&local.as_str())).then(|| cols.last()?.parse().ok())?
    })
}

#[test]
fn rsyslog_imudp_receives_byte_exact_and_losses_are_counted() {
    if !have_rsyslog(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let rs = Rsyslog::start(root, "", "imudp", "", port, "rcvbufSize=\"8m\"");
    assert!(
        wait_until(Duration::from_secs(10), || udp_drops(port).is_some()),
        "rsyslog did not bind UDP {port}"
    );
    let (d, lines) = start_quill(root, &format!("udp://127.0.0.1:{port}"), "");
    // Until all arrived, or nothing more for 3 s once Quill has sent everything.
    let mut last = (0, std::time::Instant::now());
    wait_until(Duration::from_secs(30), || {
        let n = rs.lines().len();
        if n != last.0 {
            last = (n, std::time::Instant::now());
        }
        n >= N || (n > 0 && last.1.elapsed() > Duration::from_secs(3))
    });
    let kernel = udp_drops(port).unwrap_or(0);
    let (status, _) = d.stop_for_status();
    let got = rs.lines();
    assert_at_most_once_each(&got, &lines, "imudp");
    // The sink's own count of messages passed over (none here: all fit a datagram).
    assert!(!status.contains("dropped (refused"), "{status}");
    eprintln!(
        "imudp: {} of {N} received, {kernel} dropped by the kernel",
        got.len()
    );
    assert_eq!(
        got.len() as u64 + kernel,
        N as u64,
        "received + counted losses != sent"
    );
}
