//! The server-side assignors of the consumer group protocol (KIP-848): `uniform` (the default)
//! and `range`, picked by the members' `server_assignor` (librdkafka's
//! `group.remote.assignor`). Both take every member's subscribed topics (already resolved to
//! topic ids with their partition counts) and the current target assignment, and return the new
//! target assignment of every member. Plain data in and out.
//!
//! - `uniform` spreads the partitions of all subscribed topics so that members subscribed to the
//!   same topics hold numbers of partitions that differ by at most one, and keeps each partition
//!   where the current target has it when that stays balanced (sticky). Kafka's uniform assignor
//!   has the same aims; the partitions it picks to move can differ.
//! - `range` assigns each topic on its own: the members subscribed to it, sorted by instance id
//!   (static members) or member id, get consecutive ranges of its partitions, the first ones one
//!   partition more when they do not divide evenly, so members get the same partition numbers of
//!   co-partitioned topics (as Kafka's range assignor does). It is not sticky.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub(crate) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignor names served, the default first.
pub(crate) const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// What an assignor needs to know of one member.
#[derive(Debug, Clone)]
pub(crate) struct MemberSpec {
    pub id: String,
    pub instance_id: Option<String>,
    /// The topics it subscribes to that exist, by id.
    pub topics: BTreeSet<Uuid>,
    /// Its current target assignment (for stickiness).
    pub current: Assignment,
}

/// Runs the assignor `name` (an unknown name falls back to `uniform`). `partitions` gives each
/// subscribed topic's partition count. Every member of `members` gets an entry, maybe empty.
pub(crate) fn assign(
    name: &str,
    members: &[MemberSpec],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

/// The `range` assignor: per topic, consecutive ranges over the sorted subscribers.
pub(crate) fn range(
    members: &[MemberSpec],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.id.clone(), Assignment::new()))
        .collect();
    for (topic, &count) in partitions {
        let mut subscribers: Vec<&MemberSpec> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        subscribers.sort_by(|a, b| {
            let key = |m: &MemberSpec| (m.instance_id.clone().unwrap_or_default(), m.id.clone());
            key(a).cmp(&key(b))
        });
        let n = subscribers.len() as i32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            if take == 0 {
                continue;
            }
            let entry = out.entry(member.id.clone()).or_default();
            entry.entry(*topic).or_default().extend(next..next + take);
            next += take;
        }
    }
    out
}

