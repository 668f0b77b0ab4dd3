#!/usr/bin/env bash
# Load runs of the auth middleware, one scheme at a time, against the same
# handler unwrapped, in one run (see BENCHMARKS.md). Needs wrk (Debian
# package wrk). Bounded: each run is DURATION long.
#   bench/load/run.sh            # all modes, 10 s each
#   DURATION=5s bench/load/run.sh bare hmac
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
PORT=${PORT:-18090}
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(bare hmac jwt apptoken reqtoken bare)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/authload" ./internal/cmd/authload
printf "%-10s %12s %10s %8s\n" mode req/s non2xx p99
for mode in "${modes[@]}"; do
  "$tmp/authload" -mode "$mode" -addr "127.0.0.1:$PORT" -tokens "$tmp/tokens" -n "${TOKENS:-300000}" >"$tmp/info" &
  pid=$!
  for _ in $(seq 1 600); do [ -s "$tmp/info" ] && break; sleep 0.1; done
  args=()
  while IFS=$'\t' read -r k v; do args+=(-H "$k: $v"); done < <(python3 -c 'import json,sys; [print(k+"\t"+v) for k,v in json.load(open(sys.argv[1]))["headers"].items()]' "$tmp/info")
  if [ "$mode" = reqtoken ]; then
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/load/reqtoken.lua "http://127.0.0.1:$PORT/creditscore" -- "$tmp/tokens" "$THREADS")
  else
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency ${args[@]+"${args[@]}"} "http://127.0.0.1:$PORT/creditscore")
  fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf "%-10s %12s %10s %8s\n" "$mode" "$rps" "$non2xx" "$p99"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$tmp/info"
done
