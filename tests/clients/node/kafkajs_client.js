// kafkajs test client for chronik-tui's tests/clients.rs. Usage:
//   node kafkajs_client.js MODE BOOTSTRAP TOPIC GROUP COUNT COMPRESSION START [key=value ...]
// Prints one JSON object a line. Compression: none, gzip (built in), snappy (kafkajs-snappy).
// Mode txn: one transaction per letter of plan=... (c: commit, a: abort) with transactionalId
// txn_id=ID, COUNT messages each, numbered on from START. Extra isolation=read_uncommitted makes
// a consumer read uncommitted records (kafkajs reads committed ones by default).
'use strict';

const fs = require('fs');
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;

function emit(fields) {
  process.stdout.write(JSON.stringify(fields) + '\n');
}

function fail(message) {
  emit({ event: 'error', message: String(message) });
  process.exit(1);
}

function key(i) {
  return Buffer.from(`key-${i}`);
}

function value(i) {
  return Buffer.concat([
    Buffer.from(`chronik-${String(i).padStart(6, '0')}|`),
    Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, i & 0xff, (i * 7) & 0xff]),
    Buffer.from('|'),
    Buffer.from('compressible-'.repeat(1 + (i % 5))),
  ]);
}

function parseArgs(argv) {
  if (argv.length < 9) fail('usage: MODE BOOTSTRAP TOPIC GROUP COUNT COMPRESSION START [key=value ...]');
  const [mode, bootstrap, topic, group, count, compression, start] = argv.slice(2, 9);
  const extra = {};
  for (const kv of argv.slice(9)) {
    const at = kv.indexOf('=');
    if (at > 0) extra[kv.slice(0, at)] = kv.slice(at + 1);
  }
  return {
    mode, bootstrap, topic, group, compression,
    count: Number(count), start: Number(start),
    idleMs: Number(extra.idle_ms || 0),
    timeoutMs: Number(extra.timeout_ms || 40000),
    requestTimeoutMs: Number(extra.request_timeout_ms || 10000),
    stopFile: extra.stop_file,
    extra,
    sasl: extra.sasl ? extra.sasl.split(':') : null,
  };
}

const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
};

async function produce(kafka, a) {
  if (!(a.compression in COMPRESSION)) fail(`compression ${a.compression} not supported by this client`);
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const messages = [];
  for (let i = a.start; i < a.start + a.count; i++) {
    messages.push({ key: key(i), value: value(i), headers: { idx: Buffer.from(String(i)) } });
  }
  const result = await producer.send({
    topic: a.topic, acks: -1, timeout: a.requestTimeoutMs, compression: COMPRESSION[a.compression], messages,
  });
  // One batch per partition; records in a partition get consecutive offsets in send order.
  const next = {};
  for (const r of result) next[r.partition] = Number(r.baseOffset);
  // kafkajs's default partitioner is not exposed per message, so ask the result by partition:
  // with one partition (the tests' produce topics) every message is in partition 0.
  const parts = Object.keys(next);
  if (parts.length === 1) {
    const p = Number(parts[0]);
    messages.forEach((m, n) => emit({ event: 'produced', index: a.start + n, partition: p, offset: next[p] + n }));
  } else {
    messages.forEach((m, n) => emit({ event: 'produced', index: a.start + n, partition: null, offset: null }));
  }
  await producer.disconnect();
  emit({ event: 'done', count: messages.length });
}

