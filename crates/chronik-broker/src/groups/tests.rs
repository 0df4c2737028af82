//! Coordinator tests: real tokio tasks racing through the real coordinator, every response
//! also encoded with kafka-protocol at the version it was built for.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::offset_log;
use super::*;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

/// Encodes a response the way the broker will; a field set that the version lacks fails here.
fn encodes<T: Encodable>(msg: &T, version: i16) {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encoding at v{version}: {e}"));
}

fn fast_config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay: Duration::from_millis(50),
        min_session_timeout: Duration::from_millis(10),
        ..GroupConfig::default()
    }
}

fn coordinator() -> Arc<GroupCoordinator> {
    GroupCoordinator::with_config(None, fast_config()).expect("coordinator")
}

fn client(id: &str) -> ClientInfo {
    ClientInfo {
        client_id: id.to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

struct JoinArgs<'a> {
    group: &'a str,
    member_id: &'a str,
    protocols: &'a [(&'a str, &'a [u8])],
    protocol_type: &'a str,
    session_ms: i32,
    rebalance_ms: i32,
}

impl Default for JoinArgs<'_> {
    fn default() -> Self {
        JoinArgs {
            group: "g",
            member_id: "",
            protocols: &[("range", b"meta")],
            protocol_type: "consumer",
            session_ms: 10_000,
            rebalance_ms: 5_000,
        }
    }
}

fn join_request(a: &JoinArgs<'_>) -> JoinGroupRequest {
    let mut r = JoinGroupRequest::default();
    r.group_id = gid(a.group);
    r.session_timeout_ms = a.session_ms;
    r.rebalance_timeout_ms = a.rebalance_ms;
    r.member_id = s(a.member_id);
    r.protocol_type = s(a.protocol_type);
    r.protocols = a
        .protocols
        .iter()
        .map(|(name, meta)| {
            let mut p = JoinGroupRequestProtocol::default();
            p.name = s(name);
            p.metadata = Bytes::copy_from_slice(meta);
            p
        })
        .collect();
    r
}

async fn join_raw(
    co: &GroupCoordinator,
    a: &JoinArgs<'_>,
    version: i16,
    who: &str,
) -> JoinGroupResponse {
    let r = co
        .join_group_from(join_request(a), version, client(who))
        .await;
    encodes(&r, version);
    r
}

/// Joins as a new member, doing the MEMBER_ID_REQUIRED round trip on v4+.
async fn join_new(
    co: &GroupCoordinator,
    a: &JoinArgs<'_>,
    version: i16,
    who: &str,
) -> JoinGroupResponse {
    let first = join_raw(co, a, version, who).await;
    if version >= 4 {
        assert_eq!(first.error_code, ec::MEMBER_ID_REQUIRED);
        assert!(first.member_id.starts_with(&format!("{who}-")));
        let id = first.member_id.to_string();
        let again = JoinArgs {
            member_id: &id,
            ..JoinArgs { ..*a }
        };
        join_raw(co, &again, version, who).await
    } else {
        first
    }
}

async fn sync(
    co: &GroupCoordinator,
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
    version: i16,
) -> SyncGroupResponse {
    let mut r = SyncGroupRequest::default();
    r.group_id = gid(group);
    r.member_id = s(member);
    r.generation_id = generation;
    r.assignments = assignments
        .iter()
        .map(|(m, a)| {
            let mut x = SyncGroupRequestAssignment::default();
            x.member_id = s(m);
            x.assignment = Bytes::copy_from_slice(a);
            x
        })
        .collect();
    let resp = co.sync_group(r, version).await;
    encodes(&resp, version);
    resp
}

async fn heartbeat(co: &GroupCoordinator, group: &str, member: &str, generation: i32) -> i16 {
    let mut r = HeartbeatRequest::default();
    r.group_id = gid(group);
    r.member_id = s(member);
    r.generation_id = generation;
    let resp = co.heartbeat(r, 4).await;
    encodes(&resp, 4);
    resp.error_code
}

async fn describe(co: &GroupCoordinator, group: &str, version: i16) -> DescribedGroup {
    let mut r = DescribeGroupsRequest::default();
    r.groups = vec![gid(group)];
    let resp = co.describe_groups(r, version).await;
    encodes(&resp, version);
    resp.groups.into_iter().next().expect("one group")
}

impl Clone for JoinArgs<'_> {
    fn clone(&self) -> Self {
        JoinArgs { ..*self }
    }
}

#[tokio::test]
async fn two_members_joining_together_share_one_generation_and_one_leader() {
    let co = coordinator();
    let a = JoinArgs::default();
    let (r1, r2) = tokio::join!(join_new(&co, &a, 5, "c1"), join_new(&co, &a, 5, "c2"));
    assert_eq!(r1.error_code, 0);
    assert_eq!(r2.error_code, 0);
    assert_eq!(r1.generation_id, r2.generation_id);
    assert_eq!(r1.generation_id, 1);
    assert_eq!(r1.leader, r2.leader);
    let (leader, follower) = if r1.leader == r1.member_id {
        (r1, r2)
    } else {
        (r2, r1)
    };
    assert_eq!(leader.members.len(), 2);
    assert!(follower.members.is_empty());
    assert_eq!(leader.protocol_name.as_deref(), Some("range"));
    assert!(leader
        .members
        .iter()
        .all(|m| m.metadata.as_ref() == b"meta"));

    // The follower syncs first and waits for the leader's assignment.
    let generation = leader.generation_id;
    let (lid, fid) = (leader.member_id.to_string(), follower.member_id.to_string());
    let follower_sync = sync(&co, "g", &fid, generation, &[], 5);
    let leader_sync = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        sync(
            &co,
            "g",
            &lid,
            generation,
            &[(&lid, b"for-leader"), (&fid, b"for-follower")],
            5,
        )
        .await
    };
    let (fs, ls) = tokio::join!(follower_sync, leader_sync);
    assert_eq!(fs.error_code, 0);
    assert_eq!(ls.error_code, 0);
    assert_eq!(fs.assignment.as_ref(), b"for-follower");
    assert_eq!(ls.assignment.as_ref(), b"for-leader");
    assert_eq!(ls.protocol_name.as_deref(), Some("range"));
    assert_eq!(ls.protocol_type.as_deref(), Some("consumer"));

    let d = describe(&co, "g", 5).await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members.len(), 2);
    let fm = d
        .members
        .iter()
        .find(|m| m.member_id.as_str() == fid)
        .expect("follower described");
    assert_eq!(fm.member_assignment.as_ref(), b"for-follower");
    assert_eq!(fm.member_metadata.as_ref(), b"meta");
    assert_eq!(heartbeat(&co, "g", &fid, generation).await, 0);
}

