"""Soak driver for `tern serve` (run by soak.sh): keeps CONNECTIONS loopback clients sending a fixed mix of good,
malformed, oversized and slow requests for SECONDS, then prints, per interval, the requests answered, the p99 latency
of the good ones and the unexpected answers, and at the end the unexpected answers by kind and outcome and the
server's RSS at start (after a warm-up) and end. Only the standard library; stops by itself after SECONDS.

    python3 soak.py URL SERVER_PID SECONDS CONNECTIONS ROW_CSV MAX_PAYLOAD_BYTES BODY_TIMEOUT_S
"""

import http.client
import json
import random
import socket
import sys
import threading
import time
import urllib.parse

url, server_pid, seconds, connections, row_file, max_payload, body_timeout = sys.argv[1:8]
seconds, connections, max_payload, body_timeout = int(seconds), int(connections), int(max_payload), int(body_timeout)
host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
row = open(row_file).read().strip()
features = [float(v) for v in row.split(",")]

# (name, weight, content type, body, the statuses that are expected)
KINDS = [
    ("csv", 40, "text/csv", (row + "\n").encode(), {200}),
    ("csv x32", 10, "text/csv", ((row + "\n") * 32).encode(), {200}),
    ("json", 15, "application/json", json.dumps({"instances": [{"features": features}]}).encode(), {200}),
    ("not a number", 8, "text/csv", b"1.0,2.0,oops\n", {400}),
    ("wrong width", 5, "text/csv", b"1.0,2.0,3.0\n", {400}),
    ("truncated json", 5, "application/json", b'{"instances": [', {400}),
    ("json [[0],...]", 2, "application/json", b"[" + b",".join([b"[0]"] * 50_000) + b"]", {400}),
    ("unknown type", 5, "text/plain", b"1,2,3\n", {415}),
    ("oversized", 5, "text/csv", ((row + "\n") * (max_payload // len(row) + 2)).encode(), {413}),
]
WEIGHTS = [k[1] for k in KINDS]

lock = threading.Lock()
records = []  # (finish time, kind, status or error text, seconds)
unexpected = []


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def note(kind, outcome, elapsed, expected):
    with lock:
        records.append((time.monotonic(), kind, outcome, elapsed))
        if outcome not in expected:
            unexpected.append(f"{kind}: {outcome}")


def client(seed, stop_at):
    rng = random.Random(seed)
    connection = None
    while time.monotonic() < stop_at:
        name, _, content_type, body, expected = rng.choices(KINDS, weights=WEIGHTS)[0]
        if connection is None:
            connection = http.client.HTTPConnection(host, port, timeout=70)
        started = time.monotonic()
        try:
            connection.request("POST", "/invocations", body=body,
                               headers={"Content-Type": content_type, "Accept": "application/json"})
            response = connection.getresponse()
            response.read()
            outcome = response.status
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except (ConnectionResetError, BrokenPipeError) as error:
            # The server answers 413 before reading an oversized body and closes: the client may see the reset first.
            outcome = 413 if name == "oversized" else f"{type(error).__name__}: {error}"
            connection.close()
            connection = None
        except Exception as error:  # noqa: BLE001 - every other failure is an unexpected answer, reported
            outcome = f"{type(error).__name__}: {error}"
            connection.close()
            connection = None
        note(name, outcome, time.monotonic() - started, expected)
    if connection is not None:
        connection.close()


def slow_client(stop_at):
    """Every few seconds, a client that sends half a body and stops: the server must answer 408 after the body
    timeout and close."""
    body = (row + "\n").encode()
    while time.monotonic() + body_timeout + 5 < stop_at:
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=body_timeout + 30) as sock:
                sock.sendall(f"POST /invocations HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/csv\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            outcome = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1 ") else f"closed without answer: {answer!r}"
        except Exception as error:  # noqa: BLE001
            outcome = f"{type(error).__name__}: {error}"
        note("slow body", outcome, time.monotonic() - started, {408})
        time.sleep(2)


def p99(values):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(0.99 * len(values)))]


def main():
    warm_up = min(10, max(2, seconds // 10))
    interval = max(5, seconds // 10)
    start = time.monotonic()
    stop_at = start + seconds
    threads = [threading.Thread(target=client, args=(i, stop_at)) for i in range(connections)]
    threads.append(threading.Thread(target=slow_client, args=(stop_at,)))
    for thread in threads:
        thread.start()
    time.sleep(warm_up)
    rss_start = rss_kib(server_pid)
    print(f"{'interval s':>12} {'answered':>9} {'good':>7} {'p50 ms':>8} {'p99 ms':>8} {'unexpected':>10} {'RSS MiB':>8}")
    edge = start
    printed = 0
    while True:
        edge += interval
        if edge > stop_at:
            break
        time.sleep(max(0.0, edge - time.monotonic()))
        with lock:
            window = [r for r in records if edge - interval <= r[0] < edge]
            bad = len(unexpected)
        good = sorted(r[3] for r in window if r[2] == 200)
        p50 = good[len(good) // 2] if good else float("nan")
        print(f"{edge - interval - start:5.0f}-{edge - start:<6.0f} {len(window):9d} {len(good):7d} "
              f"{p50 * 1e3:8.2f} {p99(good) * 1e3:8.2f} {bad - printed:10d} {rss_kib(server_pid) / 1024:8.1f}",
              flush=True)
        printed = bad
    for thread in threads:
        thread.join()
    rss_end = rss_kib(server_pid)
    by_kind = {}
    for _, kind, outcome, _ in records:
        by_kind.setdefault(kind, {}).setdefault(str(outcome), 0)
        by_kind[kind][str(outcome)] += 1
    print("answers by kind:", json.dumps(by_kind, sort_keys=True))
    print(f"unexpected answers: {len(unexpected)}")
    for line in sorted(set(unexpected))[:20]:
        print(f"  {unexpected.count(line)} x {line}")
    change = (rss_end - rss_start) / rss_start * 100 if rss_start else float("nan")
    print(f"RSS after {warm_up} s warm-up: {rss_start / 1024:.1f} MiB; at the end: {rss_end / 1024:.1f} MiB "
          f"({change:+.1f}%)")
    sys.exit(1 if unexpected else 0)


main()
