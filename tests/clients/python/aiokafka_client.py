"""aiokafka test client. See common.py for usage.

Mode txn: one transaction per letter of plan=... (c: commit, a: abort) with transactional_id
txn_id=ID, COUNT messages each, numbered on from START. Extra isolation=read_committed|
read_uncommitted sets a consumer's isolation_level (aiokafka's default: read_uncommitted)."""
import asyncio
import sys

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

from common import Args, ConsumeProgress, emit, fail, key, value

CLIENT_ID = "aiokafka-%s" % aiokafka.__version__


def sasl(a):
    if not a.sasl:
        return {}
    return dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                sasl_plain_username=a.sasl[0], sasl_plain_password=a.sasl[1])


async def produce(a):
    p = AIOKafkaProducer(
        bootstrap_servers=a.bootstrap,
        client_id=CLIENT_ID,
        acks="all",
        compression_type=a.compression_or_none(),
        linger_ms=5,
        request_timeout_ms=a.request_timeout_ms(10000),
        enable_idempotence=a.idempotent,
        **sasl(a),
    )
    await asyncio.wait_for(p.start(), a.timeout_s)
    try:
        futures = []
        for i in a.indices():
            fut = await p.send(a.topic, key=key(i), value=value(i), headers=[("idx", str(i).encode())])
            futures.append((i, fut))
        for i, fut in futures:
            md = await asyncio.wait_for(fut, a.timeout_s)
            emit(event="produced", index=i, partition=md.partition, offset=md.offset)
    finally:
        await p.stop()
    emit(event="done", count=len(futures))


async def txn(a):
    p = AIOKafkaProducer(
        bootstrap_servers=a.bootstrap,
        client_id=CLIENT_ID,
        transactional_id=a.extra["txn_id"],
        compression_type=a.compression_or_none(),
        linger_ms=5,
        request_timeout_ms=a.request_timeout_ms(10000),
        **sasl(a),
    )
    await asyncio.wait_for(p.start(), a.timeout_s)
    emit(event="initialised")
    first = a.start
    try:
        for k, step in enumerate(a.extra.get("plan", "c")):
            outcome = {"c": "commit", "a": "abort"}[step]
            await p.begin_transaction()
            futures = []
            for i in range(first, first + a.count):
                fut = await p.send(a.topic, key=key(i), value=value(i),
                                   headers=[("idx", str(i).encode())])
                futures.append((i, fut))
            for i, fut in futures:
                md = await asyncio.wait_for(fut, a.timeout_s)
                emit(event="produced", index=i, partition=md.partition, offset=md.offset, txn=k,
                     outcome=outcome)
            if outcome == "commit":
                await asyncio.wait_for(p.commit_transaction(), a.timeout_s)
            else:
                await asyncio.wait_for(p.abort_transaction(), a.timeout_s)
            emit(event="txn_" + outcome, txn=k)
            first += a.count
    finally:
        await p.stop()
    emit(event="done", count=first - a.start)


class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        emit(event="revoked", partitions=sorted([tp.topic, tp.partition] for tp in revoked))

    def on_partitions_assigned(self, assigned):
        emit(event="assigned", partitions=sorted([tp.topic, tp.partition] for tp in assigned))


async def consume(a):
    c = AIOKafkaConsumer(
        bootstrap_servers=a.bootstrap,
        client_id=CLIENT_ID,
        group_id=a.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=500,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=200,
        request_timeout_ms=12000,
        **({"isolation_level": a.extra["isolation"]} if "isolation" in a.extra else {}),
        **sasl(a),
    )
    c.subscribe([a.topic], listener=Listener())
    await asyncio.wait_for(c.start(), a.timeout_s)
    progress = ConsumeProgress(a)
    try:
        while not progress.done():
            progress.check_deadline()
            batches = await c.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for r in records:
                    progress.record(r.partition, r.offset, r.key, r.value, r.headers)
        await c.commit()
        emit(event="committed")
    finally:
        await c.stop()
    emit(event="done", count=progress.got)


def main():
    a = Args(sys.argv)
    run = {"produce": produce, "consume": consume, "txn": txn}.get(a.mode)
    if run is None:
        fail("unknown mode %s" % a.mode)
    try:
        asyncio.run(run(a))
    except SystemExit:
        raise
    except BaseException as e:  # the client's own message, for the test's failure report
        fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
