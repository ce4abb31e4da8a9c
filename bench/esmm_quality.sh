#!/usr/bin/env bash
# ESMM quality and training speed, side by side with the PyTorch peer on the
# same rows (SPEC §8).  Not part of the test suite.
#   ESMM_ROWS=200000 ESMM_EPOCHS=2 ESMM_THREADS=1 ESMM_SEEDS="1 2 3 4 5" \
#     bash bench/esmm_quality.sh
# Starts its own cluster (.tmp/pg-54339), generates the impressions once
# (data seed 42), then for each model seed trains and scores with
# esmm_train / esmm_predict and with demo/esmm_peer.py (Debian's
# python3-torch; same features, towers, init, loss, optimizer, batch size,
# epochs and threads), and prints per-seed AUCs, the mean and standard
# deviation of the differences, the true-propensity AUCs, and rows/s ratios.
# Several seeds, because with ~1,400 training conversions one seed's CVR
# AUC moves by about 0.01.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rows=${ESMM_ROWS:-200000}
epochs=${ESMM_EPOCHS:-2}
threads=${ESMM_THREADS:-1}
seeds=${ESMM_SEEDS:-"1 2 3 4 5"}
# ESMM_PEER_SPARSE=1: the peer uses SparseAdam on its embeddings, the lazy
# Adam of the extension; 0 (default): dense embeddings, PyTorch's usual way
peer_sparse=${ESMM_PEER_SPARSE:-0}
export ESMM_PGPORT=${ESMM_PGPORT:-54339}
# Debian's torch multiplies with the pthread OpenBLAS, whose own pool fights
# torch's threads on 2 cores: keep it to one thread, as the peer's threads say
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
work="$root/.tmp/bench"

bash test/install_deps.sh python3-torch python3-sklearn python3-numpy
make -s >/dev/null && make -s install >/dev/null
test/cluster.sh start >/dev/null
trap 'test/cluster.sh stop' EXIT
eval "$(test/cluster.sh env)"
rm -rf "$work" && mkdir -p "$work"
psql -qX -d postgres -c "CREATE DATABASE esmm_bench"
export PGDATABASE=esmm_bench
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION esmm"
psql -qX -v ON_ERROR_STOP=1 -v n_rows="$rows" -v seed=42 -v table=impressions -f demo/gen_impressions.sql >/dev/null

cols="id, user_id, item_id, category, hour, device, user_age, item_price, user_hist_ctr, click, conversion"
psql -qX -c "\\copy (SELECT $cols FROM impressions WHERE split = 'train' ORDER BY id) TO '$work/train.csv' CSV HEADER"
psql -qX -c "\\copy (SELECT $cols FROM impressions WHERE split = 'test' ORDER BY id) TO '$work/test.csv' CSV HEADER"
psql -qX -At -c "SELECT json_build_object('auc_ctr', auc(true_ctr, click), 'auc_ctcvr', auc(true_ctr * true_cvr, click * conversion), 'auc_cvr_clicked', auc(true_cvr, conversion) FILTER (WHERE click = 1)) FROM impressions WHERE split = 'test'" > "$work/truth.json"

for seed in $seeds; do
	cfg=$(/usr/bin/python3 -c 'import json,sys; c=json.load(open("demo/esmm_config.json")); c["train_args"]["epochs"]=int(sys.argv[1]); c["train_args"]["seed"]=int(sys.argv[2]); print(json.dumps(c))' "$epochs" "$seed")
	psql -qX -v ON_ERROR_STOP=1 -v cfg="$cfg" -v threads="$threads" <<'SQL' > "$work/esmm-$seed.json"
SET esmm.threads = :threads;
SET client_min_messages = warning;
DROP TABLE IF EXISTS models, scored;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
CREATE TABLE models AS SELECT esmm_train(i, :'cfg') AS model FROM impressions i WHERE split = 'train';
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
CREATE TABLE scored AS SELECT i.click, i.conversion, p.* FROM impressions i,
  LATERAL esmm_predict((SELECT model FROM models), i) p WHERE i.split = 'test';
