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

/// What an inherited socket must be to stand in for a configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// UDP (`SOCK_DGRAM`).
    Datagram,
    /// A listening TCP socket (`SOCK_STREAM`).
    Stream,
}

/// The socket systemd passed for `addr` (socket activation: `LISTEN_PID` is this process,
/// `LISTEN_FDS` descriptors from fd 3), matched by its bound address or by its
/// `FileDescriptorName=` (`LISTEN_FDNAMES`) being `name`; a duplicate, so it can be taken again
/// (a reload). `None` when nothing matches.
pub fn inherited_socket(
    addr: std::net::SocketAddr,
    name: &str,
    kind: SocketKind,
) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::{BorrowedFd, OwnedFd};
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    if pid != std::process::id() {
        return None;
    }
    let count: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let want_type = match kind {
        SocketKind::Datagram => socket2::Type::DGRAM,
        SocketKind::Stream => socket2::Type::STREAM,
    };
    for (i, fd) in (3..3 + count.clamp(0, 1024)).enumerate() {
        // SAFETY: fds 3.. are ours by the socket-activation protocol (LISTEN_PID is this
        // process); borrowed only to duplicate.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(owned) = borrowed.try_clone_to_owned() else {
            continue;
        };
        let sock = socket2::Socket::from(owned);
        if sock.r#type().ok() != Some(want_type) {
            continue;
        }
        let by_name = names.get(i).is_some_and(|n| n == name);
        let by_addr = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a == addr);
        if by_name || by_addr {
            tracing::info!(%addr, fd, "Using the socket passed by the service manager.");
            let _ = sock.set_cloexec(true);
            return Some(OwnedFd::from(sock));
        }
    }
    None
}

/// Why root could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("unknown user `{0}`")]
    UnknownUser(String),
    #[error("unknown group `{0}`")]
    UnknownGroup(String),
    #[error("`user`/`group` are set but Quill does not run as root (uid {0})")]
    NotRoot(u32),
    #[error("cannot hand {path} to {user}: {source}")]
    Chown {
        path: String,
        user: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{call} failed: {source}")]
    Call {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Looks a user up: (uid, primary gid).
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let c = std::ffi::CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut result = std::ptr::null_mut();
    // SAFETY: getpwnam_r with a valid name, struct, buffer and result pointer.
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

fn lookup_group(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut result = std::ptr::null_mut();
    // SAFETY: getgrnam_r with a valid name, struct, buffer and result pointer.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

fn chown_tree(path: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Becomes `user` (and `group`, default: the user's primary group) after the privileged ports are
/// bound: hands `writable` (the data directory, file sink outputs) to them first, then
/// `setgroups`, `setgid`, `setuid` (process-wide). Nothing to do when `user` is `None`.
pub fn drop_privileges(
    user: Option<&str>,
    group: Option<&str>,
    writable: &[&std::path::Path],
) -> Result<(), PrivilegeError> {
    let Some(user) = user else { return Ok(()) };
    let (uid, primary) =
        lookup_user(user).ok_or_else(|| PrivilegeError::UnknownUser(user.into()))?;
    let gid = match group {
        Some(g) => lookup_group(g).ok_or_else(|| PrivilegeError::UnknownGroup(g.into()))?,
        None => primary,
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == uid {
        return Ok(());
    }
    if euid != 0 {
        return Err(PrivilegeError::NotRoot(euid));
    }
    for path in writable {
        chown_tree(path, uid, gid).map_err(|source| PrivilegeError::Chown {
            path: path.display().to_string(),
            user: user.into(),
            source,
        })?;
    }
    let call = |call, rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(PrivilegeError::Call {
                call,
                source: std::io::Error::last_os_error(),
            })
        }
    };
    let groups = [gid];
    // SAFETY: plain credential calls with valid arguments; glibc applies them to every thread.
    unsafe {
        call("setgroups", libc::setgroups(1, groups.as_ptr()))?;
        call("setgid", libc::setgid(gid))?;
        call("setuid", libc::setuid(uid))?;
    }
    tracing::info!(user, uid, gid, "Dropped root.");
    Ok(())
}
