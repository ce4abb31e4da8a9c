#!/usr/bin/env bash
# The performance benchmark of SPEC §8 and issue 5: `make bench`.  Not part
# of the test suite; it takes about three minutes on the 2-core machine.
#
#   BENCH_ROWS=200000 BENCH_EPOCHS=2 BENCH_THREADS="1 2" BENCH_QUALITY=1 BENCH_MMOE=1 make bench
#
# Starts its own cluster (.tmp/pg-54359), generates the demo impressions
# (demo/gen_impressions.sql, data seed 42, 80/20 split), and for each thread
# count runs side by side on the same rows and the same cores:
#   - training: esmm_train over the train split, the whole SQL statement
#     (scan, encode, epochs, serialize, and storing the model into a column
#     with STORAGE EXTERNAL, as the README advises; the bench also prints
#     what storing it into a default column costs), against demo/esmm_peer.py, the
#     PyTorch ESMM of the same architecture (Debian's python3-torch,
#     torch.set_num_threads = esmm.threads), its training loop alone; the
#     two sides take turns for three rounds; in a round each side trains
#     twice from the same seed (the first run in a fresh process or
#     backend, the second warm) and the fastest of each side's six runs
#     counts (the machine is a shared VM whose speed drifts between
#     minutes; taking turns puts the drift on both); test AUCs of both;
#   - table scoring: esmm_predict_table over the test split (best of 5)
#     against PyTorch batch inference of the same rows (batches of 4096,
#     best of 5),
#     and the floor: a bare count(*) of the same table (best of 5) plus the
#     forward FLOPs at the sgemm rate bench/sgemm_rate measures here; also,
#     not a target, the floor plus writing a table of the same shape
#     (CREATE TABLE AS, best of 5), since esmm_predict_table writes one;
#   - per-row esmm_predict over the test split (best of 5), summed in SQL so
#     that no output table is written; and the mean time of one query that
#     scores one row, with and without the model cache (esmm.model_cache);
#   - determinism: the model's fingerprint trained three times, and across thread
#     counts; scores of esmm_predict_table at each thread count against the
#     first.
# Then, with BENCH_QUALITY=1, bench/esmm_quality.sh on the same rows with
# five model seeds, one thread (the mean and spread of the test AUCs, which
# one seed cannot resolve to 0.005), and with BENCH_MMOE=1,
# bench/mmoe_quality.sh with one seed (MMoE on census-income against the
# PyTorch MMoE).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rows=${BENCH_ROWS:-200000}
epochs=${BENCH_EPOCHS:-2}
threads_list=${BENCH_THREADS:-"1 2"}
run_mmoe=${BENCH_MMOE:-1}
run_quality=${BENCH_QUALITY:-1}
export ESMM_PGPORT=${ESMM_PGPORT:-54359}
# Debian's torch multiplies with the pthread OpenBLAS, whose own pool fights
# torch's threads: one BLAS thread, and torch's own threads as asked
export OPENBLAS_NUM_THREADS=1
work="$root/.tmp/bench-perf"
OPENBLAS=/usr/lib/x86_64-linux-gnu/openblas-openmp

bash test/install_deps.sh python3-torch python3-sklearn python3-numpy
make -s >/dev/null && make -s install >/dev/null
rm -rf "$work" && mkdir -p "$work"
cc -O2 -fopenmp -I/usr/include/x86_64-linux-gnu/openblas-openmp -o "$work/sgemm_rate" bench/sgemm_rate.c \
	-L"$OPENBLAS" -Wl,-rpath,"$OPENBLAS" -lopenblas
test/cluster.sh start >/dev/null
trap 'test/cluster.sh stop >/dev/null' EXIT
eval "$(test/cluster.sh env)"
psql -qX -d postgres -c "CREATE DATABASE esmm_bench"
export PGDATABASE=esmm_bench
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION esmm"
psql -qX -v ON_ERROR_STOP=1 -v n_rows="$rows" -v seed=42 -v table=impressions -f demo/gen_impressions.sql >/dev/null
cols="id, user_id, item_id, category, hour, device, user_age, item_price, user_hist_ctr, click, conversion"
psql -qX -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE train_rows AS SELECT $cols FROM impressions WHERE split = 'train' ORDER BY id;
CREATE TABLE test_rows AS SELECT $cols FROM impressions WHERE split = 'test' ORDER BY id;
VACUUM ANALYZE train_rows, test_rows;
\\copy train_rows TO '$work/train.csv' CSV HEADER
\\copy test_rows TO '$work/test.csv' CSV HEADER
SQL
cfg=$(/usr/bin/python3 -c 'import json,sys; c=json.load(open("demo/esmm_config.json")); c["train_args"]["epochs"]=int(sys.argv[1]); c["train_args"]["seed"]=1; print(json.dumps(c))' "$epochs")

