//! Partition ownership: renews this aggregator's member key and leases every `lease_ttl`/3,
//! balances the partitions over the live members (ceil(P/M) each at most), and runs one
//! [`Worker`] per owned partition. It touches the leases bucket and its workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::kv::{self, KvError, Lease, MEMBER_PREFIX, lease_key};
use super::worker::Worker;
use super::{Shared, SourceError};

struct Owned {
    /// The lease's revision (our last write).
    revision: u64,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<Result<(), SourceError>>>,
}

/// How many partitions one of `members` live aggregators may own.
pub fn share(partitions: u32, members: usize) -> usize {
    (partitions as usize).div_ceil(members.max(1))
}

/// Owns partitions until shutdown, then releases them.
pub(super) async fn run(shared: Arc<Shared>) -> Result<(), SourceError> {
    let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
    let mut shutdown = shared.ctx.shutdown.clone();
    let tick = shared.lease_ttl / 3;
    loop {
        if let Err(e) = round(&shared, &mut owned).await {
            tracing::warn!(source = %shared.ctx.name, "Lease round failed: {e}.");
        }
        shared
            .counters
            .owned
            .store(owned.len() as u64, Ordering::Relaxed);
        tokio::select! {
            _ = shutdown.triggered() => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
    // Workers finish their fetch; then the partitions are free for the others at once.
    let partitions: Vec<u32> = owned.keys().copied().collect();
    for p in partitions {
        if let Some(o) = owned.remove(&p) {
            release(&shared, p, o).await;
        }
    }
    // Gone: the others need not wait for the member key to expire to rebalance.
    let _ = shared
        .leases
        .put(member_key(&shared.me), bytes::Bytes::from("0"))
        .await;
    Ok(())
}

fn member_key(me: &str) -> String {
    format!("{MEMBER_PREFIX}{me}")
}

/// One renewal round: member key, live members, then every partition's lease.
async fn round(shared: &Arc<Shared>, owned: &mut BTreeMap<u32, Owned>) -> Result<(), SourceError> {
    let now = kv::now_ms();
    let ttl = shared.lease_ttl.as_millis() as u64;
    shared
        .leases
        .put(
            member_key(&shared.me),
            bytes::Bytes::from((now + ttl).to_string()),
        )
        .await
        .map_err(|e| SourceError::Nats(format!("member key: {e}")))?;
    let leases = read_leases(shared, now).await?;
    let members = leases.members.max(1);
    let share = share(shared.partitions, members);

    // A worker that ended (an error) is restarted on the next round while we own the lease.
    for (p, o) in owned.iter_mut() {
        if o.worker.as_ref().is_some_and(|w| w.is_finished())
            && let Some(w) = o.worker.take()
        {
            match w.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(source = %shared.ctx.name, partition = p, "Partition worker failed: {e}; restarting it.")
                }
                Err(e) => {
                    tracing::error!(source = %shared.ctx.name, partition = p, "Partition worker panicked: {e}; restarting it.")
                }
            }
        }
    }

    // Renew (or lose) what we hold; release what is above our share, highest first.
    let held: Vec<u32> = owned.keys().copied().collect();
    for (i, p) in held.iter().enumerate() {
        let Some(o) = owned.get_mut(p) else { continue };
        let current = leases.by_partition.get(p);
        let still_ours = current.is_some_and(|(l, rev)| l.owner == shared.me && *rev == o.revision);
        if !still_ours {
            tracing::warn!(source = %shared.ctx.name, partition = p, "Lost the lease of partition {p}.");
            if let Some(o) = owned.remove(p) {
                stop(o).await;
            }
            continue;
        }
        if i >= share {
            if let Some(o) = owned.remove(p) {
                tracing::info!(source = %shared.ctx.name, partition = p, "Releasing partition {p} ({members} aggregators share {}).", shared.partitions);
                release(shared, *p, o).await;
            }
            continue;
        }
        let renewed = Lease {
            owner: shared.me.clone(),
            expiry_ms: now + ttl,
        };
        match kv::cas(
            &shared.leases,
            &lease_key(*p),
            renewed.encode(),
            Some(o.revision),
        )
        .await
        {
            Ok(rev) => o.revision = rev,
            Err(e) => {
                tracing::warn!(source = %shared.ctx.name, partition = p, "Lost the lease of partition {p}: {e}.");
                if let Some(o) = owned.remove(p) {
                    stop(o).await;
                }
            }
        }
    }

    // Take free partitions up to our share (ours from before a restart first: still ours).
    let mut candidates: Vec<u32> = (0..shared.partitions)
        .filter(|p| !owned.contains_key(p))
        .filter(|p| match leases.by_partition.get(p) {
            None => true,
            Some((l, _)) => l.owner == shared.me || l.is_free(now),
        })
        .collect();
    candidates.sort_by_key(|p| {
        let mine = leases
            .by_partition
            .get(p)
            .is_some_and(|(l, _)| l.owner == shared.me);
        (!mine, *p)
    });
    for p in candidates {
        if owned.len() >= share {
            break;
        }
        let lease = Lease {
            owner: shared.me.clone(),
            expiry_ms: now + ttl,
        };
        let expected = leases.by_partition.get(&p).map(|(_, rev)| *rev);
        match kv::cas(&shared.leases, &lease_key(p), lease.encode(), expected).await {
            Ok(revision) => {
                tracing::info!(source = %shared.ctx.name, partition = p, "Took partition {p}.");
                owned.insert(
                    p,
                    Owned {
                        revision,
                        stop: Arc::new(AtomicBool::new(false)),
                        worker: None,
                    },
                );
            }
            Err(KvError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }

    for (p, o) in owned.iter_mut() {
        if o.worker.is_none() {
            let worker = Worker::new(shared.clone(), *p, o.stop.clone());
            o.worker = Some(tokio::spawn(worker.run()));
        }
    }
    Ok(())
}

struct LeaseView {
    by_partition: HashMap<u32, (Lease, u64)>,
    members: usize,
}

/// Every lease and the number of live members.
async fn read_leases(shared: &Shared, now: u64) -> Result<LeaseView, SourceError> {
    let mut keys = shared
        .leases
        .keys()
        .await
        .map_err(|e| SourceError::Nats(format!("leases: {e}")))?;
    let mut names = Vec::new();
    while let Some(k) = keys.next().await {
        names.push(k.map_err(|e| SourceError::Nats(format!("leases: {e}")))?);
    }
    let mut view = LeaseView {
        by_partition: HashMap::new(),
        members: 0,
    };
    for name in names {
        let Some((value, rev)) = kv::get(&shared.leases, &name).await? else {
            continue;
        };
        if name.starts_with(MEMBER_PREFIX) {
            let alive = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|expiry| expiry > now);
            if alive {
                view.members += 1;
            }
        } else if let Some(p) = name
            .strip_prefix("lease.")
            .and_then(|p| p.parse::<u32>().ok())
            && let Some(lease) = Lease::parse(&value)
        {
            view.by_partition.insert(p, (lease, rev));
        }
    }
    Ok(view)
}

/// Stops a partition's worker and waits for it (its fetch is committed or left unacked).
async fn stop(mut o: Owned) {
    o.stop.store(true, Ordering::Release);
    if let Some(w) = o.worker.take() {
        let _ = w.await;
    }
}

/// Stops the worker, then frees the lease for the others.
async fn release(shared: &Shared, partition: u32, o: Owned) {
    let revision = o.revision;
    stop(o).await;
    let free = Lease {
        owner: Lease::FREE.into(),
        expiry_ms: 0,
    };
    if let Err(e) = kv::cas(
        &shared.leases,
        &lease_key(partition),
        free.encode(),
        Some(revision),
    )
    .await
    {
        tracing::debug!(source = %shared.ctx.name, partition, "release: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_partition() {
        for p in 1..20u32 {
            for m in 1..6usize {
                assert!(share(p, m) * m >= p as usize);
            }
        }
        assert_eq!(share(4, 2), 2);
        assert_eq!(share(4, 0), 4);
    }
}
