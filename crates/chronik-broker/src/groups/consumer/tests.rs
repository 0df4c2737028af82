//! The consumer group protocol's state machine, driven through the coordinator without sockets
//! (the real clients are in tests/it/consumer_protocol.rs).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::Assignment;
use super::reconcile::assignment_of;
use super::{HeartbeatOutcome, HeartbeatParams, TopicImage, TopicMeta, INVALID_REGULAR_EXPRESSION};
use crate::groups::group::ClientInfo;
use crate::groups::membership::JoinParams;
use crate::groups::offsets::{CommitParams, PartitionCommit};
use crate::groups::{ec, GroupConfig, GroupCoordinator};

const SESSION: Duration = Duration::from_secs(10);

fn coordinator() -> Arc<GroupCoordinator> {
    GroupCoordinator::with_config(
        None,
        GroupConfig {
            consumer_session_timeout: SESSION,
            consumer_heartbeat_interval: Duration::from_millis(500),
            ..GroupConfig::default()
        },
    )
    .expect("coordinator")
}

fn tid(name: &str) -> Uuid {
    Uuid::from_u128(name.bytes().fold(7u128, |h, b| h * 31 + u128::from(b)))
}

fn image(topics: &[(&str, i32)]) -> TopicImage {
    topics
        .iter()
        .map(|(name, partitions)| {
            (
                name.to_string(),
                TopicMeta {
                    id: tid(name),
                    name: name.to_string(),
                    partitions: *partitions,
                },
            )
        })
        .collect()
}

fn parts(topic: &str, ps: &[i32]) -> Assignment {
    assignment_of([(tid(topic), ps.to_vec())])
}

/// A heartbeat as librdkafka sends them: a full one on join, then epoch and owned partitions.
struct Hb<'a> {
    group: &'a str,
    member: &'a str,
    epoch: i32,
    owned: Option<Assignment>,
    names: Option<Vec<String>>,
    regex: Option<&'a str>,
    assignor: Option<&'a str>,
    instance: Option<&'a str>,
}

impl<'a> Hb<'a> {
    fn join(group: &'a str, member: &'a str, topics: &[&str]) -> Hb<'a> {
        Hb {
            group,
            member,
            epoch: 0,
            owned: Some(Assignment::new()),
            names: Some(topics.iter().map(|t| t.to_string()).collect()),
            regex: None,
            assignor: None,
            instance: None,
        }
    }

    fn beat(group: &'a str, member: &'a str, epoch: i32, owned: Option<Assignment>) -> Hb<'a> {
        Hb {
            group,
            member,
            epoch,
            owned,
            names: None,
            regex: None,
            assignor: None,
            instance: None,
        }
    }

    fn send(self, co: &GroupCoordinator, topics: &TopicImage) -> HeartbeatOutcome {
        co.inner.consumer_heartbeat(
            HeartbeatParams {
                group_id: self.group.into(),
                member_id: self.member.into(),
                member_epoch: self.epoch,
                instance_id: self.instance.map(Into::into),
                rack_id: None,
                rebalance_timeout_ms: if self.epoch == 0 { 30_000 } else { -1 },
                topic_names: self.names,
                topic_regex: self.regex.map(Into::into),
                server_assignor: self.assignor.map(Into::into),
                owned: self.owned,
                client: ClientInfo {
                    client_id: format!("client-{}", self.member),
                    client_host: "/127.0.0.1".into(),
                },
                version: 1,
            },
            topics,
        )
    }
}