# models as the README advises: float32 weights do not compress, and pglz
# would run over most of the model before it gave up.  UNLOGGED, so that
# storing one costs what it cost in the temporary tables that held them
# before the rounds took turns across sessions.
psql -qX -v ON_ERROR_STOP=1 <<'SQL'
CREATE UNLOGGED TABLE bench_models (threads int, round int, m bytea);
ALTER TABLE bench_models ALTER COLUMN m SET STORAGE EXTERNAL;
SQL
peer_args=(--train "$work/train.csv" --test "$work/test.csv"
	--categorical user_id,item_id,category,hour,device --numeric user_age,item_price,user_hist_ctr
	--log-numeric item_price --click click --conversion conversion --units 64,32 --act lrelu
	--emb-dim 8 --batch-size 512 --epochs "$epochs" --lr 0.001 --seed 1)

for th in $threads_list; do
	# sgemm rate on the towers' forward shapes (43 inputs -> 64 -> 32 -> 1)
	OMP_NUM_THREADS=$th "$work/sgemm_rate" 4096 43 64 32 1 > "$work/sgemm-$th.txt"
	# training, side by side: esmm and the peer take turns for three
	# rounds, so that the VM's drift between minutes falls on both sides.
	# In a round each side trains twice, cold then warm: esmm in one
	# backend (the first statement loads the library and starts the thread
	# pool), the peer in one process (torch's first-call costs), and each
	# side's fastest run counts.
	: > "$work/esmm-train-$th.txt"
	: > "$work/torch-train-$th.json"
	for round in 1 2 3; do
		psql -qX -v ON_ERROR_STOP=1 -v cfg="$cfg" -v th="$th" -v round="$round" <<'SQL' >> "$work/esmm-train-$th.txt"
SET esmm.threads = :th;
SET client_min_messages = warning;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
INSERT INTO bench_models SELECT :th, :round, esmm_train(r, :'cfg') FROM train_rows r;
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
INSERT INTO bench_models SELECT :th, :round, esmm_train(r, :'cfg') FROM train_rows r;
SELECT extract(epoch FROM clock_timestamp()) AS t2 \gset
\echo :t0 :t1
\echo :t1 :t2
SQL
		/usr/bin/python3 demo/esmm_peer.py "${peer_args[@]}" --threads "$th" \
			--train-repeat 2 --infer-repeat 1 >> "$work/torch-train-$th.json"
	done
	psql -qX -v ON_ERROR_STOP=1 -v cfg="$cfg" -v th="$th" <<'SQL' > "$work/esmm-$th.json"
