//! Running under systemd on a host: readiness and watchdog notifications (`Type=notify`),
//! socket activation (`LISTEN_FDS`), and dropping root after privileged ports are bound.
//!
//! Notifications go to `$NOTIFY_SOCKET` through the `sd-notify` crate and are no-ops without
//! it. This module touches the process's own credentials and inherited descriptors, nothing else.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::component::Shutdown;

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("Cannot notify the service manager: {e}.");
    }
}

/// `READY=1`: start-up finished (also after a reload).
pub fn notify_ready() {
    notify(&[NotifyState::Ready]);
}

/// `RELOADING=1` (with `MONOTONIC_USEC`, as `Type=notify-reload` wants): a reload begins; call
/// [`notify_ready`] when it is done.
pub fn notify_reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`: shutdown begins.
pub fn notify_stopping() {
    notify(&[NotifyState::Stopping]);
}

/// When `WATCHDOG_USEC` is set for this process, pings `WATCHDOG=1` at half that interval from
/// a thread of its own until `shutdown`. Returns the ping interval.
pub fn start_watchdog(shutdown: &Shutdown) -> Option<Duration> {
    let timeout = sd_notify::watchdog_enabled()?;
    let every = (timeout / 2).max(Duration::from_millis(10));
    let shutdown = shutdown.clone();
    let spawned = std::thread::Builder::new()
        .name("quill-watchdog".into())
        .spawn(move || {
            while !shutdown.is_triggered() {
                notify(&[NotifyState::Watchdog]);
                let mut left = every;
                while !left.is_zero() && !shutdown.is_triggered() {
                    let step = left.min(Duration::from_millis(100));
                    std::thread::sleep(step);
                    left -= step;
                }
            }
        });
    match spawned {
        Ok(_) => Some(every),
        Err(e) => {
            tracing::error!("Cannot start the watchdog thread: {e}.");
            None
        }
    }
}
