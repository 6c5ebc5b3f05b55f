//! Unit tests of the tailer against a real journal and real files.

use super::*;
use crate::component::Shutdown;
use crate::journal::{Journal, JournalConfig};
use crate::record::{Format, Origin};

fn tailer(dir: &Path, journal: &Journal) -> Tailer {
    let text = format!("include = [\"{}/*.log\"]\n", dir.display());
    let config: FileSourceConfig = toml::from_str(&text).unwrap();
    let (_trigger, shutdown) = Shutdown::new();
    let ctx = SourceContext::standalone(
        "t",
        Origin::new("t", "t", Format::Raw, "h"),
        journal.clone(),
        shutdown,
    );
    Tailer::new(config, ctx).unwrap()
}

fn lines(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{tag} line {i:04} padding padding\n"))
        .collect()
}

fn put(journal: &Journal, fp: Fingerprint, key: FileKey, offset: u64, path: &Path) -> String {
    let k = checkpoint::key("file/t/", fp, key);
    journal
        .appender()
        .append_blocking(AppendBatch {
            records: vec![],
            checkpoints: vec![Checkpoint {
                key: k.clone(),
                value: checkpoint::value(offset, None, path),
            }],
        })
        .unwrap();
    assert!(durable(journal, &k).is_some());
    k
}

/// The checkpoint under `key` once the journal made it durable.
fn durable(journal: &Journal, key: &str) -> Option<Bytes> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = journal.checkpoint(key);
        if v.is_some() || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the checkpoint under `key` is durable and satisfies `check`.
fn wait_for(journal: &Journal, key: &str, check: impl Fn(&[u8]) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if journal.checkpoint(key).is_some_and(|v| check(&v)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn key_of(path: &Path) -> FileKey {
    FileKey::of(&std::fs::metadata(path).unwrap())
}

#[test]
fn a_reused_inode_with_other_content_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, lines("new", 20)).unwrap();
    let journal = Journal::memory(JournalConfig::default());
    // A checkpoint for this very inode, but of other content (the inode's previous file).
    let old = Fingerprint::of(&lines("old", 20).as_bytes()[..256]);
    put(&journal, old, key_of(&path), 500, &path);
    let mut t = tailer(dir.path(), &journal);
    t.rescan().unwrap();
    assert_eq!(t.files[&key_of(&path)].committed, 0);
}

#[test]
fn the_same_inode_and_content_resumes_and_a_moved_copy_takes_the_position_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let text = lines("same", 20);
    std::fs::write(&path, &text).unwrap();
    let fp = Fingerprint::of(&text.as_bytes()[..256]);
    let journal = Journal::memory(JournalConfig::default());
    put(&journal, fp, key_of(&path), 300, &path);
    let mut t = tailer(dir.path(), &journal);
    t.rescan().unwrap();
    assert_eq!(t.files[&key_of(&path)].committed, 300);

    // Same content on another inode (e.g. moved across filesystems) while the agent was
    // down: it takes over the position, and the old key is forgotten.
    let dir2 = tempfile::tempdir().unwrap();
    let moved = dir2.path().join("a.log");
    std::fs::write(&moved, &text).unwrap();
    let gone = FileKey { dev: 1, ino: 1 };
    let old_key = put(&journal, fp, gone, 400, &dir2.path().join("old.log"));
    let mut t = tailer(dir2.path(), &journal);
    t.rescan().unwrap();
    assert_eq!(t.files[&key_of(&moved)].committed, 400);
    assert!(wait_for(&journal, &old_key, |v| v.is_empty()));
    let new_key = checkpoint::key("file/t/", fp, key_of(&moved));
    assert!(wait_for(&journal, &new_key, |v| v.starts_with(b"400 ")));
}

#[test]
fn a_journal_error_while_moving_an_identity_stops_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let moved = dir.path().join("a.log");
    let text = lines("moved", 20);
    std::fs::write(&moved, &text).unwrap();
    let fp = Fingerprint::of(&text.as_bytes()[..256]);
    let journal = Journal::memory(JournalConfig::default());
    put(
        &journal,
        fp,
        FileKey { dev: 1, ino: 1 },
        400,
        &dir.path().join("old.log"),
    );
    let mut t = tailer(dir.path(), &journal);
    // Taking the position over appends the moved identity: with the journal gone that is the
    // source's error, not a file's ("Cannot open file" and reading on).
    journal.close().unwrap();
    assert!(matches!(
        t.rescan(),
        Err(TailError::Journal(JournalError::Closed))
    ));
    assert!(t.files.is_empty());
}

#[test]
fn a_file_duplicating_a_tracked_files_content_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let text = lines("dup", 20);
    std::fs::write(dir.path().join("a.log"), &text).unwrap();
    std::fs::write(dir.path().join("b.log"), &text).unwrap();
    let journal = Journal::memory(JournalConfig::default());
    let mut t = tailer(dir.path(), &journal);
    t.rescan().unwrap();
    assert_eq!(
        t.files.len(),
        1,
        "the copy is a duplicate while the original has it"
    );
}

