//! A real `nats-server -js` on loopback (Debian's `nats-server`, installed by scripts/test),
//! killed on drop.
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct NatsServer(pub Child);

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a single JetStream node on 127.0.0.1:`port` storing into `dir`; `None` if it cannot be
/// spawned (callers check the program first with [`super::require`]).
pub fn nats_server(dir: &Path, port: u16) -> Option<NatsServer> {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(NatsServer(child))
}

/// A JetStream context on the server at 127.0.0.1:`port`.
pub async fn jetstream(port: u16) -> async_nats::jetstream::Context {
    let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("connect to nats-server");
    async_nats::jetstream::new(client)
}
