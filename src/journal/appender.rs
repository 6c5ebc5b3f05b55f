//! The writing side of the journal, held by sources: appends (waiting, blocking or not at all
//! when the journal is full), the dropped-record counter of datagram sources, and waiting for
//! durability. Appending only encodes into memory; the writer thread does the I/O. A large batch
//! is encoded outside the journal's lock, and by [`Appender::append`] on a blocking thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::prepare::{Prepared, is_large, prepare};
use super::shared::{Lifecycle, Shared, State};
use super::{AppendBatch, AppendReceipt, JournalError, TryAppendError};

/// The writing side, held by sources; cheap to clone.
#[derive(Clone)]
pub struct Appender {
    pub(super) life: Arc<Lifecycle>,
}

impl Appender {
    fn shared(&self) -> &Shared {
        &self.life.shared
    }

    /// Appends, waiting while the journal is full. A large batch is encoded on a blocking
    /// thread, outside the journal's lock.
    pub async fn append(&self, mut batch: AppendBatch) -> Result<AppendReceipt, JournalError> {
        let mut prepared = if is_large(&batch) {
            prepare_off_reactor(&batch).await?
        } else {
            prepare(&batch)?
        };
        let shared = self.shared();
        let mut waited = false;
        loop {
            let notified = shared.space.notified();
            let records = batch.records.len() as u64;
            match shared.push_prepared(batch, &mut prepared) {
                Ok(r) => return Ok(r),
                Err(TryAppendError::Journal(e)) => return Err(self.gave_up(e, waited, records)),
                Err(TryAppendError::Full(b)) => batch = b,
            }
            waited = true;
            // Re-check periodically as well: a notification may race with the check above.
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// Appends from a blocking thread, waiting while the journal is full.
    pub fn append_blocking(&self, mut batch: AppendBatch) -> Result<AppendReceipt, JournalError> {
        let mut prepared = prepare(&batch)?;
        let shared = self.shared();
        let mut waited = false;
        loop {
            let records = batch.records.len() as u64;
            match shared.push_prepared(batch, &mut prepared) {
                Ok(r) => return Ok(r),
                Err(TryAppendError::Journal(e)) => return Err(self.gave_up(e, waited, records)),
                Err(TryAppendError::Full(b)) => batch = b,
            }
            waited = true;
            let st = shared.lock();
            let _ = shared.changed.wait_timeout(st, Duration::from_millis(100));
        }
    }

    /// A batch that waited for space and then found the journal closed (a shutdown that could not
    /// wait for a full disk) was not journaled: count its records as dropped.
    fn gave_up(&self, e: JournalError, waited: bool, records: u64) -> JournalError {
        if waited && matches!(e, JournalError::Closed) {
            self.note_dropped(records);
        }
        e
    }

    /// Appends without waiting; a full journal hands the batch back.
    pub fn try_append(&self, batch: AppendBatch) -> Result<AppendReceipt, TryAppendError> {
        self.shared().try_push(batch)
    }

    /// For sources that cannot wait (UDP, unix datagrams): appends, or counts the batch's
    /// records in `dropped_journal_full` and returns `None` when the journal is full.
    pub fn try_append_or_count(
        &self,
        batch: AppendBatch,
    ) -> Result<Option<AppendReceipt>, JournalError> {
        match self.shared().try_push(batch) {
            Ok(r) => Ok(Some(r)),
            Err(TryAppendError::Full(b)) => {
                self.note_dropped(b.records.len() as u64);
                Ok(None)
            }
            Err(TryAppendError::Journal(e)) => Err(e),
        }
    }

    /// Counts records a source dropped because the journal was full.
    pub fn note_dropped(&self, records: u64) {
        self.shared()
            .dropped_journal_full
            .fetch_add(records, Ordering::Relaxed);
    }

    /// The highest durable sequence number.
    pub fn durable_seq(&self) -> u64 {
        self.shared().lock().durable_seq
    }

    fn durable_or_closed(st: &State, seq: u64) -> Option<Result<(), JournalError>> {
        if st.durable_seq >= seq {
            Some(Ok(()))
        } else if st.writer_done {
            Some(Err(JournalError::Closed))
        } else {
            None
        }
    }

    /// Waits until `seq` is durable (`Closed` if the journal stopped before it became durable).
    pub async fn wait_durable(&self, seq: u64) -> Result<(), JournalError> {
        let shared = self.shared();
        loop {
            let notified = shared.progress.notified();
            if let Some(r) = Self::durable_or_closed(&shared.lock(), seq) {
                return r;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// Waits from a blocking thread until `seq` is durable.
    pub fn wait_durable_blocking(&self, seq: u64) -> Result<(), JournalError> {
        let shared = self.shared();
        let mut st = shared.lock();
        loop {
            if let Some(r) = Self::durable_or_closed(&st, seq) {
                return r;
            }
            st = shared
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// [`prepare`] on a blocking thread. Records are reference-counted: the copy the thread gets costs
/// no payload bytes. Without a blocking pool (the runtime is stopping) it runs here.
async fn prepare_off_reactor(batch: &AppendBatch) -> Result<Prepared, JournalError> {
    let copy = batch.clone();
    match tokio::task::spawn_blocking(move || prepare(&copy)).await {
        Ok(prepared) => prepared,
        Err(_) => prepare(batch),
    }
}
