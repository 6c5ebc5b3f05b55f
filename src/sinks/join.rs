//! The step the file, index and network sinks run on every journal batch, written once: the
//! sink's route picks the records it takes, the byte join (`[bytes]`, [`JoinStage`]) pairs and
//! releases them in sequence order, and an acknowledgement stays below what the join may still
//! have to replay.
//!
//! Pure: touches nothing but the buffers and counters it is handed.

use crate::accounting::stream::{JoinStage, Joined};
use crate::journal::Entry;
use crate::record::Timestamp;
use crate::sinks::route::Route;
use crate::telemetry::SinkStats;

/// Where the reading stands after a batch.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// The batch was shorter than asked for: the sink is caught up (the join may release entries
    /// whose partner cannot come any more).
    pub caught_up: bool,
    /// Nothing more will be read (journal closed and drained, or the sink stops for good): the
    /// join releases everything it holds.
    pub drained: bool,
}

/// Appends to `ready` what of `batch` the sink's `route` takes, through `join` when set, in
/// sequence order; counts the join's work in `stats`.
pub fn release(
    batch: Vec<Entry>,
    route: &Route,
    join: Option<&mut JoinStage>,
    reading: Reading,
    stats: &SinkStats,
    ready: &mut Vec<Joined>,
) {
    let taken = batch.into_iter().filter(|e| route.takes(&e.record));
    let Some(join) = join else {
        ready.extend(taken.map(Joined::plain));
        return;
    };
    for entry in taken {
        join.push(entry, ready);
    }
    join.tick(Timestamp::now().as_millis(), reading.caught_up, ready);
    if reading.drained {
        join.drain(ready);
    }
    stats.note_joined(ready, join.held());
}

/// The highest of `seq` the sink may acknowledge: below the join's replay floor (an entry still
/// held, or the partner of one released early), `seq` itself without a join.
pub fn ack_limit(join: Option<&JoinStage>, seq: u64) -> u64 {
    join.and_then(JoinStage::replay_floor)
        .map_or(seq, |floor| seq.min(floor.saturating_sub(1)))
}

/// True when the join holds no entry (or there is no join): records read after the last one
/// released are then done for this sink.
pub fn holds_nothing(join: Option<&JoinStage>) -> bool {
    join.is_none_or(|j| j.held() == 0)
}
