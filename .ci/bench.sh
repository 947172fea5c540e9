#!/bin/sh
# The benchmarks behind the figures in the issues. Prints each figure and the import/raw ratio.
#   .ci/bench.sh              everything (several minutes; builds 200k-resource and 1 GiB data sets once)
#   FASTEN_BENCH_RESOURCES=N  size of the replicated data set (default 200000)
#   The last step times the desktop window start on the 200k database (needs make build, Xvfb).
set -eu
cd "$(dirname "$0")/.."
run() { echo "== $*"; go test -run '^$' -timeout 60m "$@" 2>&1 | grep -E '^Benchmark|ratio|peak RSS|MB in|resources/s|p50|p99|req/s' || true; }
run -bench 'ImportVsFloor' -benchtime 1x ./internal/importer/
run -bench 'ImportVsRaw' -benchtime 2x ./internal/importer/
run -bench 'Queries' -benchtime 1x ./internal/importer/
run -bench 'ImportPeakRSS' -benchtime 1x ./internal/importer/
run -bench 'Sync50k' -benchtime 1x ./internal/syncer/
run -bench 'Connect' -benchtime 2000x ./internal/lighthouse/gateway/
run -bench 'Hub100' -benchtime 500x ./internal/events/

# Time from process start to the dashboard rendered in the desktop window, on the database the
# Queries benchmark built: the binary prints "fasten: ui-ready view=dashboard elapsed_ms=N" when
# the frontend reports the dashboard with data. Needs `make build`, Xvfb and a D-Bus session.
n="${FASTEN_BENCH_RESOURCES:-200000}"
db="${TMPDIR:-/tmp}/fasten-bench/synthea-$n.db"
if [ -x build/bin/fasten-desktop ] && [ -f "$db" ] && command -v Xvfb >/dev/null && command -v dbus-run-session >/dev/null; then
  echo "== desktop start to dashboard, $n resources"
  dbus-run-session -- sh -c '
    Xvfb :97 -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 & xvfb=$!
    sleep 1
    dir=$(mktemp -d)
    for i in 1 2 3 4 5; do
      rm -rf "$dir/data"; mkdir -m 700 "$dir/data"; cp "$1" "$dir/data/fasten.db"
      DISPLAY=:97 WEBKIT_DISABLE_COMPOSITING_MODE=1 WEBKIT_DISABLE_DMABUF_RENDERER=1 \
        build/bin/fasten-desktop --data-dir "$dir/data" >"$dir/out" 2>&1 & app=$!
      for _ in $(seq 1 240); do
        grep -q ui-ready "$dir/out" && break
        kill -0 $app 2>/dev/null || break
        sleep 0.5
      done
      grep -o "elapsed_ms=[0-9]*" "$dir/out" || { echo "no ui-ready line; the app said:"; tail -n 5 "$dir/out"; }
      kill $app; wait $app 2>/dev/null
    done
    kill $xvfb; rm -rf "$dir"' sh "$db"
else
  echo "== desktop start to dashboard: skipped (needs make build, $db from the Queries benchmark, Xvfb, dbus-run-session)"
fi
