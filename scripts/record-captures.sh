#!/bin/sh
# Records the captures in captures/ with tshark on loopback: one matrix cell each (one real
# client producing one message with acks=all against the embedded broker in one throttle
# placement mode), the broker listening on a fixed port so that tshark can filter on it.
# Needs what scripts/test.sh installs, and permission to capture on lo (root or the
# wireshark group). Usage: scripts/record-captures.sh
set -eu
cd "$(dirname "$0")/.."
cargo build --quiet
BIN=target/debug/chronik-tui
mkdir -p captures

# record NAME CLIENT MODE PORT
record() {
    name=$1 client=$2 mode=$3 port=$4
    out=captures/$name.pcapng
    rm -f "$out"
    tshark -i lo -f "tcp port $port" -w "$out" -q 2>/dev/null &
    tshark_pid=$!
    sleep 3 # tshark is listening once dumpcap has opened lo
    "$BIN" --log-file target/record-captures.log matrix --clients "$client" --modes "$mode" \
        --listen "127.0.0.1:$port" --timeout 15 --json | tee "captures/$name.cell.json"
    sleep 1
    kill -INT "$tshark_pid"
    wait "$tshark_pid" || true
    echo "$out: $(tshark -r "$out" 2>/dev/null | wc -l) frames"
}

record kafka-python-2-front kafka-python-2 front 19093
record kafka-python-2-spec kafka-python-2 spec 19094
