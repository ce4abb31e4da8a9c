#!/usr/bin/env bash
# The pg_regress suite with every PostgreSQL backend under valgrind memcheck
# (make check-valgrind).  Optional, slow, and not part of test/run_tests.sh.
#
#   bash test/valgrind.sh          build, install, run, scan the logs
#   bash test/valgrind.sh scan     scan the logs of the last run again
#   ESMM_VALGRIND_TESTS="regress_errors regress_train" bash test/valgrind.sh
#
# Builds and installs the extension, starts a throwaway cluster of its own in
# .tmp/pg-54339 on port 54339 (as root, as the postgres user) whose postmaster
# runs under valgrind, runs `make installcheck` against it, stops it, then
# scans the valgrind logs (.tmp/pg-54339/valgrind.PID.log, one per process:
# the postmaster forks every backend and valgrind follows forks; logs left
# empty are deleted).
#
# What it can and cannot see:
# - Debian's PostgreSQL is not built with USE_VALGRIND, so palloc'd memory
#   is invisible to memcheck as chunks: a read past a palloc chunk, or of a
#   pfree'd chunk, inside a memory context's block is not reported.  The
#   core's own buffers (src/core allocates with malloc/calloc), OpenBLAS's,
#   uninitialised values that reach a branch, an address or a syscall, and
#   accesses outside any allocation are.
# - No leak check: a backend's memory goes away with its memory contexts.
# - No --error-exitcode: the postmaster treats a backend exit code other than
#   0 or 1 as a crash and restarts every backend, which would turn one error
#   into failures of the following tests.  The logs are the verdict instead.
# - esmm.so has debug info (PGXS builds with -g), so its frames read
#   "fn (src/pg/file.c:LINE)"; Debian's postgres binary has none, so its
#   frames read "fn (in .../bin/postgres)", or ??? for static functions.
# - test/valgrind.supp suppresses PostgreSQL's own false positives (padding
#   written to WAL, the relcache init file, logical tapes); see there.
#
# Output: every distinct error whose stack has a frame in esmm.so or in the
# repository's src/core or src/pg, in full, with the pids that hit it and
# their pg_regress test; one line per other distinct error; the regression
# result; and the line
#   valgrind: N error(s) in N log(s); esmm frames in N
# (errors, logs that hold any, errors with an esmm frame).
# Exit status: 0 when valgrind found no error (after the suppressions) and
# the run completed; 1 when it found any; 2 when the run did not complete
# (build, start-up, timeout, a crashed backend).  A regression diff alone
# (timing under valgrind) is reported but does not fail the run.
# The whole suite takes 3 to 4 minutes on 2 cores (7 with track-origins);
# 4 seconds without valgrind.
#
# Environment:
#   ESMM_VALGRIND_TESTS     test names (sql/NAME.sql) to run; default all
#   ESMM_VALGRIND_TIMEOUT   seconds for installcheck (default 3600)
#   ESMM_VALGRIND_GEN_SUPP  1: valgrind writes a suppression after each
#                           error in the logs (to extend test/valgrind.supp)
#   ESMM_VALGRIND_OPTS      more valgrind options, e.g. --track-origins=yes
#                           (where an uninitialised value came from; slower)
# The stacks of a running backend, as the server's owner:
#   runuser -u postgres -- vgdb --vgdb-prefix=.tmp/pg-54339/vgdb --pid=PID v.info scheduler
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode="${1:-run}"
case "$mode" in
run | scan) ;;
*)
	echo "usage: $0 [run|scan]" >&2
	exit 2
	;;
esac
port=54339
dir="$root/.tmp/pg-$port"
bindir=	# set once the packages are there
timeout_s="${ESMM_VALGRIND_TIMEOUT:-3600}"
start_timeout_s=300
stop_timeout_s=600
started=$(date +%s)
as_owner() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
elapsed() { echo "$(($(date +%s) - started))s"; }
stop_cluster() {	# stop_cluster MODE: this cluster's postmaster, by its pid file
	[ -f "$dir/data/postmaster.pid" ] || return 0
	as_owner "$bindir/pg_ctl" -D "$dir/data" -m "$1" -t "$stop_timeout_s" -w stop >/dev/null 2>&1
}

