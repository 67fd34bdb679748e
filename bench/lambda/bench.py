"""Cold start and warm latency of tern's Lambda `bootstrap`, driven through the Lambda Runtime API.

A minimal Runtime API (GET /2018-06-01/runtime/invocation/next, POST .../{id}/response) runs here on loopback.
Cold start = from spawning the process to receiving its first response (package load + first prediction included).
Usage: bench.py BOOTSTRAP PACKAGE_DIR TEST_CSV [RUNS]
"""
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

bootstrap, package, test_csv = sys.argv[1:4]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 20
warm_calls = 200

with open(test_csv) as f:
    rows = "\n".join(line.split(",", 1)[1] for line in f.read().splitlines()[:10]) + "\n"
event = json.dumps({"body": rows, "contentType": "text/csv", "accept": "application/json"}).encode()

events = queue.Queue()
answers = queue.Queue()


class RuntimeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm the body of every response after the
    # first on a connection waits for the client's delayed ACK (~40 ms), which would be timed as invocation latency.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        request_id = events.get()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:tern")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(event)))
        self.end_headers()
        try:
            self.wfile.write(event)
        except OSError:
            pass  # a killed process's pending request

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        answers.put((time.perf_counter(), self.path, body))


server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = {
    "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
    "AWS_LAMBDA_FUNCTION_NAME": "tern",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "TERN_PACKAGE": package,
    "PATH": os.environ.get("PATH", ""),
}


def answer(expected_id):
    while True:
        at, path, body = answers.get(timeout=60)
        if "/stale-" in path:
            continue
        assert path.endswith(f"/{expected_id}/response"), (path, body)
        return at


cold, warm = [], []
for run in range(runs):
    events.put(f"cold-{run}")
    start = time.perf_counter()
    process = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cold.append(answer(f"cold-{run}") - start)
    if run == 0:
        for call in range(warm_calls):
            sent = time.perf_counter()
            events.put(f"warm-{call}")
            warm.append(answer(f"warm-{call}") - sent)
    time.sleep(0.2)  # let the process send its next GET, then end it
    process.kill()
    process.wait()
    events.put(f"stale-{run}")  # taken by the killed process's pending GET

ms = lambda seconds: seconds * 1000
cold.sort()
warm.sort()
print(f"bootstrap: {os.path.getsize(bootstrap) / 1e6:.1f} MB; package: {package}")
print(f"cold start (spawn -> first response, 10 rows), {runs} runs: "
      f"median {ms(statistics.median(cold)):.1f} ms, min {ms(cold[0]):.1f} ms, max {ms(cold[-1]):.1f} ms")
print(f"warm invocation (10 rows), {warm_calls} calls: median {ms(statistics.median(warm)):.2f} ms, "
      f"p99 {ms(warm[int(len(warm) * 0.99) - 1]):.2f} ms")
server.shutdown()