#[tokio::test]
async fn three_old_protocol_members_joining_together_share_one_generation() {
    let co = coordinator();
    let a = JoinArgs::default();
    let (r1, r2, r3) = tokio::join!(
        join_new(&co, &a, 2, "c1"),
        join_new(&co, &a, 2, "c2"),
        join_new(&co, &a, 2, "c3")
    );
    let all = [&r1, &r2, &r3];
    assert!(all.iter().all(|r| r.error_code == 0));
    assert!(all.iter().all(|r| r.generation_id == r1.generation_id));
    assert!(all.iter().all(|r| r.leader == r1.leader));
    let leaders: Vec<_> = all.iter().filter(|r| r.leader == r.member_id).collect();
    assert_eq!(leaders.len(), 1);
    assert_eq!(leaders[0].members.len(), 3);
    assert_eq!(
        all.iter().filter(|r| r.members.is_empty()).count(),
        2,
        "followers get no member list"
    );
}

/// Brings up a Stable group of members joined with `version`; returns (ids, generation).
async fn stable_group(
    co: &GroupCoordinator,
    a: &JoinArgs<'_>,
    names: &[&str],
    version: i16,
) -> (Vec<String>, i32) {
    let joins = names.iter().map(|n| join_new(co, a, version, n));
    let responses = futures_join_all(joins).await;
    let generation = responses[0].generation_id;
    let leader = responses[0].leader.to_string();
    let ids: Vec<String> = responses.iter().map(|r| r.member_id.to_string()).collect();
    assert!(responses.iter().all(|r| r.generation_id == generation));
    let syncs = ids.iter().map(|id| {
        let assignments: Vec<(&str, &[u8])> = if *id == leader {
            ids.iter().map(|i| (i.as_str(), &b"x"[..])).collect()
        } else {
            Vec::new()
        };
        let id = id.clone();
        async move { sync(co, a.group, &id, generation, &assignments, 3).await }
    });
    let syncs = futures_join_all(syncs).await;
    assert!(syncs.iter().all(|r| r.error_code == 0));
    (ids, generation)
}

/// Runs futures concurrently (no `futures` crate needed).
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("ready")).collect()
}

#[tokio::test]
async fn a_new_member_makes_heartbeats_ask_for_a_rejoin_into_the_next_generation() {
    let co = coordinator();
    let a = JoinArgs::default();
    let (ids, generation) = stable_group(&co, &a, &["c1", "c2"], 5).await;
    assert_eq!(heartbeat(&co, "g", &ids[0], generation).await, 0);

    let co2 = Arc::clone(&co);
    let third = tokio::spawn(async move {
        let a = JoinArgs::default();
        join_new(&co2, &a, 5, "c3").await
    });
    // Heartbeats now say REBALANCE_IN_PROGRESS.
    let mut saw = false;
    for _ in 0..50 {
        if heartbeat(&co, "g", &ids[0], generation).await == ec::REBALANCE_IN_PROGRESS {
            saw = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw, "heartbeat never reported the rebalance");
    assert_eq!(
        heartbeat(&co, "g", &ids[1], generation).await,
        ec::REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        describe(&co, "g", 5).await.group_state.as_str(),
        "PreparingRebalance"
    );
    // A sync now is refused too.
    assert_eq!(
        sync(&co, "g", &ids[1], generation, &[], 5).await.error_code,
        ec::REBALANCE_IN_PROGRESS
    );
    let rejoin = |id: String| {
        let co = Arc::clone(&co);
        async move {
            let a = JoinArgs {
                member_id: &id,
                ..JoinArgs::default()
            };
            join_raw(&co, &a, 5, "old").await
        }
    };
    let (r1, r2) = tokio::join!(rejoin(ids[0].clone()), rejoin(ids[1].clone()));
    let r3 = third.await.expect("third joined");
    for r in [&r1, &r2, &r3] {
        assert_eq!(r.error_code, 0);
        assert_eq!(r.generation_id, generation + 1);
    }
    let leader_count = [&r1, &r2, &r3]
        .iter()
        .filter(|r| r.leader == r.member_id)
        .count();
    assert_eq!(leader_count, 1);
    // The first member to join stays leader.
    assert_eq!(r1.leader.as_str(), ids[0]);
    assert_eq!(r1.members.len(), 3);
    assert_eq!(
        heartbeat(&co, "g", &ids[0], generation).await,
        ec::ILLEGAL_GENERATION
    );
}

#[tokio::test]
async fn a_silent_member_is_removed_when_its_session_times_out() {
    let co = coordinator();
    let a = JoinArgs {
        session_ms: 300,
        rebalance_ms: 2_000,
        ..JoinArgs::default()
    };
    let (ids, generation) = stable_group(&co, &a, &["talker", "silent"], 4).await;
    let talker = ids[0].clone();
    // The talker keeps heartbeating; the other member says nothing.
    let mut rebalance = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match heartbeat(&co, "g", &talker, generation).await {
            0 => {}
            ec::REBALANCE_IN_PROGRESS => {
                rebalance = true;
                break;
            }
            other => panic!("unexpected heartbeat error {other}"),
        }
    }
    assert!(rebalance, "the expiry never triggered a rebalance");
    assert_eq!(
        heartbeat(&co, "g", &ids[1], generation).await,
        ec::UNKNOWN_MEMBER_ID
    );
    let again = JoinArgs {
        member_id: &talker,
        ..a.clone()
    };
    let r = join_raw(&co, &again, 4, "talker").await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
    let d = describe(&co, "g", 4).await;
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id.as_str(), talker);
}

