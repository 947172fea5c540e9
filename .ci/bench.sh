#!/bin/sh
# The benchmarks behind the figures in the issues. Prints each figure and the import/raw ratio.
#   .ci/bench.sh              everything (several minutes; builds 200k-resource and 1 GiB data sets once)
#   FASTEN_BENCH_RESOURCES=N  size of the replicated data set (default 200000)
set -eu
cd "$(dirname "$0")/.."
run() { echo "== $*"; go test -run '^$' -timeout 60m "$@" 2>&1 | grep -E '^Benchmark|ratio|peak RSS|MB in|resources/s|p50|p99|req/s' || true; }
run -bench 'ImportVsRaw' -benchtime 2x ./internal/importer/
run -bench 'Queries' -benchtime 1x ./internal/importer/
run -bench 'ImportPeakRSS' -benchtime 1x ./internal/importer/
run -bench 'Sync50k' -benchtime 1x ./internal/syncer/
run -bench 'Connect' -benchtime 2000x ./internal/lighthouse/gateway/
run -bench 'Hub100' -benchtime 500x ./internal/events/
