"""confluent-kafka (librdkafka) test client. See common.py for usage; extra idempotent=1 sets
enable.idempotence=true on the producer, socket_timeout_ms=N librdkafka's socket.timeout.ms
(how long a request may wait for its response; default here 10000).

Consumer extras for the KIP-848 protocol: group_protocol=consumer (group.protocol=consumer: the
broker assigns; the `assigned` events then list the whole assignment after each incremental
change), assignor=NAME (group.remote.assignor), commit=each (no auto-commit: each record is
committed synchronously before it is reported, retried while the broker answers
STALE_MEMBER_EPOCH, which a commit racing a heartbeat that moved the member's epoch can get),
instance_id=ID (group.instance.id, a static member).

Mode describe: the admin client's view of GROUP (`described`) and every group (`listed`)."""
import sys
import time

import confluent_kafka
from confluent_kafka import Consumer, KafkaException, Producer

from common import Args, ConsumeProgress, emit, fail, key, value

CLIENT_ID = "confluent-kafka-%s-librdkafka-%s" % (
    confluent_kafka.version()[0],
    confluent_kafka.libversion()[0],
)


def sasl(a):
    if not a.sasl:
        return {}
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": a.sasl[0], "sasl.password": a.sasl[1]}


def produce(a):
    conf = {
        "bootstrap.servers": a.bootstrap,
        "client.id": CLIENT_ID,
        "acks": "all",
        "compression.type": a.compression,
        "linger.ms": 5,
        "message.timeout.ms": int(a.timeout_s * 1000),
        "socket.timeout.ms": int(a.extra.get("socket_timeout_ms", 10000)),
    }
    if "request_timeout_ms" in a.extra:
        conf["request.timeout.ms"] = a.request_timeout_ms(30000)
    if a.idempotent:
        conf["enable.idempotence"] = True
    conf.update(sasl(a))
    p = Producer(conf)
    results = {}

    def delivered(i):
        def cb(err, msg):
            results[i] = (err, msg)

        return cb

    for i in a.indices():
        p.produce(a.topic, key=key(i), value=value(i), headers=[("idx", str(i).encode())],
                  on_delivery=delivered(i))
        p.poll(0)
    left = p.flush(a.timeout_s)
    if left:
        fail("produce: %d messages not delivered before the timeout" % left)
    for i in a.indices():
        err, msg = results[i]
        if err is not None:
            fail("produce %d: %s" % (i, err))
        emit(event="produced", index=i, partition=msg.partition(), offset=msg.offset())
    emit(event="done", count=len(results))


def commit_now(c, m):
    """Commits the offset after m synchronously, retrying STALE_MEMBER_EPOCH (KIP-848)."""
    for _ in range(50):
        try:
            c.commit(message=m, asynchronous=False)
            return
        except KafkaException as e:
            if e.args[0].code() != confluent_kafka.KafkaError.STALE_MEMBER_EPOCH:
                raise
            time.sleep(0.1)
    fail("commit: STALE_MEMBER_EPOCH 50 times")


def consume(a):
    kip848 = a.extra.get("group_protocol") == "consumer"
    commit_each = a.extra.get("commit") == "each"
    conf = {
        "bootstrap.servers": a.bootstrap,
        "client.id": CLIENT_ID,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": not commit_each,
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
        **sasl(a),
    }
    if not commit_each:
        conf["auto.commit.interval.ms"] = 500
    if kip848:
        # The session timeout and heartbeat interval are the broker's in this protocol.
        conf["group.protocol"] = "consumer"
        if "assignor" in a.extra:
            conf["group.remote.assignor"] = a.extra["assignor"]
    else:
        conf["session.timeout.ms"] = 6000
        conf["heartbeat.interval.ms"] = 1000
    if "instance_id" in a.extra:
        conf["group.instance.id"] = a.extra["instance_id"]
    c = Consumer(conf)

    def listed(partitions):
        return sorted([tp.topic, tp.partition] for tp in partitions)

    def on_assign(consumer, partitions):
        if kip848:
            # Incremental: report the whole assignment it makes.
            partitions = set(consumer.assignment()) | set(partitions)
        emit(event="assigned", partitions=listed(partitions))

    def on_revoke(consumer, partitions):
        emit(event="revoked", partitions=listed(partitions))
        if kip848:
            left = set(consumer.assignment()) - set(partitions)
            emit(event="assigned", partitions=listed(left))

    c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke)
    progress = ConsumeProgress(a)
    while not progress.done():
        progress.check_deadline()
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                continue
            fail("consume: %s" % m.error())
        if commit_each:
            commit_now(c, m)
        progress.record(m.partition(), m.offset(), m.key(), m.value(), m.headers())
    if not commit_each:
        try:
            c.commit(asynchronous=False)
        except KafkaException as e:
            # _NO_OFFSET: everything consumed was already committed by auto-commit.
            if e.args[0].code() != confluent_kafka.KafkaError._NO_OFFSET:
                raise
    emit(event="committed")
    c.close()
    emit(event="done", count=progress.got)


def describe(a):
    """Describes GROUP with the admin client (ConsumerGroupDescribe for a KIP-848 group, which
    librdkafka tries first, DescribeGroups for a classic one) and lists the groups."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": a.bootstrap, "client.id": CLIENT_ID, **sasl(a)})

    def parts(assignment):
        if assignment is None:
            return None
        return sorted([tp.topic, tp.partition] for tp in assignment.topic_partitions)

    d = admin.describe_consumer_groups([a.group])[a.group].result(timeout=a.timeout_s)
    emit(event="described", group=d.group_id, state=d.state.name, type=d.type.name,
         assignor=d.partition_assignor,
         members=[{"member_id": m.member_id, "client_id": m.client_id,
                   "assignment": parts(m.assignment),
                   "target_assignment": parts(getattr(m, "target_assignment", None))}
                  for m in d.members])
    listed = admin.list_consumer_groups().result(timeout=a.timeout_s)
    for g in listed.valid:
        emit(event="listed", group=g.group_id, state=g.state.name, type=g.type.name)
    emit(event="done", count=1)


def main():
    a = Args(sys.argv)
    run = {"produce": produce, "consume": consume, "describe": describe}.get(a.mode)
    if run is None:
        fail("unknown mode %s" % a.mode)
    try:
        run(a)
    except Exception as e:  # the client's own message, for the test's failure report
        fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