#[tokio::test]
async fn a_member_that_does_not_rejoin_in_time_is_dropped_from_the_rebalance() {
    let co = coordinator();
    let a = JoinArgs {
        rebalance_ms: 300,
        ..JoinArgs::default()
    };
    let (ids, generation) = stable_group(&co, &a, &["c1", "c2"], 5).await;
    let started = std::time::Instant::now();
    let co2 = Arc::clone(&co);
    let newcomer = tokio::spawn(async move {
        let a = JoinArgs {
            rebalance_ms: 300,
            ..JoinArgs::default()
        };
        join_new(&co2, &a, 5, "c3").await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = JoinArgs {
        member_id: &ids[0],
        ..a.clone()
    };
    // Only c1 rejoins; c2 stays silent.
    let r1 = join_raw(&co, &again, 5, "c1").await;
    let r3 = newcomer.await.expect("newcomer");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(r1.error_code, 0);
    assert_eq!(r3.error_code, 0);
    assert_eq!(r1.generation_id, generation + 1);
    assert_eq!(
        r1.members.len(),
        2,
        "leader sees only the members that rejoined"
    );
    assert!(r1.members.iter().all(|m| m.member_id.as_str() != ids[1]));
}

#[tokio::test]
async fn leaving_triggers_a_rebalance_and_reports_per_member_errors() {
    let co = coordinator();
    let a = JoinArgs::default();
    let (ids, generation) = stable_group(&co, &a, &["c1", "c2", "c3"], 5).await;

    // v1: one member leaves.
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = gid("g");
    leave.member_id = s(&ids[2]);
    let r = co.leave_group(leave, 1).await;
    encodes(&r, 1);
    assert_eq!(r.error_code, 0);
    assert_eq!(
        heartbeat(&co, "g", &ids[0], generation).await,
        ec::REBALANCE_IN_PROGRESS
    );

    // v3: one known member and one unknown.
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = gid("g");
    leave.members = [ids[1].as_str(), "nobody"]
        .iter()
        .map(|id| {
            let mut m = MemberIdentity::default();
            m.member_id = s(id);
            m
        })
        .collect();
    let r = co.leave_group(leave, 3).await;
    encodes(&r, 3);
    assert_eq!(r.error_code, 0);
    let errors: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
    assert_eq!(errors, vec![0, ec::UNKNOWN_MEMBER_ID]);

    // The remaining member rejoins alone.
    let again = JoinArgs {
        member_id: &ids[0],
        ..JoinArgs::default()
    };
    let r = join_raw(&co, &again, 5, "c1").await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);

    // v0 leave of an unknown member: the error is top-level.
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = gid("g");
    leave.member_id = s("nobody");
    let r = co.leave_group(leave, 0).await;
    encodes(&r, 0);
    assert_eq!(r.error_code, ec::UNKNOWN_MEMBER_ID);

    // Last member leaves: the group becomes Empty and may be deleted.
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = gid("g");
    leave.member_id = s(&ids[0]);
    assert_eq!(co.leave_group(leave, 2).await.error_code, 0);
    assert_eq!(describe(&co, "g", 0).await.group_state.as_str(), "Empty");
}

fn commit_request(
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[(&str, i32, i64, Option<&str>)],
) -> OffsetCommitRequest {
    let mut r = OffsetCommitRequest::default();
    r.group_id = gid(group);
    r.generation_id_or_member_epoch = generation;
    r.member_id = s(member);
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in offsets {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_metadata = metadata.map(s);
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = OffsetCommitRequestTopic::default();
                t.name = TopicName(s(topic));
                t.partitions.push(p);
                topics.push(t);
            }
        }
    }
    r.topics = topics;
    r
}

async fn commit(co: &GroupCoordinator, req: OffsetCommitRequest, version: i16) -> Vec<i16> {
    let r = co.offset_commit(req, version).await;
    encodes(&r, version);
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// OffsetFetch at any version; `topics` None asks for everything. Returns
/// (topic, partition, offset, metadata, error) in response order.
async fn fetch(
    co: &GroupCoordinator,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
    version: i16,
) -> Vec<(String, i32, i64, Option<String>, i16)> {
    let mut req = OffsetFetchRequest::default();
    if version >= 8 {
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = gid(group);
        g.topics = topics.map(|ts| {
            ts.iter()
                .map(|(name, parts)| {
                    let mut t = OffsetFetchRequestTopics::default();
                    t.name = TopicName(s(name));
                    t.partition_indexes = parts.to_vec();
                    t
                })
                .collect()
        });
        req.groups = vec![g];
    } else {
        req.group_id = gid(group);
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|(name, parts)| {
                    let mut t = OffsetFetchRequestTopic::default();
                    t.name = TopicName(s(name));
                    t.partition_indexes = parts.to_vec();
                    t
                })
                .collect()
        });
    }
    let r = co.offset_fetch(req, version).await;
    encodes(&r, version);
    let mut out = Vec::new();
    if version >= 8 {
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].group_id.as_str(), group);
        for t in &r.groups[0].topics {
            for p in &t.partitions {
                out.push((
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_ref().map(|m| m.to_string()),
                    p.error_code,
                ));
            }
        }
    } else {
        for t in &r.topics {
            for p in &t.partitions {
                out.push((
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_ref().map(|m| m.to_string()),
                    p.error_code,
                ));
            }
        }
    }
    out
}