fn ok(o: &HeartbeatOutcome) {
    assert_eq!(o.error, ec::NONE, "{o:?}");
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Member a owns all four partitions at epoch 1; b then joins.
fn a_alone_then_b_joins(
    co: &GroupCoordinator,
    topics: &TopicImage,
) -> (HeartbeatOutcome, Assignment) {
    let a = Hb::join("g", "a", &["t"]).send(co, topics);
    ok(&a);
    assert_eq!(a.member_epoch, 1);
    let all = a.assignment.clone().expect("assignment on join");
    assert_eq!(all, parts("t", &[0, 1, 2, 3]));
    let b = Hb::join("g", "b", &["t"]).send(co, topics);
    ok(&b);
    (b, all)
}

#[tokio::test]
async fn a_partition_moves_only_after_its_old_owner_revoked_it() {
    let co = coordinator();
    let topics = image(&[("t", 4)]);
    let (b, all) = a_alone_then_b_joins(&co, &topics);
    // b is at the new epoch but gets nothing a still owns.
    assert_eq!(b.member_epoch, 2);
    assert_eq!(b.assignment, Some(Assignment::new()));

    // a is told to keep two: same epoch until it confirms.
    let a = Hb::beat("g", "a", 1, Some(all.clone())).send(&co, &topics);
    ok(&a);
    assert_eq!(a.member_epoch, 1);
    let kept = a.assignment.clone().expect("a's new assignment");
    assert_eq!(count(&kept), 2);

    // Until a confirms, b still gets nothing.
    let b = Hb::beat("g", "b", 2, Some(Assignment::new())).send(&co, &topics);
    ok(&b);
    assert_eq!(b.assignment, None, "nothing changed for b: {b:?}");
    // a heartbeats still owning everything: still waiting.
    let a = Hb::beat("g", "a", 1, Some(all)).send(&co, &topics);
    assert_eq!(a.member_epoch, 1);

    // a confirms: it moves to epoch 2; then b gets the other two.
    let a = Hb::beat("g", "a", 1, Some(kept.clone())).send(&co, &topics);
    ok(&a);
    assert_eq!(a.member_epoch, 2);
    let b = Hb::beat("g", "b", 2, Some(Assignment::new())).send(&co, &topics);
    ok(&b);
    let got = b.assignment.expect("b's partitions");
    assert_eq!(count(&got), 2);
    for (t, ps) in &got {
        for p in ps {
            assert!(!kept[t].contains(p), "{p} given to both");
        }
    }
    let groups = co.inner.groups();
    assert_eq!(
        groups["g"].consumer.as_ref().unwrap().state_name(),
        "Stable"
    );
}

#[tokio::test]
async fn leaving_hands_the_partitions_to_the_other_member() {
    let co = coordinator();
    let topics = image(&[("t", 4)]);
    let (_, all) = a_alone_then_b_joins(&co, &topics);
    let bye = Hb::beat("g", "a", -1, None).send(&co, &topics);
    ok(&bye);
    assert_eq!(bye.member_epoch, -1);
    drop(all);
    let b = Hb::beat("g", "b", 2, Some(Assignment::new())).send(&co, &topics);
    ok(&b);
    assert_eq!(b.assignment, Some(parts("t", &[0, 1, 2, 3])));
    assert_eq!(b.member_epoch, 3);
    // a is gone.
    let a = Hb::beat("g", "a", 1, None).send(&co, &topics);
    assert_eq!(a.error, ec::UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn a_member_whose_session_expires_is_removed() {
    let co = coordinator();
    let topics = image(&[("t", 4)]);
    let (_, all) = a_alone_then_b_joins(&co, &topics);
    // b keeps heartbeating; a is silent. After the session timeout a is removed.
    let later = Instant::now() + SESSION + Duration::from_secs(1);
    {
        let mut groups = co.inner.groups();
        let cg = groups.get_mut("g").unwrap().consumer.as_mut().unwrap();
        cg.members.get_mut("b").unwrap().last_seen = later;
    }
    co.inner.tick(later);
    let a = Hb::beat("g", "a", 1, Some(all)).send(&co, &topics);
    assert_eq!(a.error, ec::UNKNOWN_MEMBER_ID);
    let b = Hb::beat("g", "b", 2, Some(Assignment::new())).send(&co, &topics);
    ok(&b);
    assert_eq!(b.assignment, Some(parts("t", &[0, 1, 2, 3])));
}

#[tokio::test]
async fn a_member_that_does_not_revoke_in_time_is_removed() {
    let co = coordinator();
    let topics = image(&[("t", 4)]);
    let (_, all) = a_alone_then_b_joins(&co, &topics);
    let a = Hb::beat("g", "a", 1, Some(all)).send(&co, &topics);
    assert_eq!(a.member_epoch, 1, "a must revoke");
    // The rebalance timeout is 30 s; keep both sessions alive past it.
    let later = Instant::now() + Duration::from_secs(31);
    {
        let mut groups = co.inner.groups();
        let cg = groups.get_mut("g").unwrap().consumer.as_mut().unwrap();
        for m in cg.members.values_mut() {
            m.last_seen = later;
        }
    }
    co.inner.tick(later);
    let groups = co.inner.groups();
    let cg = groups["g"].consumer.as_ref().unwrap();
    assert!(!cg.members.contains_key("a"));
    assert!(cg.members.contains_key("b"));
}

#[tokio::test]
async fn fencing_follows_kafka() {
    let co = coordinator();
    let topics = image(&[("t", 4)]);
    let a = Hb::join("g", "a", &["t"]).send(&co, &topics);
    let all = a.assignment.unwrap();
    // A greater epoch is fenced.
    let o = Hb::beat("g", "a", 5, Some(all.clone())).send(&co, &topics);
    assert_eq!(o.error, ec::FENCED_MEMBER_EPOCH);
    // The previous epoch (0) with owned partitions that are a subset: accepted.
    let o = Hb::beat("g", "a", 0, Some(parts("t", &[0]))).send(&co, &topics);
    // Epoch 0 is a (re)join: needs the first request's fields, so it is an invalid request.
    assert_eq!(o.error, ec::INVALID_REQUEST);
    // Unknown member.
    let o = Hb::beat("g", "zz", 1, None).send(&co, &topics);
    assert_eq!(o.error, ec::UNKNOWN_MEMBER_ID);
    // Unknown group with epoch > 0 (as after a restart): the member is unknown and rejoins.
    let o = Hb::beat("nope", "a", 1, None).send(&co, &topics);
    assert_eq!(o.error, ec::UNKNOWN_MEMBER_ID);
    // The current epoch works.
    let o = Hb::beat("g", "a", 1, None).send(&co, &topics);
    ok(&o);
}

#[tokio::test]
async fn the_previous_epoch_is_accepted_with_owned_partitions_of_the_assignment() {
    let co = coordinator();
    let topics = image(&[("t", 2)]);
    let a = Hb::join("g", "a", &["t"]).send(&co, &topics);
    assert_eq!(a.member_epoch, 1);
    // A new topic partition bumps the epoch; a moves to 2 (nothing to revoke).
    let topics = image(&[("t", 3)]);
    let a2 = Hb::beat("g", "a", 1, None).send(&co, &topics);
    ok(&a2);
    assert_eq!(a2.member_epoch, 2);
    assert_eq!(a2.assignment, Some(parts("t", &[0, 1, 2])));
    // The answer was lost: a heartbeats with epoch 1 and what it owned.
    let again = Hb::beat("g", "a", 1, Some(parts("t", &[0, 1]))).send(&co, &topics);
    ok(&again);
    let bad = Hb::beat("g", "a", 1, None).send(&co, &topics);
    assert_eq!(bad.error, ec::FENCED_MEMBER_EPOCH);
}

#[tokio::test]
async fn validation_errors_are_kafkas() {
    let co = coordinator();
    let topics = image(&[("t", 1)]);
    let mut h = Hb::join("g", "a", &[]);
    h.names = Some(Vec::new());
    assert_eq!(h.send(&co, &topics).error, ec::INVALID_REQUEST);
    let mut h = Hb::join("g", "a", &["t"]);
    h.owned = None;
    assert_eq!(h.send(&co, &topics).error, ec::INVALID_REQUEST);
    let mut h = Hb::join("g", "a", &["t"]);
    h.assignor = Some("sticky");
    assert_eq!(h.send(&co, &topics).error, ec::UNSUPPORTED_ASSIGNOR);
    let mut h = Hb::join("g", "a", &[]);
    h.regex = Some("(unclosed");
    assert_eq!(h.send(&co, &topics).error, INVALID_REGULAR_EXPRESSION);
    let h = Hb::join("g", "", &["t"]);
    assert_eq!(h.send(&co, &topics).error, ec::INVALID_REQUEST);
    let h = Hb::beat("g", "a", -3, None);
    assert_eq!(h.send(&co, &topics).error, ec::INVALID_REQUEST);
    assert!(co.inner.groups().is_empty(), "no group was created");
}

#[tokio::test]
async fn a_regex_subscription_picks_up_new_topics() {
    let co = coordinator();
    let topics = image(&[("orders-1", 1), ("other", 1)]);
    let mut h = Hb::join("g", "a", &[]);
    h.names = Some(Vec::new());
    h.regex = Some("(^orders-.*)");
    let a = h.send(&co, &topics);
    ok(&a);
    assert_eq!(a.assignment, Some(parts("orders-1", &[0])));
    let topics = image(&[("orders-1", 1), ("orders-2", 2), ("other", 1)]);
    let a = Hb::beat("g", "a", 1, None).send(&co, &topics);
    ok(&a);
    let mut want = parts("orders-1", &[0]);
    want.extend(parts("orders-2", &[0, 1]));
    assert_eq!(a.assignment, Some(want));
}

#[tokio::test]
async fn the_range_assignor_is_used_when_the_members_ask_for_it() {
    let co = coordinator();
    let topics = image(&[("t", 4)]);
    let mut h = Hb::join("g", "a", &["t"]);
    h.assignor = Some("range");
    ok(&h.send(&co, &topics));
    let groups = co.inner.groups();
    assert_eq!(groups["g"].consumer.as_ref().unwrap().assignor, "range");
}

#[tokio::test]
async fn commits_check_the_member_epoch() {
    let co = coordinator();
    let topics = image(&[("t", 4)]);
    let (b, _) = a_alone_then_b_joins(&co, &topics);
    let commit = |member: &str, epoch: i32| {
        co.inner.commit(CommitParams {
            group_id: "g".into(),
            generation: epoch,
            member_id: member.into(),
            instance_id: None,
            topics: vec![(
                "t".into(),
                vec![PartitionCommit {
                    partition: 0,
                    offset: 5,
                    leader_epoch: -1,
                    metadata: String::new(),
                }],
            )],
        })[0]
            .1[0]
            .1
    };
    assert_eq!(commit("a", 1), ec::NONE);
    assert_eq!(commit("b", b.member_epoch), ec::NONE);
    assert_eq!(commit("b", b.member_epoch - 1), ec::STALE_MEMBER_EPOCH);
    assert_eq!(commit("b", b.member_epoch + 1), ec::FENCED_MEMBER_EPOCH);
    assert_eq!(commit("nobody", 1), ec::UNKNOWN_MEMBER_ID);
    assert_eq!(
        co.inner.consumer_fetch_error("g", "b", b.member_epoch - 1),
        ec::STALE_MEMBER_EPOCH
    );
    assert_eq!(
        co.inner.consumer_fetch_error("g", "b", b.member_epoch),
        ec::NONE
    );
    // DeleteGroups refuses a consumer group with members.
    assert_eq!(
        co.inner.delete_groups(&["g".into()]),
        vec![ec::NON_EMPTY_GROUP]
    );
}

fn classic_join(group: &str) -> JoinParams {
    JoinParams {
        group_id: group.into(),
        member_id: "m-1".into(),
        instance_id: None,
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: Some(10_000),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), bytes::Bytes::new())],
        reason: None,
        member_id_required: false,
        client: ClientInfo::default(),
    }
}

