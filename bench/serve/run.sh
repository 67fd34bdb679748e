#!/usr/bin/env bash
# tern serve under load: compiles the README's demo model (Linear Learner on examples/breast_cancer, int8), serves it
# on loopback and drives it with wrk (2 threads, 16 connections, 10 s by default) POSTing one CSV row per request.
# Prints requests/s, p50/p99 latency, non-2xx and socket errors, and the server's RSS before and after, with
# micro-batching off (--max-batch 1) and on (--max-batch 64, waiting 0 and 2 ms). Figures are printed, not asserted.
#   bench/serve/run.sh [SECONDS] [THREADS] [CONNECTIONS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
seconds="${1:-10}"; threads="${2:-2}"; connections="${3:-16}"

if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y --no-install-recommends wrk >/dev/null || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends wrk >/dev/null; }
fi
cargo build --release -p tern --quiet
tern="$CARGO_TARGET_DIR/release/tern"
work="$(mktemp -d)"
# Only the server this script started: `kill 0` would end the caller's whole process group.
trap '[ -n "${server:-}" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

data=examples/breast_cancer
"$tern" train --algorithm linear-learner --train "$data/train.csv" --validation "$data/validation.csv" \
  --hp predictor_type=binary_classifier --hp epochs=15 --hp mini_batch_size=32 --output-dir "$work/model" \
  --quiet --no-plots
"$tern" compile "$work/model/model.tar.gz" --precision int8 --calibration "$data/train.csv" \
  --held-out "$data/test.csv" -o "$work/package" 2>/dev/null
head -n 1 "$data/test.csv" | cut -d, -f2- > "$work/row.csv"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
metric() { curl -s "$url/metrics" | awk -v s="$1" '$1 == s {print $2}'; }

printf '%-28s %10s %9s %9s %7s %7s %9s %9s %8s\n' mode "req/s" "p50 ms" "p99 ms" non2xx sockerr "RSS0 MiB" "RSS1 MiB" rows/run
for mode in "off:--max-batch 1" "on, wait 0 ms:--max-batch 64 --max-wait-ms 0" "on, wait 2 ms:--max-batch 64 --max-wait-ms 2"; do
  name="${mode%%:*}"; flags="${mode#*:}"
  # shellcheck disable=SC2086
  "$tern" serve "$work/package" --bind 127.0.0.1 --port "$port" $flags --log-level warn 2>"$work/serve.log" &
  server=$!
  for _ in $(seq 400); do curl -sf "$url/ping" >/dev/null && break; sleep 0.05; done
  wrk -t "$threads" -c "$connections" -d 2s -s bench/serve/post.lua "$url" -- "$work/row.csv" >/dev/null  # warm-up
  before="$(rss "$server")"
  result="$(wrk -t "$threads" -c "$connections" -d "${seconds}s" -s bench/serve/post.lua "$url" -- "$work/row.csv" | grep '^RESULT')"
  after="$(rss "$server")"
  rows="$(metric 'tern_batch_size_rows_sum{variant="AllTraffic"}')"; batches="$(metric 'tern_batches_total{variant="AllTraffic"}')"
  kill -TERM "$server"; wait "$server" || true; server=""
  eval "${result#RESULT }"
  awk -v n="$name" -v r="$requests" -v d="$duration_us" -v p50="$p50_us" -v p99="$p99_us" -v e="$non2xx" \
      -v s="$socket_errors" -v b="$before" -v a="$after" -v rows="${rows:-}" -v batches="${batches:-}" 'BEGIN {
    per = (batches > 0) ? sprintf("%.2f", rows / batches) : "-"
    printf "%-28s %10.0f %9.3f %9.3f %7d %7d %9.1f %9.1f %8s\n", n, r / (d / 1e6), p50 / 1e3, p99 / 1e3, e, s, b / 1024, a / 1024, per }'
done
echo "($seconds s per mode after a 2 s warm-up, wrk -t $threads -c $connections, one CSV row per request, $(nproc) cores)"
