//! Writing: routes documents to day partitions and commits them with their coverage.
//!
//! Every input is a *stream* of records numbered by an increasing sequence: the journal cursor
//! (`journal:<cursor name>`, numbered by journal seq) or a backfilled file (`file:<path>`,
//! numbered by line). A partition's commit payload records, per stream, the sequence number up to
//! which every record of that stream *that belongs to this partition* is in it:
//! `{"covered":{"journal:index":1234}}`. After a crash a stream is replayed from any earlier
//! point, and [`IndexWriterSet::add`] skips each record its partition already covers; so nothing
//! is missing and nothing is indexed twice, even when a crash fell between the commits of two
//! partitions.
//!
//! Touches only partition directories under the index root.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::UserOperation;
use tantivy::{Index, IndexWriter, TantivyDocument};

use super::document::DocumentBuilder;
use super::partition::{self, Day};
use super::schema::IndexFields;
use super::{IndexError, IndexSettings};
use crate::accounting::Correction;
use crate::record::{Record, Timestamp};

/// Per stream, the highest sequence number a partition covers.
pub type Coverage = BTreeMap<String, u64>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct CommitPayload {
    covered: Coverage,
}

/// What [`IndexWriterSet::add`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    /// Its partition already covers this record (a replay after a crash).
    AlreadyIndexed,
    /// Older than the retention age: not indexed.
    Expired,
}

/// Counters since the writer set was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub added: u64,
    pub already_indexed: u64,
    pub expired: u64,
    /// Entries whose log time lay more than [`MAX_FUTURE_SKEW_MS`] after their receive time:
    /// filed in the partition of that bound instead (see [`IndexWriterSet::add_corrected`]).
    pub future_clamped: u64,
    pub commits: u64,
    pub partitions_deleted: u64,
}

struct OpenPartition {
    day: Day,
    path: PathBuf,
    writer: IndexWriter<TantivyDocument>,
    /// Documents not yet handed to tantivy: they go to its indexing threads in groups of
    /// [`DOCUMENT_GROUP`], one channel message (and at most one thread wake-up) per group.
    pending: Vec<UserOperation<TantivyDocument>>,
    dirty: bool,
}

/// Documents handed to tantivy's indexing threads at once.
const DOCUMENT_GROUP: usize = 256;

impl OpenPartition {
    /// Hands the pending documents to tantivy's indexing threads.
    fn flush_pending(&mut self) -> Result<(), IndexError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.writer
            .run(self.pending.drain(..))
            .map_err(|e| IndexError::tantivy(&self.path, e))?;
        Ok(())
    }
}

/// How far after its receive time an entry's log time may lie and still choose its partition
/// (one day: time zones and clock skew stay well inside it).
pub const MAX_FUTURE_SKEW_MS: i64 = 86_400_000;

/// The writing side of the index: one tantivy writer per open day partition.
pub struct IndexWriterSet {
    root: PathBuf,
    settings: IndexSettings,
    fields: IndexFields,
    builder: DocumentBuilder,
    /// Committed coverage of every partition on disk.
    coverage: BTreeMap<Day, Coverage>,
    /// Open partitions, least recently used first.
    open: Vec<OpenPartition>,
    /// Highest sequence handed to `add`, per stream.
    progress: HashMap<String, u64>,
    stats: WriterStats,
}