# scan_logs: prints the errors and the summary line; status 0 when there is
# none, 1 when there are, 2 when the scan itself failed.  Every error sits
# between the two markers, its lines prefixed with ==PID==; errors are
# grouped by their text without addresses.
scan_logs() {
	local logs f rc=0
	shopt -s nullglob
	logs=("$dir"/valgrind.*.log)
	for f in "${logs[@]}"; do [ -s "$f" ] || rm -f "$f"; done
	logs=("$dir"/valgrind.*.log)
	shopt -u nullglob
	awk -v serverlog="$dir/server.log" '
	function testof(pid,   line, cmd, t) {	# the pg_regress test of a backend
		t = ""
		cmd = "grep -F \"[" pid "] \" \"" serverlog "\" 2>/dev/null"
		while ((cmd | getline line) > 0)
			if (t == "" && match(line, /application_name=[^ ]+/))
				t = substr(line, RSTART + 17, RLENGTH - 17)
		close(cmd)
		return t == "" ? "?" : t
	}
	{
		line = $0
		sub(/^==[0-9]+== ?/, "", line)
	}
	line == "VALGRIND-ERROR-BEGIN" { inblk = 1; blk = ""; key = ""; next }
	line == "VALGRIND-ERROR-END" {
		inblk = 0
		nerr++
		pid = FILENAME; sub(/.*valgrind\./, "", pid); sub(/\.log$/, "", pid)
		if (!(pid in errlog)) { errlog[pid] = 1; nlogs++ }
		esmm = (blk ~ /esmm\.so|\(src\/(core|pg)\/[^:)]*:[0-9]+\)/)
		if (esmm) nesmm++
		if (!(key in count)) { order[++nkeys] = key; text[key] = blk; isesmm[key] = esmm }
		count[key]++
		if (index(" " pids[key] " ", " " pid " ") == 0)
			pids[key] = pids[key] (pids[key] == "" ? "" : " ") pid
		next
	}
	inblk && line != "" {
		blk = blk line "\n"
		k = line
		if (k ~ /^ Address /) k = " Address"
		gsub(/0x[0-9A-Fa-f]+/, "0x", k)
		key = key k "\n"
	}
	END {
		for (i = 1; i <= nkeys; i++) {
			k = order[i]
			if (!isesmm[k]) continue
			n = split(pids[k], p, " ")
			tests = ""
			for (j = 1; j <= n && j <= 5; j++) tests = tests " " p[j] " (" testof(p[j]) ")"
			printf "==== esmm error, %d time(s), pid(s):%s%s\n%s\n", count[k], tests, (n > 5 ? " ..." : ""), text[k]
		}
		for (i = 1; i <= nkeys; i++) {
			k = order[i]
			if (isesmm[k]) continue
			# the message, then the named functions of its first stack
			n = split(text[k], l, "\n")
			j = (l[1] ~ /^Thread [0-9]+:/) ? 2 : 1
			first = l[j]; fns = ""; nf = 0
			for (j++; j <= n && l[j] ~ /^ +(at|by) 0x/ && nf < 8; j++) {
				f = l[j]; sub(/^ +(at|by) 0x[0-9A-Fa-f]+: /, "", f); sub(/ .*/, "", f)
				if (f == "???") continue
				fns = fns (nf++ ? " < " : "") f
			}
			printf "==== other error, %d time(s): %s | %s\n", count[k], first, fns
		}
		printf "valgrind: %d error(s) in %d log(s); esmm frames in %d\n", nerr, nlogs, nesmm
		exit (nerr > 0)
	}
	' "${logs[@]}" /dev/null || rc=$?
	[ "$rc" -le 1 ] || { echo "scanning the valgrind logs failed" >&2; return 2; }
	# A valgrind that could not go on (an unhandled instruction, a fatal
	# signal, out of memory, its own fatal error) writes outside the markers.
	if [ ${#logs[@]} -gt 0 ] && grep -E "Process terminating with default action|unhandled instruction|Valgrind's memory management: out of memory|valgrind: fatal error" "${logs[@]}"; then
		echo "valgrind stopped a process: see the log(s) above"
		[ "$rc" = 1 ] || rc=2
	fi
	return "$rc"
}

# report: the verdict from the scan, the server log and pg_regress.
report() {	# report REGRESS_STATUS (empty: unknown)
	local regress_rc=$1 scan_rc=0 incomplete=0
	scan_logs || scan_rc=$?
	if grep -E "terminated by signal|was terminated by exception|terminated by exit code|terminating any other active server processes" "$dir/server.log"; then
		echo "a backend crashed; see $dir/server.log"
		incomplete=1
	fi
	if [ "$regress_rc" = 0 ]; then
		echo "pg_regress under valgrind: all tests passed"
	elif [ "$regress_rc" = 124 ] || [ "$regress_rc" = 137 ]; then
		echo "pg_regress under valgrind: timed out after ${timeout_s}s"
		incomplete=1
	elif [ -n "$regress_rc" ] || [ -s "$dir/regress/regression.diffs" ]; then
		echo "pg_regress under valgrind: failed (status ${regress_rc:-?}); diffs in $dir/regress/regression.diffs"
		if [ -f "$dir/regress/regression.diffs" ]; then
			head -n 60 "$dir/regress/regression.diffs"
		else
			incomplete=1	# no diff: pg_regress did not run the tests
		fi
	fi
	echo "logs: $dir/valgrind.*.log; total time $(elapsed)"
	[ "$scan_rc" != 1 ] || return 1
	[ "$scan_rc" = 0 ] && [ "$incomplete" = 0 ] || return 2
}

if [ "$mode" = scan ]; then
	[ -d "$dir" ] || { echo "no run to scan in $dir" >&2; exit 2; }
	report ""
	exit
fi

if ! command -v valgrind >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "valgrind is missing; run as root to install it" >&2
		exit 2
	fi
	echo "installing: valgrind"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
fi
bash test/install_deps.sh
bindir=$(pg_config --bindir)
make -s >/dev/null || exit 2
make -s install >/dev/null || exit 2

# A fresh cluster with test/cluster.sh's settings; a postmaster left by an
# earlier run of this script is stopped first.
stop_cluster immediate || true
ESMM_PGPORT=$port test/cluster.sh init
mkdir -p "$dir/regress"
[ "$(id -u)" = 0 ] && chown postgres "$dir/regress"
# Plus: no JIT (generated code under valgrind is only noise), and the pid
# and application name (pg_regress/TEST) of every connection in the log, to
# name the test behind a valgrind log.
cat >>"$dir/data/postgresql.conf" <<CONF
jit = off
log_connections = on
log_line_prefix = '%m [%p] %q%a '
CONF

# shellcheck disable=SC2054 # the comma in --error-markers is meant
vg_opts=(--quiet --tool=memcheck --trace-children=yes --track-origins=no --leak-check=no
	--num-callers=40 --fullpath-after="$root/"
	--error-markers=VALGRIND-ERROR-BEGIN,VALGRIND-ERROR-END
	--log-file="$dir/valgrind.%p.log" --vgdb-prefix="$dir/vgdb")
[ -f test/valgrind.supp ] && vg_opts+=(--suppressions="$root/test/valgrind.supp")
[ "${ESMM_VALGRIND_GEN_SUPP:-0}" = 1 ] && vg_opts+=(--gen-suppressions=all)
# shellcheck disable=SC2206 # word splitting wanted: a list of options
[ -n "${ESMM_VALGRIND_OPTS:-}" ] && vg_opts+=($ESMM_VALGRIND_OPTS)
# OMP_WAIT_POLICY=passive: valgrind runs one thread at a time, so a libgomp
# worker spinning for work only burns the others' time slices.
as_owner env OMP_WAIT_POLICY=passive valgrind "${vg_opts[@]}" \
	"$bindir/postgres" -D "$dir/data" >"$dir/server.log" 2>&1 &
vg_pid=$!
cleanup() {
	stop_cluster fast || stop_cluster immediate || true
	wait "$vg_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 2' INT TERM
echo "starting the cluster under valgrind: port $port, socket $dir, log $dir/server.log"
for ((i = 0; ; i++)); do
	"$bindir/pg_isready" -q -h "$dir" -p "$port" && break
	if ! kill -0 "$vg_pid" 2>/dev/null || [ "$i" -ge "$start_timeout_s" ]; then
		echo "the cluster did not start within ${start_timeout_s}s:" >&2
		tail -n 20 "$dir/server.log" >&2
		exit 2
	fi
	sleep 1
done
echo "cluster up after $(elapsed)"

export PGHOST="$dir" PGPORT=$port PGUSER=postgres
# Results and diffs in the cluster's directory, not in the shared results/.
regress_args=(EXTRA_REGRESS_OPTS="--outputdir=$dir/regress")
[ -n "${ESMM_VALGRIND_TESTS:-}" ] && regress_args+=(REGRESS="$ESMM_VALGRIND_TESTS")
echo "make installcheck under valgrind (at most ${timeout_s}s)"
regress_rc=0
# In the background and waited for, so that an interrupt stops it at once
# (timeout puts make, pg_regress and psql in a process group of their own,
# and passes the signal on to it).
timeout -k 30 "$timeout_s" make -s installcheck "${regress_args[@]}" &
regress_pid=$!
trap 'kill -TERM "$regress_pid" 2>/dev/null; exit 2' INT TERM
wait "$regress_pid" || regress_rc=$?
trap 'exit 2' INT TERM
echo "installcheck finished after $(elapsed), status $regress_rc"
cleanup
trap - EXIT
echo "cluster stopped after $(elapsed)"
report "$regress_rc"
