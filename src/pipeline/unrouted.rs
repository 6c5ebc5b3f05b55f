//! Counting records no sink takes (`unrouted`, per `origin.source`).
//!
//! Sinks decide on their own what they take ([`crate::sinks::route`]); a record none of them takes
//! is read by this accountant through its own journal cursor ([`CURSOR`]) and counted against the
//! routes in force when it reads it. It runs only while some record can be unrouted (no sink
//! takes everything); otherwise its cursor is removed so it holds no segment. Counts are kept
//! across reloads (the cursor resumes where it acknowledged, so nothing is counted twice).
//!
//! Touches its journal cursor only; runs on its own thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::component::{Shutdown, ShutdownTrigger};
use crate::journal::{Journal, JournalError};
use crate::sinks::route::Route;

/// The accountant's journal cursor (a name no sink should take).
pub const CURSOR: &str = "_quill_unrouted";

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// The accountant: counts, and its thread while it runs.
#[derive(Default)]
pub struct Unrouted {
    counts: Counts,
    running: Option<(
        ShutdownTrigger,
        std::thread::JoinHandle<Result<(), JournalError>>,
    )>,
}

impl Unrouted {
    /// Counts with `routes` from now on (stops the current thread first). With a route that
    /// takes everything nothing is unrouted, and without sinks records wait for one: in both
    /// cases the thread stops and its cursor is removed.
    pub fn update(&mut self, journal: &Journal, routes: Vec<Route>) {
        self.stop();
        // Without any sink every record waits in the journal for one to be configured: the
        // accountant must not read (and so acknowledge) it.
        if routes.is_empty() || routes.iter().any(Route::takes_all) {
            if let Err(e) = journal.remove_cursor(CURSOR) {
                tracing::warn!("Cannot remove the unrouted accountant's cursor: {e}.");
            }
            return;
        }
        let fresh = !journal.stats().cursors.iter().any(|(n, _, _)| n == CURSOR);
        let mut cursor = match journal.cursor(CURSOR) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("Unrouted records are not counted: {e}.");
                return;
            }
        };
        // A new accountant counts from now, not what the journal kept from before.
        if fresh && let Err(e) = cursor.ack(journal.durable_seq(), None) {
            tracing::warn!("Unrouted accountant: {e}.");
        }
        let (trigger, shutdown) = Shutdown::new();
        let counts = self.counts.clone();
        let spawned = std::thread::Builder::new()
            .name("unrouted".into())
            .spawn(move || count(cursor, &routes, &counts, &shutdown));
        match spawned {
            Ok(handle) => self.running = Some((trigger, handle)),
            Err(e) => tracing::error!("Unrouted records are not counted: {e}."),
        }
    }

    /// Stops the thread (after it acknowledged what it counted).
    pub fn stop(&mut self) {
        if let Some((trigger, handle)) = self.running.take() {
            trigger.trigger();
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("Unrouted accountant stopped: {e}."),
                Err(_) => tracing::warn!("Unrouted accountant panicked."),
            }
        }
    }

    /// Unrouted records per source name.
    pub fn counts(&self) -> Vec<(String, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

fn count(
    mut cursor: crate::journal::Cursor,
    routes: &[Route],
    counts: &Counts,
    shutdown: &Shutdown,
) -> Result<(), JournalError> {
    let mut pending = cursor.acked();
    let mut last_ack = Instant::now();
    let mut local: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let stopping = shutdown.is_triggered();
        let batch = cursor.next_batch_blocking(4096, Duration::from_millis(200))?;
        let drained = batch.is_empty() && cursor.is_drained();
        for e in &batch {
            if !routes.iter().any(|r| r.takes(&e.record)) {
                *local.entry(e.record.origin.source.to_string()).or_default() += 1;
            }
            pending = e.seq;
        }
        if !local.is_empty() {
            let mut shared = counts.lock().unwrap_or_else(|p| p.into_inner());
            for (k, v) in std::mem::take(&mut local) {
                *shared.entry(k).or_default() += v;
            }
        }
        let done = stopping || drained;
        if pending > cursor.acked() && (done || last_ack.elapsed() >= Duration::from_secs(1)) {
            cursor.ack(pending, None)?;
            last_ack = Instant::now();
        }
        if done {
            return Ok(());
        }
    }
}