SELECT extract(epoch FROM clock_timestamp()) AS t2 \gset
\pset tuples_only on
\pset format unaligned
SELECT json_build_object(
  'train_seconds', :t1 - :t0,
  'rows_train', (SELECT count(*) FROM impressions WHERE split = 'train'),
  'score_seconds', :t2 - :t1,
  'rows_test', (SELECT count(*) FROM scored),
  'auc_ctr', (SELECT auc(pctr, click) FROM scored),
  'auc_ctcvr', (SELECT auc(pctcvr, click * conversion) FROM scored),
  'auc_cvr_clicked', (SELECT auc(pcvr, conversion) FROM scored WHERE click = 1));
SQL
	/usr/bin/python3 demo/esmm_peer.py --train "$work/train.csv" --test "$work/test.csv" \
		--categorical user_id,item_id,category,hour,device --numeric user_age,item_price,user_hist_ctr \
		--log-numeric item_price --click click --conversion conversion --units 64,32 --act lrelu \
		--emb-dim 8 --batch-size 512 --epochs "$epochs" --lr 0.001 --threads "$threads" --seed "$seed" \
		$([ "$peer_sparse" = 1 ] && echo --sparse-embeddings) > "$work/torch-$seed.json"
done

/usr/bin/python3 - "$work" "$rows" "$epochs" "$threads" "$seeds" "$peer_sparse" <<'PY'
import json, statistics as st, sys
work, rows, epochs, threads, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5].split()
peer = "pytorch, SparseAdam embeddings" if sys.argv[6] == "1" else "pytorch, dense Adam embeddings"
last = lambda f: json.loads(open(f).read().strip().splitlines()[-1])
truth = last(f"{work}/truth.json")
E = {s: last(f"{work}/esmm-{s}.json") for s in seeds}
T = {s: last(f"{work}/torch-{s}.json") for s in seeds}
tasks = [("auc_ctr", "CTR"), ("auc_ctcvr", "CTCVR"), ("auc_cvr_clicked", "CVR on clicks")]
print(f"ESMM, {rows} synthetic impressions (80/20 split), {epochs} epochs, towers 64-32 lrelu, "
      f"embedding 8, batch 512, adam 0.001, {threads} thread(s), model seeds {' '.join(seeds)}; peer: {peer}")
print(f"{'test AUC':16}{'esmm':>16}{'pytorch':>16}{'esmm - pytorch':>18}{'truth':>8}")
for k, name in tasks:
    e = [E[s][k] for s in seeds]; t = [T[s][k] for s in seeds]; d = [a - b for a, b in zip(e, t)]
    sd = lambda v: st.stdev(v) if len(v) > 1 else 0.0
    print(f"{name:16}{st.mean(e):9.4f} ±{sd(e):.4f}{st.mean(t):9.4f} ±{sd(t):.4f}"
          f"{st.mean(d):+11.4f} ±{sd(d):.4f}{truth[k]:8.4f}")
e_rps = st.mean(E[s]["rows_train"] * epochs / E[s]["train_seconds"] for s in seeds)
t_rps = st.mean(T[s]["train_rows_per_sec"] for s in seeds)
e_sps = st.mean(E[s]["rows_test"] / E[s]["score_seconds"] for s in seeds)
t_sps = st.mean(T[s]["infer_rows_per_sec"] for s in seeds)
print(f"{'train rows/s':16}{e_rps:16.0f}{t_rps:16.0f}{e_rps / t_rps:17.2f}x   (esmm: the whole SQL statement)")
print(f"{'score rows/s':16}{e_sps:16.0f}{t_sps:16.0f}{e_sps / t_sps:17.2f}x   (esmm: per-row esmm_predict; pytorch: batches of 4096)")
PY
