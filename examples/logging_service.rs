//! A small service that logs through `quill::logging`: every request gets a transaction id
//! (taken from its `X-Request-ID` header if it is one of ours, else new), a `tracing` span
//! carrying it, and structured entries from a module logger, `tracing` events and the `log`
//! crate, all as GELF lines. Feed them to Quill:
//!
//! ```text
//! cargo run --example logging_service --no-default-features --features logging -- --requests 100 \
//!     | quill parse --format json
//! ```
//!
//! Options: `--requests N` handles N generated requests and exits (default 20); `--serve ADDR`
//! instead answers real HTTP/1.1 requests on ADDR (e.g. `127.0.0.1:8080`; port 0 picks one,
//! logged in the `listening` entry) until killed or, with `--connections N`, after N connections,
//! echoing the transaction id in `X-Request-ID`; `--out FILE` writes the log to FILE (rotated at
//! 64 MiB) instead of stdout; `--debug` includes Debug entries.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use quill::logging::sinks::{FileSink, WriterSink};
use quill::logging::{Config, Level, Logger, REQUEST_ID_HEADER, Route, TxnId, rewrite};
use serde::Serialize;

static LOG: Logger = Logger::local("shop.api.handler");

/// What the handler knows about a request: logged whole, reshaped by a rewriter.
#[derive(Serialize)]
struct RequestContext<'a> {
    txn_id: TxnId,
    account_id: u64,
    session_cookie: &'a str,
}

struct Request {
    method: String,
    path: String,
    request_id: Option<String>,
    account_id: u64,
}

struct Response {
    status: u16,
    bytes: usize,
    txn: TxnId,
}

fn handle(req: &Request) -> Response {
    let started = Instant::now();
    let txn = TxnId::from_header(req.request_id.as_deref());
    let span = txn.span();
    let _entered = span.enter();
    let log = LOG.with("txn_id", &txn);
    let ctx = RequestContext {
        txn_id: txn,
        account_id: req.account_id,
        session_cookie: "s3cr3t",
    };
    quill::debug!(log, "request context", ctx = ctx);
    tracing::info!(method = %req.method, path = %req.path, "request received");

    let (status, body_len) = match req.path.as_str() {
        "/health" => (200, 2),
        p if p.starts_with("/items/") => match p["/items/".len()..].parse::<u32>() {
            Ok(id) if id % 7 == 0 => {
                quill::warning!(log, "item not found", item_id = id, ctx = ctx);
                (404, 0)
            }
            Ok(id) => {
                let rows = (id % 5) + 1;
                log::debug!("cache miss for item {id}");
                quill::info!(
                    log,
                    "item loaded",
                    item_id = id,
                    rows = rows,
                    cache_hit = id % 2 == 0
                );
                (200, 120 + 40 * rows as usize)
            }
            Err(_) => {
                quill::notice!(log, "bad item id", raw = p);
                (400, 0)
            }
        },
        _ => {
            quill::error!(log, "no route", ctx = ctx);
            (500, 0)
        }
    };
    quill::info!(
        log,
        "request served",
        method = req.method,
        path = req.path,
        status = status,
        bytes = body_len,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    Response {
        status,
        bytes: body_len,
        txn,
    }
}

fn generated(n: usize) -> impl Iterator<Item = Request> {
    let paths = [
        "/health",
        "/items/3",
        "/items/14",
        "/items/abc",
        "/admin",
        "/items/22",
    ];
    let first = TxnId::new();
    (0..n).map(move |i| Request {
        method: if i % 4 == 3 { "POST" } else { "GET" }.to_owned(),
        path: paths[i % paths.len()].to_owned(),
        // Every fifth request arrives with the id of the first one (a retried request).
        request_id: (i % 5 == 4).then(|| first.to_string()),
        account_id: 1000 + (i as u64 % 13),
    })
}

fn serve(addr: &str, connections: Option<usize>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    quill::notice!(LOG, "listening", addr = listener.local_addr()?.to_string());
    let incoming = listener.incoming().take(connections.unwrap_or(usize::MAX));
    for stream in incoming {
        let stream = stream?;
        if let Err(e) = serve_one(stream) {
            quill::warning!(LOG, "connection failed", error = e.to_string());
        }
    }
    Ok(())
}

fn serve_one(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_owned();
    let path = parts.next().unwrap_or("/").to_owned();
    let mut request_id = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case(REQUEST_ID_HEADER) {
                request_id = Some(value.trim().to_owned());
            }
        }
    }
    let req = Request {
        method,
        path,
        request_id,
        account_id: 0,
    };
    let resp = handle(&req);
    let body = "x".repeat(resp.bytes);
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {} -\r\n{REQUEST_ID_HEADER}: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        resp.status,
        resp.txn,
        body.len()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut requests = 20usize;
    let mut serve_addr = None;
    let mut connections = None;
    let mut out = None;
    let mut level = Level::Info;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => requests = args.next().ok_or("--requests N")?.parse()?,
            "--serve" => serve_addr = Some(args.next().ok_or("--serve ADDR")?),
            "--connections" => connections = Some(args.next().ok_or("--connections N")?.parse()?),
            "--out" => out = Some(args.next().ok_or("--out FILE")?),
            "--debug" => level = Level::Debug,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let config = match &out {
        Some(path) => Config::new().sink("out", FileSink::new(path)?.rotate_at(64 << 20)),
        None => Config::new().sink("out", WriterSink::stdout()),
    };
    // One line installs the dispatcher, the `log` backend and the `tracing` subscriber.
    let _guard = quill::logging::init(
        config
            .route(Route::new("").at_least(level).to("out"))
            .rewrite(rewrite::extract("ctx", &["account_id"]))
            .capture_log()
            .capture_tracing(),
    )?;
    match serve_addr {
        Some(addr) => serve(&addr, connections)?,
        None => {
            let mut statuses = [0u32; 6];
            for req in generated(requests) {
                let resp = handle(&req);
                statuses[usize::from(resp.status / 100)] += 1;
            }
            quill::info!(
                LOG,
                "done",
                requests = requests,
                ok = statuses[2],
                client_errors = statuses[4],
                server_errors = statuses[5],
            );
        }
    }
    Ok(())
}