impl IndexWriterSet {
    /// Opens the index under `root` (created if missing) and reads every partition's coverage.
    pub fn open(
        root: &Path,
        settings: &IndexSettings,
        parsers: std::sync::Arc<crate::parsers::ParserRegistry>,
    ) -> Result<IndexWriterSet, IndexError> {
        std::fs::create_dir_all(root).map_err(|e| IndexError::io(root, e))?;
        let mut coverage = BTreeMap::new();
        for p in partition::list(root)? {
            let index = Index::open_in_dir(&p.path).map_err(|e| IndexError::tantivy(&p.path, e))?;
            coverage.insert(p.day, read_coverage(&index, &p.path)?);
        }
        let fields = IndexFields::build(settings.word_positions);
        Ok(IndexWriterSet {
            root: root.to_path_buf(),
            settings: settings.clone(),
            builder: DocumentBuilder::new(fields.clone(), parsers),
            fields,
            coverage,
            open: Vec::new(),
            progress: HashMap::new(),
            stats: WriterStats::default(),
        })
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// The committed coverage of `stream`: the lowest over all partitions that mention it, i.e.
    /// a safe point to replay the stream from (0 when no partition mentions it).
    pub fn committed_floor(&self, stream: &str) -> u64 {
        self.coverage
            .values()
            .filter_map(|c| c.get(stream).copied())
            .min()
            .unwrap_or(0)
    }

    /// Indexes record number `seq` of `stream`, unless its partition already covers it.
    pub fn add(
        &mut self,
        stream: &str,
        seq: u64,
        record: &Record,
    ) -> Result<AddOutcome, IndexError> {
        self.add_corrected(stream, seq, record, None)
    }

    /// [`add`](Self::add) for a record the byte join released, with its correction.
    pub fn add_corrected(
        &mut self,
        stream: &str,
        seq: u64,
        record: &Record,
        correction: Option<Correction>,
    ) -> Result<AddOutcome, IndexError> {
        let built = self.builder.build(record, seq, correction);
        // A log time far after the receive time is a wrong clock or a misread line: it must
        // not open a partition that age retention never reaches. The document keeps its time;
        // only the partition it is filed in is bounded.
        let latest = record
            .received_at
            .as_millis()
            .saturating_add(MAX_FUTURE_SKEW_MS);
        let day = if built.timestamp_ms > latest {
            self.stats.future_clamped += 1;
            Day::of_millis(latest)
        } else {
            Day::of_millis(built.timestamp_ms)
        };
        self.note_progress(stream, seq);
        if self.settings.max_age_days > 0 {
            let today = Day::of_millis(Timestamp::now().as_millis());
            if day.0 < today.0 - i64::from(self.settings.max_age_days) {
                self.stats.expired += 1;
                return Ok(AddOutcome::Expired);
            }
        }
        let covered = self
            .coverage
            .get(&day)
            .and_then(|c| c.get(stream))
            .copied()
            .unwrap_or(0);
        if seq <= covered {
            self.stats.already_indexed += 1;
            return Ok(AddOutcome::AlreadyIndexed);
        }
        let part = self.partition(day)?;
        part.pending.push(UserOperation::Add(built.document));
        if part.pending.len() >= DOCUMENT_GROUP {
            part.flush_pending()?;
        }
        part.dirty = true;
        self.stats.added += 1;
        Ok(AddOutcome::Added)
    }

    fn note_progress(&mut self, stream: &str, seq: u64) {
        match self.progress.get_mut(stream) {
            Some(p) => *p = (*p).max(seq),
            None => {
                self.progress.insert(stream.to_string(), seq);
            }
        }
    }

    /// Commits every partition that received documents; afterwards every record handed to
    /// [`add`](Self::add) so far is durable and searchable.
    pub fn commit(&mut self) -> Result<(), IndexError> {
        for i in 0..self.open.len() {
            if self.open[i].dirty {
                self.commit_at(i)?;
            }
        }
        Ok(())
    }

    fn commit_at(&mut self, i: usize) -> Result<(), IndexError> {
        let day = self.open[i].day;
        let mut covered = self.coverage.get(&day).cloned().unwrap_or_default();
        for (stream, seq) in &self.progress {
            let c = covered.entry(stream.clone()).or_insert(0);
            *c = (*c).max(*seq);
        }
        let payload = serde_json::to_string(&CommitPayload {
            covered: covered.clone(),
        })
        .map_err(|e| IndexError::BadPayload {
            path: self.open[i].path.display().to_string(),
            reason: e.to_string(),
        })?;
        let part = &mut self.open[i];
        part.flush_pending()?;
        let mut prepared = part
            .writer
            .prepare_commit()
            .map_err(|e| IndexError::tantivy(&part.path, e))?;
        prepared.set_payload(&payload);
        prepared
            .commit()
            .map_err(|e| IndexError::tantivy(&part.path, e))?;
        part.dirty = false;
        self.coverage.insert(day, covered);
        self.stats.commits += 1;
        Ok(())
    }

    /// The open partition for `day`, opening (or creating) it and closing the least recently
    /// used one when too many are open.
    fn partition(&mut self, day: Day) -> Result<&mut OpenPartition, IndexError> {
        if let Some(i) = self.open.iter().position(|p| p.day == day) {
            if i + 1 != self.open.len() {
                let p = self.open.remove(i);
                self.open.push(p);
            }
        } else {
            if self.open.len() >= self.settings.max_open_partitions.max(1) {
                if self.open[0].dirty {
                    self.commit_at(0)?;
                }
                let p = self.open.remove(0);
                close_writer(p)?;
            }
            let p = self.open_partition(day)?;
            self.coverage.entry(day).or_default();
            self.open.push(p);
        }
        let last = self.open.len() - 1;
        Ok(&mut self.open[last])
    }

    fn open_partition(&self, day: Day) -> Result<OpenPartition, IndexError> {
        let path = self.root.join(day.name());
        std::fs::create_dir_all(&path).map_err(|e| IndexError::io(&path, e))?;
        let dir = MmapDirectory::open(&path).map_err(|e| IndexError::Tantivy {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        let exists = Index::exists(&dir).map_err(|e| IndexError::Tantivy {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        let index = if exists {
            // An existing partition keeps its schema (it may have been created with other
            // options); the field layout must be ours.
            let index = Index::open(dir).map_err(|e| IndexError::tantivy(&path, e))?;
            let theirs = IndexFields::from_schema(index.schema())
                .map_err(|e| IndexError::tantivy(&path, e))?;
            if !theirs.same_layout(&self.fields) {
                return Err(IndexError::tantivy(
                    &path,
                    tantivy::TantivyError::SchemaError(
                        "partition was written with a different field layout".into(),
                    ),
                ));
            }
            index
        } else {
            Index::builder()
                .schema(self.fields.schema.clone())
                .open_or_create(dir)
                .map_err(|e| IndexError::tantivy(&path, e))?
        };
        index.tokenizers().register(
            super::tokenizer::LOG_WORDS,
            super::tokenizer::LogWordsTokenizer::default(),
        );
        let threads = self.settings.writer_threads.max(1);
        // tantivy needs at least 15 MB per indexing thread.
        let memory = self.settings.writer_memory_bytes.max(threads * (16 << 20));
        let writer = index
            .writer_with_num_threads(threads, memory)
            .map_err(|e| IndexError::tantivy(&path, e))?;
        if self.settings.bulk_load {
            writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        }
        Ok(OpenPartition {
            day,
            path,
            writer,
            pending: Vec::with_capacity(DOCUMENT_GROUP),
            dirty: false,
        })
    }

    /// Deletes partitions past the retention age or beyond the total size, oldest first.
    pub fn apply_retention(&mut self) -> Result<u64, IndexError> {
        let parts = partition::list(&self.root)?;
        let sizes: Vec<u64> = parts
            .iter()
            .map(|p| partition::size_bytes(&p.path))
            .collect();
        let today = Day::of_millis(Timestamp::now().as_millis());
        let victims = partition::retention_victims(
            &parts,
            &sizes,
            today,
            self.settings.max_age_days,
            self.settings.max_total_bytes,
        );
        let mut deleted = 0;
        for i in victims {
            let p = &parts[i];
            if let Some(at) = self.open.iter().position(|o| o.day == p.day) {
                // Its documents are being deleted anyway: drop them uncommitted.
                drop(self.open.remove(at));
            }
            match std::fs::remove_dir_all(&p.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(IndexError::io(&p.path, e)),
            }
            self.coverage.remove(&p.day);
            tracing::info!(partition = %p.path.display(), bytes = sizes[i], "index retention deleted partition");
            deleted += 1;
        }
        self.stats.partitions_deleted += deleted;
        Ok(deleted)
    }

    /// Commits and closes every partition, waiting for background merges.
    pub fn close(mut self) -> Result<WriterStats, IndexError> {
        self.commit()?;
        for p in self.open.drain(..) {
            close_writer(p)?;
        }
        Ok(self.stats)
    }
}

/// Closes a partition's writer (its documents are committed), waiting for running merges.
fn close_writer(p: OpenPartition) -> Result<(), IndexError> {
    p.writer
        .wait_merging_threads()
        .map_err(|e| IndexError::tantivy(&p.path, e))
}

fn read_coverage(index: &Index, path: &Path) -> Result<Coverage, IndexError> {
    let metas = index
        .load_metas()
        .map_err(|e| IndexError::tantivy(path, e))?;
    match metas.payload {
        None => Ok(Coverage::new()),
        Some(p) => serde_json::from_str::<CommitPayload>(&p)
            .map(|c| c.covered)
            .map_err(|e| IndexError::BadPayload {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IndexReaderSet, SearchRequest};
    use crate::record::{Format, Origin};
    use bytes::Bytes;

    fn record(i: u64) -> Record {
        Record::new(
            Origin::new("s", "c", Format::Json, "h"),
            Bytes::from(format!(r#"{{"msg":"item {i}","txn_id":"t-{i}"}}"#)),
        )
    }

    #[test]
    fn replays_are_skipped_and_partitions_keep_their_schema() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("index");
        let lean = IndexSettings {
            word_positions: false,
            ..IndexSettings::default()
        };
        let mut w = IndexWriterSet::open(&root, &lean, test_parsers()).unwrap();
        for seq in 1..=3 {
            assert_eq!(w.add("s", seq, &record(seq)).unwrap(), AddOutcome::Added);
        }
        w.close().unwrap();

        // Reopened with other options: the partition keeps its own schema, and the replay of
        // seq 1..=3 is recognised.
        let mut w = IndexWriterSet::open(&root, &IndexSettings::default(), test_parsers()).unwrap();
        assert_eq!(w.committed_floor("s"), 3);
        for seq in 1..=4 {
            let expected = if seq <= 3 {
                AddOutcome::AlreadyIndexed
            } else {
                AddOutcome::Added
            };
            assert_eq!(w.add("s", seq, &record(seq)).unwrap(), expected);
        }
        // Another stream has its own numbering.
        assert_eq!(w.add("other", 1, &record(9)).unwrap(), AddOutcome::Added);
        let stats = w.close().unwrap();
        assert_eq!((stats.added, stats.already_indexed), (2, 3));

        let hits = IndexReaderSet::new(&root)
            .search(&SearchRequest {
                query: Some("item".into()),
                ..SearchRequest::default()
            })
            .unwrap();
        assert_eq!(hits.len(), 5);
    }

    #[test]
    fn retention_deletes_old_days_and_keeps_the_newest_by_size() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("index");
        let keep_all = IndexSettings {
            max_age_days: 0,
            ..IndexSettings::default()
        };
        let now = Timestamp::now();
        let day_ns = 86_400_000_000_000;
        let mut w = IndexWriterSet::open(&root, &keep_all, test_parsers()).unwrap();
        for (seq, days_back) in [(1, 10), (2, 5), (3, 1), (4, 0)] {
            let mut r = record(seq);
            r.received_at = Timestamp(now.0 - days_back * day_ns);
            w.add("s", seq, &r).unwrap();
        }
        w.close().unwrap();
        assert_eq!(crate::index::partition::list(&root).unwrap().len(), 4);

        let by_age = IndexSettings {
            max_age_days: 7,
            ..IndexSettings::default()
        };
        let mut w = IndexWriterSet::open(&root, &by_age, test_parsers()).unwrap();
        assert_eq!(w.apply_retention().unwrap(), 1);
        // An entry older than the retention age is not indexed at all.
        let mut old = record(5);
        old.received_at = Timestamp(now.0 - 9 * day_ns);
        assert_eq!(w.add("s", 5, &old).unwrap(), AddOutcome::Expired);
        w.close().unwrap();

        let by_size = IndexSettings {
            max_total_bytes: 1,
            ..IndexSettings::default()
        };
        let mut w = IndexWriterSet::open(&root, &by_size, test_parsers()).unwrap();
        assert_eq!(w.apply_retention().unwrap(), 2);
        let left = crate::index::partition::list(&root).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].day, Day::of_millis(now.as_millis()));
    }

    #[test]
    fn a_far_future_log_time_is_filed_no_later_than_a_day_after_receipt() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("index");
        let mut w = IndexWriterSet::open(&root, &IndexSettings::default(), test_parsers()).unwrap();
        let future = Record::new(
            Origin::new("s", "c", Format::Json, "h"),
            Bytes::from_static(
                br#"{"msg":"from 2099","txn_id":"t-f","time":"2099-01-01T00:00:00Z"}"#,
            ),
        );
        assert_eq!(w.add("s", 1, &future).unwrap(), AddOutcome::Added);
        let stats = w.close().unwrap();
        assert_eq!(stats.future_clamped, 1);
        let days: Vec<Day> = crate::index::partition::list(&root)
            .unwrap()
            .into_iter()
            .map(|p| p.day)
            .collect();
        let latest = Day::of_millis(future.received_at.as_millis() + MAX_FUTURE_SKEW_MS);
        assert_eq!(days, vec![latest]);
        // The entry keeps its own time and is found by its txn id.
        let hits = IndexReaderSet::new(&root)
            .search(&SearchRequest {
                txn_id: Some("t-f".into()),
                ..SearchRequest::default()
            })
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert!(
            hits[0].timestamp_ms > 4_000_000_000_000,
            "{:?}",
            hits[0].timestamp_ms
        );
    }

    fn test_parsers() -> std::sync::Arc<crate::parsers::ParserRegistry> {
        std::sync::Arc::new(crate::parsers::ParserRegistry::new(Vec::new()))
    }
}
