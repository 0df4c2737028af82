//! The group state machine's offsets side: committing (checked against membership and
//! generation, persisted in offsets.log before it counts), reading committed offsets, and
//! deleting Empty groups with their offsets. Plain values in and out; no kafka-protocol
//! message types here.

use tokio::time::Instant;

use super::consumer::member_epoch_error;
use super::group::{Group, GroupState};
use super::offset_log::{CommittedOffset, LogRecord};
use super::{ec, Inner};

/// What an OffsetCommit asks, read at its version.
pub(super) struct CommitParams {
    pub group_id: String,
    /// generation_id (v1+; -1 before: a simple commit).
    pub generation: i32,
    /// member_id (v1+; empty before).
    pub member_id: String,
    /// group_instance_id (v7+).
    pub instance_id: Option<String>,
    /// The offsets to commit, by topic.
    pub topics: Vec<(String, Vec<PartitionCommit>)>,
}

/// One partition's offset to commit.
pub(super) struct PartitionCommit {
    pub partition: i32,
    pub offset: i64,
    /// committed_leader_epoch (v6+; -1 before).
    pub leader_epoch: i32,
    /// The client's metadata (null as empty, as Kafka stores it).
    pub metadata: String,
}

/// Committed offsets by topic, then partition (`None`: nothing committed).
pub(super) type TopicOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

impl Inner {
    /// OffsetCommit. With a generation >= 0 the member and generation are checked; a negative
    /// generation (simple commit, no group management) is always accepted. The accepted
    /// offsets are written to offsets.log in one append before they count. Returns each
    /// partition's error by topic, in request order.
    pub(super) fn commit(&self, commit: CommitParams) -> Vec<(String, Vec<(i32, i16)>)> {
        let now = Instant::now();
        let CommitParams {
            group_id,
            generation,
            member_id,
            instance_id,
            topics,
        } = commit;
        let commit_time = now_ms();

        let mut groups = self.groups();
        let group_error = if generation < 0 {
            ec::NONE
        } else {
            match groups.get_mut(&group_id) {
                None => ec::ILLEGAL_GENERATION,
                // A consumer group (KIP-848): the generation is the member epoch.
                Some(group) if group.consumer.is_some() => {
                    group.consumer.as_deref().map_or(ec::NONE, |cg| {
                        member_epoch_error(cg, &member_id, generation)
                    })
                }
                Some(group) if group.instance_fenced(&member_id, instance_id.as_deref()) => {
                    ec::FENCED_INSTANCE_ID
                }
                Some(group) => {
                    let (state, current) = (group.state, group.generation);
                    match group.member_mut(&member_id) {
                        None => ec::UNKNOWN_MEMBER_ID,
                        Some(_) if generation != current => ec::ILLEGAL_GENERATION,
                        Some(_) if state == GroupState::CompletingRebalance => {
                            ec::REBALANCE_IN_PROGRESS
                        }
                        Some(member) => {
                            member.last_seen = now;
                            ec::NONE
                        }
                    }
                }
            }
        };

        // Decide every partition's error, then write the accepted ones in one append.
        let mut decided: Vec<(String, Vec<(i32, i16)>)> = Vec::new();
        let mut records: Vec<LogRecord> = Vec::new();
        for (name, partitions_in) in topics {
            let mut partitions = Vec::new();
            for p in partitions_in {
                let metadata = p.metadata;
                let error = if group_error != ec::NONE {
                    group_error
                } else if metadata.len() > self.config.max_metadata_bytes {
                    ec::OFFSET_METADATA_TOO_LARGE
                } else {
                    records.push(LogRecord::Commit {
                        group: group_id.clone(),
                        topic: name.clone(),
                        partition: p.partition,
                        committed: CommittedOffset {
                            offset: p.offset,
                            leader_epoch: p.leader_epoch,
                            metadata,
                            commit_time_ms: commit_time,
                        },
                    });
                    ec::NONE
                };
                partitions.push((p.partition, error));
            }
            decided.push((name, partitions));
        }
        let mut write_failed = false;
        if !records.is_empty() {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(log) = log.as_mut() {
                if let Err(e) = log.append(&records) {
                    tracing::error!(error = %e, group = %group_id, "offsets.log: append failed");
                    write_failed = true;
                }
            }
        }
        if !write_failed && !records.is_empty() {
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id.clone()));
            for record in records {
                if let LogRecord::Commit {
                    topic,
                    partition,
                    committed,
                    ..
                } = record
                {
                    group.offsets.insert((topic, partition), committed);
                }
            }
        }
        drop(groups);

        decided
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, error)| {
                        let error = if write_failed && error == ec::NONE {
                            ec::UNKNOWN_SERVER_ERROR
                        } else {
                            error
                        };
                        (index, error)
                    })
                    .collect();
                (name, partitions)
            })
            .collect()
    }

    /// OffsetFetch for one group: `None` topics asks for every committed partition; a requested
    /// partition without a commit gets `None`.
    pub(super) fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> TopicOffsets {
        let groups = self.groups();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| {
                            let c = offsets.and_then(|o| o.get(&(topic.clone(), p)).cloned());
                            (p, c)
                        })
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut out: TopicOffsets = Vec::new();
                for ((topic, partition), c) in offsets.into_iter().flatten() {
                    match out.last_mut() {
                        Some((t, list)) if t == topic => list.push((*partition, Some(c.clone()))),
                        _ => out.push((topic.clone(), vec![(*partition, Some(c.clone()))])),
                    }
                }
                out
            }
        }
    }

    /// DeleteGroups: removes Empty groups and their offsets (recorded in offsets.log first);
    /// NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND for unknown groups. One error
    /// per name, in order.
    pub(super) fn delete_groups(&self, names: &[String]) -> Vec<i16> {
        let mut groups = self.groups();
        names
            .iter()
            .map(|name| match groups.get(name) {
                None => ec::GROUP_ID_NOT_FOUND,
                Some(g) if g.state == GroupState::Dead => ec::GROUP_ID_NOT_FOUND,
                Some(g) if g.state != GroupState::Empty => ec::NON_EMPTY_GROUP,
                Some(g) if g.consumer.as_ref().is_some_and(|c| !c.members.is_empty()) => {
                    ec::NON_EMPTY_GROUP
                }
                Some(_) => {
                    let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
                    let written = match log.as_mut() {
                        Some(log) => log.append(&[LogRecord::DeleteGroup {
                            group: name.clone(),
                        }]),
                        None => Ok(()),
                    };
                    match written {
                        Ok(()) => {
                            groups.remove(name);
                            tracing::info!(group = %name, "group: deleted");
                            ec::NONE
                        }
                        Err(e) => {
                            tracing::error!(error = %e, group = %name, "offsets.log: append failed");
                            ec::UNKNOWN_SERVER_ERROR
                        }
                    }
                }
            })
            .collect()
    }
}

/// Wall-clock time in ms since the epoch (commit times).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
