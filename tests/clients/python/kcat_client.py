"""Drives Debian's kcat (librdkafka 2.0) as a test client. See common.py for usage.

Produce: one `kcat -P` run reading keys and values from stdin with multi-byte delimiters, so
binary payloads pass through untouched; kcat sets the same headers on every message, so each
carries `src=kcat` (not the per-message `idx` header). kcat prints no offsets when producing.
Consume: `kcat -G GROUP` (the balanced KafkaConsumer) with `-c COUNT`, or with extra simple=1
`kcat -C -o beginning -e` (no group); the output format gives key and payload lengths so the
bytes can be split exactly. kcat commits on close.
"""
import subprocess
import sys

from common import Args, emit, fail, key, value

KEY_DELIM = b"\x01KCAT-KEY\x02"
MSG_DELIM = b"\x01KCAT-END\x02\n"


def escaped(delim):
    return "".join("\\x%02x" % b for b in delim)


def kcat(args, a, stdin=None):
    cmd = ["kcat", "-b", a.bootstrap, "-X", "client.id=kcat", "-X", "socket.timeout.ms=10000"]
    if a.sasl:
        cmd += ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
                "-X", "sasl.username=" + a.sasl[0], "-X", "sasl.password=" + a.sasl[1]]
    cmd += args
    try:
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=a.timeout_s)
    except FileNotFoundError:
        fail("kcat is not installed")
    except subprocess.TimeoutExpired as e:
        fail("kcat timed out after %ss; stderr: %s" % (a.timeout_s, (e.stderr or b"").decode("utf-8", "replace")[-2000:]))
    if p.returncode != 0:
        fail("kcat exited %d; stderr: %s" % (p.returncode, p.stderr.decode("utf-8", "replace")[-2000:]))
    return p


def produce(a):
    data = b"".join(key(i) + KEY_DELIM + value(i) + MSG_DELIM for i in a.indices())
    p = kcat(["-P", "-t", a.topic, "-K", escaped(KEY_DELIM), "-D", escaped(MSG_DELIM),
              "-H", "src=kcat", "-X", "acks=all", "-X", "compression.codec=%s" % a.compression,
              "-X", "linger.ms=5"]
             + (["-X", "request.timeout.ms=%d" % a.request_timeout_ms(30000)]
                if "request_timeout_ms" in a.extra else []), a, stdin=data)
    for i in a.indices():
        emit(event="produced", index=i, partition=None, offset=None)
    emit(event="done", count=a.count, stderr=p.stderr.decode("utf-8", "replace")[-500:])


def consume(a):
    if not a.count:
        fail("kcat client needs COUNT > 0")
    fmt = ["-f", "%p %o %K %S %h\n%k%s\n"]
    if a.extra.get("simple") == "1":
        # The simple consumer (-C): every partition from the beginning, no group, exit at the end.
        p = kcat(["-C", "-t", a.topic, "-o", "beginning", "-e", "-c", str(a.count), "-q",
                  "-X", "fetch.wait.max.ms=100"] + fmt, a)
    else:
        p = kcat(["-G", a.group, "-c", str(a.count), "-q",
                  "-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=500",
                  "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000",
                  "-X", "fetch.wait.max.ms=100"] + fmt + [a.topic], a)
    out = p.stdout
    pos = 0
    got = 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        part, off, klen, vlen, hdrs = (out[pos:nl].decode().split(" ", 4) + [""])[:5]
        pos = nl + 1
        klen, vlen = int(klen), int(vlen)
        k = out[pos:pos + klen] if klen >= 0 else None
        pos += max(klen, 0)
        v = out[pos:pos + vlen] if vlen >= 0 else None
        pos += max(vlen, 0)
        if out[pos:pos + 1] != b"\n":
            fail("unparsable kcat output at byte %d" % pos)
        pos += 1
        headers = {}
        for h in filter(None, hdrs.split(",")):
            hk, _, hv = h.partition("=")
            headers[hk] = hv.encode().hex()
        emit(event="consumed", partition=int(part), offset=int(off),
             key=None if k is None else k.hex(), value=None if v is None else v.hex(),
             headers=headers)
        got += 1
    emit(event="committed")
    emit(event="done", count=got)


def main():
    a = Args(sys.argv)
    run = {"produce": produce, "consume": consume}.get(a.mode)
    if run is None:
        fail("unknown mode %s" % a.mode)
    run(a)


if __name__ == "__main__":
    main()
