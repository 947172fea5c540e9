#!/bin/bash
# Checks what `make dist` built, as a user gets it (`make test-dist` runs this after `make dist`):
#  - the .deb: its contents, its desktop entry (desktop-file-validate) and AppStream metainfo
#    (appstreamcli validate), installed with apt-get; the installed /usr/bin/fasten-desktop prints
#    the version, serves the built-in demo hospital from an empty folder without
#    FASTEN_SHARED_DATA, opens its window under Xvfb (the desktop smoke test, screenshot saved and
#    named in the log) and connects the demo hospital from the UI (browser e2e); then removed;
#  - the Windows .exe and installer are PE32+ GUI executables for AMD64;
#  - every package vets and compiles its tests for Windows;
#  - the headless tarballs hold a binary of the right platform.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
DIST=build/dist
OUTDIR=$PWD/$DIST/test-output
mkdir -p "$OUTDIR"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
step() { printf '\n== test-dist: %s\n' "$*"; }

deb=$(ls $DIST/fasten-desktop_*_amd64.deb)
version=$(cd $DIST && ls fasten-desktop-*-windows-amd64.exe | sed -e 's/^fasten-desktop-//' -e 's/-windows-amd64.exe$//')

step "SHA256SUMS"
(cd $DIST && sha256sum --check --strict SHA256SUMS)
[ "$(wc -l < $DIST/SHA256SUMS)" = 5 ] || { echo "SHA256SUMS should list 5 files"; exit 1; }

step "the .deb: $deb"
dpkg-deb --info "$deb"
contents=$(dpkg-deb --contents "$deb")
echo "$contents"
for path in ./usr/bin/fasten-desktop ./usr/share/applications/com.fastenhealth.FastenDesktop.desktop \
  ./usr/share/metainfo/com.fastenhealth.FastenDesktop.metainfo.xml; do
  grep -q " $path\$" <<<"$contents" || { echo "missing $path"; exit 1; }
done
for size in 16 32 48 64 128 256 512; do
  grep -q " ./usr/share/icons/hicolor/${size}x${size}/apps/fasten-desktop.png\$" <<<"$contents" || { echo "missing the ${size}px icon"; exit 1; }
done
depends=$(dpkg-deb --field "$deb" Depends)
case "$depends" in *-dev*) echo "Depends names a development package: $depends"; exit 1 ;; esac
for lib in libgtk-3-0 libwebkit2gtk-4.1-0; do
  grep -q "$lib" <<<"$depends" || { echo "Depends lacks $lib: $depends"; exit 1; }
done
grep -q gnome-keyring <<<"$(dpkg-deb --field "$deb" Recommends)"
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x"
desktop-file-validate "$x/usr/share/applications/com.fastenhealth.FastenDesktop.desktop"
appstreamcli validate --no-net --explain "$x/usr/share/metainfo/com.fastenhealth.FastenDesktop.metainfo.xml"

