//! Parallel GELF encoding for sinks that write lines in journal order.
//!
//! [`EncodePool::encode`] splits a batch of records into contiguous chunks, encodes them on a pool
//! of worker threads (and the calling thread) into one buffer per chunk, and returns the chunks in
//! batch order: the caller writes them with few large writes, in journal order, so acknowledgements
//! and exactly-once stay exactly as with one thread. Each record is parsed once, with the parser
//! registry the pool was given (a value, never a process-wide lookup), and its byte-join correction
//! appended to its line. With [`EncodePool::compressing`] the workers also compress each run of
//! consecutive lines of one category into one zstd frame ([`Frame`]), so a file sink writing
//! compressed output does not compress on its own thread.
//!
//! Touches nothing but the records and its own buffers: no I/O.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::accounting::stream::{Joined, append_correction};
use crate::parsers::ParserRegistry;

/// Records below which a batch is encoded on the calling thread alone (a hand-off costs more).
const MIN_PARALLEL: usize = 256;
/// A chunk buffer that grew past this (a huge record) is not kept for reuse.
const KEEP_BUFFER_BYTES: usize = 8 << 20;

/// One chunk of a batch, encoded: record `i` of the chunk (batch index `first + i`) is the line
/// `buf[ends[i - 1]..ends[i]]` (from 0 for the first), newline included.
#[derive(Default)]
pub struct EncodedChunk {
    pub first: usize,
    pub buf: Vec<u8>,
    pub ends: Vec<usize>,
    /// With compression: one zstd frame per run of consecutive lines of one category, in order.
    pub frames: Vec<Frame>,
}

/// `buf[start..end]` (whole lines of one category) as one complete zstd frame.
pub struct Frame {
    pub start: usize,
    pub end: usize,
    pub bytes: Vec<u8>,
}

type Compressor = zstd::bulk::Compressor<'static>;

impl EncodedChunk {
    /// The byte range of the chunk's `i`-th line.
    pub fn line_range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        start..self.ends[i]
    }

    /// The frame holding exactly `buf[start..end]`, if the encoder made one.
    pub fn frame(&self, start: usize, end: usize) -> Option<&[u8]> {
        self.frames
            .iter()
            .find(|f| f.start == start && f.end == end)
            .map(|f| &f.bytes[..])
    }

    fn encode(
        &mut self,
        parsers: &ParserRegistry,
        records: &[Joined],
        zstd: Option<&mut Compressor>,
    ) {
        self.buf.clear();
        self.ends.clear();
        self.frames.clear();
        for Joined { entry, correction } in records {
            parsers.encode(&entry.record, &mut self.buf);
            append_correction(&mut self.buf, *correction);
            self.buf.push(b'\n');
            self.ends.push(self.buf.len());
        }
        if let Some(zstd) = zstd {
            self.compress_runs(records, zstd);
        }
    }

    /// One frame per run of consecutive records of one category. A run that fails to compress
    /// gets no frame: the sink compresses it itself (and reports the error).
    fn compress_runs(&mut self, records: &[Joined], zstd: &mut Compressor) {
        let mut i = 0;
        while i < records.len() {
            let category = &records[i].entry.record.origin.category;
            let mut j = i + 1;
            while j < records.len() && records[j].entry.record.origin.category == *category {
                j += 1;
            }
            let (start, end) = (self.line_range(i).start, self.ends[j - 1]);
            let data = &self.buf[start..end];
            let mut bytes = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
            if zstd.compress_to_buffer(data, &mut bytes).is_ok() {
                self.frames.push(Frame { start, end, bytes });
            }
            i = j;
        }
    }
}

struct Job {
    batch: Arc<Vec<Joined>>,
    first: usize,
    end: usize,
    chunk: EncodedChunk,
}

impl Job {
    /// Encodes the job's records into its chunk (dropping its handle on the batch).
    fn run(self, parsers: &ParserRegistry, zstd: Option<&mut Compressor>) -> EncodedChunk {
        let Job {
            batch,
            first,
            end,
            mut chunk,
        } = self;
        chunk.first = first;
        chunk.encode(parsers, &batch[first..end], zstd);
        chunk
    }
}

