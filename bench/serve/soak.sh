#!/usr/bin/env bash
# tern serve soak: compiles the README's demo model (Linear Learner on examples/breast_cancer), serves it on loopback
# with micro-batching off (--max-batch 1) and on (--max-batch 64, waiting 2 ms), and for SECONDS per setting keeps
# CONNECTIONS clients sending a mix of good requests (CSV, JSON), malformed ones (400), unsupported types
# (415), oversized bodies (413) and bodies that stop half-way (408 after the body timeout) through soak.py. Prints per
# interval the answers, the good requests' p50/p99 latency and the unexpected answers (goal: none), and the server's
# RSS after the warm-up and at the end (goal: flat within 10%); then stops the server with SIGTERM. Figures are
# printed, not asserted; the exit status is non-zero when an answer was unexpected or the server did not stop.
#   bench/serve/soak.sh [SECONDS] [CONNECTIONS]      (defaults: 600 s per setting, 8 connections)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
seconds="${1:-600}"; connections="${2:-8}"
max_payload_mb=1; body_timeout_s=5

cargo build --release -p tern --quiet
tern="$CARGO_TARGET_DIR/release/tern"
work="$(mktemp -d)"
# Only the server this script started: `kill 0` would end the caller's whole process group.
trap '[ -n "${server:-}" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

data=examples/breast_cancer
"$tern" train --algorithm linear-learner --train "$data/train.csv" --validation "$data/validation.csv" \
  --hp predictor_type=binary_classifier --hp epochs=15 --hp mini_batch_size=32 --output-dir "$work/model" \
  --quiet --no-plots
"$tern" compile "$work/model/model.tar.gz" --held-out "$data/test.csv" -o "$work/package" 2>/dev/null
head -n 1 "$data/test.csv" | cut -d, -f2- > "$work/row.csv"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
status=0
for mode in "unbatched:--max-batch 1" "batched:--max-batch 64 --max-wait-ms 2"; do
  name="${mode%%:*}"; flags="${mode#*:}"
  echo "== $name ($flags), $seconds s, $connections connections + 1 slow client"
  # shellcheck disable=SC2086
  "$tern" serve "$work/package" --port "$port" $flags --max-payload-mb "$max_payload_mb" \
    --body-timeout-s "$body_timeout_s" --log-level error 2>"$work/serve-$name.log" &
  server=$!
  for _ in $(seq 400); do curl -sf "$url/ping" >/dev/null && break; sleep 0.05; done
  python3 bench/serve/soak.py "$url" "$server" "$seconds" "$connections" "$work/row.csv" \
    "$((max_payload_mb * 1024 * 1024))" "$body_timeout_s" || status=1
  kill -TERM "$server"
  stopped=""
  for _ in $(seq 400); do kill -0 "$server" 2>/dev/null || { stopped=yes; break; }; sleep 0.1; done
  if [ -n "$stopped" ]; then wait "$server" || status=1; else echo "the server did not stop within 40 s of SIGTERM"; status=1; fi
  server=""
  if [ -s "$work/serve-$name.log" ]; then echo "server errors:"; head -n 5 "$work/serve-$name.log"; fi
done
exit "$status"
