#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL cluster for the Lighthouse gateway tests.
#
#   .ci/postgres.sh [DIR] [start|stop]
#   .ci/postgres.sh stop
#
# start (the default): installs Debian's `postgresql` package when `initdb` is missing, creates a
# cluster in DIR (default: $FASTEN_PG_DIR or /tmp/fasten-ci-postgres) owned by the `postgres` user
# (PostgreSQL refuses to run as root), starts it on 127.0.0.1 and a free port with a unix socket in
# DIR, creates the database `fasten_test`, and prints its DSN as the last line on stdout:
#
#   postgres://fasten:PASSWORD@127.0.0.1:PORT/fasten_test?sslmode=disable
#
# Idempotent: when the cluster in DIR is already running it only prints the DSN again.
# stop: stops the cluster in DIR and removes DIR.
#
# Typical use:
#   export FASTEN_TEST_POSTGRES_DSN="$(.ci/postgres.sh | tail -n1)"
#   go test -race ./internal/lighthouse/...
#   .ci/postgres.sh stop
#
# Everything except the DSN goes to stderr.
set -euo pipefail

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

dir="${FASTEN_PG_DIR:-/tmp/fasten-ci-postgres}"
action=start
case "$#" in
0) ;;
1) case "$1" in start | stop) action="$1" ;; *) dir="$1" ;; esac ;;
2) dir="$1"; action="$2" ;;
*) die "usage: $0 [DIR] [start|stop]" ;;
esac
case "$action" in start | stop) ;; *) die "unknown action '$action' (want start or stop)" ;; esac

# Another process may still be installing packages: wait for its log to say "done".
wait_for_apt() {
	[ -f /tmp/apt.log ] || return 0
	local i
	for i in $(seq 1 600); do
		if grep -q '^done' /tmp/apt.log 2>/dev/null; then return 0; fi
		[ "$i" = 1 ] && log "waiting for the running apt-get to finish (/tmp/apt.log)"
		sleep 1
	done
	log "apt-get still running after 10 minutes; going on"
}

find_bindir() {
	local d
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v pg_ctl)")"
		return 0
	fi
	# Debian keeps the server binaries out of PATH; take the newest version.
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

# as_owner runs a command as the user that owns the cluster.
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pgdata="$dir/data"

if [ "$action" = stop ]; then
	if [ -f "$pgdata/PG_VERSION" ]; then
		bindir="$(find_bindir)" || die "cannot find pg_ctl to stop the cluster in $dir"
		as_owner "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >&2 || true
	fi
	rm -rf "$dir"
	log "stopped and removed $dir"
	exit 0
fi

wait_for_apt
if ! bindir="$(find_bindir)"; then
	[ "$(id -u)" = 0 ] || die "initdb is missing and installing postgresql needs root"
	log "installing Debian's postgresql package"
	DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2; }
	bindir="$(find_bindir)" || die "postgresql installed but initdb not found"
fi

if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to own the cluster"
fi

dsn_file="$dir/dsn"
if [ -f "$dsn_file" ] && [ -f "$pgdata/postmaster.pid" ] &&
	as_owner "$bindir/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
	log "already running in $dir"
	cat "$dsn_file"
	exit 0
fi

# A fresh cluster: anything left in DIR from an earlier, dead run goes.
if [ -d "$dir" ]; then
	as_owner "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
fi
mkdir -p "$dir"
chmod 700 "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"

password="$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
pwfile="$dir/pwfile"
as_owner sh -c "umask 077; printf '%s\n' '$password' > '$pwfile'"

log "initdb in $pgdata"
as_owner "$bindir/initdb" -D "$pgdata" -U fasten --pwfile="$pwfile" \
	--auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
rm -f "$pwfile"

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

started=""
for attempt in $(seq 1 20); do
	port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
	port_free "$port" || continue
	if as_owner "$bindir/pg_ctl" -D "$pgdata" -l "$dir/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" start >&2; then
		started=1
		break
	fi
	log "start on port $port failed (attempt $attempt); trying another port"
done
[ -n "$started" ] || { cat "$dir/server.log" >&2 || true; die "could not start postgres"; }

PGPASSWORD="$password" "$bindir/psql" -h 127.0.0.1 -p "$port" -U fasten -d postgres -v ON_ERROR_STOP=1 -q \
	-c "CREATE DATABASE fasten_test" >&2

dsn="postgres://fasten:$password@127.0.0.1:$port/fasten_test?sslmode=disable"
(umask 077; printf '%s\n' "$dsn" >"$dsn_file")
log "running on 127.0.0.1:$port (data in $pgdata; stop with: $0 $dir stop)"
echo "$dsn"