/// A batch being encoded ([`EncodePool::start`]).
pub struct InFlight(Flight);

enum Flight {
    /// Encoded already (on the calling thread).
    Done(Vec<Joined>, Vec<EncodedChunk>),
    /// Chunks queued for the workers: `sent` of them, `per` records each; `unsent` could not be
    /// queued (the workers are gone) and are encoded by [`EncodePool::finish`].
    Running {
        batch: Arc<Vec<Joined>>,
        per: usize,
        sent: usize,
        unsent: Vec<Job>,
    },
}

/// Encoding threads and the chunk buffers they reuse.
pub struct EncodePool {
    parsers: Arc<ParserRegistry>,
    workers: usize,
    jobs: Option<Sender<Job>>,
    /// The job queue's other end: the caller takes back jobs no worker started yet.
    queue: Receiver<Job>,
    done: Receiver<EncodedChunk>,
    threads: Vec<JoinHandle<()>>,
    spare: Vec<EncodedChunk>,
    /// The calling thread's compressor ([`EncodePool::compressing`]).
    zstd: Option<Compressor>,
}

impl EncodePool {
    /// A pool that encodes on `workers` threads in all: the caller's and `workers - 1` others.
    pub fn new(
        name: &str,
        workers: usize,
        parsers: Arc<ParserRegistry>,
    ) -> std::io::Result<EncodePool> {
        EncodePool::build(name, workers, parsers, None)
    }

    /// [`EncodePool::new`], also compressing every run of one category's lines into a zstd frame
    /// at `level` ([`EncodedChunk::frame`]).
    pub fn compressing(
        name: &str,
        workers: usize,
        parsers: Arc<ParserRegistry>,
        level: i32,
    ) -> std::io::Result<EncodePool> {
        EncodePool::build(name, workers, parsers, Some(level))
    }

