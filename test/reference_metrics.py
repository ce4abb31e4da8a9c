#!/usr/bin/python3
"""Reference values of the metric aggregates, computed with scikit-learn.

sql/regress_metrics.sql compares esmm's aggregates over the table
metrics_rows with literals; this script computes those literals
independently, with scikit-learn and numpy, from the same rows.  The test
suite does not run it.

    eval "$(test/cluster.sh env)"          # any running PostgreSQL 15
    /usr/bin/python3 test/reference_metrics.py
    /usr/bin/python3 test/reference_metrics.py --csv rows.csv   # no server

Without --csv, it runs the statement between the "reference rows" markers
of sql/regress_metrics.sql in a transaction that it rolls back, and exports
the rows with psql's \\copy; the metrics need no extension.  Debian's
/usr/bin/python3 has sklearn and numpy (python3-sklearn).

Each metric reads the rows where none of its arguments is NULL, as the
aggregates do.
"""
import argparse
import csv
import io
import math
import pathlib
import re
import subprocess

import numpy as np
from sklearn.metrics import (accuracy_score, log_loss, mean_absolute_error,
                             mean_squared_error, roc_auc_score)

ROOT = pathlib.Path(__file__).resolve().parent.parent
COLUMNS = "score, score_r, click_i, grp, grp_t, pred, target"
EPS = 1e-7  # logloss clips scores to [EPS, 1 - EPS]


def rows_from_psql():
    sql = (ROOT / "sql" / "regress_metrics.sql").read_text()
    m = re.search(r"-- reference rows: begin\n(.*?)-- reference rows: end", sql, re.S)
    if m is None:
        raise SystemExit("no reference rows markers in sql/regress_metrics.sql")
    # a schema of its own, rolled back, so that no table of the database is touched
    script = ("BEGIN;\nCREATE SCHEMA esmm_reference;\nSET LOCAL search_path = esmm_reference;\n" +
              m.group(1) +
              f"\\copy (SELECT {COLUMNS} FROM metrics_rows ORDER BY id) TO STDOUT CSV HEADER\n"
              "ROLLBACK;\n")
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"],
                         input=script, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("psql failed:\n" + out.stderr)
    return out.stdout


def column(rows, name, kind):
    def conv(v):
        if v == "":
            return None
        return kind(v)
    return [conv(r[name]) for r in rows]


def keep(*cols):
    """The rows where every column is non-NULL, as numpy arrays."""
    mask = [all(c[i] is not None for c in cols) for i in range(len(cols[0]))]
    return [np.array([c[i] for i in range(len(c)) if mask[i]]) for c in cols]


def gauc(y, s, g):
    """Per-group roc_auc_score weighted by the group's rows, groups with both classes."""
    num = den = 0.0
    for key in np.unique(g):
        sel = g == key
        if len(np.unique(y[sel])) == 2:
            num += sel.sum() * roc_auc_score(y[sel], s[sel])
            den += sel.sum()
    return num / den


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", help=f"the rows as CSV with a header ({COLUMNS})")
    args = ap.parse_args()
    text = pathlib.Path(args.csv).read_text() if args.csv else rows_from_psql()
    rows = list(csv.DictReader(io.StringIO(text)))

    score = column(rows, "score", float)
    # a real score reaches the aggregate as float4 widened to float8
    score_r = [None if v is None else float(np.float32(v)) for v in column(rows, "score_r", float)]
    label = column(rows, "click_i", int)
    grp = column(rows, "grp", int)
    grp_t = column(rows, "grp_t", str)
    pred = column(rows, "pred", float)
    target = column(rows, "target", float)

    ref = {}
    # log_loss's own clipping (eps) is float64's epsilon, within [EPS, 1 - EPS]:
    # the scores are clipped here, which works with every scikit-learn version
    y, s = keep(label, score)
    yr, sr = keep(label, score_r)
    ref["auc"] = roc_auc_score(y, s)
    ref["auc_real"] = roc_auc_score(yr, sr)
    ref["logloss"] = log_loss(y, np.clip(s, EPS, 1 - EPS), labels=[0, 1])
    ref["logloss_real"] = log_loss(yr, np.clip(sr, EPS, 1 - EPS), labels=[0, 1])
    ref["bacc"] = accuracy_score(y, (s > 0.5).astype(int))
    ref["bacc_035"] = accuracy_score(y, (s > 0.35).astype(int))
    ref["bacc_real"] = accuracy_score(yr, (sr > 0.5).astype(int))
    ref["pcoc"] = np.mean(s) / np.mean(y)
    yg, sg, gg = keep(label, score, grp)
    ref["gauc"] = gauc(yg, sg, gg)
    yt, st, gt = keep(label, score, grp_t)
    ref["gauc_text"] = gauc(yt, st, gt)
    p, t = keep(pred, target)
    ref["mse"] = mean_squared_error(t, p)
    ref["rmse"] = mean_squared_error(t, p, squared=False)
    ref["mae"] = mean_absolute_error(t, p)

    print(f"-- rows: {len(rows)}; scored rows: {len(y)}; groups: {len(np.unique(gg))}")
    for k, v in ref.items():
        assert math.isfinite(v)
        print(f"{k:<14} {v!r}")


if __name__ == "__main__":
    main()