#[tokio::test]
async fn one_group_id_is_either_classic_or_consumer() {
    let co = coordinator();
    let topics = image(&[("t", 1)]);
    ok(&Hb::join("g", "a", &["t"]).send(&co, &topics));
    // A classic JoinGroup to a consumer group with members.
    match co.inner.join(classic_join("g")) {
        Ok(o) => assert_eq!(o.error, ec::INCONSISTENT_GROUP_PROTOCOL),
        Err(_) => panic!("the join must be answered at once"),
    }
    // Once Empty, the group becomes a classic one.
    ok(&Hb::beat("g", "a", -1, None).send(&co, &topics));
    let mut join = classic_join("g");
    join.member_id = String::new();
    assert!(
        co.inner.join(join).is_err(),
        "the join waits for the rebalance"
    );
    assert!(co.inner.groups()["g"].consumer.is_none());
    // A consumer heartbeat to the (non-Empty) classic group.
    let o = Hb::join("g", "b", &["t"]).send(&co, &topics);
    assert_eq!(o.error, ec::GROUP_ID_NOT_FOUND);
}

#[tokio::test]
async fn a_static_member_that_leaves_for_now_keeps_its_partitions_reserved() {
    let co = coordinator();
    let topics = image(&[("t", 2)]);
    let mut h = Hb::join("g", "a", &["t"]);
    h.instance = Some("i-a");
    ok(&h.send(&co, &topics));
    let mut h = Hb::join("g", "b", &["t"]);
    h.instance = Some("i-b");
    let b = h.send(&co, &topics);
    ok(&b);
    // a revokes one partition, b gets it.
    let a = Hb::beat("g", "a", 1, Some(parts("t", &[0, 1]))).send(&co, &topics);
    let kept = a.assignment.unwrap();
    ok(&Hb::beat("g", "a", 1, Some(kept.clone())).send(&co, &topics));
    let b = Hb::beat("g", "b", 2, Some(Assignment::new())).send(&co, &topics);
    assert_eq!(count(&b.assignment.unwrap()), 1);
    // a leaves for now (-2).
    let mut h = Hb::beat("g", "a", -2, None);
    h.instance = Some("i-a");
    let o = h.send(&co, &topics);
    ok(&o);
    assert_eq!(o.member_epoch, -2);
    // Another member with a's instance id while it is away: it replaces a.
    let mut h = Hb::join("g", "a2", &["t"]);
    h.instance = Some("i-a");
    ok(&h.send(&co, &topics));
    // But b's instance id is taken by an active member.
    let mut h = Hb::join("g", "b2", &["t"]);
    h.instance = Some("i-b");
    assert_eq!(h.send(&co, &topics).error, ec::UNRELEASED_INSTANCE_ID);
}

