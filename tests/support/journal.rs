//! Reading a journal directly (the journal tests, no daemon).

use std::time::Duration;

use quill::journal::{Cursor, Entry};

/// Reads `cursor` until a read of at most `max` entries comes back empty after waiting `idle`;
/// returns what was read, in order.
pub fn drain_cursor(cursor: &mut Cursor, max: usize, idle: Duration) -> Vec<Entry> {
    let mut out = Vec::new();
    loop {
        let batch = cursor.next_batch_blocking(max, idle).unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}
