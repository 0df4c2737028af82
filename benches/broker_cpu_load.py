"""Load for benches/broker_cpu.rs: one phase against one broker, then a JSON line on stdout.

    python broker_cpu_load.py CLIENT PHASE BOOTSTRAP TOPIC COUNT SIZE

CLIENT is kafka-python or confluent (librdkafka); PHASE is create (the topic, one partition),
produce (COUNT messages of SIZE bytes, acks=1, as fast as the client goes, then flush) or consume
(COUNT messages from offset 0 of partition 0, assigned, no group). The bench reads the broker's
CPU time around each phase; this script only makes the load and says how long it took.
"""
import json
import sys
import time


def kafka_python(phase, bootstrap, topic, count, size):
    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    if phase == "create":
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
        try:
            admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        except kafka.errors.TopicAlreadyExistsError:
            pass
        admin.close()
        return
    if phase == "produce":
        p = KafkaProducer(bootstrap_servers=bootstrap, client_id="bench-kafka-python", acks=1)
        payload = b"x" * size
        for _ in range(count):
            p.send(topic, value=payload, partition=0)
        p.flush(timeout=600)
        p.close(timeout=10)
        return
    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-kafka-python",
                      enable_auto_commit=False, consumer_timeout_ms=30000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    seen = 0
    for _ in c:
        seen += 1
        if seen >= count:
            break
    c.close()
    if seen < count:
        raise SystemExit("consumed %d of %d" % (seen, count))


def confluent(phase, bootstrap, topic, count, size):
    from confluent_kafka import Consumer, Producer, TopicPartition

    if phase == "create":
        kafka_python(phase, bootstrap, topic, count, size)
        return
    if phase == "produce":
        p = Producer({"bootstrap.servers": bootstrap, "client.id": "bench-librdkafka",
                      "acks": 1, "linger.ms": 5, "queue.buffering.max.messages": 1000000})
        payload = b"x" * size
        for _ in range(count):
            while True:
                try:
                    p.produce(topic, value=payload, partition=0)
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
        left = p.flush(600)
        if left:
            raise SystemExit("%d messages not delivered" % left)
        return
    c = Consumer({"bootstrap.servers": bootstrap, "client.id": "bench-librdkafka",
                  "group.id": "bench-unused", "enable.auto.commit": False,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(topic, 0, 0)])
    seen = 0
    deadline = time.time() + 120
    while seen < count and time.time() < deadline:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error() is None:
                seen += 1
    c.close()
    if seen < count:
        raise SystemExit("consumed %d of %d" % (seen, count))


def main():
    client, phase, bootstrap, topic, count, size = sys.argv[1:7]
    count, size = int(count), int(size)
    run = {"kafka-python": kafka_python, "confluent": confluent}[client]
    t = time.time()
    run(phase, bootstrap, topic, count, size)
    print(json.dumps({"phase": phase, "seconds": time.time() - t}))


if __name__ == "__main__":
    main()