step "install it"
installed=0
cleanup() {
  if [ "$installed" = 1 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get remove -y -qq fasten-desktop >/dev/null || true
  fi
  rm -rf "$x"
}
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "./$deb"
installed=1
bin=/usr/bin/fasten-desktop
got=$($bin version)
echo "$got"
[ "$got" = "fasten-desktop $version" ] || { echo "version says \"$got\", want \"fasten-desktop $version\""; exit 1; }

# The desktop build leaves the PostgreSQL driver out (internal/cli/postgres.go) and says so.
if $GO version -m $bin | grep -q jackc/pgx; then echo "the desktop binary links the PostgreSQL driver"; exit 1; fi
if out=$($bin lighthouse --listen 127.0.0.1:0 --db postgres://nobody@127.0.0.1:9/x --providers /dev/null 2>&1); then
  echo "lighthouse with postgres:// started in the desktop build"; exit 1
fi
grep -q "no PostgreSQL support" <<<"$out" || { echo "lighthouse with postgres:// said: $out"; exit 1; }

step "the demo hospital from an empty folder, no FASTEN_SHARED_DATA"
empty=$(mktemp -d)
(cd "$empty" && exec env -u FASTEN_SHARED_DATA $bin sandbox --listen 127.0.0.1:0 --lighthouse-listen 127.0.0.1:0 >"$x/sandbox.out" 2>"$x/sandbox.err") &
sandbox_pid=$!
fhir=""
for _ in $(seq 1 300); do # up to 30 s
  fhir=$(sed -n 's/^fhir_base=//p' "$x/sandbox.out")
  [ -n "$fhir" ] && break
  kill -0 $sandbox_pid 2>/dev/null || break
  sleep 0.1
done
if [ -z "$fhir" ]; then
  echo "sandbox printed no fhir_base:"; cat "$x/sandbox.err"; kill $sandbox_pid 2>/dev/null || true; exit 1
fi
curl -fsS "$fhir/metadata" | grep -q '"CapabilityStatement"'
echo "demo hospital at $fhir answers; files in its folder: $(ls -A "$empty" | wc -l)"
kill $sandbox_pid
wait $sandbox_pid || true
rmdir "$empty"

step "the installed app's window (desktop smoke test under Xvfb)"
# Inside a private D-Bus session (as in make test-go), so the app autolaunches no session bus.
FASTEN_DESKTOP_BIN=$bin FASTEN_TEST_OUTPUT="$OUTDIR" .ci/with-keyring.sh $GO test -count=1 -v -run '^TestDesktopWindowShowsTheDashboard$' ./app/ 2>&1 | tee "$x/smoke.log"
grep -q -- '--- PASS: TestDesktopWindowShowsTheDashboard' "$x/smoke.log"
for png in "$OUTDIR"/*.png; do
  echo "screenshot of the installed app: $png ($(identify -format '%wx%h' "$png"), $(stat -c %s "$png") bytes)"
done

step "the demo hospital from the installed app's UI (browser e2e, no repository data)"
(cd frontend && FASTEN_BIN=$bin FASTEN_SHARED_DATA=/nonexistent FASTEN_TEST_OUTPUT="$OUTDIR" \
  ../.ci/with-keyring.sh npx playwright test -c e2e/playwright.config.ts e2e/connect.spec.ts -g 'connect the demo hospital from the UI')

step "remove it"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get remove -y -qq fasten-desktop
installed=0
[ ! -e $bin ] || { echo "$bin is still there after removal"; exit 1; }

step "Windows executables"
$GO run ./build/pecheck $DIST/fasten-desktop-*-windows-amd64.exe $DIST/fasten-desktop-*-windows-amd64-setup.exe

step "headless tarballs"
for t in linux-amd64 darwin-arm64; do
  tar -C "$x" -xzf $DIST/fasten-desktop-$version-$t.tar.gz
  d=$x/fasten-desktop-$version-$t
  ls -l "$d"
  info=$($GO version -m "$d/fasten-desktop")
  grep -q "GOOS=${t%-*}" <<<"$info" && grep -q "GOARCH=${t#*-}" <<<"$info" && grep -q "CGO_ENABLED=0" <<<"$info" \
    || { echo "$t: not a CGO_ENABLED=0 ${t%-*}/${t#*-} build"; echo "$info"; exit 1; }
done
"$x/fasten-desktop-$version-linux-amd64/fasten-desktop" version | grep -qx "fasten-desktop $version"
$GO version -m "$x/fasten-desktop-$version-linux-amd64/fasten-desktop" | grep -q jackc/pgx || { echo "the headless build lacks the PostgreSQL driver"; exit 1; }

step "every package compiles for Windows"
GOOS=windows $GO vet ./...
GOOS=windows $GO vet -tags desktop,production ./app/ .
mkdir -p "$x/wintest"
GOOS=windows $GO test -c -o "$x/wintest" ./... >/dev/null
echo "test binaries for Windows: $(ls "$x/wintest" | wc -l)"

echo
echo "test-dist: all checks passed"