fn row(t: &str, p: i32, o: i64, m: &str) -> (String, i32, i64, Option<String>, i16) {
    (t.to_string(), p, o, Some(m.to_string()), 0)
}

#[tokio::test]
async fn offsets_round_trip_in_v1_v7_and_v8_shapes() {
    let co = coordinator();
    // v1 simple commit (generation -1, no member).
    let req = commit_request(
        "simple",
        -1,
        "",
        &[("t", 0, 42, Some("m0")), ("t", 1, 7, None)],
    );
    assert_eq!(commit(&co, req, 1).await, vec![0, 0]);
    let got = fetch(&co, "simple", Some(&[("t", &[0, 1, 2])]), 1).await;
    assert_eq!(
        got,
        vec![
            row("t", 0, 42, "m0"),
            row("t", 1, 7, ""),
            row("t", 2, -1, "")
        ]
    );

    // v7 commit from a real member of a Stable group, with a leader epoch.
    let a = JoinArgs {
        group: "managed",
        ..JoinArgs::default()
    };
    let (ids, generation) = stable_group(&co, &a, &["c1"], 5).await;
    let mut req = commit_request(
        "managed",
        generation,
        &ids[0],
        &[("orders", 3, 1000, Some("x"))],
    );
    req.topics[0].partitions[0].committed_leader_epoch = 5;
    assert_eq!(commit(&co, req, 7).await, vec![0]);
    let got = fetch(&co, "managed", Some(&[("orders", &[3])]), 7).await;
    assert_eq!(got, vec![row("orders", 3, 1000, "x")]);

    // v8 shape, all partitions (topics null).
    let req = commit_request(
        "managed",
        generation,
        &ids[0],
        &[("orders", 0, 5, Some(""))],
    );
    assert_eq!(commit(&co, req, 8).await, vec![0]);
    let got = fetch(&co, "managed", None, 8).await;
    assert_eq!(
        got,
        vec![row("orders", 0, 5, ""), row("orders", 3, 1000, "x")]
    );
    // v2+ null topics in the single-group shape.
    let got = fetch(&co, "simple", None, 2).await;
    assert_eq!(got, vec![row("t", 0, 42, "m0"), row("t", 1, 7, "")]);
    // Unknown group: -1 for asked partitions, nothing for "all".
    assert_eq!(
        fetch(&co, "nobody", Some(&[("t", &[0])]), 8).await,
        vec![row("t", 0, -1, "")]
    );
    assert!(fetch(&co, "nobody", None, 8).await.is_empty());

    // Leader epoch comes back from v5 on.
    let mut req = OffsetFetchRequest::default();
    req.group_id = gid("managed");
    req.topics = None;
    let r = co.offset_fetch(req, 6).await;
    encodes(&r, 6);
    let p3 = r.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == 3)
        .expect("partition 3");
    assert_eq!(p3.committed_leader_epoch, 5);
}

#[tokio::test]
async fn commit_checks_member_and_generation() {
    let co = coordinator();
    let a = JoinArgs::default();
    let (ids, generation) = stable_group(&co, &a, &["c1"], 5).await;
    let offs = [("t", 0, 1, None)];
    assert_eq!(
        commit(&co, commit_request("g", generation + 1, &ids[0], &offs), 5).await,
        vec![ec::ILLEGAL_GENERATION]
    );
    assert_eq!(
        commit(&co, commit_request("g", generation, "stranger", &offs), 5).await,
        vec![ec::UNKNOWN_MEMBER_ID]
    );
    assert_eq!(
        commit(&co, commit_request("nogroup", 3, "m", &offs), 5).await,
        vec![ec::ILLEGAL_GENERATION]
    );
    let long = "x".repeat(5000);
    assert_eq!(
        commit(
            &co,
            commit_request("g", generation, &ids[0], &[("t", 0, 1, Some(&long))]),
            5
        )
        .await,
        vec![ec::OFFSET_METADATA_TOO_LARGE]
    );
    // Nothing above was stored.
    assert_eq!(
        fetch(&co, "g", Some(&[("t", &[0])]), 5).await,
        vec![row("t", 0, -1, "")]
    );
    assert_eq!(
        commit(&co, commit_request("g", generation, &ids[0], &offs), 5).await,
        vec![0]
    );
    assert_eq!(
        fetch(&co, "g", Some(&[("t", &[0])]), 5).await,
        vec![row("t", 0, 1, "")]
    );
}

