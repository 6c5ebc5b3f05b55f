//! The trace page in a real headless Chromium (Debian's `chromium` + `chromedriver`, driven over
//! WebDriver by fantoccini) against a running `quill run` aggregator that indexed the real
//! HAProxy/Apache fixture logs: look up a txn id, the timeline's lanes and durations, a query with
//! a time range, an unknown id's empty state, keyboard navigation; every request the page made
//! stayed on loopback. Screenshots go to target/test-artifacts/. Under CI (`CI=true`) a missing
//! chromium fails the test instead of skipping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `None` (skip) when chromium is missing outside CI; a failure under CI.
fn browser_available() -> bool {
    require(
        &[Need::File(CHROMIUM), Need::File(CHROMEDRIVER)],
        "apt-get install chromium chromium-driver",
    )
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver(log: &Path) -> (Driver, u16) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    // chromedriver listens
    wait_port_within(port, Duration::from_secs(20));
    (Driver(child), port)
}

async fn browser(driver_port: u16, profile: &Path, extra: &[&str]) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--window-size=1440,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }
    });
    let mut caps = caps;
    for a in extra {
        caps["goog:chromeOptions"]["args"]
            .as_array_mut()
            .unwrap()
            .push(json!(a));
    }
    let caps = match caps {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a chromium session")
}

async fn shot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap();
    let path = artifacts().join(name);
    std::fs::write(&path, png).unwrap();
    path
}

async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

async fn attrs(c: &Client, css: &str, attr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.attr(attr).await.unwrap().unwrap_or_default());
    }
    out
}

async fn wait_for(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
}