    fn build(
        name: &str,
        workers: usize,
        parsers: Arc<ParserRegistry>,
        level: Option<i32>,
    ) -> std::io::Result<EncodePool> {
        let workers = workers.max(1);
        let compressor = || level.map(Compressor::new).transpose();
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let (done_tx, done) = crossbeam_channel::unbounded();
        let mut threads = Vec::new();
        for i in 1..workers {
            let jobs = jobs_rx.clone();
            let done = done_tx.clone();
            let parsers = parsers.clone();
            let mut zstd = compressor()?;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("enc-{name}-{i}"))
                    .spawn(move || worker(&parsers, zstd.as_mut(), &jobs, &done))?,
            );
        }
        Ok(EncodePool {
            parsers,
            workers,
            jobs: Some(jobs_tx),
            queue: jobs_rx,
            done,
            threads,
            spare: Vec::new(),
            zstd: compressor()?,
        })
    }

    /// Encodes `batch` in chunks, returned in batch order, and hands the batch back.
    pub fn encode(&mut self, batch: Vec<Joined>) -> (Vec<Joined>, Vec<EncodedChunk>) {
        let flight = self.start(batch);
        self.finish(flight)
    }

    /// Starts encoding `batch` on the workers and returns at once (small batches, or a pool of
    /// one, are encoded here and now); [`EncodePool::finish`] collects the chunks. One batch is
    /// in flight at a time: finish it before starting the next.
    pub fn start(&mut self, batch: Vec<Joined>) -> InFlight {
        let n = batch.len();
        if self.workers == 1 || n < MIN_PARALLEL || self.jobs.is_none() {
            let mut chunk = self.spare.pop().unwrap_or_default();
            chunk.first = 0;
            chunk.encode(&self.parsers, &batch, self.zstd.as_mut());
            return InFlight(Flight::Done(batch, vec![chunk]));
        }
        // Two chunks per thread, so a slow chunk does not hold the others up.
        let chunks = (self.workers * 2).min(n);
        let per = n.div_ceil(chunks);
        let batch = Arc::new(batch);
        let mut sent = 0;
        let mut unsent = Vec::new();
        let mut first = 0;
        while first < n {
            let end = (first + per).min(n);
            let chunk = self.spare.pop().unwrap_or_default();
            let job = Job {
                batch: batch.clone(),
                first,
                end,
                chunk,
            };
            match &self.jobs {
                Some(jobs) => match jobs.send(job) {
                    Ok(()) => sent += 1,
                    Err(e) => unsent.push(e.into_inner()),
                },
                None => unsent.push(job),
            }
            first = end;
        }
        InFlight(Flight::Running {
            batch,
            per,
            sent,
            unsent,
        })
    }

    /// The chunks of the batch in flight, in batch order, and the batch. The caller encodes
    /// whatever no worker has started yet instead of waiting for it.
    pub fn finish(&mut self, flight: InFlight) -> (Vec<Joined>, Vec<EncodedChunk>) {
        let (batch, per, mut sent, unsent) = match flight.0 {
            Flight::Done(batch, chunks) => return (batch, chunks),
            Flight::Running {
                batch,
                per,
                sent,
                unsent,
            } => (batch, per, sent, unsent),
        };
        let mut out = Vec::with_capacity(sent + unsent.len());
        for job in unsent {
            out.push(job.run(&self.parsers, self.zstd.as_mut()));
        }
        while let Ok(job) = self.queue.try_recv() {
            out.push(job.run(&self.parsers, self.zstd.as_mut()));
            sent -= 1;
        }
        for _ in 0..sent {
            match self.done.recv() {
                Ok(chunk) => out.push(chunk),
                Err(_) => break,
            }
        }
        out.sort_by_key(|c| c.first);
        // Workers drop their handle before answering; if one died, encode what is missing here.
        let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| {
            shared
                .iter()
                .map(|j| Joined {
                    entry: j.entry.clone(),
                    correction: j.correction,
                })
                .collect()
        });
        fill_gaps(&self.parsers, self.zstd.as_mut(), &batch, &mut out, per);
        (batch, out)
    }

    /// Compresses `data` into `out` as one complete zstd frame, with the calling thread's
    /// compressor (for a run the workers made no frame of); `data` as it is when the pool does
    /// not compress.
    pub fn frame_into<'a>(
        &mut self,
        data: &'a [u8],
        out: &'a mut Vec<u8>,
    ) -> std::io::Result<&'a [u8]> {
        let Some(zstd) = &mut self.zstd else {
            return Ok(data);
        };
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        zstd.compress_to_buffer(data, out)?;
        Ok(&out[..])
    }

    /// Takes chunk buffers back for reuse.
    pub fn recycle(&mut self, chunks: Vec<EncodedChunk>) {
        for mut chunk in chunks {
            if chunk.buf.capacity() <= KEEP_BUFFER_BYTES && self.spare.len() < self.workers * 4 {
                chunk.buf.clear();
                chunk.ends.clear();
                chunk.frames.clear();
                self.spare.push(chunk);
            }
        }
    }
}

/// Encodes on this thread any chunk a worker did not return (it panicked), so no record is lost.
fn fill_gaps(
    parsers: &ParserRegistry,
    mut zstd: Option<&mut Compressor>,
    batch: &[Joined],
    out: &mut Vec<EncodedChunk>,
    per: usize,
) {
    let expected = batch.len().div_ceil(per.max(1));
    if out.len() == expected {
        return;
    }
    let have: Vec<usize> = out.iter().map(|c| c.first).collect();
    let mut first = 0;
    while first < batch.len() {
        if !have.contains(&first) {
            let end = (first + per).min(batch.len());
            let mut chunk = EncodedChunk {
                first,
                ..EncodedChunk::default()
            };
            chunk.encode(parsers, &batch[first..end], zstd.as_deref_mut());
            out.push(chunk);
        }
        first += per;
    }
    out.sort_by_key(|c| c.first);
}

fn worker(
    parsers: &ParserRegistry,
    mut zstd: Option<&mut Compressor>,
    jobs: &Receiver<Job>,
    done: &Sender<EncodedChunk>,
) {
    while let Ok(job) = jobs.recv() {
        let chunk = job.run(parsers, zstd.as_deref_mut());
        if done.send(chunk).is_err() {
            return;
        }
    }
}

