//! Tests in one binary run on parallel threads. A test that must not share the machine with
//! another heavy test (memory budgets, crash loops, load under reload) holds [`alone`] for its
//! whole body; tests that do not hold it still run beside it, as they did when each file was
//! its own binary (cargo's `--test-threads`).

use std::sync::{Mutex, MutexGuard};

static HEAVY: Mutex<()> = Mutex::new(());

/// Held for the life of the guard; a test that panicked while holding it does not block others.
pub fn alone() -> MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
