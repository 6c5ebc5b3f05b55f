//! Syslog ingestion throughput: Quill versus rsyslog 8 on the same machine, in the same run.
//!
//! For TCP (octet-counted) with 1, 4 and 16 senders, and for paced UDP rates, it starts a fresh
//! `quill run` (syslog source → journal, no sinks) and a fresh `rsyslogd` (imtcp/imudp → omfile),
//! sends the same messages to each, and reports messages/s, CPU seconds per million messages and
//! losses. Quill counts as received what its journal has made durable (fsynced); rsyslog what is
//! in its output file (written, not fsynced). Run: `cargo bench --bench syslog_throughput` (env `QUILL_BENCH_MESSAGES`, default
//! 1,000,000 per TCP run).

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// User + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

trait Receiver {
    fn pid(&self) -> u32;
    fn received(&self) -> u64;
    fn port(&self) -> u16;
}

struct Quill {
    child: Child,
    port: u16,
    metrics: u16,
    _dir: tempfile::TempDir,
}

impl Quill {
    fn start() -> Quill {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let metrics = free_port();
        let cfg = dir.path().join("q.toml");
        std::fs::write(
            &cfg,
            format!(
                "data_dir = \"{d}/data\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\nstatus_interval = \"60s\"\n[journal]\nmax_size = \"16GiB\"\n[sources.sys]\ntype = \"syslog\"\ntcp = \"127.0.0.1:{port}\"\nudp = \"127.0.0.1:{port}\"\n",
                d = dir.path().display()
            ),
        )
        .expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_quill"))
            .args(["run", "-c"])
            .arg(&cfg)
            .env("QUILL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start quill");
        wait_tcp(port);
        Quill {
            child,
            port,
            metrics,
            _dir: dir,
        }
    }
}

impl Receiver for Quill {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn received(&self) -> u64 {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.metrics)) else {
            return 0;
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        // Durable records: the journal's fsynced sequence number (one source, no other input).
        body.lines()
            .find(|l| l.starts_with("quill_journal_durable_seq "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }
}

impl Drop for Quill {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Rsyslog {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start() -> Rsyslog {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let out = dir.path().join("out.log");
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{d}\")\nmodule(load=\"imtcp\")\nmodule(load=\"imudp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\")\naction(type=\"omfile\" file=\"{o}\" template=\"RSYSLOG_FileFormat\")\n",
                d = dir.path().display(),
                o = out.display()
            ),
        )
        .expect("write rsyslog.conf");
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd (apt-get install rsyslog)");
        wait_tcp(port);
        Rsyslog {
            child,
            port,
            out,
            _dir: dir,
        }
    }
}

impl Receiver for Rsyslog {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn received(&self) -> u64 {
        count_lines(&self.out)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count_lines(path: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    while let Ok(k) = f.read(&mut buf) {
        if k == 0 {
            break;
        }
        n += memchr::memchr_iter(b'\n', &buf[..k]).count() as u64;
    }
    n
}

fn wait_tcp(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "receiver did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn message(sender: usize, n: usize) -> String {
    format!(
        "<134>1 2026-11-23T10:00:00.000000+00:00 lb1 haproxy 2211 - - 192.0.2.10:5{sender:04} [23/Nov/2026:10:00:00.000] fe_web be_app/app1 0/0/1/12/13 200 913 - - ---- 1/1/0/0/0 0/0 \"GET /api/v1/item/{n} HTTP/1.1\""
    )
}

/// Sends `total` octet-counted messages over `senders` connections; returns (msgs/s, CPU s per M).
fn tcp_run(rx: &dyn Receiver, senders: usize, total: usize) -> (f64, f64) {
    let per = total / senders;
    let cpu0 = cpu_seconds(rx.pid());
    let base = rx.received();
    let start = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|s| {
            let port = rx.port();
            std::thread::spawn(move || {
                let conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                let mut out = std::io::BufWriter::with_capacity(1 << 18, conn);
                for n in 0..per {
                    let m = message(s, n);
                    write!(out, "{} {m}", m.len()).expect("send");
                }
                out.flush().expect("flush");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
    let want = base + (per * senders) as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while rx.received() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = start.elapsed().as_secs_f64();
    let got = rx.received() - base;
    let cpu = cpu_seconds(rx.pid()) - cpu0;
    (got as f64 / secs, cpu / (got as f64 / 1e6))
}

/// Sends `total` datagrams at `rate`/s; returns how many the receiver got.
fn udp_run(rx: &dyn Receiver, rate: u64, total: usize) -> u64 {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let base = rx.received();
    let start = Instant::now();
    for n in 0..total {
        let m = message(0, n);
        while sock
            .send_to(m.as_bytes(), ("127.0.0.1", rx.port()))
            .is_err()
        {
            std::thread::yield_now();
        }
        if n % 64 == 63 {
            let due = Duration::from_secs_f64((n + 1) as f64 / rate as f64);
            if let Some(w) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(w);
            }
        }
    }
    let mut last = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = rx.received() - base;
        if now == last || now >= total as u64 {
            return now;
        }
        last = now;
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total: usize = std::env::var("QUILL_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("syslog ingestion, {total} messages of ~200 bytes per TCP run (octet counting)");
    println!(
        "{:<6} {:>8} {:>13} {:>14} {:>7} {:>14} {:>16}",
        "proto",
        "senders",
        "quill msg/s",
        "rsyslog msg/s",
        "ratio",
        "quill cpu s/M",
        "rsyslog cpu s/M"
    );
    for senders in [1, 4, 16] {
        let (q_rate, q_cpu) = {
            let q = Quill::start();
            tcp_run(&q, senders, total)
        };
        let (r_rate, r_cpu) = {
            let r = Rsyslog::start();
            tcp_run(&r, senders, total)
        };
        println!(
            "{:<6} {:>8} {:>13.0} {:>14.0} {:>6.2}x {:>14.2} {:>16.2}",
            "tcp",
            senders,
            q_rate,
            r_rate,
            q_rate / r_rate,
            q_cpu,
            r_cpu
        );
    }
    let udp_total = total / 5;
    println!("\nUDP, {udp_total} datagrams per rate, one paced sender: received (loss)");
    println!("{:<10} {:>22} {:>22}", "rate/s", "quill", "rsyslog");
    for rate in [25_000u64, 50_000, 100_000, 200_000] {
        let q = {
            let q = Quill::start();
            udp_run(&q, rate, udp_total)
        };
        let r = {
            let r = Rsyslog::start();
            udp_run(&r, rate, udp_total)
        };
        let pct = |got: u64| {
            100.0 * (udp_total as u64 - got.min(udp_total as u64)) as f64 / udp_total as f64
        };
        println!(
            "{:<10} {:>13} ({:>5.2}%) {:>13} ({:>5.2}%)",
            rate,
            q,
            pct(q),
            r,
            pct(r)
        );
    }
}