async function txn(kafka, a) {
  if (!(a.compression in COMPRESSION)) fail(`compression ${a.compression} not supported by this client`);
  const producer = kafka.producer({
    allowAutoTopicCreation: true, transactionalId: a.extra.txn_id, idempotent: true, maxInFlightRequests: 1,
  });
  await producer.connect();
  emit({ event: 'initialised' });
  let first = a.start;
  const plan = a.extra.plan || 'c';
  for (let k = 0; k < plan.length; k++) {
    const outcome = plan[k] === 'a' ? 'abort' : 'commit';
    const t = await producer.transaction();
    const messages = [];
    for (let i = first; i < first + a.count; i++) {
      messages.push({ key: key(i), value: value(i), headers: { idx: Buffer.from(String(i)) } });
    }
    const result = await t.send({
      topic: a.topic, acks: -1, timeout: a.requestTimeoutMs, compression: COMPRESSION[a.compression], messages,
    });
    const p = result[0].partition;
    const base = Number(result[0].baseOffset);
    const single = result.length === 1;
    messages.forEach((m, n) => emit({
      event: 'produced', index: first + n, partition: single ? p : null, offset: single ? base + n : null, txn: k, outcome,
    }));
    if (outcome === 'commit') await t.commit(); else await t.abort();
    emit({ event: `txn_${outcome}`, txn: k });
    first += a.count;
  }
  await producer.disconnect();
  emit({ event: 'done', count: first - a.start });
}

async function consume(kafka, a) {
  const consumer = kafka.consumer({
    readUncommitted: a.extra.isolation === 'read_uncommitted',
    groupId: a.group,
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 200,
    retry: { retries: 5, initialRetryTime: 100 },
  });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const parts = [];
    for (const [topic, ps] of Object.entries(e.payload.memberAssignment)) {
      for (const p of ps) parts.push([topic, p]);
    }
    emit({ event: 'assigned', partitions: parts.sort((x, y) => x[1] - y[1]) });
  });
  let got = 0;
  let last = 0;
  await consumer.connect();
  await consumer.subscribe({ topics: [a.topic], fromBeginning: true });
  await consumer.run({
    autoCommitInterval: 500,
    eachMessage: async ({ partition, message }) => {
      const headers = {};
      for (const [k, v] of Object.entries(message.headers || {})) {
        headers[k] = v == null ? null : Buffer.from(v).toString('hex');
      }
      emit({
        event: 'consumed', partition, offset: Number(message.offset),
        key: message.key == null ? null : message.key.toString('hex'),
        value: message.value == null ? null : message.value.toString('hex'),
        headers,
      });
      got++;
      last = Date.now();
    },
  });
  const deadline = Date.now() + a.timeoutMs;
  const done = () => {
    if (a.stopFile) return fs.existsSync(a.stopFile);
    if (a.count > 0 && got >= a.count) return a.idleMs === 0 || Date.now() - last >= a.idleMs;
    return a.count === 0 && got > 0 && a.idleMs > 0 && Date.now() - last >= a.idleMs;
  };
  while (!done()) {
    if (Date.now() > deadline) fail(`consume: timed out after ${got} of ${a.count} records`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // disconnect() stops the run loop, commits resolved offsets and leaves the group.
  await consumer.disconnect();
  emit({ event: 'committed' });
  emit({ event: 'done', count: got });
}

async function main() {
  const a = parseArgs(process.argv);
  const kafka = new Kafka({
    clientId: 'kafkajs',
    brokers: [a.bootstrap],
    connectionTimeout: 5000,
    requestTimeout: a.requestTimeoutMs,
    logLevel: logLevel.ERROR,
    logCreator: () => ({ level, log }) => {
      emit({ event: 'log', level, message: log.message, error: log.error });
    },
    retry: { retries: 5, initialRetryTime: 100 },
    ...(a.sasl ? { sasl: { mechanism: 'plain', username: a.sasl[0], password: a.sasl.slice(1).join(':') } } : {}),
  });
  const run = { produce, consume, txn }[a.mode];
  if (!run) fail(`unknown mode ${a.mode}`);
  const timer = setTimeout(() => fail(`timed out after ${a.timeoutMs} ms`), a.timeoutMs + 5000);
  try {
    await run(kafka, a);
  } catch (e) {
    fail(`${e.name}: ${e.message}`);
  }
  clearTimeout(timer);
  process.exit(0);
}

main();
