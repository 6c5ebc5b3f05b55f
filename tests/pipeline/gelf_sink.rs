//! The `gelf` sink against Quill's own `gelf` source (the real binary): what the sink sends over
//! TCP and HTTP arrives byte for byte as the file sink writes the same records.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

fn lines_under(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = walk(dir);
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if !p.to_string_lossy().ends_with("_current") {
            out.push(p);
        }
    }
    out
}

#[test]
fn tcp_and_http_round_trips_are_byte_exact() {
    for scheme in ["tcp", "http"] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("in")).unwrap();
        let port = free_port();
        let listen = if scheme == "tcp" { "tcp" } else { "http" };
        let to = if scheme == "tcp" {
            format!("tcp://127.0.0.1:{port}")
        } else {
            format!("http://127.0.0.1:{port}/gelf")
        };
        let cfg = root.join("quill.toml");
        write_file(
            &cfg,
            &format!(
                "data_dir = \"./data\"\n\n[sources.tail]\ntype = \"file\"\ninclude = [\"./in/*.log\"]\nformat = \"raw\"\npoll_interval = \"50ms\"\n\n\
                 [sources.gin]\ntype = \"gelf\"\n{listen} = \"127.0.0.1:{port}\"\n\n\
                 [sinks.out]\ntype = \"gelf\"\nto = \"{to}\"\ninputs = [\"tail\"]\n\n\
                 [sinks.expect]\ntype = \"file\"\npath = \"./expect\"\ninputs = [\"tail\"]\n\n\
                 [sinks.got]\ntype = \"file\"\nformat = \"raw\"\nadd_newlines = true\npath = \"./got\"\ninputs = [\"gin\"]\n"
            ),
        );
        const N: usize = 2000;
        let mut text = String::new();
        for i in 0..N {
            text.push_str(&format!(
                "line {i} \"quoted\" tab\there ünïcode {}\n",
                "x".repeat(i % 300)
            ));
        }
        write_file(&root.join("in/a.log"), &text);
        let d = Daemon::start(root, &cfg);
        let done = wait_until(Duration::from_secs(30), || {
            lines_under(&root.join("got/gin")).len() >= N
        });
        let arrived = lines_under(&root.join("got/gin")).len();
        assert!(done, "{scheme}: {arrived} of {N} arrived\n{}", d.stderr());
        d.stop();
        let got = lines_under(&root.join("got/gin"));
        let expect = lines_under(&root.join("expect"));
        assert_eq!(expect.len(), N);
        assert_eq!(got.len(), N, "{scheme}: duplicates or losses");
        assert!(
            got == expect,
            "{scheme}: what arrived differs from the file sink's GELF"
        );
    }
}