#[tokio::test]
async fn offsets_survive_a_new_coordinator_even_with_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(offset_log::FILE_NAME);
    {
        let co = GroupCoordinator::with_config(Some(dir.path().to_path_buf()), fast_config())
            .expect("first");
        let req = commit_request("g", -1, "", &[("t", 0, 10, Some("a")), ("t", 1, 20, None)]);
        assert_eq!(commit(&co, req, 2).await, vec![0, 0]);
        let req = commit_request("g", -1, "", &[("t", 0, 11, Some("b"))]);
        assert_eq!(commit(&co, req, 2).await, vec![0]);
        let req = commit_request("gone", -1, "", &[("t", 0, 1, None)]);
        assert_eq!(commit(&co, req, 2).await, vec![0]);
        // A group whose member joined and left: its protocol type is remembered.
        let a = JoinArgs {
            group: "managed",
            ..JoinArgs::default()
        };
        let r = join_new(&co, &a, 5, "c").await;
        assert_eq!(r.error_code, 0);
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = gid("managed");
        leave.member_id = r.member_id.clone();
        assert_eq!(co.leave_group(leave, 2).await.error_code, 0);
        let mut del = DeleteGroupsRequest::default();
        del.groups_names = vec![gid("gone")];
        let r = co.delete_groups(del, 2).await;
        encodes(&r, 2);
        assert_eq!(r.results[0].error_code, 0);
    }
    let good_len = std::fs::metadata(&path).expect("log exists").len();
    // Simulate a crash mid-write: half a record at the end.
    let mut torn = Vec::new();
    offset_log::frame(
        &offset_log::LogRecord::DeleteGroup {
            group: "g".to_string(),
        },
        &mut torn,
    );
    torn.truncate(torn.len() - 1);
    let mut bytes = std::fs::read(&path).expect("read log");
    bytes.extend_from_slice(&torn);
    std::fs::write(&path, &bytes).expect("write torn log");
    {
        let co = GroupCoordinator::with_config(Some(dir.path().to_path_buf()), fast_config())
            .expect("second");
        assert_eq!(std::fs::metadata(&path).expect("log").len(), good_len);
        assert_eq!(
            fetch(&co, "g", None, 3).await,
            vec![row("t", 0, 11, "b"), row("t", 1, 20, "")]
        );
        assert!(fetch(&co, "gone", None, 3).await.is_empty());
        let r = co.list_groups(ListGroupsRequest::default(), 3).await;
        let listed: Vec<(String, String)> = r
            .groups
            .iter()
            .map(|g| (g.group_id.to_string(), g.protocol_type.to_string()))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("g".to_string(), String::new()),
                ("managed".to_string(), "consumer".to_string())
            ]
        );
        assert_eq!(
            describe(&co, "managed", 3).await.group_state.as_str(),
            "Empty"
        );
        // A commit after the recovered tail is readable after the next restart.
        let req = commit_request("g", -1, "", &[("t", 2, 30, None)]);
        assert_eq!(commit(&co, req, 9).await, vec![0]);
    }
    // Flip a byte inside the last record: its CRC fails and only it is dropped.
    let co = GroupCoordinator::with_config(Some(dir.path().to_path_buf()), fast_config())
        .expect("third");
    assert_eq!(
        fetch(&co, "g", None, 9).await,
        vec![
            row("t", 0, 11, "b"),
            row("t", 1, 20, ""),
            row("t", 2, 30, "")
        ]
    );
    drop(co);
    let mut bytes = std::fs::read(&path).expect("read log");
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write corrupt log");
    let co = GroupCoordinator::with_config(Some(dir.path().to_path_buf()), fast_config())
        .expect("fourth");
    assert_eq!(
        fetch(&co, "g", None, 9).await,
        vec![row("t", 0, 11, "b"), row("t", 1, 20, "")]
    );
}

#[test]
fn replay_stops_at_garbage_and_oversized_lengths() {
    let mut bytes = Vec::new();
    let record = offset_log::LogRecord::DeleteGroup {
        group: "x".to_string(),
    };
    offset_log::frame(&record, &mut bytes);
    let one = bytes.len();
    // A length far beyond the file: must stop, not allocate.
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    bytes.extend_from_slice(&[0; 12]);
    let (records, good) = offset_log::replay(&bytes);
    assert_eq!(records, vec![record.clone()]);
    assert_eq!(good, one);
    // Valid CRC but an unknown tag.
    let mut bytes = Vec::new();
    offset_log::frame(&record, &mut bytes);
    let payload = [9u8, 0, 0];
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    bytes.extend_from_slice(&payload);
    assert_eq!(offset_log::replay(&bytes), (vec![record], one));
}

#[tokio::test]
async fn join_errors_match_kafka() {
    let co = coordinator();
    let a = JoinArgs::default();
    let (ids, generation) = stable_group(&co, &a, &["c1"], 5).await;

    // Different protocol type.
    let other_type = JoinArgs {
        protocol_type: "connect",
        ..JoinArgs::default()
    };
    let r = join_raw(&co, &other_type, 3, "x").await;
    assert_eq!(r.error_code, ec::INCONSISTENT_GROUP_PROTOCOL);
    // No protocol in common.
    let other_protocols = JoinArgs {
        protocols: &[("roundrobin", b"")],
        ..JoinArgs::default()
    };
    let r = join_raw(&co, &other_protocols, 7, "x").await;
    assert_eq!(r.error_code, ec::INCONSISTENT_GROUP_PROTOCOL);
    assert_eq!(
        r.protocol_name, None,
        "v7+ error responses carry a null protocol name"
    );
    // Unknown member id.
    let unknown = JoinArgs {
        member_id: "who",
        ..JoinArgs::default()
    };
    assert_eq!(
        join_raw(&co, &unknown, 5, "x").await.error_code,
        ec::UNKNOWN_MEMBER_ID
    );
    let unknown_group = JoinArgs {
        group: "fresh",
        member_id: "who",
        ..JoinArgs::default()
    };
    assert_eq!(
        join_raw(&co, &unknown_group, 5, "x").await.error_code,
        ec::UNKNOWN_MEMBER_ID
    );
    // Session timeout bounds and group id.
    let bad_session = JoinArgs {
        session_ms: 1,
        ..JoinArgs::default()
    };
    assert_eq!(
        join_raw(&co, &bad_session, 5, "x").await.error_code,
        ec::INVALID_SESSION_TIMEOUT
    );
    let no_id = JoinArgs {
        group: "",
        ..JoinArgs::default()
    };
    assert_eq!(
        join_raw(&co, &no_id, 0, "x").await.error_code,
        ec::INVALID_GROUP_ID
    );

    // Sync and heartbeat errors.
    assert_eq!(
        sync(&co, "g", "who", generation, &[], 1).await.error_code,
        ec::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        sync(&co, "g", &ids[0], generation + 7, &[], 1)
            .await
            .error_code,
        ec::ILLEGAL_GENERATION
    );
    assert_eq!(
        sync(&co, "nogroup", &ids[0], generation, &[], 0)
            .await
            .error_code,
        ec::UNKNOWN_MEMBER_ID
    );
    let mut wrong = SyncGroupRequest::default();
    wrong.group_id = gid("g");
    wrong.member_id = s(&ids[0]);
    wrong.generation_id = generation;
    wrong.protocol_type = Some(s("consumer"));
    wrong.protocol_name = Some(s("roundrobin"));
    let r = co.sync_group(wrong, 5).await;
    encodes(&r, 5);
    assert_eq!(r.error_code, ec::INCONSISTENT_GROUP_PROTOCOL);
    assert_eq!(
        heartbeat(&co, "g", "who", generation).await,
        ec::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        heartbeat(&co, "g", &ids[0], generation - 1).await,
        ec::ILLEGAL_GENERATION
    );
    assert_eq!(
        heartbeat(&co, "nogroup", "m", 1).await,
        ec::UNKNOWN_MEMBER_ID
    );
    // A Stable member rejoining unchanged gets the current generation back at once.
    let same = JoinArgs {
        member_id: &ids[0],
        ..JoinArgs::default()
    };
    let r = join_raw(&co, &same, 5, "c1").await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.generation_id,
        generation + 1,
        "a leader rejoin rebalances"
    );
}

