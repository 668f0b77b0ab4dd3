#!/bin/sh
# Full benchmark run; raw output goes to results/*.txt
set -e
cd "$(dirname "$0")"
mkdir -p results
go test -run '^$' -bench 'A_'  -benchmem -count 3 -benchtime 1s -timeout 30m | tee results/A.txt
go test -run '^$' -bench 'B_'  -benchmem -count 3 -benchtime 2s -timeout 30m | tee results/B.txt
go test -run '^$' -bench 'C_'  -benchmem -count 3 -benchtime 2s -timeout 30m | tee results/C.txt
go test -run '^$' -bench 'D_'  -benchmem -count 3 -benchtime 5s -timeout 30m | tee results/D.txt