#[tokio::test]
async fn after_a_restart_members_rejoin_and_find_their_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = image(&[("t", 2)]);
    let config = || GroupConfig {
        consumer_session_timeout: SESSION,
        ..GroupConfig::default()
    };
    {
        let co = GroupCoordinator::with_config(Some(dir.path().to_path_buf()), config())
            .expect("coordinator");
        let a = Hb::join("g", "a", &["t"]).send(&co, &topics);
        ok(&a);
        let errors = co.inner.commit(CommitParams {
            group_id: "g".into(),
            generation: a.member_epoch,
            member_id: "a".into(),
            instance_id: None,
            topics: vec![(
                "t".into(),
                vec![PartitionCommit {
                    partition: 1,
                    offset: 42,
                    leader_epoch: -1,
                    metadata: String::new(),
                }],
            )],
        });
        assert_eq!(errors[0].1[0].1, ec::NONE);
    }
    let co = GroupCoordinator::with_config(Some(dir.path().to_path_buf()), config())
        .expect("coordinator again");
    // The member's next heartbeat: unknown (not fatal), so it rejoins.
    let o = Hb::beat("g", "a", 1, None).send(&co, &topics);
    assert_eq!(o.error, ec::UNKNOWN_MEMBER_ID);
    let again = Hb::join("g", "a", &["t"]).send(&co, &topics);
    ok(&again);
    let offsets = co
        .inner
        .fetch_offsets("g", Some(vec![("t".into(), vec![1])]));
    assert_eq!(offsets[0].1[0].1.as_ref().map(|c| c.offset), Some(42));
}

