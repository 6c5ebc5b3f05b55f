//! Helpers for tests that run Debian's HAProxy and Apache on loopback: own child processes
//! stopped by pid, free ports, a minimal Apache config, a raw HTTP/1 client, and the UDP
//! syslog collector HAProxy logs to.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Need, Proc, json_lines, output_ok, quill, require, wait_port};

pub const APACHE_BIN: &str = "/usr/sbin/apache2";

/// Whether haproxy and apache2 are installed (see [`require`]).
pub fn servers_installed() -> bool {
    require(
        &[Need::Program("haproxy"), Need::File(APACHE_BIN)],
        "apt-get install haproxy apache2",
    )
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// Writes `root/httpd.conf` for an Apache on `port` serving `root/www`, logging `log_format`
/// to `root/apache-access.log` (plus `extra` directives), and starts it in the foreground.
pub fn start_apache(root: &Path, port: u16, log_format: &str, extra: &str) -> Proc {
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    let runas = if is_root() {
        "User www-data\nGroup www-data\n"
    } else {
        ""
    };
    let m = "/usr/lib/apache2/modules";
    let conf = format!(
        r#"ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/httpd.pid"
Listen 127.0.0.1:{port}
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule mime_module {m}/mod_mime.so
LoadModule headers_module {m}/mod_headers.so
<IfModule !log_config_module>
LoadModule log_config_module {m}/mod_log_config.so
</IfModule>
<IfModule !logio_module>
LoadModule logio_module {m}/mod_logio.so
</IfModule>
{runas}ServerName live.test
DocumentRoot "{root}/www"
TypesConfig /etc/mime.types
KeepAlive On
ErrorLog "{root}/apache-error.log"
LogFormat "{fmt}" live
CustomLog "{root}/apache-access.log" live
{extra}
<Directory "{root}/www">
    Require all granted
</Directory>
"#,
        root = root.display(),
        fmt = log_format.replace('"', "\\\""),
    );
    std::fs::write(root.join("httpd.conf"), conf).unwrap();
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(root)
        .status();
    let p = Proc(
        Command::new(APACHE_BIN)
            .arg("-f")
            .arg(root.join("httpd.conf"))
            .arg("-DFOREGROUND")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port);
    p
}

/// Starts HAProxy in the foreground on config `cfg`.
pub fn start_haproxy(cfg: &Path, ports: &[u16]) -> Proc {
    let p = Proc(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for port in ports {
        wait_port(*port);
    }
    p
}

/// Sends one request and reads the response; returns (client port, bytes received).
pub fn fetch(port: u16, request: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cport = s.local_addr().unwrap().port();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 65536];
    let mut data = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                data.extend_from_slice(&buf[..k]);
                if response_complete(&data, request.starts_with("HEAD")) {
                    break;
                }
            }
        }
    }
    (cport, data.len())
}

fn response_complete(data: &[u8], head: bool) -> bool {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    if head {
        return true;
    }
    let hdrs = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
    let Some(cl) = hdrs
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    else {
        return false;
    };
    data.len() >= end + 4 + cl
}

/// Collects HAProxy's syslog datagrams until `want` lines containing `marker` arrived and the
/// socket is quiet (at most 10 s).
pub fn collect_udp(udp: &UdpSocket, marker: &str, want: usize) -> String {
    udp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut lines = String::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while Instant::now() < deadline {
        match udp.recv(&mut buf) {
            Ok(n) => {
                let l = String::from_utf8_lossy(&buf[..n]);
                if l.contains(marker) {
                    got += 1;
                }
                lines.push_str(l.trim_end());
                lines.push('\n');
            }
            Err(_) if got >= want => break,
            Err(_) => {}
        }
    }
    lines
}

/// Runs `quill parse ARGS` and returns its GELF objects.
pub fn quill_parse(args: &[&std::ffi::OsStr]) -> Vec<serde_json::Value> {
    let out = output_ok(quill().arg("parse").args(args));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    json_lines(&out.stdout)
}