SET esmm.threads = :th;
SET client_min_messages = warning;
\pset tuples_only on
\pset format unaligned
CREATE TEMP TABLE timing (what text, seconds float8);
CREATE FUNCTION pg_temp.best_of(what text, setup text, sql text, n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; best float8 := 'infinity';
BEGIN
  FOR i IN 1..n LOOP
    IF setup <> '' THEN EXECUTE setup; END IF;
    t0 := clock_timestamp();
    EXECUTE sql;
    best := least(best, extract(epoch FROM clock_timestamp() - t0));
  END LOOP;
  INSERT INTO timing VALUES (what, best);
END $$;
CREATE TEMP TABLE model (m bytea);
ALTER TABLE model ALTER COLUMN m SET STORAGE EXTERNAL;
INSERT INTO model SELECT m FROM bench_models WHERE threads = :th LIMIT 1;
-- storing the model alone: into a default bytea column, and into one with
-- STORAGE EXTERNAL
SELECT pg_temp.best_of('store_default', 'DROP TABLE IF EXISTS stored', 'CREATE TEMP TABLE stored AS SELECT m FROM model', 5);
SELECT pg_temp.best_of('store_external', 'DROP TABLE IF EXISTS stored; CREATE TEMP TABLE stored (m bytea); ALTER TABLE stored ALTER COLUMN m SET STORAGE EXTERNAL', 'INSERT INTO stored SELECT m FROM model', 5);
SELECT pg_temp.best_of('count', '', 'SELECT count(*) FROM test_rows', 5);
SELECT pg_temp.best_of('table', 'DROP TABLE IF EXISTS scored', 'SELECT esmm_predict_table((SELECT m FROM model), ''test_rows'', ''id'', ''scored'')', 5);
SELECT pg_temp.best_of('per_row', '', 'SELECT sum(p.pctr) FROM test_rows r, LATERAL esmm_predict((SELECT m FROM model), r) p', 5);
-- writing alone: a table of the same shape from the same rows
SELECT pg_temp.best_of('write', 'DROP TABLE IF EXISTS written', 'CREATE TABLE written AS SELECT id, 0.5::real AS pctr, 0.5::real AS pcvr, 0.25::real AS pctcvr FROM test_rows', 5);
-- one query scoring one row, as a service would: with and without the model cache
CREATE TEMP TABLE one_row AS SELECT * FROM test_rows ORDER BY id LIMIT 1;
CREATE FUNCTION pg_temp.mean_of(what text, sql text, n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP EXECUTE sql; END LOOP;
  INSERT INTO timing VALUES (what, extract(epoch FROM clock_timestamp() - t0) / n);
END $$;
SET esmm.model_cache = 0;
SELECT pg_temp.mean_of('one_query_uncached', 'SELECT p.* FROM one_row r, esmm_predict((SELECT m FROM model), r) p', 50);
RESET esmm.model_cache;
SELECT pg_temp.mean_of('one_query_cached', 'SELECT p.* FROM one_row r, esmm_predict((SELECT m FROM model), r) p', 500);
CREATE TABLE IF NOT EXISTS public.scores_first (id bigint, pctr real, pcvr real, pctcvr real);
SELECT json_build_object(

  'blas_kernel', current_setting('esmm.blas_kernel'),
  'rows_train', (SELECT count(*) FROM train_rows),
  'rows_test', (SELECT count(*) FROM test_rows),
  'fingerprint', (SELECT esmm_model_fingerprint(m) FROM model),
  'same_six', (SELECT count(*) = 6 AND count(DISTINCT esmm_model_fingerprint(m)) = 1 FROM bench_models WHERE threads = :th),
  'count_seconds', (SELECT seconds FROM timing WHERE what = 'count'),
  'table_seconds', (SELECT seconds FROM timing WHERE what = 'table'),
  'per_row_seconds', (SELECT seconds FROM timing WHERE what = 'per_row'),
  'write_seconds', (SELECT seconds FROM timing WHERE what = 'write'),
  'store_default_seconds', (SELECT seconds FROM timing WHERE what = 'store_default'),
  'store_external_seconds', (SELECT seconds FROM timing WHERE what = 'store_external'),
  'model_bytes', (SELECT length(m) FROM model),
  'one_query_cached', (SELECT seconds FROM timing WHERE what = 'one_query_cached'),
  'one_query_uncached', (SELECT seconds FROM timing WHERE what = 'one_query_uncached'),
  'auc_ctr', (SELECT auc(s.pctr, r.click) FROM scored s JOIN test_rows r USING (id)),
  'auc_ctcvr', (SELECT auc(s.pctcvr, r.click * r.conversion) FROM scored s JOIN test_rows r USING (id)),
  'auc_cvr_clicked', (SELECT auc(s.pcvr, r.conversion) FILTER (WHERE r.click = 1) FROM scored s JOIN test_rows r USING (id)),
  'max_diff_vs_first', (SELECT CASE WHEN count(*) = 0 THEN NULL ELSE greatest(max(abs(s.pctr - f.pctr)), max(abs(s.pcvr - f.pcvr)), max(abs(s.pctcvr - f.pctcvr))) END
                        FROM scored s JOIN public.scores_first f USING (id)));
INSERT INTO public.scores_first SELECT * FROM scored WHERE NOT EXISTS (SELECT 1 FROM public.scores_first);
SQL
	/usr/bin/python3 demo/esmm_peer.py "${peer_args[@]}" --threads "$th" \
		--train-repeat 1 --infer-repeat 5 > "$work/torch-$th.json"
done

/usr/bin/python3 - "$work" "$epochs" "$threads_list" <<'PY'
import json, os, sys
work, epochs, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
last = lambda f: json.loads(open(f).read().strip().splitlines()[-1])
print(f"esmm benchmark: demo impressions, towers 64-32 lrelu over 5 embeddings x 8 + 3 numerics, "
      f"batch 512, adam, {epochs} epochs; PyTorch peer: demo/esmm_peer.py")
# both sides multiply with OpenBLAS, whose kernels OPENBLAS_CORETYPE in the
# environment can choose (this project's machines set it)
print(f"OpenBLAS kernels: esmm {last(f'{work}/esmm-{threads[0]}.json')['blas_kernel']} (SHOW esmm.blas_kernel); "
      f"peer and sgemm_rate with OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE') or 'unset (the CPU decides)'}")
hdr = f"{'threads':>7}  {'measure':34}{'esmm':>12}{'pytorch':>12}{'ratio':>9}   target"
for th in threads:
    E, T = last(f"{work}/esmm-{th}.json"), last(f"{work}/torch-{th}.json")
    rate, fpr = map(float, open(f"{work}/sgemm-{th}.txt").read().split())
    n_tr, n_te = E["rows_train"], E["rows_test"]
    # the rounds: esmm's two statement times each, the peer's faster of two
    e_runs = [n_tr * epochs / (t1 - t0) for t0, t1 in
              (map(float, l.split()) for l in open(f"{work}/esmm-train-{th}.txt") if l.strip())]
    e_rounds = [max(e_runs[i:i + 2]) for i in range(0, len(e_runs), 2)]
    t_rounds = [json.loads(l)["train_rows_per_sec"] for l in open(f"{work}/torch-train-{th}.json") if l.strip()]
    train_e, train_t = max(e_rounds), max(t_rounds)
    table_e = n_te / E["table_seconds"]
    infer_t = T["infer_rows_per_sec"]
    floor_s = E["count_seconds"] + n_te * 2 * fpr / (rate * 1e9)
    print()
    print(hdr)
    print(f"{th:>7}  {'train rows/s (esmm: whole statement)':34}{train_e:12.0f}{train_t:12.0f}{train_e / train_t:8.2f}x   >= 5x"
          f"   (fastest of 6 runs each, in 3 rounds taking turns; rounds' ratios "
          f"{', '.join(f'{e / t:.2f}x' for e, t in zip(e_rounds, t_rounds))})")
    print(f"{th:>7}  {'storing the model: ms':34}{E['store_external_seconds'] * 1e3:12.1f}{'':12}{'':9}"
          f"   (not a target: {E['model_bytes'] / 1e6:.1f} MB into STORAGE EXTERNAL, as trained above; "
          f"{E['store_default_seconds'] * 1e3:.1f} ms into a default bytea column)")
    for k, name in (("auc_ctr", "test AUC CTR"), ("auc_ctcvr", "test AUC CTCVR"), ("auc_cvr_clicked", "test AUC CVR on clicks")):
        print(f"{th:>7}  {name:34}{E[k]:12.4f}{T[k]:12.4f}{E[k] - T[k]:+9.4f}    within 0.005 (one seed; five below)")
    print(f"{th:>7}  {'table scoring rows/s':34}{table_e:12.0f}{infer_t:12.0f}{table_e / infer_t:8.2f}x   >= 3x")
    print(f"{th:>7}  {'table scoring / floor':34}{E['table_seconds'] * 1e3:10.1f}ms{floor_s * 1e3:10.1f}ms{E['table_seconds'] / floor_s:8.2f}x   <= 1.5x"
          f"   (floor: count(*) {E['count_seconds'] * 1e3:.1f} ms + {n_te} rows x {fpr * 2:.0f} FLOPs at {rate:.1f} GFLOP/s)")
    wfloor_s = floor_s + E["write_seconds"]
    print(f"{th:>7}  {'table scoring / floor with writing':34}{E['table_seconds'] * 1e3:10.1f}ms{wfloor_s * 1e3:10.1f}ms{E['table_seconds'] / wfloor_s:8.2f}x"
          f"   (not a target: the floor plus CREATE TABLE AS of the same shape, {E['write_seconds'] * 1e3:.1f} ms)")
    if th == threads[0]:
        print(f"{th:>7}  {'per-row esmm_predict rows/s':34}{n_te / E['per_row_seconds']:12.0f}{'':12}{'':9}   >= 200000")
        print(f"{th:>7}  {'one query, one row: ms':34}{E['one_query_cached'] * 1e3:12.3f}{'':12}{'':9}"
              f"   (not a target; {E['one_query_uncached'] * 1e3:.3f} ms with esmm.model_cache = 0)")
    same = E["same_six"]
    d = E["max_diff_vs_first"]
    print(f"{th:>7}  {'trained 6 times: same model':34}{str(same).lower():>12}")
    print(f"{th:>7}  {'model fingerprint':34}{E['fingerprint'][:12]:>12}")
    if d is not None:
        print(f"{th:>7}  {'max |score - score at ' + threads[0] + ' thread|':34}{d:12.2g}{'':21}   <= 1e-6")
PY

if [ "$run_quality" = 1 ]; then
	# one seed's CVR AUC moves by about 0.01 (1,400 training conversions):
	# the AUC target is judged on the mean over five seeds
	echo
	ESMM_ROWS="$rows" ESMM_EPOCHS="$epochs" ESMM_SEEDS="1 2 3 4 5" ESMM_THREADS=1 bash bench/esmm_quality.sh |
		grep -v "^installing\|^debconf\|rows/s"
fi

if [ "$run_mmoe" = 1 ]; then
	echo
	MMOE_SEEDS=1 MMOE_THREADS=1 bash bench/mmoe_quality.sh | grep -v "^installing\|^debconf"
fi
