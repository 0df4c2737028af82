"""Admin operations through real admin clients (confluent-kafka's AdminClient, kafka-python 3.x's
KafkaAdminClient) and what they do to producers and consumers, for tests/it/admin.rs.

Usage: admin_client.py MODE BOOTSTRAP TOPIC [GROUP]
Prints one JSON object a line: {"step": NAME, ...what the client reported...}; the Rust test
decides what is right.
"""
import sys
import time

from common import emit, fail

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

import kafka
import kafka.admin as kadmin

DEADLINE_S = 60


def wait(fs):
    """The results of a dict of futures: value or the error's name and text."""
    out = {}
    for k, f in fs.items():
        try:
            out[str(k)] = {"ok": True, "value": repr(f.result(timeout=30))}
        except KafkaException as e:
            err = e.args[0]
            out[str(k)] = {"ok": False, "code": err.code(), "name": err.name(), "text": err.str()}
    return out


def describe(admin, topic, keys):
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([res])[res].result(timeout=30)
    return {
        k: {
            "value": entries[k].value,
            "source": entries[k].source,
            "is_default": entries[k].is_default,
            "synonyms": [[s.name, s.value, s.source] for s in entries[k].synonyms.values()],
        }
        for k in keys
        if k in entries
    }


def incremental(admin, topic, ops, validate_only=False):
    entries = [
        ConfigEntry(name, value, incremental_operation=getattr(AlterConfigOpType, op))
        for name, op, value in ops
    ]
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    return wait(admin.incremental_alter_configs([res], validate_only=validate_only))


def create(admin, topic, partitions, config):
    return wait(admin.create_topics([NewTopic(topic, partitions, 1, config=config)]))


def produce(bootstrap, topic, values, timestamp=None, **conf):
    """Produces one batch per value (flushed each time); returns the delivery errors."""
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append({"code": err.code(), "name": err.name(), "text": err.str()})

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, **conf})
    for v in values:
        kw = {"timestamp": timestamp} if timestamp is not None else {}
        p.produce(topic, value=v, partition=0, on_delivery=report, **kw)
        p.flush(30)
    return errors


def earliest_latest(admin, topic):
    tp = TopicPartition(topic, 0)
    lo = admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(timeout=30).offset
    hi = admin.list_offsets({tp: OffsetSpec.latest()})[tp].result(timeout=30).offset
    return lo, hi


def read_from_zero(bootstrap, topic, reset, until_end=True, **conf):
    """Assigns partition 0 at offset 0 and reads to the end; returns (offsets, values, error)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "admin-reader-" + reset,
            "auto.offset.reset": reset,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            **conf,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    offsets, values, error = [], [], None
    for m in poll_to_end(c, until_end=until_end):
        if m.error():
            error = {"code": m.error().code(), "name": m.error().name(), "text": m.error().str()}
            break
        offsets.append(m.offset())
        values.append(m.value().decode())
    c.close()
    return offsets, values, error


def poll_to_end(c, seconds=DEADLINE_S, until_end=True):
    """Polls c for up to `seconds`, yielding each message and each error other than the end of
    a partition; returns at the end of the partition when until_end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error() and m.error().code() == KafkaError._PARTITION_EOF:
            if until_end:
                return
            continue
        yield m


