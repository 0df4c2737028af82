"""Shared by the Python test clients: arguments, the payload formula and JSON-line output.

Every client program takes: MODE BOOTSTRAP TOPIC GROUP COUNT COMPRESSION START [key=value ...]
and prints one JSON object a line (see tests/clients/README.md).
"""
import json
import os
import sys
import time


def key(i):
    return b"key-%d" % i


def value(i):
    """Distinct, binary-safe (not valid UTF-8), compressible payload number i."""
    return (
        b"chronik-%06d|" % i
        + bytes([0x00, 0xFF, 0xFE, 0x80, 0xC3, 0x28, i & 0xFF, (i * 7) & 0xFF])
        + b"|"
        + b"compressible-" * (1 + i % 5)
    )


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def fail(message):
    emit(event="error", message=str(message))
    sys.exit(1)


class Args:
    def __init__(self, argv):
        if len(argv) < 8:
            fail("usage: MODE BOOTSTRAP TOPIC GROUP COUNT COMPRESSION START [key=value ...]")
        self.mode, self.bootstrap, self.topic, self.group = argv[1:5]
        self.count = int(argv[5])
        self.compression = argv[6]
        self.start = int(argv[7])
        self.extra = dict(a.split("=", 1) for a in argv[8:] if "=" in a)
        # consume: stop after idle_ms without a record once at least COUNT arrived (COUNT 0:
        # only the idle rule applies, after the first record).
        self.idle_ms = int(self.extra.get("idle_ms", "0"))
        self.timeout_s = int(self.extra.get("timeout_ms", "40000")) / 1000.0
        self.idempotent = self.extra.get("idempotent", "0") == "1"
        # consume: finish (commit, close) as soon as this file exists.
        self.stop_file = self.extra.get("stop_file")
        # sasl=USER:PASS: SASL/PLAIN over plaintext.
        self.sasl = tuple(self.extra["sasl"].split(":", 1)) if "sasl" in self.extra else None
        self.deadline = time.monotonic() + self.timeout_s

    def request_timeout_ms(self, default):
        """extra request_timeout_ms=N: the producer's own wait for an ack (default: the
        program's usual value)."""
        return int(self.extra.get("request_timeout_ms", default))

    def indices(self):
        return range(self.start, self.start + self.count)

    def compression_or_none(self):
        return None if self.compression == "none" else self.compression

    def expired(self):
        return time.monotonic() >= self.deadline


class ConsumeProgress:
    """Decides when a consumer is done: when stop_file exists if one is given; else COUNT
    records (lingering idle_ms more to catch unexpected extra records), or with COUNT 0 idle_ms
    without a record after the first."""

    def __init__(self, args):
        self.args = args
        self.got = 0
        self.last = None

    def record(self, partition, offset, k, v, headers):
        self.got += 1
        self.last = time.monotonic()
        emit(
            event="consumed",
            partition=partition,
            offset=offset,
            key=None if k is None else bytes(k).hex(),
            value=None if v is None else bytes(v).hex(),
            headers={hk: (None if hv is None else bytes(hv).hex()) for hk, hv in (headers or [])},
        )

    def done(self):
        a = self.args
        if a.stop_file:
            return os.path.exists(a.stop_file)
        if a.count and self.got >= a.count:
            if not a.idle_ms:
                return True
            return time.monotonic() - self.last >= a.idle_ms / 1000.0
        if not a.count and self.got and a.idle_ms:
            return time.monotonic() - self.last >= a.idle_ms / 1000.0
        return False

    def check_deadline(self):
        if self.args.expired():
            fail("consume: timed out after %d of %d records" % (self.got, self.args.count))
