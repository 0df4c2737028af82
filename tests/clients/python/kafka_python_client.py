"""kafka-python test client (works with kafka-python 2.0.2 and 3.x). See common.py for usage.

Mode txn (kafka-python 3.x only; 2.0.2 has no transactional producer): one transaction per
letter of plan=... (c: commit, a: abort) with transactional_id txn_id=ID, COUNT messages
each, numbered on from START. Extra isolation=read_committed|read_uncommitted sets a
consumer's isolation_level (3.x; the client's default is read_uncommitted)."""
import sys

import kafka
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from common import Args, ConsumeProgress, emit, fail, key, value


def api_version(a):
    """extra api_version=0.10.0 pins the protocol (no ApiVersions probe); below 0.11 the client
    writes legacy message sets (magic 0 below 0.10, magic 1 from 0.10), which have no headers."""
    v = a.extra.get("api_version")
    return tuple(int(x) for x in v.split(".")) if v else None


def version_args(a, cls):
    v = api_version(a)
    out = {"api_version": v} if v else {}
    if "bootstrap_timeout_ms" in cls.DEFAULT_CONFIG:  # 3.x: give up bootstrapping in time
        out["bootstrap_timeout_ms"] = int(a.timeout_s * 1000)
    if a.sasl:
        out.update(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                   sasl_plain_username=a.sasl[0], sasl_plain_password=a.sasl[1])
    return out


def headers(a, i):
    v = api_version(a)
    return None if v and v < (0, 11) else [("idx", str(i).encode())]


def produce(a):
    p = KafkaProducer(
        bootstrap_servers=a.bootstrap,
        client_id="kafka-python-%s" % kafka.__version__,
        **version_args(a, KafkaProducer),
        acks="all",
        compression_type=a.compression_or_none(),
        linger_ms=5,
        request_timeout_ms=a.request_timeout_ms(10000),
        retries=3,
        **({"enable_idempotence": True} if a.idempotent else {}),
    )
    futures = [
        (i, p.send(a.topic, key=key(i), value=value(i), headers=headers(a, i)))
        for i in a.indices()
    ]
    p.flush(timeout=a.timeout_s)
    for i, f in futures:
        md = f.get(timeout=max(1, a.timeout_s))
        emit(event="produced", index=i, partition=md.partition, offset=md.offset)
    p.close(timeout=5)
    emit(event="done", count=len(futures))


def txn(a):
    if not hasattr(KafkaProducer, "init_transactions"):
        fail("kafka-python %s has no transactional producer" % kafka.__version__)
    p = KafkaProducer(
        bootstrap_servers=a.bootstrap,
        client_id="kafka-python-%s" % kafka.__version__,
        **version_args(a, KafkaProducer),
        transactional_id=a.extra["txn_id"],
        compression_type=a.compression_or_none(),
        linger_ms=5,
        request_timeout_ms=a.request_timeout_ms(10000),
    )
    p.init_transactions()
    emit(event="initialised")
    first = a.start
    for k, step in enumerate(a.extra.get("plan", "c")):
        outcome = {"c": "commit", "a": "abort"}[step]
        p.begin_transaction()
        futures = [
            (i, p.send(a.topic, key=key(i), value=value(i), headers=headers(a, i)))
            for i in range(first, first + a.count)
        ]
        p.flush(timeout=a.timeout_s)
        for i, f in futures:
            md = f.get(timeout=max(1, a.timeout_s))
            emit(event="produced", index=i, partition=md.partition, offset=md.offset, txn=k,
                 outcome=outcome)
        if outcome == "commit":
            p.commit_transaction()
        else:
            p.abort_transaction()
        emit(event="txn_" + outcome, txn=k)
        first += a.count
    p.close(timeout=5)
    emit(event="done", count=first - a.start)


class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        emit(event="revoked", partitions=sorted([tp.topic, tp.partition] for tp in revoked))

    def on_partitions_assigned(self, assigned):
        emit(event="assigned", partitions=sorted([tp.topic, tp.partition] for tp in assigned))


def consume(a):
    c = KafkaConsumer(
        bootstrap_servers=a.bootstrap,
        client_id="kafka-python-%s" % kafka.__version__,
        group_id=a.group,
        auto_offset_reset="earliest",
        **version_args(a, KafkaConsumer),
        enable_auto_commit=True,
        auto_commit_interval_ms=500,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=200,
        request_timeout_ms=12000,
        **({"isolation_level": a.extra["isolation"]} if "isolation" in a.extra else {}),
    )
    c.subscribe([a.topic], listener=Listener())
    progress = ConsumeProgress(a)
    while not progress.done():
        progress.check_deadline()
        batches = c.poll(timeout_ms=200)
        for tp, records in batches.items():
            for r in records:
                progress.record(r.partition, r.offset, r.key, r.value, r.headers)
    c.commit()
    emit(event="committed")
    c.close()
    emit(event="done", count=progress.got)


def main():
    a = Args(sys.argv)
    run = {"produce": produce, "consume": consume, "txn": txn}.get(a.mode)
    if run is None:
        fail("unknown mode %s" % a.mode)
    try:
        run(a)
    except Exception as e:  # the client's own message, for the test's failure report
        fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
