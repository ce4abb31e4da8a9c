#!/usr/bin/env bash
# ESMM quality and training speed, side by side with the PyTorch peer on the
# same rows (SPEC §8; issue "Foundation").  Not part of the test suite.
#   ESMM_ROWS=200000 ESMM_EPOCHS=2 ESMM_THREADS=1 bash bench/esmm_quality.sh
# Starts its own cluster (.tmp/pg), generates the impressions, trains with
# esmm_train and with demo/esmm_peer.py (Debian's python3-torch), scores
# the test split with both, and prints the AUCs, rows/s and their ratios.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rows=${ESMM_ROWS:-200000}
epochs=${ESMM_EPOCHS:-2}
threads=${ESMM_THREADS:-1}
work="$root/.tmp/bench"

bash test/install_deps.sh python3-torch python3-sklearn python3-numpy
make -s >/dev/null && make -s install >/dev/null
test/cluster.sh start
trap 'test/cluster.sh stop' EXIT
eval "$(test/cluster.sh env)"
mkdir -p "$work" && chmod 777 "$work"
psql -qX -d postgres -c "CREATE DATABASE esmm_bench"
export PGDATABASE=esmm_bench
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION esmm"
psql -qX -v ON_ERROR_STOP=1 -v n_rows="$rows" -v seed=42 -v table=impressions -f demo/gen_impressions.sql >/dev/null

cols="id, user_id, item_id, category, hour, device, user_age, item_price, user_hist_ctr, click, conversion"
psql -qX -c "\\copy (SELECT $cols FROM impressions WHERE split = 'train' ORDER BY id) TO '$work/train.csv' CSV HEADER"
psql -qX -c "\\copy (SELECT $cols FROM impressions WHERE split = 'test' ORDER BY id) TO '$work/test.csv' CSV HEADER"

cfg=$(/usr/bin/python3 - "$epochs" <<'PY'
import json, sys
c = json.load(open("demo/esmm_config.json"))
c["train_args"]["epochs"] = int(sys.argv[1])
print(json.dumps(c))
PY
)
psql -qX -v ON_ERROR_STOP=1 -v cfg="$cfg" -v threads="$threads" <<'SQL' > "$work/esmm.txt"
SET esmm.threads = :threads;
SET client_min_messages = warning;
\set QUIET 1
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
  'train_seconds_in_final', (SELECT (esmm_model_info(model)->'report'->>'seconds')::float8 FROM models),
  'rows_train', (SELECT count(*) FROM impressions WHERE split = 'train'),
  'score_seconds', :t2 - :t1,
  'rows_test', (SELECT count(*) FROM scored),
  'auc_ctr', (SELECT auc(pctr, click) FROM scored),
  'auc_ctcvr', (SELECT auc(pctcvr, click * conversion) FROM scored),
  'auc_cvr_clicked', (SELECT auc(pcvr, conversion) FROM scored WHERE click = 1));
SQL
psql -qX -At -c "SELECT json_build_object('auc_ctr', auc(true_ctr, click), 'auc_ctcvr', auc(true_ctr * true_cvr, click * conversion), 'auc_cvr_clicked', auc(true_cvr, conversion) FILTER (WHERE click = 1)) FROM impressions WHERE split = 'test'" > "$work/truth.txt"

/usr/bin/python3 demo/esmm_peer.py --train "$work/train.csv" --test "$work/test.csv" \
	--categorical user_id,item_id,category,hour,device --numeric user_age,item_price,user_hist_ctr \
	--log-numeric item_price --click click --conversion conversion --units 64,32 --act lrelu \
	--emb-dim 8 --batch-size 512 --epochs "$epochs" --lr 0.001 --threads "$threads" --seed 42 \
	> "$work/torch.txt"

/usr/bin/python3 - "$work" "$rows" "$epochs" "$threads" <<'PY'
import json, sys
work, rows, epochs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
e = json.loads(open(f"{work}/esmm.txt").read().strip().splitlines()[-1])
t = json.loads(open(f"{work}/torch.txt").read().strip().splitlines()[-1])
tr = json.loads(open(f"{work}/truth.txt").read().strip())
e_rps = e["rows_train"] * epochs / e["train_seconds"]
print(f"ESMM on {rows} synthetic impressions, {epochs} epochs, towers 64-32, embedding 8, "
      f"batch 512, adam 0.001, {threads} thread(s)")
print(f"{'':28}{'esmm':>10}{'pytorch':>10}{'diff':>10}{'truth':>10}")
for k, name in [("auc_ctr", "test AUC, CTR"), ("auc_ctcvr", "test AUC, CTCVR"),
                ("auc_cvr_clicked", "test AUC, CVR on clicks")]:
    print(f"{name:28}{e[k]:10.4f}{t[k]:10.4f}{e[k]-t[k]:+10.4f}{tr[k]:10.4f}")
print(f"{'train rows/s (whole query)':28}{e_rps:10.0f}{t['train_rows_per_sec']:10.0f}"
      f"{e_rps / t['train_rows_per_sec']:9.2f}x")
print(f"{'score rows/s (esmm_predict)':28}{e['rows_test'] / e['score_seconds']:10.0f}"
      f"{t['infer_rows_per_sec']:10.0f}{e['rows_test'] / e['score_seconds'] / t['infer_rows_per_sec']:9.2f}x")
PY
