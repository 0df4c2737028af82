"""confluent-kafka (librdkafka) test client. See common.py for usage; extra idempotent=1 sets
enable.idempotence=true on the producer, socket_timeout_ms=N librdkafka's socket.timeout.ms
(how long a request may wait for its response; default here 10000),
isolation=read_committed|read_uncommitted the consumer's isolation.level.

Consumer extras for the KIP-848 protocol: group_protocol=consumer (group.protocol=consumer: the
broker assigns; the `assigned` events then list the whole assignment after each incremental
change), assignor=NAME (group.remote.assignor), commit=each (no auto-commit: each record is
committed synchronously before it is reported, retried while the broker answers
STALE_MEMBER_EPOCH, which a commit racing a heartbeat that moved the member's epoch can get),
instance_id=ID (group.instance.id, a static member).

Mode describe: the admin client's view of GROUP (`described`) and every group (`listed`).

Transactional modes (extra txn_id=ID names the transactional.id):
- txn: one transaction per letter of plan=... (c: commit, a: abort), COUNT messages each,
  numbered on from START; `produced` events carry txn=K and outcome=commit|abort.
- txn_hold: one transaction of COUNT messages left open until stop_file=PATH exists, then
  committed; reports `fenced` (with the error's name and whether it is fatal) if it fails.
- ctp: consume-transform-produce from TOPIC to out=TOPIC in group GROUP: up to batch=N records
  a transaction, copied as they are, with the consumer's position sent along
  (send_offsets_to_transaction); stops after idle_ms without a record. `in_txn` is printed
  once the Nth transaction (hang_in_txn=N) has produced and flushed, and the program then
  waits there (to be killed); `txn_committed` after each commit.
"""
import os
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


def txn_producer(a):
    conf = {
        "bootstrap.servers": a.bootstrap,
        "client.id": CLIENT_ID,
        "transactional.id": a.extra["txn_id"],
        "compression.type": a.compression,
        "linger.ms": 5,
        "message.timeout.ms": int(a.timeout_s * 1000),
        "socket.timeout.ms": 10000,
    }
    if "txn_timeout_ms" in a.extra:
        # librdkafka wants the socket and message timeouts within the transaction's.
        t = int(a.extra["txn_timeout_ms"])
        conf["transaction.timeout.ms"] = t
        conf["socket.timeout.ms"] = min(conf["socket.timeout.ms"], t + 100)
        conf["message.timeout.ms"] = min(conf["message.timeout.ms"], t)
    conf.update(sasl(a))
    p = Producer(conf)
    p.init_transactions(a.timeout_s)
    emit(event="initialised")
    return p


def produce_batch(a, p, first, count, txn, outcome):
    results = {}

    def delivered(i):
        def cb(err, msg):
            results[i] = (err, msg)

        return cb

    for i in range(first, first + count):
        p.produce(a.topic, key=key(i), value=value(i), headers=[("idx", str(i).encode())],
                  on_delivery=delivered(i))
        p.poll(0)
    if p.flush(a.timeout_s):
        fail("txn %d: messages not delivered before the timeout" % txn)
    for i in range(first, first + count):
        err, msg = results[i]
        if err is not None:
            fail("txn %d produce %d: %s" % (txn, i, err))
        emit(event="produced", index=i, partition=msg.partition(), offset=msg.offset(), txn=txn,
             outcome=outcome)


def txn(a):
    p = txn_producer(a)
    first = a.start
    for k, step in enumerate(a.extra.get("plan", "c")):
        outcome = {"c": "commit", "a": "abort"}[step]
        p.begin_transaction()
        produce_batch(a, p, first, a.count, k, outcome)
        if outcome == "commit":
            p.commit_transaction(a.timeout_s)
        else:
            p.abort_transaction(a.timeout_s)
        emit(event="txn_" + outcome, txn=k)
        first += a.count
    emit(event="done", count=first - a.start)


def txn_hold(a):
    p = txn_producer(a)
    p.begin_transaction()
    produce_batch(a, p, a.start, a.count, 0, "commit")
    emit(event="holding")
    while not (a.stop_file and os.path.exists(a.stop_file)):
        if a.expired():
            fail("txn_hold: no stop file before the timeout")
        p.poll(0.1)
    try:
        p.commit_transaction(a.timeout_s)
    except KafkaException as e:
        err = e.args[0]
        emit(event="fenced", name=err.name(), fatal=err.fatal(), message=err.str())
        emit(event="done", count=0)
        return
    emit(event="txn_commit", txn=0)
    emit(event="done", count=a.count)


def ctp(a):
    batch = int(a.extra.get("batch", "10"))
    hang = int(a.extra.get("hang_in_txn", "0"))
    c = Consumer({
        "bootstrap.servers": a.bootstrap,
        "client.id": CLIENT_ID,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
    })
    p = txn_producer(a)
    c.subscribe([a.topic])
    done_txns = 0
    last = None
    while True:
        if a.expired():
            fail("ctp: timed out after %d transactions" % done_txns)
        msgs = c.consume(batch, 0.5)
        msgs = [m for m in msgs if not m.error()]
        if not msgs:
            if last is not None and time.monotonic() - last >= a.idle_ms / 1000.0:
                break
            continue
        last = time.monotonic()
        p.begin_transaction()
        for m in msgs:
            p.produce(a.extra["out"], key=m.key(), value=m.value(), headers=m.headers())
        if p.flush(a.timeout_s):
            fail("ctp: output not delivered before the timeout")
        if hang and done_txns + 1 == hang:
            emit(event="in_txn", txn=done_txns + 1, records=len(msgs))
            time.sleep(3600)
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(),
                                      a.timeout_s)
        p.commit_transaction(a.timeout_s)
        done_txns += 1
        emit(event="txn_committed", txn=done_txns, records=len(msgs),
             first=[m.partition() for m in msgs][0], offsets=[m.offset() for m in msgs])
    c.close()
    emit(event="done", count=done_txns)


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
        "isolation.level": a.extra.get("isolation", "read_committed"),
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
    run = {"produce": produce, "consume": consume, "describe": describe, "txn": txn,
           "txn_hold": txn_hold, "ctp": ctp}.get(a.mode)
    if run is None:
        fail("unknown mode %s" % a.mode)
    try:
        run(a)
    except Exception as e:  # the client's own message, for the test's failure report
        fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