/// Every URL the page loaded (document and resources).
async fn loaded_urls(c: &Client) -> Vec<String> {
    let v = c
        .execute(
            "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));",
            vec![],
        )
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_page_tells_a_requests_story_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agg = start_aggregator(dir.path(), "");
    tokio::task::block_in_place(|| wait_indexed(&agg, &[]));
    let base = format!("http://127.0.0.1:{}", agg.port);
    let (_driver, driver_port) = start_chromedriver(&artifacts().join("chromedriver.log"));
    let c = browser(driver_port, &dir.path().join("profile"), &[]).await;
    let mut pages_seen: Vec<String> = Vec::new();

    // 1. Paste a txn id: the URL becomes /trace/ID; one lane per host and service.
    c.goto(&format!("{base}/")).await.unwrap();
    wait_for(&c, "#txn").await;
    c.find(Locator::Css("#txn"))
        .await
        .unwrap()
        .send_keys("queue-0267\u{E007}")
        .await
        .unwrap();
    wait_for(&c, "#timeline .lane").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/trace/queue-0267");
    let lanes = attrs(&c, "#timeline .lane", "data-lane").await;
    assert_eq!(lanes.len(), 2, "{lanes:?}");
    assert!(
        lanes[0].ends_with(" · lb") && lanes[1].ends_with(" · web"),
        "{lanes:?}"
    );
    // HAProxy's bar is Ta = 1605 ms with its TR/Tw/Tc/Tr/data segments; Apache's is %D = 401.094 ms.
    let kinds = attrs(&c, "#timeline .bar", "data-kind").await;
    assert_eq!(kinds, ["haproxy", "apache"]);
    let durations = attrs(&c, "#timeline .bar", "data-duration-ms").await;
    assert_eq!(durations, ["1605", "401.094"]);
    let segs = attrs(&c, "#timeline .bar[data-kind=haproxy] .seg", "data-seg").await;
    assert_eq!(segs, ["TR", "Tw", "Tc", "Tr", "Td"]);
    let labels = texts(&c, "#timeline .bar-label").await;
    assert_eq!(labels, ["Ta 1.61 s", "D 401.1 ms"]);
    // Apache's whole-second time is placed at HAProxy's connect (16.316 + 0 + 1203 + 1 ms).
    let summary = c
        .find(Locator::Css(".summary"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(summary.contains("2 entries on 2 lanes"), "{summary}");
    assert!(summary.contains("2026-11-23 01:09:16.316"), "{summary}");
    // The entries in order, with fields and bytes sent with their basis.
    let heads = texts(&c, "#entries .entry-head .time").await;
    assert_eq!(
        heads,
        ["2026-11-23 01:09:16.316", "2026-11-23 01:09:17.000"]
    );
    assert_eq!(attrs(&c, "#entries li .basis", "data-basis").await.len(), 1);
    // Neighbours: before and after, on the same host, linking to their traces.
    wait_for(&c, "#neighbours a[data-neighbour=after]").await;
    let after = attrs(&c, "#neighbours a[data-neighbour=after]", "href").await;
    assert!(
        !after.is_empty()
            && after
                .iter()
                .all(|h| h.contains("/trace/") && !h.ends_with("/queue-0267")),
        "{after:?}"
    );
    let trace_png = shot(&c, "trace-queue-0267.png").await;

    // 2. Keyboard: j selects the next entry, Enter opens its fields, k goes back.
    let body = c.find(Locator::Css("body")).await.unwrap();
    body.send_keys("j").await.unwrap();
    assert_eq!(attrs(&c, "#entries li.selected", "data-entry").await, ["1"]);
    body.send_keys("\u{E007}").await.unwrap();
    assert_eq!(attrs(&c, "#entries li.open", "data-entry").await, ["1"]);
    let fields = texts(&c, "#entries li.open .fields td").await;
    assert!(
        fields.iter().any(|f| f == "_request_time_us") && fields.iter().any(|f| f == "401094"),
        "{fields:?}"
    );
    body.send_keys("k").await.unwrap();
    assert_eq!(attrs(&c, "#entries li.selected", "data-entry").await, ["0"]);
    shot(&c, "trace-keyboard.png").await;
    // ] follows the first neighbour after: a shareable /trace/ URL.
    body.send_keys("]").await.unwrap();
    let target = after[0].trim_start_matches(&base).to_string();
    let mut followed = false;
    for _ in 0..100 {
        if c.current_url().await.unwrap().path() == target {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(followed, "] went to {target}");
    wait_for(&c, "#timeline .lane").await;
    pages_seen.extend(loaded_urls(&c).await);

    // 3. A query with a time range: only the 503 after 01:09:04.
    c.goto(&format!("{base}/")).await.unwrap();
    wait_for(&c, "#q").await;
    c.find(Locator::Css("#q"))
        .await
        .unwrap()
        .send_keys("status:503")
        .await
        .unwrap();
    c.find(Locator::Css("#since"))
        .await
        .unwrap()
        .send_keys("2026-11-23T01:09:04Z")
        .await
        .unwrap();
    c.find(Locator::Css("#until"))
        .await
        .unwrap()
        .send_keys("2026-11-23T01:10:00Z\u{E007}")
        .await
        .unwrap();
    wait_for(&c, "#results tr[data-txn]").await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/search");
    assert!(
        url.query()
            .unwrap_or("")
            .contains("since=2026-11-23T01%3A09%3A04Z"),
        "{url}"
    );
    assert_eq!(
        attrs(&c, "#results tr[data-txn]", "data-txn").await,
        ["errors-0222"]
    );
    shot(&c, "search-status-503.png").await;
    // Without the range, both 503s.
    c.goto(&format!("{base}/search?q=status%3A503"))
        .await
        .unwrap();
    wait_for(&c, "#results tr[data-txn]").await;
    assert_eq!(
        attrs(&c, "#results tr[data-txn]", "data-txn").await,
        ["errors-0222", "errors-0220"]
    );
    pages_seen.extend(loaded_urls(&c).await);

    // 4. An unknown id, opened directly: a clear empty state.
    c.goto(&format!("{base}/trace/no-such-txn-42"))
        .await
        .unwrap();
    wait_for(&c, "#empty").await;
    let empty = c
        .find(Locator::Css("#empty"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        empty.contains("No entries for this transaction id") && empty.contains("no-such-txn-42"),
        "{empty}"
    );
    shot(&c, "trace-unknown-id.png").await;
    pages_seen.extend(loaded_urls(&c).await);

    // No request left loopback (the page's CSP allows only its own origin, too).
    assert!(pages_seen.len() > 6, "{pages_seen:?}");
    let strays: Vec<&String> = pages_seen
        .iter()
        .filter(|u| !u.starts_with(&base))
        .collect();
    assert!(
        strays.is_empty(),
        "requests beyond the aggregator: {strays:?}"
    );

    // Light by default; dark when the system prefers it.
    let bg = "return getComputedStyle(document.body).backgroundColor;";
    assert_eq!(c.execute(bg, vec![]).await.unwrap(), "rgb(251, 251, 250)");
    c.close().await.unwrap();
    assert!(trace_png.metadata().unwrap().len() > 10_000);
    let dark = browser(
        driver_port,
        &dir.path().join("profile-dark"),
        &[
            "--force-dark-mode",
            "--blink-settings=preferredColorScheme=0",
        ],
    )
    .await;
    dark.goto(&format!("{base}/trace/queue-0267"))
        .await
        .unwrap();
    wait_for(&dark, "#timeline .lane").await;
    assert_eq!(dark.execute(bg, vec![]).await.unwrap(), "rgb(20, 23, 26)");
    shot(&dark, "trace-queue-0267-dark.png").await;
    dark.close().await.unwrap();
    assert!(agg.daemon.stop().success());
}
