#!/usr/bin/env bash
# Load run of the capture middleware: the same authenticated route served
# by authload without capture (auth) and with capture and a real Shipper
# (capture), receiving the very same requests, alternating
# auth capture auth capture ... auth (ROUNDS capture runs, each between two
# auth runs). Each round's ratio is the capture run over the mean of the
# two auth runs around it; the summary gives the medians. The Shipper's
# collector runs in the same process (COLLECTOR=discard: it reads each
# batch and answers; COLLECTOR=count: it also decompresses it and counts
# the events). Needs wrk. Bounded: each wrk run lasts DURATION. See
# BENCHMARKS.md.
#   bench/load/capture.sh                  # jwt, 3 rounds of 10 s
#   ROUNDS=5 DURATION=5s bench/load/capture.sh hmac
#   AUTHLOAD=/tmp/authload.old bench/load/capture.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
PORT=${PORT:-18091}
ROUNDS=${ROUNDS:-3}
COLLECTOR=${COLLECTOR:-discard}
scheme=${1:-jwt}
case "$scheme" in hmac | jwt | apptoken) ;; *) echo "scheme: hmac, jwt or apptoken"; exit 1 ;; esac
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
bin=${AUTHLOAD:-}
if [ -z "$bin" ]; then
  go build -o "$tmp/authload" ./internal/cmd/authload
  bin=$tmp/authload
fi

# serve ARGS...: start authload, wait until it printed its headers.
serve() {
  rm -f "$tmp/info"
  "$bin" -mode "$scheme" -addr "127.0.0.1:$PORT" "$@" >"$tmp/info" 2>"$tmp/stats" &
  pid=$!
  for _ in $(seq 1 300); do [ -s "$tmp/info" ] && return; sleep 0.1; done
  echo "authload did not start"; exit 1
}
# stop: SIGTERM authload (with -capture it prints the Shipper's stats).
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
# load: wrk against PORT with the headers authload printed; prints req/s non2xx
load() {
  local out args=()
  while IFS=$'\t' read -r k v; do args+=(-H "$k: $v"); done < <(python3 -c 'import json,sys; [print(k+"\t"+v) for k,v in json.load(open(sys.argv[1]))["headers"].items()]' "$tmp/info")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "${args[@]}" "http://127.0.0.1:$PORT/creditscore")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)"
}
auth() { serve; read -r r n < <(load); stop; echo "$r"; [ "$n" = 0 ] || echo "non-2xx: $n" >&2; }

printf "%-6s %12s %12s %12s %8s %10s %10s %8s\n" round auth capture auth ratio enqueued sent dropped
a=$(auth)
ratios=() auths=("$a") caps=()
for i in $(seq 1 "$ROUNDS"); do
  serve -capture -collector "$COLLECTOR"; read -r c n < <(load); stop
  [ "$n" = 0 ] || echo "non-2xx: $n" >&2
  read -r enq sent dropped < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["enqueued"], s["sent"], s["dropped_queue_full"]+s["dropped_shutdown"]+s["dropped_invalid"])' "$tmp/stats")
  b=$(auth)
  ratio=$(python3 -c "print(f'{$c/(($a+$b)/2):.3f}')")
  printf "%-6s %12s %12s %12s %8s %10s %10s %8s\n" "$i" "$a" "$c" "$b" "$ratio" "$enq" "$sent" "$dropped"
  ratios+=("$ratio") auths+=("$b") caps+=("$c") a=$b
done
python3 -c '
import statistics as s, sys
a, c, r = (list(map(float, x.split())) for x in sys.argv[1:4])
print(f"median: auth {s.median(a):.0f} req/s, capture {s.median(c):.0f} req/s, ratio {s.median(r):.3f} (rounds {min(r):.3f}-{max(r):.3f})")
' "${auths[*]}" "${caps[*]}" "${ratios[*]}"