#[test]
fn two_files_with_equal_first_bytes_are_two_files() {
    let dir = tempfile::tempdir().unwrap();
    // The same 1 KiB header (longer than the fingerprint), then different lines.
    let header = "# same header of every export file, padded to be long\n".repeat(20);
    std::fs::write(
        dir.path().join("a.log"),
        format!("{header}{}", lines("a", 5)),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.log"),
        format!("{header}{}", lines("b", 5)),
    )
    .unwrap();
    let journal = Journal::memory(JournalConfig::default());
    let mut t = tailer(dir.path(), &journal);
    t.rescan().unwrap();
    assert_eq!(t.files.len(), 2, "equal first bytes, different files");
    // A checkpointed identity is not given to another file that only starts the same way:
    // `b.log` on a new inode with a's fingerprint but other bytes before a's offset.
    let a = dir.path().join("a.log");
    let fa = File::open(&a).unwrap();
    let mut buf = Vec::new();
    let fp = identity::fingerprint(&fa, t.fingerprint_bytes, &mut buf).unwrap();
    let size = fa.metadata().unwrap().len();
    let marker = identity::marker(&fa, size, &mut buf).unwrap();
    let c = dir.path().join("c.log");
    std::fs::write(&c, format!("{header}{}", lines("c", 5))).unwrap();
    let fc = File::open(&c).unwrap();
    t.known.insert(Known {
        fingerprint: fp,
        key: FileKey { dev: 0, ino: 1 },
        offset: size,
        marker,
        path: a.clone(),
    });
    identity::read_head(&fc, t.fingerprint_bytes, &mut t.head).unwrap();
    let key = key_of(&c);
    match t.decide(key, fp, fc.metadata().unwrap().len(), &fc) {
        Decision::Read {
            offset: 0,
            adopted: None,
        } => {}
        other => panic!("c.log must be read from its start: {other:?}"),
    }
    // With a's bytes it is a's content (moved): resumed at the offset.
    std::fs::copy(&a, &c).unwrap();
    let fc = File::open(&c).unwrap();
    match t.decide(key, fp, size, &fc) {
        Decision::Read {
            offset,
            adopted: Some(_),
        } => assert_eq!(offset, size),
        other => panic!("a moved copy resumes: {other:?}"),
    }
}

#[test]
fn checkpoints_commit_with_the_lines_and_short_identities_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, "short\n").unwrap();
    let journal = Journal::memory(JournalConfig::default());
    let mut cursor = journal.cursor("c").unwrap();
    let mut t = tailer(dir.path(), &journal);
    t.rescan().unwrap();
    // Short and new: not read until it settles.
    assert!(!t.read_pass().unwrap());
    std::thread::sleep(SHORT_FILE_SETTLE + Duration::from_millis(20));
    assert!(t.read_pass().unwrap());
    let key = key_of(&path);
    let short_key = checkpoint::key("file/t/", Fingerprint::of(b"short\n"), key);
    assert!(wait_for(&journal, &short_key, |v| v.starts_with(b"6 ")));
    // It grows past the fingerprint length: the identity upgrades in the same batch.
    let more = lines("more", 10);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, more.as_bytes()).unwrap();
    assert!(t.read_pass().unwrap());
    let full = Fingerprint::of(&std::fs::read(&path).unwrap()[..256]);
    let full_key = checkpoint::key("file/t/", full, key);
    let end = (6 + more.len()).to_string();
    assert!(wait_for(&journal, &full_key, |v| v.starts_with(end.as_bytes())));
    assert!(wait_for(&journal, &short_key, |v| v.is_empty()));
    let entries = cursor
        .next_batch_blocking(100, Duration::from_millis(100))
        .unwrap();
    assert_eq!(entries.len(), 11);
    assert_eq!(&entries[0].record.raw[..], b"short");
    // Per-file metrics.
    t.publish_metrics();
    let m = t.metrics.files();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].lines, 11);
    assert_eq!(m[0].bytes_read, 6 + more.len() as u64);
    assert_eq!(m[0].lag(), 0);
    assert_eq!(m[0].rotations, 0);
    std::fs::write(&path, "x\n").unwrap(); // truncated
    assert!(t.read_pass().unwrap());
    t.publish_metrics();
    let m = t.metrics.files();
    assert_eq!((m[0].rotations, m[0].offset, m[0].lag()), (1, 2, 0));
    assert!(
        t.metrics
            .summary()
            .starts_with("files=1 lag=0B rotations=1")
    );
}

/// copytruncate seen in the worst order: the copy is found after the truncate happened but
/// before the tailer read the original again. The copy must not be read from its start (the
/// original's lines were journaled already); it takes over once the truncation is seen.
#[test]
fn a_copy_found_before_its_originals_truncation_is_seen_resumes_where_the_original_was() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let first = lines("a", 100);
    std::fs::write(&live, &first).unwrap();
    let journal = Journal::memory(JournalConfig::default());
    let mut cursor = journal.cursor("c").unwrap();
    let mut t = tailer(dir.path(), &journal);
    t.rescan().unwrap();
    assert!(t.read_pass().unwrap());
    // Ten more lines Quill has not read, then logrotate copies and truncates.
    let more = lines("b", 10);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap();
    std::io::Write::write_all(&mut f, more.as_bytes()).unwrap();
    std::fs::write(dir.path().join("app-1.log"), format!("{first}{more}")).unwrap();
    f.set_len(0).unwrap();
    t.rescan().unwrap();
    assert_eq!(t.files.len(), 1, "the copy waits for the truncation");
    t.read_pass().unwrap();
    t.rescan().unwrap();
    assert_eq!(
        t.files.len(),
        2,
        "the copy is read once the truncation is seen"
    );
    t.read_pass().unwrap();
    let mut got = Vec::new();
    loop {
        let batch = cursor
            .next_batch_blocking(1000, Duration::from_millis(200))
            .unwrap();
        if batch.is_empty() {
            break;
        }
        got.extend(batch.iter().map(|e| e.record.raw.clone()));
    }
    let want: Vec<_> = format!("{first}{more}")
        .lines()
        .map(|l| Bytes::from(l.to_string()))
        .collect();
    assert_eq!(got, want, "every line once, in order");
}