#[tokio::test]
async fn the_protocol_is_chosen_by_vote_among_those_all_members_support() {
    let co = coordinator();
    let leader_prefs = JoinArgs {
        protocols: &[
            ("cooperative-sticky", b"c"),
            ("range", b"r"),
            ("roundrobin", b"o"),
        ],
        ..JoinArgs::default()
    };
    let follower_prefs = JoinArgs {
        protocols: &[("range", b"r2"), ("roundrobin", b"o2")],
        ..JoinArgs::default()
    };
    let (r1, r2) = tokio::join!(
        join_new(&co, &leader_prefs, 3, "a"),
        join_new(&co, &follower_prefs, 3, "b")
    );
    assert_eq!(r1.protocol_name.as_deref(), Some("range"));
    assert_eq!(r2.protocol_name.as_deref(), Some("range"));
    let leader = if r1.leader == r1.member_id { &r1 } else { &r2 };
    let mut metas: Vec<&[u8]> = leader.members.iter().map(|m| m.metadata.as_ref()).collect();
    metas.sort();
    assert_eq!(metas, vec![&b"r"[..], &b"r2"[..]]);
}

#[tokio::test]
async fn describe_list_and_delete_groups() {
    let co = coordinator();
    let a = JoinArgs {
        group: "busy",
        ..JoinArgs::default()
    };
    let _ = stable_group(&co, &a, &["c1"], 5).await;
    let req = commit_request("idle", -1, "", &[("t", 0, 1, None)]);
    assert_eq!(commit(&co, req, 2).await, vec![0]);

    for version in 0..=5 {
        let d = describe(&co, "nothing", version).await;
        assert_eq!(d.error_code, 0);
        assert_eq!(d.group_state.as_str(), "Dead");
    }
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![gid("busy")];
    req.include_authorized_operations = true;
    let r = co.describe_groups(req, 5).await;
    encodes(&r, 5);
    assert_ne!(r.groups[0].authorized_operations, i32::MIN);
    assert_eq!(r.groups[0].members[0].client_id.as_str(), "c1");

    for version in 0..=5 {
        let r = co.list_groups(ListGroupsRequest::default(), version).await;
        encodes(&r, version);
        let names: Vec<String> = r.groups.iter().map(|g| g.group_id.to_string()).collect();
        assert_eq!(names, vec!["busy".to_string(), "idle".to_string()]);
    }
    let mut req = ListGroupsRequest::default();
    req.states_filter = vec![s("stable")];
    let r = co.list_groups(req, 4).await;
    encodes(&r, 4);
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group_state.as_str(), "Stable");
    assert_eq!(r.groups[0].protocol_type.as_str(), "consumer");
    let mut req = ListGroupsRequest::default();
    req.types_filter = vec![s("consumer")];
    assert!(co.list_groups(req, 5).await.groups.is_empty());
    let mut req = ListGroupsRequest::default();
    req.types_filter = vec![s("Classic")];
    assert_eq!(co.list_groups(req, 5).await.groups.len(), 2);

    let snapshot = co.snapshot();
    let views: Vec<(&str, GroupState, usize, usize)> = snapshot
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.state,
                g.members.len(),
                g.committed_partitions,
            )
        })
        .collect();
    assert_eq!(
        views,
        vec![
            ("busy", GroupState::Stable, 1, 0),
            ("idle", GroupState::Empty, 0, 1)
        ]
    );
    assert_eq!(snapshot[0].protocol_name.as_deref(), Some("range"));

    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![gid("busy"), gid("idle"), gid("nothing")];
    let r = co.delete_groups(req, 1).await;
    encodes(&r, 1);
    let errors: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
    assert_eq!(errors, vec![ec::NON_EMPTY_GROUP, 0, ec::GROUP_ID_NOT_FOUND]);
    assert_eq!(describe(&co, "idle", 1).await.group_state.as_str(), "Dead");
    assert!(fetch(&co, "idle", None, 8).await.is_empty());
}

