#!/usr/bin/env bash
# bench/load/ab.sh SCHEME ROUNDS BIN... : compares builds of internal/cmd/authload; per round and per binary: bare, scheme, bare (wrk -t1 -c32 DURATION)
# prints req/s, ratio and server CPU µs/request (utime+stime from /proc over the wrk run).
set -euo pipefail
cd "$(dirname "$0")/../.."
s=$1; rounds=$2; shift 2; bins=("$@")
DURATION=${DURATION:-8s}; PORT=${PORT:-18091}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
TCK=$(getconf CLK_TCK)
serve() { # bin mode
  rm -f "$tmp/info"
  "$1" -mode "$2" -addr "127.0.0.1:$PORT" -tokens "$tmp/tokens" -n 400000 >"$tmp/info" &
  pid=$!
  for _ in $(seq 1 900); do [ -s "$tmp/info" ] && return; sleep 0.1; done
  echo "no start"; exit 1
}
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
load() { # bin mode -> "rps cpu_us_per_req non2xx"
  serve "$1" "$2"; sleep 0.3
  local c0 out c1 rps n
  c0=$(cpu $pid)
  out=$(wrk -t1 -c32 -d"$DURATION" "${args[@]}" "http://127.0.0.1:$PORT/creditscore")
  c1=$(cpu $pid)
  kill $pid; wait $pid 2>/dev/null || true
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  tot=$(awk '/requests in/ {print $1}' <<<"$out")
  n=$(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)
  echo "$rps $(python3 -c "print(f'{($c1-$c0)/$TCK*1e6/$tot:.2f}')") $n"
}
# headers from the first binary
serve "${bins[0]}" "$s"; kill $pid; wait $pid 2>/dev/null || true
args=()
while IFS=$'\t' read -r k v; do args+=(-H "$k: $v"); done < <(python3 -c 'import json,sys; [print(k+"\t"+v) for k,v in json.load(open(sys.argv[1]))["headers"].items()]' "$tmp/info")
printf "%-6s %-22s %10s %6s %10s %6s %10s %6s %7s %5s\n" round bin bare1 cpu1 scheme cpuS bare2 cpu2 ratio non2
for r in $(seq 1 "$rounds"); do
  for b in "${bins[@]}"; do
    read -r b1 c1 _ < <(load "$b" bare)
    read -r x cx n < <(load "$b" "$s")
    read -r b2 c2 _ < <(load "$b" bare)
    ratio=$(python3 -c "print(f'{$x/(($b1+$b2)/2):.3f}')")
    printf "%-6s %-22s %10s %6s %10s %6s %10s %6s %7s %5s\n" "$r" "$(basename $b)" "$b1" "$c1" "$x" "$cx" "$b2" "$c2" "$ratio" "$n"
  done
done
