//! Transaction ids: unique across threads, parseable back to their time and host, sortable.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use quill::logging::{REQUEST_ID_HEADER, TxnId};

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn ids_are_unique_across_threads_and_parse_back() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25_000;
    let before = now_millis();
    let handles: Vec<_> = (0..THREADS)
        .map(|_| std::thread::spawn(|| (0..PER_THREAD).map(|_| TxnId::new()).collect::<Vec<_>>()))
        .collect();
    let ids: Vec<TxnId> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let after = now_millis();

    let texts: HashSet<String> = ids.iter().map(|id| id.to_string()).collect();
    assert_eq!(texts.len(), THREADS * PER_THREAD, "duplicate ids");
    for id in &ids {
        let parsed = TxnId::parse(id.as_str()).unwrap();
        assert_eq!(&parsed, id);
        assert!((before..=after).contains(&parsed.millis()), "{id}");
        assert_eq!(parsed.host(), TxnId::local_host());
        assert!(
            id.as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
            "{id} is not header/field safe"
        );
    }
}

#[test]
fn ids_sort_by_creation_time() {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(TxnId::new());
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    let mut sorted_text: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    sorted_text.sort();
    let by_time: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    assert_eq!(sorted_text, by_time);
    assert!(ids.windows(2).all(|w| w[0].millis() < w[1].millis()));
}

#[test]
fn ids_from_other_hosts_and_headers() {
    let remote = TxnId::from_parts(1_750_000_000_000, 77, "LB-02.Example.COM");
    let text = remote.to_string();
    let parsed: TxnId = text.parse().unwrap();
    assert_eq!(parsed.host(), "lb-02.example.com");
    assert_eq!(
        parsed.time(),
        UNIX_EPOCH + std::time::Duration::from_millis(1_750_000_000_000)
    );
    assert_eq!(parsed.unique(), 77);
    assert_eq!(REQUEST_ID_HEADER, "X-Request-ID");
    assert_eq!(TxnId::from_header(Some(&format!(" {text} "))), remote);
    let fresh = TxnId::from_header(None);
    assert_eq!(fresh.host(), TxnId::local_host());
    // Serde round trip (as a string).
    let json = serde_json::to_string(&remote).unwrap();
    assert_eq!(json, format!("\"{text}\""));
    assert_eq!(serde_json::from_str::<TxnId>(&json).unwrap(), remote);
    assert!(serde_json::from_str::<TxnId>("\"nope\"").is_err());
}

#[test]
fn ordering_is_text_order_whatever_the_host_length() {
    let a = TxnId::from_parts(1_000, 5, "a-very-long-host-name.example.com");
    let b = TxnId::from_parts(2_000, 1, "b");
    assert!(a < b);
    let mut v = vec![b, a];
    v.sort();
    assert_eq!(v, [a, b]);
}
