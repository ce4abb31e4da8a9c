#!/usr/bin/env bash
# The demo, end to end, on a fresh Debian 12 machine as root: installs the
# missing packages, builds and installs the extension, starts a throwaway
# cluster in .tmp/pg-54329 (port 54329), generates synthetic impressions with known
# propensities, trains ESMM in one aggregate, scores the test split and
# prints the AUCs next to those of the true propensities.
#   ESMM_DEMO_ROWS=200000 (default) sets the number of impressions.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rows=${ESMM_DEMO_ROWS:-200000}

bash test/install_deps.sh
make -s >/dev/null
make -s install >/dev/null
test/cluster.sh start
trap 'test/cluster.sh stop' EXIT
eval "$(test/cluster.sh env)"

psql -qX -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE esmm_demo"
export PGDATABASE=esmm_demo
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION esmm"
echo "== generating $rows impressions"
psql -qX -v ON_ERROR_STOP=1 -v n_rows="$rows" -v seed=42 -v table=impressions -f demo/gen_impressions.sql
echo "== training, scoring and evaluating in SQL"
psql -X -v ON_ERROR_STOP=1 -f demo/demo.sql