#[tokio::test]
async fn list_describe_and_consumer_group_describe_see_the_group_as_kafka_does() {
    use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, ListGroupsRequest};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol_0_18::messages::ConsumerGroupDescribeRequest;

    let co = coordinator();
    let topics = image(&[("t", 2)]);
    ok(&Hb::join("cg", "a", &["t"]).send(&co, &topics));
    let mut join = classic_join("classic");
    join.member_id = String::new();
    assert!(
        co.inner.join(join).is_err(),
        "the classic join waits for its rebalance"
    );

    let list = |types: &[&str]| {
        let mut req = ListGroupsRequest::default();
        req.types_filter = types
            .iter()
            .map(|t| StrBytes::from_string(t.to_string()))
            .collect();
        let resp = futures_lite(co.list_groups(req, 5));
        resp.groups
            .iter()
            .map(|g| {
                (
                    g.group_id.to_string(),
                    g.group_type.to_string(),
                    g.group_state.to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(&["consumer"]),
        vec![(
            "cg".to_string(),
            "consumer".to_string(),
            "Stable".to_string()
        )]
    );
    assert_eq!(list(&["classic"]).len(), 1);
    assert_eq!(list(&["classic"])[0].0, "classic");
    assert_eq!(list(&[]).len(), 2);

    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(StrBytes::from_static_str("cg"))];
    let resp = futures_lite(co.describe_groups(req, 5));
    assert_eq!(resp.groups[0].group_state.as_str(), "Dead");

    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![
        kafka_protocol_0_18::messages::GroupId(
            kafka_protocol_0_18::protocol::StrBytes::from_static_str("cg"),
        ),
        kafka_protocol_0_18::messages::GroupId(
            kafka_protocol_0_18::protocol::StrBytes::from_static_str("classic"),
        ),
        kafka_protocol_0_18::messages::GroupId(
            kafka_protocol_0_18::protocol::StrBytes::from_static_str("none"),
        ),
    ]);
    let resp = co.consumer_group_describe(req, 1, &topics);
    let cg = &resp.groups[0];
    assert_eq!(cg.error_code, ec::NONE);
    assert_eq!(cg.group_state.as_str(), "Stable");
    assert_eq!(cg.assignor_name.as_str(), "uniform");
    assert_eq!((cg.group_epoch, cg.assignment_epoch), (1, 1));
    assert_eq!(cg.members.len(), 1);
    let m = &cg.members[0];
    assert_eq!(m.member_type, 1);
    assert_eq!(m.assignment.topic_partitions[0].topic_name.0.as_str(), "t");
    assert_eq!(m.assignment.topic_partitions[0].partitions, vec![0, 1]);
    assert_eq!(m.assignment, m.target_assignment);
    assert_eq!(resp.groups[1].error_code, ec::GROUP_ID_NOT_FOUND);
    assert_eq!(resp.groups[2].error_code, ec::GROUP_ID_NOT_FOUND);
}

/// Runs a future that never waits (the coordinator's list and describe answer at once).
fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the answer waited"),
    }
}
