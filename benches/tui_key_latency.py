#!/usr/bin/env python3
"""Key press to redrawn screen, in a real terminal: the terminal UI runs in tmux (120x36) over a
capture, and once the whole capture is read (the screen still for 3 s) it is sent k and j in
turn (the selection moves up and down), nine presses; for each, the time from `tmux send-keys`
until `tmux capture-pane` shows a different screen. Prints each time, their median, and what
one capture-pane costs (the polling's own granularity). Figures only, not a test.

usage: benches/tui_key_latency.py BINARY CAPTURE KAFKA-PORT
e.g.   benches/tui_key_latency.py target/release/chronik-tui \\
           target/bench/decode-small-1000000x1.pcapng "$(cat target/bench/decode-small-1000000x1.port)"
(the capture of a million exchanges is the one `cargo bench --bench decode_throughput` makes).
"""
import statistics
import subprocess
import sys
import time

if len(sys.argv) != 4:
    sys.exit(__doc__)
binary, capture, port = sys.argv[1:4]
session = f"chronik-keys-{int(time.time())}"
command = (
    f"{binary} --pcap {capture} --kafka-port {port} --store-max-exchanges 2000000 "
    f"--store-max-bytes 4000000000 --log-file /tmp/{session}.log"
)
subprocess.run(
    ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "36", command], check=True
)


def screen():
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
    ).stdout


try:
    last, still_since, started = None, time.time(), time.time()
    while time.time() - still_since < 3 and time.time() - started < 600:
        now = screen()
        if now != last:
            last, still_since = now, time.time()
        time.sleep(0.2)
    print(f"capture read and shown in about {still_since - started:.1f} s")
    print("status bar:", last.splitlines()[-2].strip() if last else "-")
    times = []
    for key in ["k", "j"] * 4 + ["k"]:
        before = screen()
        t = time.perf_counter()
        subprocess.run(["tmux", "send-keys", "-t", session, key], check=True)
        while screen() == before and time.perf_counter() - t < 5:
            pass
        times.append((time.perf_counter() - t) * 1000)
        time.sleep(0.3)
    print("key to screen (ms):", " ".join(f"{x:.0f}" for x in times))
    print(f"median {statistics.median(times):.0f} ms")
    t = time.perf_counter()
    for _ in range(9):
        screen()
    print(f"one capture-pane alone: {(time.perf_counter() - t) / 9 * 1000:.1f} ms")
finally:
    subprocess.run(["tmux", "kill-session", "-t", session])
