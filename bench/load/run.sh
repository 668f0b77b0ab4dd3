#!/usr/bin/env bash
# Load runs of the auth middleware, one scheme at a time, each against the
# same handler unwrapped receiving the very same requests (same headers,
# same tokens), in one run: bare, scheme, bare; the ratio is against the
# mean of the two bare runs. Needs wrk (Debian package wrk). Bounded: each
# wrk run lasts DURATION. See BENCHMARKS.md.
#   bench/load/run.sh                 # all schemes, 10 s per run
#   DURATION=5s bench/load/run.sh hmac jwt
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
PORT=${PORT:-18090}
schemes=("$@")
[ ${#schemes[@]} -gt 0 ] || schemes=(hmac jwt apptoken reqtoken)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/authload" ./internal/cmd/authload

# serve MODE: start authload in MODE, wait until it printed its headers.
serve() {
  rm -f "$tmp/info.$1"
  "$tmp/authload" -mode "$1" -addr "127.0.0.1:$PORT" -tokens "$tmp/tokens.$1" -n "${TOKENS:-400000}" >"$tmp/info.$1" &
  pid=$!
  for _ in $(seq 1 900); do [ -s "$tmp/info.$1" ] && return; sleep 0.1; done
  echo "authload -mode $1 did not start"; exit 1
}
# load SCHEME: wrk with SCHEME's requests against whatever serves PORT; prints req/s non2xx
load() {
  local out args=()
  if [ "$1" = reqtoken ]; then
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/load/reqtoken.lua "http://127.0.0.1:$PORT/creditscore" -- "$tmp/tokens.reqtoken" "$THREADS")
  else
    while IFS=$'\t' read -r k v; do args+=(-H "$k: $v"); done < <(python3 -c 'import json,sys; [print(k+"\t"+v) for k,v in json.load(open(sys.argv[1]))["headers"].items()]' "$tmp/info.$1")
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" ${args[@]+"${args[@]}"} "http://127.0.0.1:$PORT/creditscore")
  fi
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)"
}

printf "%-10s %12s %12s %12s %8s %8s\n" scheme bare1 scheme bare2 ratio non2xx
for s in "${schemes[@]}"; do
  serve "$s"; spid=$pid; kill "$spid"; wait "$spid" 2>/dev/null || true   # headers/tokens for SCHEME
  serve bare; read -r b1 _ < <(load "$s"); kill "$pid"; wait "$pid" 2>/dev/null || true
  serve "$s"; read -r r n < <(load "$s"); kill "$pid"; wait "$pid" 2>/dev/null || true
  serve bare; read -r b2 _ < <(load "$s"); kill "$pid"; wait "$pid" 2>/dev/null || true
  ratio=$(python3 -c "print(f'{$r/(($b1+$b2)/2):.3f}')")
  printf "%-10s %12s %12s %12s %8s %8s\n" "$s" "$b1" "$r" "$b2" "$ratio" "$n"
done
