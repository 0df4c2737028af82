//! The settings' text forms and matching.
use super::*;

fn who(id: Option<&str>, sw: Option<&str>, ver: Option<&str>) -> ClientIdentity {
    ClientIdentity {
        client_id: id.map(String::from),
        software_name: sw.map(String::from),
        software_version: ver.map(String::from),
    }
}

#[test]
fn globs() {
    assert!(glob_match("kafka-python*", "kafka-python"));
    assert!(glob_match("kafka-python*", "kafka-python-3.0.12"));
    assert!(!glob_match("kafka-python*", "apache-kafka-python"));
    assert!(glob_match("*python*", "apache-kafka-python"));
    assert!(glob_match("3.?.*", "3.0.12"));
    assert!(!glob_match("3.?.*", "3.10.1"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("?", ""));
    assert!(glob_match("a*b*c", "aXXbYYbc"));
    assert!(!glob_match("a*b*c", "aXXbYYbcd"));
    assert!(glob_match("librdkafka", "librdkafka"));
    assert!(!glob_match("librdkafka", "Librdkafka"));
}

#[test]
fn rules_parse_and_print_back() {
    let r: ThrottleRule = "software=kafka-python*:front".parse().unwrap();
    assert_eq!(r.client.software.as_deref(), Some("kafka-python*"));
    assert_eq!(r.placement, ThrottlePlacement::Front);
    assert_eq!(r.to_string(), "software=kafka-python*:front");
    let r: ThrottleRule = " version=2.* , client=rdkafka:omit ".parse().unwrap();
    assert_eq!(r.to_string(), "client_id=rdkafka,version=2.*:omit");
    // Matcher names and the mode in any case; the pattern as written.
    let r: ThrottleRule = "Software=Kafka-Python*:FRONT".parse().unwrap();
    assert_eq!(r.to_string(), "software=Kafka-Python*:front");
    assert_eq!(
        "Spec".parse::<ThrottlePlacement>(),
        Ok(ThrottlePlacement::Spec)
    );
    // The mode follows the last colon.
    let r: ThrottleRule = "client_id=host:1:spec".parse().unwrap();
    assert_eq!(r.client.client_id.as_deref(), Some("host:1"));
    assert_eq!(r.placement, ThrottlePlacement::Spec);
    for (bad, says) in [
        ("software=x", "MODE"),
        ("software=x:sideways", "unknown placement"),
        (":front", "no matcher"),
        ("software:front", "no `=`"),
        ("colour=red:front", "unknown matcher"),
        ("software=:front", "empty pattern"),
        ("software=a,software=b:omit", "twice"),
    ] {
        let e = bad.parse::<ThrottleRule>().unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(e.contains("expected client_id=GLOB"), "{bad}: {e}");
    }
}

#[test]
fn first_matching_rule_wins_else_global() {
    let knobs = Knobs {
        placement: ThrottlePlacement::Omit,
        rules: vec![
            "software=kafka-python,version=3.*:front".parse().unwrap(),
            "client_id=rdkafka*:spec".parse().unwrap(),
            "software=*:front".parse().unwrap(),
        ],
        ..Knobs::default()
    };
    let kp3 = who(
        Some("kafka-python-3.0.12"),
        Some("kafka-python"),
        Some("3.0.12"),
    );
    let used = knobs.placement_for(&kp3);
    assert_eq!(used.placement, ThrottlePlacement::Front);
    assert_eq!(
        used.to_string(),
        "front (rule 1: software=kafka-python,version=3.*:front)"
    );
    let rd = who(Some("rdkafka"), Some("librdkafka"), Some("2.16.1"));
    assert_eq!(knobs.placement_for(&rd).rule.map(|r| r.0), Some(2));
    // `software=*` needs a software name; a client without ApiVersions v3+ gets the global.
    let kp2 = who(Some("kafka-python-2.0.2"), None, None);
    let used = knobs.placement_for(&kp2);
    assert_eq!(used.placement, ThrottlePlacement::Omit);
    assert_eq!(used.rule, None);
    assert_eq!(used.to_string(), "omit");
    let other = who(Some("x"), Some("sarama"), Some("1"));
    assert_eq!(knobs.placement_for(&other).rule.map(|r| r.0), Some(3));
}

#[test]
fn caps_parse_by_name_or_key_and_clamp() {
    for text in ["produce=2", "Produce=2", "0=2", " PRODUCE = 2 "] {
        let c: VersionCap = text.parse().unwrap();
        assert_eq!((c.api_key, c.max_version), (0, 2), "{text}");
        assert_eq!(c.to_string(), "produce=2");
    }
    let c: VersionCap = "api_versions=2".parse().unwrap();
    assert_eq!(c.api_key, 18);
    assert_eq!(c.to_string(), "api_versions=2");
    assert_eq!("ApiVersions=1".parse::<VersionCap>().unwrap().api_key, 18);
    assert_eq!(
        "init-producer-id=3".parse::<VersionCap>().unwrap().api_key,
        22
    );
    for (bad, says) in [
        ("produce", "expected API=VERSION"),
        ("nosuch=2", "unknown API"),
        ("9999=2", "unknown API"),
        ("produce=-1", "not a number"),
        ("produce=x", "not a number"),
    ] {
        let e = bad.parse::<VersionCap>().unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let mut knobs = Knobs::default();
    knobs.caps.insert(0, 2);
    assert_eq!(knobs.capped(0, 0, 11), (0, 2));
    assert_eq!(knobs.capped(1, 0, 17), (0, 17));
    knobs.caps.insert(3, 20);
    assert_eq!(knobs.capped(3, 0, 12), (0, 12));
    knobs.caps.insert(5, 0);
    assert_eq!(knobs.capped(5, 1, 4), (1, 1));
    assert_eq!(knobs.caps_text(), vec!["produce=2", "metadata=20", "5=0"]);
}

#[test]
fn mutation_rules_parse_match_and_print_back() {
    let r: MutationRule = "API=Produce, Versions=1-8 : MOVE produce.response.throttle_time_ms \
                           before produce.response.responses"
        .parse()
        .unwrap();
    assert_eq!(
        r.to_string(),
        "api=produce,versions=1-8:move produce.response.throttle_time_ms before \
         produce.response.responses"
    );
    let kp = who(
        Some("kafka-python-3.0.12"),
        Some("kafka-python"),
        Some("3.0.12"),
    );
    assert!(r.matches(0, 7, &kp));
    assert!(!r.matches(0, 9, &kp));
    assert!(!r.matches(1, 7, &kp));
    // No matcher: every response the mutation concerns (its field's API).
    let r: MutationRule = "omit produce.response.throttle_time_ms".parse().unwrap();
    assert_eq!(r.to_string(), "omit produce.response.throttle_time_ms");
    assert!(r.matches(0, 3, &kp));
    assert!(
        !r.matches(1, 3, &kp),
        "a Produce field is not in a Fetch response"
    );
    // Client globs as placement rules have them, a `:` in a glob included.
    let r: MutationRule = "client_id=host:1,software=librdkafka:truncate 3 bytes"
        .parse()
        .unwrap();
    assert_eq!(r.matcher.client.client_id.as_deref(), Some("host:1"));
    assert_eq!(
        r.to_string(),
        "client_id=host:1,software=librdkafka:truncate 3"
    );
    let rd = who(Some("host:1"), Some("librdkafka"), Some("2.0.2"));
    assert!(r.matches(18, 3, &rd) && r.matches(1, 11, &rd));
    assert!(!r.matches(18, 3, &kp));
    // Versions A and A+, an API by key number.
    let r: MutationRule = "api=1,versions=12+:corrupt crc".parse().unwrap();
    assert_eq!(r.to_string(), "api=fetch,versions=12+:corrupt crc");
    assert!(r.matches(1, 16, &kp) && !r.matches(1, 11, &kp));
    let r: MutationRule = "versions=3:truncate 1".parse().unwrap();
    assert!(r.matches(3, 3, &kp) && !r.matches(3, 4, &kp));
    for (bad, says) in [
        (
            "api=fetch:omit produce.response.throttle_time_ms",
            "Produce responses only",
        ),
        ("api=metadata:corrupt crc", "Fetch responses only"),
        ("api=nosuch:truncate 1", "unknown API"),
        ("versions=5-2:truncate 1", "above"),
        ("colour=red:truncate 1", "unknown matcher"),
        ("api=produce", "unknown mutation"),
        ("api=produce:scramble", "unknown mutation"),
        ("api=produce,api=fetch:truncate 1", "twice"),
    ] {
        let e = bad.parse::<MutationRule>().unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(e.contains("expected [MATCH:] MUTATION"), "{bad}: {e}");
    }
}

#[test]
fn fault_rules_parse_and_print_back() {
    for (text, canonical) in [
        ("delay 200ms", "delay 200ms"),
        (
            "api=produce:Delay 1.5s Jitter 50ms",
            "api=produce:delay 1500ms jitter 50ms seed 0",
        ),
        (
            "delay 200ms jitter 50ms seed 42",
            "delay 200ms jitter 50ms seed 42",
        ),
        (
            "api=find_coordinator:error coordinator_not_available first 3",
            "api=find_coordinator:error COORDINATOR_NOT_AVAILABLE first 3",
        ),
        (
            "api=produce,versions=3+:error 6 probability 25% seed 9",
            "api=produce,versions=3+:error NOT_LEADER_OR_FOLLOWER probability 0.25 seed 9",
        ),
        ("api=metadata:error 999", "api=metadata:error 999"),
        ("drop", "drop"),
        ("api=produce:drop first 1", "api=produce:drop first 1"),
        ("drop probability 0.5", "drop probability 0.5 seed 0"),
        (
            "client_id=kcat:close after 3",
            "client_id=kcat:close after 3",
        ),
        ("close MID-RESPONSE", "close mid-response"),
        (
            "api=produce:close mid-response First 1",
            "api=produce:close mid-response first 1",
        ),
        (
            "close mid-response probability 10%",
            "close mid-response probability 0.1 seed 0",
        ),
        ("chunk 16 bytes every 100ms", "chunk 16 bytes every 100ms"),
        ("chunk 1 every 0s", "chunk 1 bytes every 0ms"),
    ] {
        let r: FaultRule = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(r.to_string(), canonical, "{text}");
        let again: FaultRule = canonical.parse().unwrap();
        assert_eq!(again, r, "{canonical} reads back the same");
    }
    for (bad, says) in [
        ("error NOT_COORDINATOR", "needs api=NAME"),
        (
            "api=describe_groups:error NOT_COORDINATOR",
            "not DescribeGroups",
        ),
        ("api=produce:error NONE", "no error"),
        ("api=produce:error SOMETHING", "not an error name"),
        ("delay 200", "unit"),
        ("delay 200ms jitter", "expected delay MS"),
        ("delay 200ms jitter 5ms seed x", "seed"),
        ("drop first 0", "from 1"),
        ("drop probability 0", "above 0"),
        ("drop probability 1.5", "at most 1"),
        ("drop sometimes", "expected first N"),
        ("close", "close after N"),
        ("close after -1", "from 1"),
        ("close mid-response once", "expected first N"),
        ("close mid-response first 0", "from 1"),
        ("chunk 0 bytes every 1ms", "from 1"),
        ("chunk 16 bytes", "chunk N bytes every MS"),
        ("explode", "unknown fault"),
    ] {
        let e = bad.parse::<FaultRule>().unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(e.contains("expected [MATCH:] FAULT"), "{bad}: {e}");
    }
    // The APIs error can answer are named when it refuses.
    let e = "api=api_versions:error 35"
        .parse::<FaultRule>()
        .unwrap_err();
    for api in [
        "Produce",
        "Fetch",
        "FindCoordinator",
        "InitProducerId",
        "OffsetFetch",
    ] {
        assert!(e.contains(api), "{e}");
    }
}

#[test]
fn seeded_choices_are_reproducible() {
    let rule = |text: &str| text.parse::<FaultRule>().unwrap();
    let choices = |r: &FaultRule| (0..2000).map(|_| r.next()).collect::<Vec<_>>();
    let a = choices(&rule("drop probability 0.3 seed 7"));
    let b = choices(&rule("drop probability 0.3 seed 7"));
    let c = choices(&rule("drop probability 0.3 seed 8"));
    assert_eq!(a, b, "same seed, same requests: same choices");
    assert_ne!(a, c, "another seed chooses otherwise");
    let dropped = a.iter().filter(|x| x.is_some()).count();
    assert!(
        (450..750).contains(&dropped),
        "about 30% of 2000: {dropped}"
    );
    // Copies of the knobs share the rule's count; a rule added again starts over.
    let r = rule("api=produce:error NOT_LEADER_OR_FOLLOWER first 2");
    let copy = r.clone();
    assert_eq!(r.next(), Some(Action::Error { code: 6 }));
    assert_eq!(copy.next(), Some(Action::Error { code: 6 }));
    assert_eq!(r.next(), None);
    assert_eq!(r.id(), copy.id());
    let again = rule("api=produce:error NOT_LEADER_OR_FOLLOWER first 2");
    assert_ne!(again.id(), r.id());
    assert_eq!(again.next(), Some(Action::Error { code: 6 }));
    // Jitter stays within ± and is the same for the same seed.
    let f: Fault = "delay 100ms jitter 20ms seed 3".parse().unwrap();
    let delays: Vec<u64> = (0..500)
        .map(|k| match f.action(k) {
            Some(Action::Delay { ms }) => ms,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(delays.iter().all(|d| (80..=120).contains(d)), "{delays:?}");
    assert!(
        delays.contains(&80) && delays.contains(&120),
        "both ends reached"
    );
    let g: Fault = "delay 100ms jitter 20ms seed 3".parse().unwrap();
    assert!((0..500).all(|k| g.action(k) == f.action(k)));
    let small: Fault = "delay 5ms jitter 20ms".parse().unwrap();
    assert!((0..200).all(|k| matches!(small.action(k), Some(Action::Delay { ms }) if ms <= 25)));
}

#[test]
fn request_matchers_are_shared_with_placement_rules() {
    // The same client matchers, the same refusals, whichever rule reads them.
    let m = RequestMatch::parse("Client=rd*,SOFTWARE=librdkafka,version=2.*").unwrap();
    let t: ThrottleRule = "Client=rd*,SOFTWARE=librdkafka,version=2.*:front"
        .parse()
        .unwrap();
    assert_eq!(m.client, t.client);
    assert_eq!(
        m.to_string(),
        "client_id=rd*,software=librdkafka,version=2.*"
    );
    let e = "api=produce:front".parse::<ThrottleRule>().unwrap_err();
    assert!(e.contains("unknown matcher \"api\""), "{e}");
    assert_eq!("7+".parse::<VersionRange>().unwrap().to_string(), "7+");
    assert_eq!("3".parse::<VersionRange>().unwrap().to_string(), "3");
    assert_eq!("3-3".parse::<VersionRange>().unwrap().to_string(), "3");
    assert!("x-3".parse::<VersionRange>().is_err());
    assert!("-1".parse::<VersionRange>().is_err());
}
