//! The broker's log housekeeping, a background task: every `retention_check_interval` it
//! applies each topic's retention to its partition logs (Kafka's
//! `log.retention.check.interval.ms`), and with `--fsync interval` it flushes logs with
//! unsynced writes every `fsync_interval`. It ends when the broker shuts down.

use std::sync::Arc;

use tokio::sync::watch;

use crate::log::{Fsync, PartitionLog};
use crate::state::Shared;
use crate::topic_config;
use crate::topics::{Topic, Topics};

/// One retention pass over every partition at `now_ms`; returns how many log start offsets
/// moved.
pub(crate) fn retention_pass(topics: &Topics, now_ms: i64) -> usize {
    let mut moved = 0;
    for t in topics.all() {
        let r = topic_config::retention(&t.configs());
        if !r.delete {
            continue;
        }
        each_log(&t, |i, log| match log.apply_retention(&r, now_ms) {
            Ok(Some(start)) => {
                moved += 1;
                tracing::info!(topic = %t.name, partition = i, log_start_offset = start,
                    "retention removed old segments");
            }
            Ok(None) => {}
            Err(e) => tracing::error!(topic = %t.name, partition = i, error = %e,
                "retention could not remove segments"),
        });
    }
    moved
}

/// Calls `f` with each partition's index and log, one log locked at a time.
fn each_log(t: &Topic, mut f: impl FnMut(usize, &mut PartitionLog)) {
    let parts = t
        .partitions
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (i, p) in parts.iter().enumerate() {
        f(i, &mut p.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Flushes every log with unsynced writes.
fn fsync_pass(topics: &Topics) {
    for t in topics.all() {
        each_log(&t, |i, log| {
            if let Err(e) = log.sync() {
                tracing::error!(topic = %t.name, partition = i, error = %e, "fsync failed");
            }
        });
    }
}

/// The task: retention at its interval, fsync at its own (with `--fsync interval`).
pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    // The first check comes one interval after start, not at once (Kafka waits 30 s first),
    // so a restarted broker serves what it recovered until then.
    let every = shared.config.retention_check_interval;
    let mut retention = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let fsync_on = shared.config.data_dir.is_some() && shared.config.fsync == Fsync::Interval;
    let every = shared.config.fsync_interval;
    let mut fsync = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    fsync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = retention.tick() => {
                let now = chronik_capture::now_micros() / 1000;
                let topics = &shared.topics;
                if retention_pass(topics, now) > 0 {
                    // Waiting fetches see the new log start.
                    shared.appended.send_modify(|n| *n += 1);
                }
            }
            _ = fsync.tick(), if fsync_on => fsync_pass(&shared.topics),
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    if fsync_on {
                        fsync_pass(&shared.topics);
                    }
                    return;
                }
            }
        }
    }
}
