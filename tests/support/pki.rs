//! Certificates made with the real `openssl` command (Debian package openssl) for TLS tests.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes, with the real `openssl` tool, `ca.pem`, a server certificate for `localhost` and
/// 127.0.0.1 (`server.pem`, `server.key`) and a client certificate (`client.pem`, `client.key`),
/// both signed by the CA.
pub fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=quill-test-ca",
        ],
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "subjectAltName=DNS:edge-tls\nbasicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        ),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

/// Sends `message` (LF framed) with `openssl s_client` to 127.0.0.1:`port`, run in `dir`,
/// trusting only `ca` and presenting `client` (certificate, key) if given; returns whether
/// s_client succeeded (the handshake verified).
pub fn send_tls(
    dir: &Path,
    port: u16,
    ca: &Path,
    client: Option<(&str, &str)>,
    message: &str,
) -> bool {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-CAfile",
    ])
    .arg(ca)
    .args(["-verify_return_error", "-quiet", "-no_ign_eof"]);
    if let Some((cert, key)) = client {
        cmd.args(["-cert", cert, "-key", key]);
    }
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client (Debian package openssl)");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(format!("{message}\n").as_bytes());
    drop(stdin);
    child.wait().map(|s| s.success()).unwrap_or(false)
}