/// The `uniform` assignor: sticky, then balanced within one partition among members that can
/// take the same partitions.
pub(crate) fn uniform(
    members: &[MemberSpec],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    // Members in a fixed order (by id) so the result does not depend on the caller's order.
    let mut order: Vec<&MemberSpec> = members.iter().collect();
    order.sort_by(|a, b| a.id.cmp(&b.id));
    let mut held: Vec<BTreeSet<(Uuid, i32)>> = vec![BTreeSet::new(); order.len()];
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();

    let total: usize = partitions.values().map(|&c| c.max(0) as usize).sum();
    let fair = if order.is_empty() {
        0
    } else {
        total.div_ceil(order.len())
    };

    // 1. Keep what each member holds in the current target, if still subscribed and existing,
    //    up to a fair share (so a member keeps no more than it would get anyway).
    for (i, m) in order.iter().enumerate() {
        for (topic, parts) in &m.current {
            let Some(&count) = partitions.get(topic) else {
                continue;
            };
            if !m.topics.contains(topic) {
                continue;
            }
            for &p in parts {
                if p < 0 || p >= count || owner.contains_key(&(*topic, p)) {
                    continue;
                }
                if held[i].len() >= fair {
                    break;
                }
                owner.insert((*topic, p), i);
                held[i].insert((*topic, p));
            }
        }
    }

    // 2. Every partition nobody kept goes to the subscribed member holding the fewest.
    for (topic, &count) in partitions {
        for p in 0..count.max(0) {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            let best = order
                .iter()
                .enumerate()
                .filter(|(_, m)| m.topics.contains(topic))
                .min_by_key(|(i, _)| (held[*i].len(), *i))
                .map(|(i, _)| i);
            if let Some(i) = best {
                owner.insert((*topic, p), i);
                held[i].insert((*topic, p));
            }
        }
    }

    // 3. Balance: while a member holds two or more partitions more than another member that is
    //    subscribed to the topic of one of them, move that partition over (from the fullest
    //    member that has such a move, to the emptiest eligible member). Each move lowers the
    //    sum of squares of the counts, so this ends within `total` moves; a move costs
    //    O(members x topics of the donor).
    let mut moves = 0usize;
    while moves <= total {
        let mut donors: Vec<usize> = (0..order.len()).collect();
        donors.sort_by_key(|&i| (std::cmp::Reverse(held[i].len()), i));
        let mut chosen: Option<(usize, usize, (Uuid, i32))> = None;
        'donors: for &from in &donors {
            let topics: BTreeSet<Uuid> = held[from].iter().map(|(t, _)| *t).collect();
            for topic in topics.iter().rev() {
                let to = (0..order.len())
                    .filter(|&i| i != from && order[i].topics.contains(topic))
                    .min_by_key(|&i| (held[i].len(), i));
                let Some(to) = to else { continue };
                if held[from].len() > held[to].len() + 1 {
                    let tp = held[from].iter().rev().find(|(t, _)| t == topic).copied();
                    if let Some(tp) = tp {
                        chosen = Some((from, to, tp));
                        break 'donors;
                    }
                }
            }
        }
        let Some((from, to, tp)) = chosen else { break };
        held[from].remove(&tp);
        held[to].insert(tp);
        moves += 1;
    }

    order
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut a = Assignment::new();
            for (topic, p) in &held[i] {
                a.entry(*topic).or_default().insert(*p);
            }
            (m.id.clone(), a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8) -> Uuid {
        Uuid::from_u128(u128::from(n) + 1)
    }

    fn member(id: &str, topics: &[Uuid]) -> MemberSpec {
        MemberSpec {
            id: id.into(),
            instance_id: None,
            topics: topics.iter().copied().collect(),
            current: Assignment::new(),
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// Every partition of every subscribed topic is assigned exactly once.
    fn covers_once(out: &BTreeMap<String, Assignment>, partitions: &BTreeMap<Uuid, i32>) {
        let mut seen: BTreeSet<(Uuid, i32)> = BTreeSet::new();
        for a in out.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t} {p} assigned twice: {out:?}");
                }
            }
        }
        let all: BTreeSet<(Uuid, i32)> = partitions
            .iter()
            .flat_map(|(t, &c)| (0..c).map(move |p| (*t, p)))
            .collect();
        assert_eq!(seen, all);
    }

    #[test]
    fn uniform_splits_four_partitions_two_each() {
        let t = topic(0);
        let parts = BTreeMap::from([(t, 4)]);
        let out = uniform(&[member("a", &[t]), member("b", &[t])], &parts);
        covers_once(&out, &parts);
        assert_eq!(count(&out["a"]), 2);
        assert_eq!(count(&out["b"]), 2);
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let t = topic(0);
        let parts = BTreeMap::from([(t, 6)]);
        let mut a = member("a", &[t]);
        let mut b = member("b", &[t]);
        let first = uniform(&[a.clone(), b.clone()], &parts);
        a.current = first["a"].clone();
        b.current = first["b"].clone();
        let c = member("c", &[t]);
        let second = uniform(&[a.clone(), b.clone(), c], &parts);
        covers_once(&second, &parts);
        for id in ["a", "b", "c"] {
            assert_eq!(count(&second[id]), 2, "{second:?}");
        }
        // a and b only gave partitions up; they were given none of the other's.
        for (id, before) in [("a", &a.current), ("b", &b.current)] {
            for p in &second[id][&t] {
                assert!(
                    before[&t].contains(p),
                    "{id} got {p} it did not have: {second:?}"
                );
            }
        }
    }

    #[test]
    fn uniform_gives_everything_to_the_last_member() {
        let t = topic(0);
        let parts = BTreeMap::from([(t, 4)]);
        let mut a = member("a", &[t]);
        a.current = Assignment::from([(t, BTreeSet::from([0, 1]))]);
        let out = uniform(&[a], &parts);
        assert_eq!(out["a"][&t], BTreeSet::from([0, 1, 2, 3]));
    }

    #[test]
    fn uniform_respects_subscriptions_and_balances_heterogeneous_members() {
        let (t0, t1) = (topic(0), topic(1));
        let parts = BTreeMap::from([(t0, 3), (t1, 3)]);
        let out = uniform(&[member("a", &[t0]), member("b", &[t0, t1])], &parts);
        covers_once(&out, &parts);
        assert!(!out["a"].contains_key(&t1), "{out:?}");
        assert_eq!(count(&out["a"]), 3, "{out:?}");
        assert_eq!(count(&out["b"]), 3, "{out:?}");
    }

    #[test]
    fn uniform_drops_partitions_of_topics_no_longer_subscribed() {
        let (t0, t1) = (topic(0), topic(1));
        let parts = BTreeMap::from([(t0, 2)]);
        let mut a = member("a", &[t0]);
        a.current = Assignment::from([(t1, BTreeSet::from([0])), (t0, BTreeSet::from([1]))]);
        let out = uniform(&[a], &parts);
        assert_eq!(out["a"], Assignment::from([(t0, BTreeSet::from([0, 1]))]));
    }

    #[test]
    fn uniform_with_more_members_than_partitions() {
        let t = topic(0);
        let parts = BTreeMap::from([(t, 2)]);
        let out = uniform(
            &[member("a", &[t]), member("b", &[t]), member("c", &[t])],
            &parts,
        );
        covers_once(&out, &parts);
        assert!(out.values().all(|a| count(a) <= 1));
    }

    #[test]
    fn uniform_balances_when_sticky_shares_would_not() {
        // Three members, seven partitions: a and b held three each before c joined.
        let t = topic(0);
        let parts = BTreeMap::from([(t, 7)]);
        let mut a = member("a", &[t]);
        a.current = Assignment::from([(t, BTreeSet::from([0, 1, 2]))]);
        let mut b = member("b", &[t]);
        b.current = Assignment::from([(t, BTreeSet::from([3, 4, 5, 6]))]);
        let out = uniform(&[a, b, member("c", &[t])], &parts);
        covers_once(&out, &parts);
        let counts: Vec<usize> = ["a", "b", "c"].iter().map(|id| count(&out[*id])).collect();
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );
    }

    #[test]
    fn uniform_balances_many_members_over_many_partitions() {
        // 500 members over 5000 partitions of 50 topics, everyone subscribed to everything,
        // half of them holding a previous assignment: balanced within one.
        let topics: Vec<Uuid> = (0..50).map(topic).collect();
        let parts: BTreeMap<Uuid, i32> = topics.iter().map(|t| (*t, 100)).collect();
        let mut members: Vec<MemberSpec> = (0..500)
            .map(|i| member(&format!("m{i:03}"), &topics))
            .collect();
        let first = uniform(&members[..250], &parts);
        for m in members.iter_mut().take(250) {
            m.current = first[&m.id].clone();
        }
        let out = uniform(&members, &parts);
        covers_once(&out, &parts);
        let counts: Vec<usize> = out.values().map(count).collect();
        assert!(counts.iter().all(|c| *c == 10), "{counts:?}");
    }

    #[test]
    fn range_gives_consecutive_ranges_first_members_more() {
        let t = topic(0);
        let parts = BTreeMap::from([(t, 5)]);
        let out = range(&[member("b", &[t]), member("a", &[t])], &parts);
        covers_once(&out, &parts);
        assert_eq!(out["a"][&t], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"][&t], BTreeSet::from([3, 4]));
    }

    #[test]
    fn range_co_partitions_topics() {
        let (t0, t1) = (topic(0), topic(1));
        let parts = BTreeMap::from([(t0, 4), (t1, 4)]);
        let out = range(&[member("a", &[t0, t1]), member("b", &[t0, t1])], &parts);
        covers_once(&out, &parts);
        assert_eq!(out["a"][&t0], out["a"][&t1]);
        assert_eq!(out["b"][&t0], out["b"][&t1]);
    }

    #[test]
    fn range_sorts_static_members_by_instance_id() {
        let t = topic(0);
        let parts = BTreeMap::from([(t, 2)]);
        let mut a = member("a", &[t]);
        a.instance_id = Some("z".into());
        let mut b = member("b", &[t]);
        b.instance_id = Some("y".into());
        let out = range(&[a, b], &parts);
        assert_eq!(out["b"][&t], BTreeSet::from([0]));
        assert_eq!(out["a"][&t], BTreeSet::from([1]));
    }

    #[test]
    fn assign_picks_by_name_and_every_member_gets_an_entry() {
        let t = topic(0);
        let parts = BTreeMap::from([(t, 1)]);
        let ms = [member("a", &[t]), member("b", &[])];
        for name in ASSIGNORS {
            let out = assign(name, &ms, &parts);
            assert_eq!(out.len(), 2, "{name}");
            assert!(out["b"].is_empty(), "{name}");
            covers_once(&out, &parts);
        }
    }
}
