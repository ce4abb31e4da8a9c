#!/usr/bin/env bash
# A throwaway PostgreSQL cluster inside the repository (.tmp/pg-PORT), on a
# non-default port (ESMM_PGPORT, default 54329), never the system cluster.
#   test/cluster.sh init     initdb (fresh) with our settings, not started
#   test/cluster.sh start    init and start
#   test/cluster.sh stop     stop it
#   test/cluster.sh restart  restart it (to apply ALTER SYSTEM settings)
#   test/cluster.sh env      print the PG* variables to eval
# PostgreSQL refuses to run as root, so as root the server runs as the
# postgres user that the Debian package creates.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port="${ESMM_PGPORT:-54329}"
dir="$root/.tmp/pg-$port"
bindir=$(pg_config --bindir)
as_owner() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
init() {	# a fresh data directory with our settings; stops an old server first
	[ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" stop -m immediate >/dev/null 2>&1 || true
	rm -rf "$dir"
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres "$dir" "$root/.tmp"
	as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
	cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
max_parallel_workers_per_gather = 2
log_min_messages = warning
fsync = off
CONF
}
case "${1:-}" in
init)
	init
	;;
start)
	init
	as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
	echo "cluster up: port $port, socket $dir, log $dir/server.log"
	;;
stop)
	as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	;;
restart)
	as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w restart >/dev/null
	;;
env)
	echo "export PGHOST='$dir' PGPORT=$port PGUSER=postgres"
	;;
*)
	echo "usage: $0 init|start|stop|restart|env" >&2
	exit 2
	;;
esac
