//! The happy path allocates nothing: with a counting global allocator, encoding real HAProxy
//! (syslog-wrapped httplog, tcplog, clf, rfc5424) and Apache (combined, error) lines into GELF
//! makes no allocation once the output buffer has grown.
#![cfg(feature = "pipeline")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use bytes::Bytes;
use quill::parse::{Format, ParserConfig};
use quill::record::{Origin, Record, Timestamp};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

#[test]
fn encoding_corpus_lines_allocates_nothing() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parse");
    for (file, format) in [
        ("haproxy-httplog.log", Format::Haproxy),
        ("haproxy-tcplog.log", Format::Haproxy),
        ("haproxy-clf.log", Format::Haproxy),
        ("haproxy-rfc5424.log", Format::Auto),
        ("apache-combined.log", Format::Apache),
        ("apache-error.log", Format::Apache),
    ] {
        let data = Bytes::from(std::fs::read(dir.join(file)).unwrap());
        let origin = Origin::new("alloc", "lb", format, "h");
        let records: Vec<Record> = data
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .take(300)
            .map(|l| {
                let mut r = Record::new(origin.clone(), data.slice_ref(l));
                r.received_at = Timestamp(1_795_400_000_000_000_000);
                r
            })
            .collect();
        let parser = ParserConfig {
            format,
            ..ParserConfig::default()
        }
        .compile()
        .unwrap();
        let mut out = Vec::with_capacity(64 * 1024);
        // Warm up: the thread-local scratch buffer for escaped values grows once.
        for r in &records {
            out.clear();
            quill::gelf::encode_parsed(&parser, r, &mut out);
        }
        let before = allocs();
        let mut failed = 0;
        for r in &records {
            out.clear();
            if quill::gelf::encode_parsed(&parser, r, &mut out).is_error() {
                failed += 1;
            }
        }
        let n = allocs() - before;
        assert_eq!(failed, 0, "{file}");
        assert_eq!(n, 0, "{file}: {n} allocations for {} lines", records.len());
    }
}
