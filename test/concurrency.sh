#!/usr/bin/env bash
# Concurrency, with the library preloaded (SPEC §4, issue 7):
#   1. restarts the cluster with shared_preload_libraries = 'esmm';
#   2. scores the test split serially, 8 slices, and trains one model
#      serially, to get reference hashes and a reference fingerprint;
#   3. for ESMM_CONCURRENCY_SECONDS (default 20) runs 8 pgbench clients that
#      score a random slice with esmm_predict and 1 psql session that trains
#      with esmm.threads = 2, over and over; every score hash and every
#      fingerprint must equal the serial ones (a mismatch is an ERROR, and
#      pgbench reports the client as failed);
#   4. checks that the postmaster still runs one thread: preloading the
#      library must not start OpenMP or OpenBLAS threads there.
# Needs the test command's cluster and database esmm_tap (imp, tap_models);
# the server log is checked for crashes by the test command's last step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds="${ESMM_CONCURRENCY_SECONDS:-20}"
db=esmm_tap
psql_db() { psql -qX -v ON_ERROR_STOP=1 -d "$db" "$@"; }

psql -qX -v ON_ERROR_STOP=1 -d postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'esmm'"
test/cluster.sh restart
preload=$(psql -qXAt -d postgres -c "SHOW shared_preload_libraries")
[ "$preload" = esmm ] || { echo "shared_preload_libraries is '$preload', not esmm"; exit 1; }

psql_db <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS conc_ref;
-- the serial run: score hashes of 8 slices of the test split, and the
-- fingerprint of a model trained with esmm.threads = 2
CREATE OR REPLACE FUNCTION conc_slice_hash(k int) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT md5(string_agg(format('%s:%s:%s:%s', i.id, p.pctr, p.pcvr, p.pctcvr), ',' ORDER BY i.id))
	FROM imp i, esmm_predict((SELECT model FROM tap_models WHERE name = 'v1'), i) p
	WHERE i.split = 'test' AND i.id % 8 = k $$;
CREATE OR REPLACE FUNCTION conc_train_fingerprint() RETURNS text LANGUAGE sql AS $$
	SELECT esmm_model_fingerprint(esmm_train(i, (SELECT jsonb_set(cfg, '{train_args,epochs}', '1') FROM tap_config)))
	FROM imp i WHERE split = 'train' $$;
SET esmm.threads = 2;
CREATE TABLE conc_ref AS
SELECT k, conc_slice_hash(k) AS hash, (SELECT conc_train_fingerprint()) AS fingerprint
FROM generate_series(0, 7) k;
-- one pgbench transaction: score slice k, and fail unless it matches
CREATE OR REPLACE FUNCTION conc_check_slice(k int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF conc_slice_hash(k) IS DISTINCT FROM (SELECT hash FROM conc_ref r WHERE r.k = conc_check_slice.k) THEN
		RAISE EXCEPTION 'slice % scored differently while training ran concurrently', k;
	END IF;
END $$;
-- the training session: train until the deadline, each model equal to the
-- serial one
CREATE OR REPLACE FUNCTION conc_train_until(deadline timestamptz) RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int := 0;
BEGIN
	WHILE clock_timestamp() < deadline LOOP
		IF conc_train_fingerprint() IS DISTINCT FROM (SELECT fingerprint FROM conc_ref LIMIT 1) THEN
			RAISE EXCEPTION 'training %: the model differs from the serial one', n + 1;
		END IF;
		n := n + 1;
	END LOOP;
	RETURN n;
END $$;
SQL

script=$(mktemp)
trap 'rm -f "$script" "$script.train" "$script.bench"' EXIT
printf '\\set k random(0, 7)\nSELECT conc_check_slice(:k);\n' >"$script"
deadline=$(psql -qXAt -d "$db" -c "SELECT clock_timestamp() + interval '$seconds seconds'")
psql -qXAt -v ON_ERROR_STOP=1 -d "$db" -c "SET esmm.threads = 2" -c "SET client_min_messages = warning" \
	-c "SELECT conc_train_until('$deadline')" >"$script.train" 2>&1 &
trainer=$!
bench_rc=0
pgbench -n -c 8 -j 8 -T "$seconds" -f "$script" "$db" >"$script.bench" 2>&1 || bench_rc=$?
train_rc=0
wait "$trainer" || train_rc=$?
grep -E "number of (transactions actually processed|failed transactions)|tps|aborted|error" "$script.bench" || true
processed=$(awk '/number of transactions actually processed/ {print $6}' "$script.bench")
echo "trainings equal to the serial model: $(cat "$script.train")"
rm -f "$script.bench" "$script.train"

pm_pid=$(head -1 "$PGHOST/data/postmaster.pid")
pm_threads=$(awk '/^Threads:/ {print $2}' "/proc/$pm_pid/status")
echo "postmaster $pm_pid runs $pm_threads thread(s) with esmm preloaded"

psql -qX -d postgres -c "ALTER SYSTEM RESET shared_preload_libraries"
psql_db -c "DROP TABLE conc_ref" -c "DROP FUNCTION conc_check_slice(int), conc_train_until(timestamptz), conc_slice_hash(int), conc_train_fingerprint()"
[ "$bench_rc" -eq 0 ] && [ "${processed:-0}" -gt 0 ] && [ "$train_rc" -eq 0 ] && [ "$pm_threads" -eq 1 ]
