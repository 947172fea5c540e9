#!/bin/sh
# The benchmarks behind the figures in the issues. Prints each figure and the ratios.
#   .ci/bench.sh                everything (an hour or more: builds the 200k, 1M and scale data sets once,
#                               under ${TMPDIR:-/tmp}/fasten-bench)
#   FASTEN_BENCH_RESOURCES=N    size of the replicated data set of the import and query benchmarks (default 200000)
#   FASTEN_BENCH_MILLION=0      skip the one-million-record import against the floor
#   FASTEN_BENCH_SCALE=N        records of the two scale shapes (default 1000000)
#   The last step times the desktop window start on the scale databases (needs make build, Xvfb).
set -eu
cd "$(dirname "$0")/.."
filter='^Benchmark|ratio|peak RSS|MB in|resources/s|p50|p99|req/s|^scale'
run() { echo "== $*"; go test -run '^$' -timeout 180m "$@" 2>&1 | grep -E "$filter" || true; }
runenv() { e="$1"; shift; echo "== $e $*"; env "$e" go test -run '^$' -timeout 180m "$@" 2>&1 | grep -E "$filter" || true; }

# Issue 17: the importer against the storage floor (each a process of its own, two rounds,
# alternating), at the default size and at a million records.
run -bench 'ImportVsFloor' -benchtime 1x ./internal/importer/
if [ "${FASTEN_BENCH_MILLION:-1}" != 0 ]; then
  runenv FASTEN_BENCH_RESOURCES=1000000 -bench 'ImportVsFloor' -benchtime 1x ./internal/importer/
fi
run -bench 'ImportVsRaw' -benchtime 2x ./internal/importer/
run -bench 'Queries' -benchtime 1x ./internal/importer/
# Issue 17: a million records in two shapes through the HTTP API.
run -bench 'Scale' -benchtime 1x ./internal/backend/
run -bench 'ImportPeakRSS' -benchtime 1x ./internal/importer/
run -bench 'Sync50k' -benchtime 1x ./internal/syncer/
run -bench 'Connect' -benchtime 2000x ./internal/lighthouse/gateway/
run -bench 'Hub100' -benchtime 500x ./internal/events/

# Time from process start to the dashboard rendered in the desktop window, on the databases the
# Scale benchmark built (each copied once into a data folder): the binary prints
# "fasten: ui-ready view=dashboard elapsed_ms=N" when the frontend reports the dashboard with
# data. Needs `make build`, Xvfb and a D-Bus session.
scale="${FASTEN_BENCH_SCALE:-1000000}"
schema=$(ls internal/db/migrations/*.sql | wc -l)
for shape in people person; do
  db="${TMPDIR:-/tmp}/fasten-bench/scale-$shape-$scale-schema$schema/fasten.db"
  if [ -x build/bin/fasten-desktop ] && [ -f "$db" ] && command -v Xvfb >/dev/null && command -v dbus-run-session >/dev/null; then
    echo "== desktop start to dashboard, $scale records, shape $shape"
    dbus-run-session -- sh -c '
      Xvfb :97 -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 & xvfb=$!
      sleep 1
      dir=$(mktemp -d)
      mkdir -m 700 "$dir/data"; cp "$1" "$dir/data/fasten.db"
      for i in 1 2 3 4 5 6; do
        DISPLAY=:97 WEBKIT_DISABLE_COMPOSITING_MODE=1 WEBKIT_DISABLE_DMABUF_RENDERER=1 \
          build/bin/fasten-desktop --data-dir "$dir/data" >"$dir/out" 2>&1 & app=$!
        for _ in $(seq 1 480); do
          grep -q ui-ready "$dir/out" && break
          kill -0 $app 2>/dev/null || break
          sleep 0.25
        done
        grep -o "elapsed_ms=[0-9]*" "$dir/out" || { echo "no ui-ready line; the app said:"; tail -n 5 "$dir/out"; }
        kill $app; wait $app 2>/dev/null
      done
      kill $xvfb; rm -rf "$dir"' sh "$db"
  else
    echo "== desktop start to dashboard, shape $shape: skipped (needs make build, $db from the Scale benchmark, Xvfb, dbus-run-session)"
  fi
done