impl Drop for EncodePool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Entry;
    use crate::record::{Format, Origin, Record};
    use bytes::Bytes;

    fn batch(n: usize) -> Vec<Joined> {
        let origin = Origin::new("app", "web", Format::Raw, "h1");
        (0..n)
            .map(|i| {
                Joined::plain(Entry {
                    seq: i as u64 + 1,
                    record: Record::new(origin.clone(), Bytes::from(format!("line {i}"))),
                })
            })
            .collect()
    }

    fn lines(chunks: &[EncodedChunk]) -> Vec<String> {
        let mut v = Vec::new();
        for c in chunks {
            for i in 0..c.ends.len() {
                v.push(String::from_utf8(c.buf[c.line_range(i)].to_vec()).unwrap());
            }
        }
        v
    }

    #[test]
    fn parallel_output_equals_sequential_in_order() {
        let parsers = Arc::new(ParserRegistry::new(Vec::new()));
        let mut one = EncodePool::new("t", 1, parsers.clone()).unwrap();
        let mut four = EncodePool::new("t", 4, parsers).unwrap();
        for n in [0, 1, 255, 256, 1000, 4096] {
            let records = batch(n);
            let copy = records
                .iter()
                .map(|j| Joined::plain(j.entry.clone()))
                .collect();
            let (b1, c1) = one.encode(copy);
            let (b4, c4) = four.encode(records);
            assert_eq!(b1.len(), n);
            assert_eq!(b4.len(), n);
            let (l1, l4) = (lines(&c1), lines(&c4));
            assert_eq!(l1.len(), n);
            assert!(l1 == l4, "batch of {n}: parallel output differs");
            for (i, line) in l4.iter().enumerate() {
                assert!(line.ends_with("}\n"), "{line}");
                assert!(line.contains(&format!("\"line {i}\"")), "{i}: {line}");
            }
            assert!(
                b4.iter()
                    .enumerate()
                    .all(|(i, j)| j.entry.seq == i as u64 + 1)
            );
            four.recycle(c4);
            one.recycle(c1);
        }
    }

    #[test]
    fn compressing_pools_make_one_frame_per_category_run() {
        let parsers = Arc::new(ParserRegistry::new(Vec::new()));
        let mut pool = EncodePool::compressing("t", 2, parsers, 1).unwrap();
        let web = Origin::new("app", "web", Format::Raw, "h1");
        let db = Origin::new("app", "db", Format::Raw, "h1");
        // Runs of 300 records per category, so runs cross the chunks the workers get.
        let records: Vec<Joined> = (0..2000)
            .map(|i| {
                let origin = if (i / 300) % 2 == 0 { &web } else { &db };
                Joined::plain(Entry {
                    seq: i as u64 + 1,
                    record: Record::new(origin.clone(), Bytes::from(format!("line {i}"))),
                })
            })
            .collect();
        let (batch, chunks) = pool.encode(records);
        for chunk in &chunks {
            let mut covered = 0;
            for f in &chunk.frames {
                assert_eq!(f.start, covered, "frames cover the chunk in order");
                let plain = zstd::bulk::decompress(&f.bytes, 1 << 24).unwrap();
                assert_eq!(plain, chunk.buf[f.start..f.end]);
                assert_eq!(chunk.frame(f.start, f.end), Some(&f.bytes[..]));
                covered = f.end;
            }
            assert_eq!(covered, chunk.buf.len());
            // Each frame's lines are of one category, and the next frame's are of another.
            let cats: Vec<_> = chunk
                .frames
                .iter()
                .map(|f| {
                    let i = chunk.ends.iter().position(|&e| e > f.start).unwrap();
                    batch[chunk.first + i].entry.record.origin.category.clone()
                })
                .collect();
            assert!(cats.windows(2).all(|w| w[0] != w[1]), "{cats:?}");
        }
        assert!(chunks.iter().map(|c| c.frames.len()).sum::<usize>() >= 7);
        pool.recycle(chunks);
    }
}
