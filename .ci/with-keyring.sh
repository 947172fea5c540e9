#!/bin/sh
# Run a command inside a private D-Bus session with a fresh, unlocked gnome-keyring, so tests use
# the real Secret Service without touching (or being blocked by) the user's own keyrings.
#   .ci/with-keyring.sh CMD [ARG...]
set -eu
keyrings="$(mktemp -d)"
trap 'rm -rf "$keyrings"' EXIT
export XDG_DATA_HOME="$keyrings"   # gnome-keyring keeps its keyring files under $XDG_DATA_HOME/keyrings
exec dbus-run-session -- sh -c '
  echo fasten-test-keyring | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  exec "$@"' with-keyring "$@"
