//! OffsetDelete, as Kafka's group coordinator answers it: an unknown (or dead) group is
//! GROUP_ID_NOT_FOUND; a group with members that does not use the consumer protocol is
//! NON_EMPTY_GROUP; a topic the group's members are subscribed to keeps its offsets and each of
//! its partitions gets GROUP_SUBSCRIBED_TO_TOPIC; other partitions lose their committed offset
//! (recorded in offsets.log first) and get no error, whether or not one was committed. The
//! caller has already answered for unknown topics and partitions.

use super::group::{Group, GroupState};
use super::offset_log::LogRecord;
use super::{ec, GroupCoordinator, Inner};

/// The topics of a ConsumerProtocolSubscription (version, then an array of strings; any later
/// fields are ignored); `None` when it cannot be read.
pub(super) fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut at = 2usize;
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let s = metadata.get(*at..at.checked_add(n)?)?;
        *at += n;
        Some(s)
    };
    let count = i32::from_be_bytes(take(&mut at, 4)?.try_into().ok()?);
    // Each topic takes at least two bytes: a count beyond that is a bad subscription, not an
    // allocation to make.
    if count < 0 || count as usize > metadata.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?);
        let bytes = take(&mut at, usize::try_from(len).ok()?)?;
        topics.push(String::from_utf8(bytes.to_vec()).ok()?);
    }
    Some(topics)
}

impl Group {
    /// Whether the group's members use the consumer protocol type.
    fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some("consumer")
    }

    /// Whether a member is subscribed to `topic`, as Kafka decides it: only consumer groups
    /// have subscriptions; one that cannot be read counts as subscribed to everything.
    pub(super) fn subscribed_to(&self, topic: &str) -> bool {
        if !self.uses_consumer_protocol() || self.members.is_empty() {
            return false;
        }
        let Some(protocol) = self.protocol_name.as_deref() else {
            return true;
        };
        self.members
            .iter()
            .any(|m| match subscription_topics(&m.metadata_for(protocol)) {
                Some(topics) => topics.iter().any(|t| t == topic),
                None => true,
            })
    }
}

/// Per topic, each partition with its error code.
pub(super) type DeleteResults = Vec<(String, Vec<(i32, i16)>)>;

impl Inner {
    /// Deletes a group's committed offsets of these partitions; the group-level error when the
    /// group cannot have offsets deleted.
    pub(super) fn delete_offsets(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<DeleteResults, i16> {
        let mut groups = self.groups();
        let group = groups.get_mut(group_id).ok_or(ec::GROUP_ID_NOT_FOUND)?;
        match group.state {
            GroupState::Dead => return Err(ec::GROUP_ID_NOT_FOUND),
            GroupState::Empty => {}
            _ if !group.uses_consumer_protocol() => return Err(ec::NON_EMPTY_GROUP),
            _ => {}
        }
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (topic, partitions) in topics {
            if group.subscribed_to(&topic) {
                let errs = partitions
                    .into_iter()
                    .map(|p| (p, ec::GROUP_SUBSCRIBED_TO_TOPIC))
                    .collect();
                out.push((topic, errs));
                continue;
            }
            let mut errs = Vec::new();
            for p in partitions {
                let key = (topic.clone(), p);
                if !group.offsets.contains_key(&key) {
                    errs.push((p, ec::NONE));
                    continue;
                }
                let written = match log.as_mut() {
                    Some(log) => log.append(&[LogRecord::DeleteOffset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: p,
                    }]),
                    None => Ok(()),
                };
                match written {
                    Ok(()) => {
                        group.offsets.remove(&key);
                        tracing::info!(group = group_id, topic = %topic, partition = p,
                            "group: committed offset deleted");
                        errs.push((p, ec::NONE));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, group = group_id, "offsets.log: append failed");
                        errs.push((p, ec::UNKNOWN_SERVER_ERROR));
                    }
                }
            }
            out.push((topic, errs));
        }
        Ok(out)
    }
}

impl GroupCoordinator {
    /// OffsetDelete for partitions known to exist: the group-level error, or one error per
    /// partition. An empty group id is INVALID_GROUP_ID.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<DeleteResults, i16> {
        self.ensure_driver();
        if group_id.is_empty() {
            return Err(ec::INVALID_GROUP_ID);
        }
        self.inner.delete_offsets(group_id, topics)
    }
}

#[cfg(test)]
mod tests {
    use super::super::offset_log::{apply, frame, replay, CommittedOffset, OffsetsByGroup};
    use super::*;

    #[test]
    fn reads_subscriptions_and_refuses_bad_counts() {
        let mut m = vec![0, 1];
        m.extend_from_slice(&2i32.to_be_bytes());
        for t in ["a", "bc"] {
            m.extend_from_slice(&(t.len() as i16).to_be_bytes());
            m.extend_from_slice(t.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 0, 0]); // user data etc. after the topics
        assert_eq!(subscription_topics(&m), Some(vec!["a".into(), "bc".into()]));
        let mut huge = vec![0, 1];
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(subscription_topics(&huge), None);
        assert_eq!(subscription_topics(&[0, 1, 0]), None);
    }

    #[test]
    fn a_deleted_offset_stays_deleted_on_replay() {
        let mut buf = Vec::new();
        let committed = CommittedOffset {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_time_ms: 1,
        };
        for p in [0, 1] {
            frame(
                &LogRecord::Commit {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: p,
                    committed: committed.clone(),
                },
                &mut buf,
            );
        }
        frame(
            &LogRecord::DeleteOffset {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
            },
            &mut buf,
        );
        let (records, used) = replay(&buf);
        assert_eq!(used, buf.len());
        let mut live = OffsetsByGroup::new();
        for r in records {
            apply(&mut live, r);
        }
        let keys: Vec<_> = live["g"].offsets.keys().cloned().collect();
        assert_eq!(keys, vec![("t".to_string(), 1)]);
    }
}
