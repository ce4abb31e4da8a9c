#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root:
#   C unit tests (plain, then under ASan and UBSan, with the fuzz target
#   replaying its kept inputs), pg_regress, pgTAP (behaviour, cancellation,
#   signals, then pg_dump/restore), concurrency with the library preloaded,
#   and a crash check of the server log.
# Installs missing packages, builds, installs the extension, and runs a
# throwaway cluster in .tmp/pg-54329 on port 54329.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
passed=0
failed=0
step() {	# step NAME COMMAND...: runs a step, counts it, keeps going
	local name=$1
	shift
	echo "== $name"
	if "$@"; then passed=$((passed + 1)); else echo "FAILED: $name"; failed=$((failed + 1)); fi
}

bash test/install_deps.sh
make -s >/dev/null
make -s install >/dev/null

step "unit tests" make -s unit
step "unit tests under ASan and UBSan" make -s unit-sanitize

test/cluster.sh start
trap 'test/cluster.sh stop' EXIT
eval "$(test/cluster.sh env)"

pg_regress() {	# on a failure, CI keeps only the log: print the diffs into it
	make -s installcheck || { cat regression.diffs; return 1; }
}
step "pg_regress" pg_regress

tap_setup() {
	psql -qX -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS esmm_tap" -c "CREATE DATABASE esmm_tap" &&
	psql -qX -v ON_ERROR_STOP=1 -d esmm_tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION esmm" &&
	psql -qX -v ON_ERROR_STOP=1 -d esmm_tap -v n_rows=100000 -v seed=7 -v table=imp \
		-f demo/gen_impressions.sql >/dev/null &&
	psql -qX -v ON_ERROR_STOP=1 -d esmm_tap -f test/pgtap/setup.sql >/dev/null
}
step "pgTAP setup: data and a stored model" tap_setup
step "pgTAP behaviour" pg_prove -d esmm_tap test/pgtap/behaviour.sql test/pgtap/evaluation.sql test/pgtap/mmoe.sql test/pgtap/predict_table.sql test/pgtap/scaling.sql test/pgtap/robustness.sql test/pgtap/model_cache.sql

step "progress NOTICEs" bash test/progress_notices.sh

dump_restore() {
	psql -qX -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS esmm_restored" -c "CREATE DATABASE esmm_restored" &&
	psql -qX -v ON_ERROR_STOP=1 -d esmm_restored -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION esmm" &&
	pg_dump -d esmm_tap -t imp -t tap_models -t tap_scores | psql -qX -v ON_ERROR_STOP=1 -d esmm_restored >/dev/null &&
	pg_prove -d esmm_restored test/pgtap/restore.sql
}
step "pgTAP after pg_dump and restore" dump_restore

no_crash() {
	if grep -E "terminated by signal|server process .* was terminated" "$PGHOST/server.log"; then
		echo "a backend crashed; see "$PGHOST/server.log""
		return 1
	fi
}
step "concurrency: 8 scoring sessions and 1 training, esmm preloaded" bash test/concurrency.sh

step "no backend crash in the server log" no_crash

echo "esmm tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