#[tokio::test]
async fn static_members_are_accepted_and_fenced_by_instance_id() {
    let co = coordinator();
    let mut req = join_request(&JoinArgs::default());
    req.group_instance_id = Some(s("instance-1"));
    // Static members get their id straight away, even on v5+.
    let r = co.join_group_from(req.clone(), 5, client("s")).await;
    encodes(&r, 5);
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.members[0].group_instance_id.as_deref(),
        Some("instance-1")
    );
    let first_id = r.member_id.to_string();
    // The same instance restarts with no member id: it replaces the old id.
    let co2 = Arc::clone(&co);
    let rejoin = tokio::spawn(async move { co2.join_group_from(req, 5, client("s")).await });
    let r2 = rejoin.await.expect("rejoin");
    assert_eq!(r2.error_code, 0);
    assert_ne!(r2.member_id.as_str(), first_id);
    let mut hb = HeartbeatRequest::default();
    hb.group_id = gid("g");
    hb.member_id = s(&first_id);
    hb.generation_id = r2.generation_id;
    hb.group_instance_id = Some(s("instance-1"));
    assert_eq!(co.heartbeat(hb, 3).await.error_code, ec::FENCED_INSTANCE_ID);
}

#[tokio::test]
async fn every_version_of_every_response_encodes() {
    let co = coordinator();
    for version in 0..=9 {
        let group = format!("v{version}");
        let a = JoinArgs {
            group: &group,
            ..JoinArgs::default()
        };
        let r = join_new(&co, &a, version, "c").await;
        assert_eq!(r.error_code, 0, "join v{version}");
        let sv = version.min(5);
        let s = sync(
            &co,
            &group,
            &r.member_id,
            r.generation_id,
            &[(&r.member_id, b"a")],
            sv,
        )
        .await;
        assert_eq!(s.error_code, 0);
        assert_eq!(s.assignment.as_ref(), b"a");
        let cv = version;
        let errs = commit(
            &co,
            commit_request(&group, r.generation_id, &r.member_id, &[("t", 0, 9, None)]),
            cv,
        )
        .await;
        assert_eq!(errs, vec![0], "commit v{cv}");
        let got = fetch(&co, &group, Some(&[("t", &[0])]), version).await;
        assert_eq!(got, vec![row("t", 0, 9, "")], "fetch v{version}");
        let d = describe(&co, &group, version.min(5)).await;
        assert_eq!(d.group_state.as_str(), "Stable");
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = gid(&group);
        let lv = version.min(5);
        if lv >= 3 {
            let mut m = MemberIdentity::default();
            m.member_id = r.member_id.clone();
            leave.members = vec![m];
        } else {
            leave.member_id = r.member_id.clone();
        }
        let l = co.leave_group(leave, lv).await;
        encodes(&l, lv);
        assert_eq!(l.error_code, 0);
    }
}