def mode_configs(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    emit(step="create", result=create(admin, topic, 1, {"retention.ms": "86400000"}))
    keys = ["retention.ms", "cleanup.policy", "segment.bytes", "max.message.bytes"]
    emit(step="described_at_create", configs=describe(admin, topic, keys))
    emit(
        step="set_and_append",
        result=incremental(
            admin,
            topic,
            [("retention.ms", "SET", "3600000"), ("cleanup.policy", "APPEND", "compact")],
        ),
    )
    emit(step="after_set_and_append", configs=describe(admin, topic, keys))
    emit(
        step="subtract_and_delete",
        result=incremental(
            admin, topic, [("cleanup.policy", "SUBTRACT", "delete"), ("retention.ms", "DELETE", None)]
        ),
    )
    emit(step="after_subtract_and_delete", configs=describe(admin, topic, keys))
    emit(step="bad_value", result=incremental(admin, topic, [("retention.ms", "SET", "soon")]))
    emit(step="append_to_number", result=incremental(admin, topic, [("retention.ms", "APPEND", "1")]))
    emit(step="unknown_name", result=incremental(admin, topic, [("no.such.config", "SET", "1")]))
    emit(
        step="validate_only",
        result=incremental(admin, topic, [("segment.bytes", "SET", "1048576")], validate_only=True),
    )
    emit(step="after_validate_only", configs=describe(admin, topic, keys))
    broker = ConfigResource(
        ResourceType.BROKER,
        "1",
        incremental_configs=[
            ConfigEntry("log.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    emit(step="broker_change", result=wait(admin.incremental_alter_configs([broker])))

    # kafka-python: the legacy AlterConfigs (replaces the topic's overrides), read back with
    # its DescribeConfigs.
    ka = kadmin.KafkaAdminClient(bootstrap_servers=bootstrap)
    res = kadmin.ConfigResource(kadmin.ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "2000"})
    try:
        r = ka.alter_configs([res], incremental=False)
        emit(step="kp_alter", result=repr(r))
    except Exception as e:  # noqa: BLE001 - the test wants any error's text
        emit(step="kp_alter", error=repr(e))
    desc = ka.describe_configs(
        [kadmin.ConfigResource(kadmin.ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    emit(step="kp_described", result=repr(desc))
    emit(step="after_kp_alter", configs=describe(admin, topic, keys))
    bad = kadmin.ConfigResource(kadmin.ConfigResourceType.TOPIC, topic, configs={"segment.bytes": "1"})
    try:
        r = ka.alter_configs([bad], incremental=False)
        emit(step="kp_alter_bad", result=repr(r))
    except Exception as e:  # noqa: BLE001
        emit(step="kp_alter_bad", error=repr(e))
    ka.close()


def mode_offsets(bootstrap, topic, group):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    emit(step="create", result=create(admin, topic, 2, {}))
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        p.produce(topic, value=b"v%d" % i, partition=i % 2)
    p.flush(30)
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + DEADLINE_S
    while got < 10 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    c.commit(asynchronous=False)
    emit(step="consumed", count=got)

    ka = kadmin.KafkaAdminClient(bootstrap_servers=bootstrap)
    tps = [kafka.TopicPartition(topic, 0), kafka.TopicPartition(topic, 1)]

    def delete(group_id, partitions):
        try:
            r = ka.delete_group_offsets(group_id, partitions)
            return {str(k): getattr(v, "__name__", repr(v)) for k, v in dict(r).items()}
        except Exception as e:  # noqa: BLE001
            return {"error": type(e).__name__, "text": str(e)}

    def committed():
        r = ka.list_group_offsets({group: None})
        # {group: {TopicPartition: OffsetAndMetadata}} or {TopicPartition: ...}
        if group in r:
            r = r[group]
        return {"%s-%d" % (tp.topic, tp.partition): om.offset for tp, om in dict(r).items()}

    emit(step="while_subscribed", result=delete(group, tps[:1]))
    c.close()
    emit(step="committed_before", offsets=committed())
    emit(step="delete", result=delete(group, tps[:1]))
    emit(step="committed_after", offsets=committed())
    # confluent's view of the same group's offsets (OffsetFetch for named partitions).
    from confluent_kafka import ConsumerGroupTopicPartitions

    f = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])]
    )[group]
    emit(
        step="confluent_committed_after",
        offsets={"%s-%d" % (tp.topic, tp.partition): tp.offset for tp in f.result(timeout=30).topic_partitions},
    )
    emit(step="unknown_group", result=delete(group + "-nobody", tps[:1]))
    emit(step="unknown_partition", result=delete(group, [kafka.TopicPartition(topic, 7)]))
    ka.close()


def mode_retention(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # Tiny segments: each produced batch (one value of ~600 bytes) lands in its own segment.
    emit(step="create", result=create(admin, topic, 1, {"segment.bytes": "1000"}))
    old = int(time.time() * 1000) - 2 * 3600 * 1000
    pad = "x" * 600
    errors = produce(bootstrap, topic, [("old-%02d-%s" % (i, pad)).encode() for i in range(20)], old)
    errors += produce(bootstrap, topic, [("new-%02d-%s" % (i, pad)).encode() for i in range(10)])
    emit(step="produced", errors=errors, offsets=earliest_latest(admin, topic))
    emit(step="set_retention_ms", result=incremental(admin, topic, [("retention.ms", "SET", "3600000")]))
    deadline = time.monotonic() + DEADLINE_S
    lo, hi = earliest_latest(admin, topic)
    while lo == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        lo, hi = earliest_latest(admin, topic)
    emit(step="after_retention_ms", offsets=[lo, hi])
    offsets, values, error = read_from_zero(bootstrap, topic, "earliest")
    emit(step="read_earliest", offsets=offsets, values=[v[:6] for v in values], error=error)
    offsets, values, error = read_from_zero(bootstrap, topic, "error", until_end=False)
    emit(step="read_error", offsets=offsets, error=error)
    # By size: keep at most ~3 segments' worth.
    emit(step="set_retention_bytes", result=incremental(admin, topic, [("retention.bytes", "SET", "2200")]))
    deadline = time.monotonic() + DEADLINE_S
    lo2, hi2 = earliest_latest(admin, topic)
    while lo2 == lo and time.monotonic() < deadline:
        time.sleep(0.2)
        lo2, hi2 = earliest_latest(admin, topic)
    emit(step="after_retention_bytes", offsets=[lo2, hi2])
    offsets, values, error = read_from_zero(bootstrap, topic, "earliest")
    emit(step="read_earliest_2", offsets=offsets, values=[v[:6] for v in values], error=error)
    # DeleteRecords agrees with the log start: below it is out of range, above it moves it.
    tp = TopicPartition(topic, 0, lo2 + 1)
    try:
        r = admin.delete_records([tp])[tp].result(timeout=30)
        emit(step="delete_records", low_watermark=r.low_watermark)
    except KafkaException as e:
        emit(step="delete_records", error=e.args[0].name())


def mode_compact(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    emit(
        step="create",
        result=create(admin, topic, 1, {"segment.bytes": "1000", "cleanup.policy": "compact", "retention.ms": "1000"}),
    )
    old = int(time.time() * 1000) - 2 * 3600 * 1000
    errors = produce(bootstrap, topic, [("c-%02d-%s" % (i, "y" * 600)).encode() for i in range(5)], old)
    emit(step="produced", errors=errors)
    # Several housekeeping rounds pass while this sleeps (the test runs them every 100 ms).
    time.sleep(1.5)
    emit(step="after_wait", offsets=earliest_latest(admin, topic))


def mode_limits(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    emit(step="create", result=create(admin, topic, 1, {"max.message.bytes": "1000"}))
    emit(step="small", errors=produce(bootstrap, topic, [b"s" * 100]))
    emit(step="large", errors=produce(bootstrap, topic, [b"L" * 5000]))
    emit(step="raise_limit", result=incremental(admin, topic, [("max.message.bytes", "SET", "10000")]))
    emit(step="large_again", errors=produce(bootstrap, topic, [b"L" * 5000]))
    # message.timestamp.type follows a config change.
    emit(step="log_append_time", result=incremental(admin, topic, [("message.timestamp.type", "SET", "LogAppendTime")]))
    emit(step="stamped", errors=produce(bootstrap, topic, [b"t" * 10], timestamp=1_000_000))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "limits-reader", "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    stamps = []
    for m in poll_to_end(c):
        if m.error():
            continue
        t, ts = m.timestamp()
        stamps.append([len(m.value()), t, ts])
    c.close()
    emit(step="timestamps", stamps=stamps, create_time=1, log_append_time=2)


def mode_big(bootstrap, topic):
    """Produces MB (extra arg) megabytes in 10 KB values and reads them back whole."""
    mb = int(sys.argv[4])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    emit(step="create", result=create(admin, topic, 1, {"segment.bytes": str(8 << 20)}))
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1 << 20})
    n = mb * 100
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err.name())

    for i in range(n):
        value = (b"%08d" % i) * 1280
        while True:
            try:
                p.produce(topic, value=value, partition=0, on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
    p.flush(120)
    emit(step="produced", count=n, bytes=n * 10240, errors=errors[:5])
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "big-reader",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "fetch.max.bytes": 4 << 20,
            "max.partition.fetch.bytes": 4 << 20,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    got, total, bad = 0, 0, 0
    for m in poll_to_end(c, 300):
        if m.error():
            continue
        if m.value() != (b"%08d" % m.offset()) * 1280:
            bad += 1
        got += 1
        total += len(m.value())
    c.close()
    emit(step="consumed", count=got, bytes=total, mismatched=bad)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        fail("usage: admin_client.py MODE BOOTSTRAP TOPIC [GROUP|MB]")
    mode, bootstrap, topic = sys.argv[1:4]
    {
        "configs": lambda: mode_configs(bootstrap, topic),
        "offsets": lambda: mode_offsets(bootstrap, topic, sys.argv[4]),
        "retention": lambda: mode_retention(bootstrap, topic),
        "compact": lambda: mode_compact(bootstrap, topic),
        "limits": lambda: mode_limits(bootstrap, topic),
        "big": lambda: mode_big(bootstrap, topic),
    }[mode]()
    emit(step="done")
