//! Child processes the tests start and always stop: [`Proc`] (any program, SIGTERM then SIGKILL
//! by pid on drop), [`Daemon`] (the real `quill run` on a config, its stderr kept in a file),
//! and [`quill`]/[`output_ok`]/[`json_lines`] for one-shot `quill` commands.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process stopped (SIGTERM, then SIGKILL) by its pid when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `quill` binary cargo built for these tests.
pub fn quill_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quill"))
}

/// `quill` as a [`Command`] (add the subcommand and its arguments).
pub fn quill() -> Command {
    Command::new(quill_bin())
}

/// Runs `cmd` to its end and asserts it succeeded (its stderr in the failure message).
pub fn output_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn the command");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON objects of a JSON-lines output (`quill parse`, a GELF file); empty lines skipped.
pub fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("bad JSON line {:?}: {e}", String::from_utf8_lossy(l)))
        })
        .collect()
}

/// Runs the real `logger(1)` (util-linux) with `args` and asserts it succeeded.
pub fn logger(args: &[&str]) {
    let out = Command::new("logger")
        .args(args)
        .output()
        .expect("run logger (util-linux)");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rsyslogd -n -f conf` (pid file in `dir`), once it accepts TCP connections on `port` (at
/// most 10 s); stopped with SIGTERM when dropped.
pub fn start_rsyslogd(dir: &Path, conf: &Path, port: u16) -> Proc {
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(conf)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd (Debian package rsyslog)");
    let rsyslog = Proc(child);
    assert!(
        crate::support::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "rsyslogd did not listen on {port}"
    );
    rsyslog
}

/// A running `quill run` process, stopped with SIGKILL on drop if still running.
pub struct Daemon {
    pub child: Child,
    pub stderr_path: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path, config: &Path) -> Daemon {
        Daemon::start_with_env(dir, config, &[])
    }

    /// [`Daemon::start`], then waits (at most 10 s) until it accepts TCP connections on
    /// 127.0.0.1:`port`; fails with its stderr when it does not.
    pub fn start_listening(dir: &Path, config: &Path, port: u16) -> Daemon {
        let d = Daemon::start(dir, config);
        d.wait_listening(port, Duration::from_secs(10));
        d
    }

    /// Waits (at most `timeout`) until it accepts TCP connections on 127.0.0.1:`port`; fails
    /// with its stderr when it does not.
    pub fn wait_listening(&self, port: u16, timeout: Duration) {
        assert!(
            crate::support::wait_until(timeout, || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "quill did not listen on {port}\n{}",
            self.stderr()
        );
    }

    /// [`Daemon::start`] with extra environment variables for the daemon.
    pub fn start_with_env(dir: &Path, config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = quill();
        cmd.arg("run")
            .arg("-c")
            .arg(config)
            .current_dir(dir)
            .env("QUILL_LOG", "info")
            .envs(env.iter().copied());
        Daemon::spawn(dir, cmd)
    }

    /// Spawns `cmd` (a `quill run` set up by the caller: arguments, environment, directory,
    /// `pre_exec`) as a [`Daemon`]: stdin and stdout null, stderr kept in a new file in `dir`.
    pub fn spawn(dir: &Path, mut cmd: Command) -> Daemon {
        let stderr_path = dir.join(format!(
            "quill-stderr-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn quill");
        Daemon { child, stderr_path }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child we started.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then wait (bounded) for exit.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "quill did not stop within 20 s\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// [`Daemon::stop`], asserting a clean exit (its stderr in the failure message); returns its
    /// stderr.
    pub fn stop_ok(self) -> String {
        let path = self.stderr_path.clone();
        let status = self.stop();
        let stderr = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            status.success(),
            "quill did not exit cleanly ({status:?})\n{stderr}"
        );
        stderr
    }

    /// [`Daemon::stop`], asserting a clean exit; returns (its final status line, its stderr).
    pub fn stop_for_status(self) -> (String, String) {
        let stderr = self.stop_ok();
        let status = stderr
            .lines()
            .rev()
            .find(|l| l.contains("status: records"))
            .unwrap_or_default()
            .to_string();
        (status, stderr)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Fetches `http://127.0.0.1:PORT/metrics` and returns the value of `name{labels}` (first match).
pub fn scrape_metric(port: u16, name: &str, label: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !label.is_empty() && !rest.contains(label) {
            return None;
        }
        if label.is_empty() && !(rest.starts_with(' ') || rest.starts_with('{')) {
            return None;
        }
        l.rsplit(' ').next()?.parse().ok()
    })
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A counter `name=N` (or `N name`) of source `source` in a status line.
pub fn status_counter(status: &str, source: &str, name: &str) -> u64 {
    let Some(part) = status
        .split(" | ")
        .find(|p| p.starts_with(&format!("source {source}:")))
    else {
        return 0;
    };
    for item in part.split([',', ' ']) {
        if let Some(v) = item.strip_prefix(&format!("{name}=")) {
            return v.parse().unwrap_or(0);
        }
    }
    let needle = format!(" {name}");
    part.find(&needle)
        .and_then(|i| part[..i].rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}