#[tokio::test]
async fn a_log_full_of_superseded_commits_is_compacted_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(offset_log::FILE_NAME);
    {
        let co = GroupCoordinator::with_config(Some(dir.path().to_path_buf()), fast_config())
            .expect("first");
        for offset in 0..1500 {
            let req = commit_request("g", -1, "", &[("t", 0, offset, Some("m"))]);
            assert_eq!(commit(&co, req, 2).await, vec![0]);
        }
    }
    let before = std::fs::metadata(&path).expect("log").len();
    let (_, live, recovery) = offset_log::OffsetLog::open(dir.path(), true).expect("reopen");
    assert!(recovery.compacted);
    assert_eq!(recovery.records, 1500);
    let after = std::fs::metadata(&path).expect("log").len();
    assert!(after * 100 < before, "{after} vs {before}");
    assert_eq!(live["g"].offsets[&("t".to_string(), 0)].offset, 1499);
    let co = GroupCoordinator::with_config(Some(dir.path().to_path_buf()), fast_config())
        .expect("after compaction");
    assert_eq!(fetch(&co, "g", None, 8).await, vec![row("t", 0, 1499, "m")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_join_does_not_hold_up_other_groups() {
    let co = coordinator();
    let slow = JoinArgs {
        group: "slow",
        rebalance_ms: 1_500,
        ..JoinArgs::default()
    };
    let (ids, _) = stable_group(&co, &slow, &["s1", "s2"], 5).await;
    // s1 rejoins as leader and must wait for s2, which never comes back.
    let co2 = Arc::clone(&co);
    let s1 = ids[0].clone();
    let stuck = tokio::spawn(async move {
        let a = JoinArgs {
            group: "slow",
            member_id: &s1,
            rebalance_ms: 1_500,
            ..JoinArgs::default()
        };
        join_raw(&co2, &a, 5, "s1").await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let fast = JoinArgs {
        group: "fast",
        ..JoinArgs::default()
    };
    let (fast_ids, fast_gen) = stable_group(&co, &fast, &["f1"], 5).await;
    assert_eq!(heartbeat(&co, "fast", &fast_ids[0], fast_gen).await, 0);
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "another group waited {:?}",
        started.elapsed()
    );
    assert!(
        !stuck.is_finished(),
        "the slow join should still be waiting"
    );
    let r = stuck.await.expect("slow join");
    assert_eq!(r.error_code, 0);
    assert_eq!(r.members.len(), 1, "the member that never rejoined is gone");
}

#[tokio::test]
async fn a_new_member_during_completing_rebalance_releases_waiting_syncs() {
    let co = coordinator();
    let a = JoinArgs::default();
    let (r1, r2) = tokio::join!(join_new(&co, &a, 5, "c1"), join_new(&co, &a, 5, "c2"));
    let follower = if r1.leader == r1.member_id { &r2 } else { &r1 };
    assert_eq!(
        describe(&co, "g", 5).await.group_state.as_str(),
        "CompletingRebalance"
    );
    // A heartbeat while the leader computes the assignment is fine.
    assert_eq!(
        heartbeat(&co, "g", &follower.member_id, follower.generation_id).await,
        0
    );
    let co2 = Arc::clone(&co);
    let (fid, generation) = (follower.member_id.to_string(), follower.generation_id);
    let waiting_sync = tokio::spawn(async move { sync(&co2, "g", &fid, generation, &[], 4).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        !waiting_sync.is_finished(),
        "the follower waits for the leader"
    );
    let co3 = Arc::clone(&co);
    let _newcomer = tokio::spawn(async move {
        let a = JoinArgs::default();
        join_new(&co3, &a, 5, "c3").await
    });
    let r = waiting_sync.await.expect("sync");
    assert_eq!(r.error_code, ec::REBALANCE_IN_PROGRESS);
    assert_eq!(
        describe(&co, "g", 5).await.group_state.as_str(),
        "PreparingRebalance"
    );
}

#[tokio::test]
async fn a_restarted_static_follower_gets_its_assignment_back_without_a_rebalance() {
    let co = coordinator();
    let static_join = |instance: &'static str| {
        let co = Arc::clone(&co);
        async move {
            let mut req = join_request(&JoinArgs::default());
            req.group_instance_id = Some(s(instance));
            let r = co.join_group_from(req, 5, client(instance)).await;
            encodes(&r, 5);
            r
        }
    };
    let r1 = static_join("i-1").await;
    let r2 = tokio::spawn(static_join("i-2"));
    let mut preparing = false;
    for _ in 0..200 {
        if describe(&co, "g", 5).await.group_state.as_str() == "PreparingRebalance" {
            preparing = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(preparing, "i-2's join never started a rebalance");
    // i-1 (leader) rejoins so the rebalance that i-2 started can complete.
    let mut again = join_request(&JoinArgs {
        member_id: &r1.member_id,
        ..JoinArgs::default()
    });
    again.group_instance_id = Some(s("i-1"));
    let l = co.join_group_from(again, 5, client("i-1")).await;
    let r2 = r2.await.expect("i-2 joined");
    assert_eq!(l.generation_id, r2.generation_id);
    let generation = l.generation_id;
    let (lid, fid) = (l.member_id.to_string(), r2.member_id.to_string());
    let assignments: [(&str, &[u8]); 2] = [(&lid, b"A"), (&fid, b"B")];
    let (ls, fs) = tokio::join!(
        sync(&co, "g", &lid, generation, &assignments, 5),
        sync(&co, "g", &fid, generation, &[], 5)
    );
    assert_eq!((ls.error_code, fs.error_code), (0, 0));

    // i-2 restarts: no member id, same instance id.
    let back = static_join("i-2").await;
    assert_eq!(back.error_code, 0);
    assert_eq!(back.generation_id, generation, "no rebalance");
    assert_ne!(back.member_id.as_str(), fid);
    assert_eq!(back.leader.as_str(), lid);
    let resync = sync(&co, "g", &back.member_id, generation, &[], 5).await;
    assert_eq!(resync.error_code, 0);
    assert_eq!(resync.assignment.as_ref(), b"B");
    assert_eq!(heartbeat(&co, "g", &lid, generation).await, 0);
    let mut old = HeartbeatRequest::default();
    old.group_id = gid("g");
    old.member_id = s(&fid);
    old.generation_id = generation;
    old.group_instance_id = Some(s("i-2"));
    assert_eq!(
        co.heartbeat(old, 4).await.error_code,
        ec::FENCED_INSTANCE_ID
    );
    assert_eq!(describe(&co, "g", 5).await.group_state.as_str(), "Stable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_members_on_worker_threads_land_in_one_generation_with_their_own_assignments() {
    const N: usize = 40;
    let co = GroupCoordinator::with_config(
        None,
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(250),
            ..fast_config()
        },
    )
    .expect("coordinator");
    let joins: Vec<_> = (0..N)
        .map(|i| {
            let co = Arc::clone(&co);
            tokio::spawn(async move {
                let name = format!("m{i}");
                join_new(&co, &JoinArgs::default(), 6, &name).await
            })
        })
        .collect();
    let mut responses = Vec::new();
    for j in joins {
        responses.push(j.await.expect("join task"));
    }
    let generation = responses[0].generation_id;
    assert!(responses
        .iter()
        .all(|r| r.error_code == 0 && r.generation_id == generation));
    let leaders: Vec<&JoinGroupResponse> = responses
        .iter()
        .filter(|r| r.leader == r.member_id)
        .collect();
    assert_eq!(leaders.len(), 1);
    assert_eq!(leaders[0].members.len(), N);
    let leader = leaders[0].member_id.to_string();
    let ids: Vec<String> = responses.iter().map(|r| r.member_id.to_string()).collect();
    let syncs: Vec<_> = ids
        .iter()
        .map(|id| {
            let co = Arc::clone(&co);
            let (id, leader, ids) = (id.clone(), leader.clone(), ids.clone());
            tokio::spawn(async move {
                let owned: Vec<(String, Vec<u8>)> = if id == leader {
                    ids.iter()
                        .map(|m| (m.clone(), format!("for {m}").into_bytes()))
                        .collect()
                } else {
                    Vec::new()
                };
                let assignments: Vec<(&str, &[u8])> = owned
                    .iter()
                    .map(|(m, a)| (m.as_str(), a.as_slice()))
                    .collect();
                let r = sync(&co, "g", &id, generation, &assignments, 4).await;
                (id, r)
            })
        })
        .collect();
    for s in syncs {
        let (id, r) = s.await.expect("sync task");
        assert_eq!(r.error_code, 0);
        assert_eq!(r.assignment.as_ref(), format!("for {id}").as_bytes());
    }
    let d = describe(&co, "g", 5).await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members.len(), N);
}
