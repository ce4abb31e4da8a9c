#!/usr/bin/python3
"""PyTorch ESMM peer for the esmm PostgreSQL extension.

Trains the same ESMM model as the extension (same features, architecture,
initialisation, loss and optimiser) on CSV exports of the same rows, and
prints one line of JSON with speeds and test metrics, so that the benchmark
can run both side by side.

    /usr/bin/python3 demo/esmm_peer.py --train train.csv --test test.csv \
        --categorical user_id,item_id,category,hour,device \
        --numeric user_age,item_price,user_hist_ctr --log-numeric item_price \
        --click click --conversion conversion --units 64,32 --act lrelu \
        --emb-dim 8 --batch-size 512 --epochs 2 --lr 0.001 --threads 2 \
        --seed 42 [--predictions out.csv]

CSV files have a header line (psql: \\copy (...) TO 'f.csv' CSV HEADER);
an empty field is NULL (so an empty string is NULL too).

Needs Debian's /usr/bin/python3 with python3-torch, python3-numpy and
python3-sklearn.
"""

import argparse
import csv
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import log_loss

from peer_common import (ACTS, csv_list, embed_inputs, encode_features, make_embeddings,
                         make_mlp, make_optimizers, read_csv, rnd, safe_auc, to_float)

PROG = "esmm_peer"


# ----------------------------------------------------------------- arguments

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="PyTorch ESMM peer of the esmm extension")
    p.add_argument("--train", required=True, help="training CSV (with header)")
    p.add_argument("--test", required=True, help="test CSV (with header)")
    p.add_argument("--categorical", type=csv_list, default=[],
                   help="comma-separated categorical columns (one embedding table each)")
    p.add_argument("--numeric", type=csv_list, default=[],
                   help="comma-separated numeric columns (standardized)")
    p.add_argument("--log-numeric", type=csv_list, default=[],
                   help="numeric columns that get sign(x)*log1p(|x|) before standardizing")
    p.add_argument("--click", default="click", help="click label column (0/1)")
    p.add_argument("--conversion", default="conversion", help="conversion label column (0/1)")
    p.add_argument("--units", type=lambda s: [int(x) for x in csv_list(s)], default=[64, 32],
                   help="hidden layer widths of each tower, e.g. 64,32")
    p.add_argument("--act", default="lrelu",
                   choices=ACTS)
    p.add_argument("--emb-dim", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--train-repeat", type=int, default=1,
                   help="train this many times from the same seed (the same model each time) "
                        "and report the fastest")
    p.add_argument("--infer-repeat", type=int, default=1,
                   help="score the test rows this many times and report the fastest")
    p.add_argument("--sparse-embeddings", action="store_true",
                   help="sparse embedding gradients with SparseAdam: the lazy Adam the "
                        "extension uses (a step moves only the rows the batch looked up); "
                        "by default embeddings are dense and Adam moves every row")
    p.add_argument("--predictions", help="write id,pctr,pcvr,pctcvr of the test rows here")
    p.add_argument("--id", default="id", help="id column for --predictions (default id)")
    a = p.parse_args(argv)
    for c in a.log_numeric:
        if c not in a.numeric:
            p.error("--log-numeric column %r is not in --numeric" % c)
    if not a.categorical and not a.numeric:
        p.error("no features: give --categorical and/or --numeric")
    if a.emb_dim < 1 or a.batch_size < 1 or a.epochs < 0 or a.threads < 1:
        p.error("--emb-dim, --batch-size, --threads must be >= 1 and --epochs >= 0")
    return a


# ---------------------------------------------------------------------- data

def to_label(values, name, path):
    a = to_float(PROG, values, name, path)
    if np.isnan(a).any():
        sys.exit(PROG + ": %s: NULL in label column %r" % (path, name))
    return (a != 0).astype(np.float32)


def prepare(args):
    cols = list(dict.fromkeys(args.categorical + args.numeric + [args.click, args.conversion]))
    need_id = bool(args.predictions)
    tr = read_csv(PROG, args.train, cols)
    te = read_csv(PROG, args.test, cols + ([args.id] if need_id and args.id not in cols else []))
    n_tr = len(tr[args.click])
    n_te = len(te[args.click])
    if n_tr == 0:
        sys.exit(PROG + ": no training rows")

    vocab_sizes, cat_tr, cat_te, num_tr, num_te = encode_features(PROG, args, tr, te, n_tr, n_te)

    y_click_tr = to_label(tr[args.click], args.click, args.train)
    y_conv_tr = to_label(tr[args.conversion], args.conversion, args.train)
    y_click_te = to_label(te[args.click], args.click, args.test)
    y_conv_te = to_label(te[args.conversion], args.conversion, args.test)
    ids = te[args.id] if need_id else None
    return dict(n_tr=n_tr, n_te=n_te, vocab_sizes=vocab_sizes,
                cat_tr=cat_tr, cat_te=cat_te, num_tr=num_tr, num_te=num_te,
                y_click_tr=y_click_tr, y_ctcvr_tr=y_click_tr * y_conv_tr,
                y_click_te=y_click_te, y_conv_te=y_conv_te, ids=ids)


# --------------------------------------------------------------------- model

class ESMM(nn.Module):
    def __init__(self, vocab_sizes, n_numeric, emb_dim, units, act, sparse=False):
        super().__init__()
        self.embs = make_embeddings(vocab_sizes, emb_dim, sparse)
        n_in = len(vocab_sizes) * emb_dim + n_numeric
        self.ctr = make_mlp(n_in, units, act, 1)
        self.cvr = make_mlp(n_in, units, act, 1)

    def forward(self, cat, num):
        x = embed_inputs(self.embs, cat, num)
        return self.ctr(x).squeeze(1), self.cvr(x).squeeze(1)


def esmm_loss(a, b, y_click, y_ctcvr):
    """BCE(click, sigmoid(a)) + BCE(ctcvr, sigmoid(a)*sigmoid(b)), batch means."""
    loss_ctr = F.binary_cross_entropy_with_logits(a, y_click)
    lsa = F.logsigmoid(a)
    lsb = F.logsigmoid(b)
    log_p = lsa + lsb
    # 1 - s(a)s(b) = s(a)s(b) * (e^-a + e^-b + e^-(a+b))
    log_1mp = torch.logsumexp(torch.stack([-a, -b, -a - b], dim=1), dim=1) + lsa + lsb
    loss_ctcvr = -(y_ctcvr * log_p + (1.0 - y_ctcvr) * log_1mp).mean()
    return loss_ctr + loss_ctcvr


# ---------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)

    d = prepare(args)
    cat_tr = torch.from_numpy(d["cat_tr"])
    num_tr = torch.from_numpy(d["num_tr"])
    yc_tr = torch.from_numpy(d["y_click_tr"])
    yv_tr = torch.from_numpy(d["y_ctcvr_tr"])
    cat_te = torch.from_numpy(d["cat_te"])
    num_te = torch.from_numpy(d["num_te"])
    n, bs = d["n_tr"], args.batch_size
    train_seconds = math.inf
    for _ in range(max(args.train_repeat, 1)):
        # every repeat starts from the same seed: the same model each time
        torch.manual_seed(args.seed)
        model = ESMM(d["vocab_sizes"], len(args.numeric), args.emb_dim, args.units, args.act,
                     sparse=args.sparse_embeddings)
        opts = make_optimizers(model, args.lr, args.sparse_embeddings)
        gen = torch.Generator()
        gen.manual_seed(args.seed)
        epoch_loss = []
        model.train()
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for s in range(0, n, bs):
                idx = perm[s:s + bs]
                a, b = model(cat_tr[idx], num_tr[idx])
                loss = esmm_loss(a, b, yc_tr[idx], yv_tr[idx])
                for opt in opts:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                for opt in opts:
                    opt.step()
                total += loss.item() * idx.numel()
            epoch_loss.append(total / n)
            if not math.isfinite(epoch_loss[-1]):
                sys.exit(PROG + ": training diverged (non-finite loss)")
        train_seconds = min(train_seconds, time.perf_counter() - t0)

    model.eval()
    infer_seconds = math.inf
    for _ in range(max(args.infer_repeat, 1)):
        pctr_parts, pcvr_parts = [], []
        t0 = time.perf_counter()
        with torch.no_grad():
            for s in range(0, d["n_te"], 4096):
                a, b = model(cat_te[s:s + 4096], num_te[s:s + 4096])
                pctr_parts.append(torch.sigmoid(a))
                pcvr_parts.append(torch.sigmoid(b))
        infer_seconds = min(infer_seconds, time.perf_counter() - t0)
    if pctr_parts:
        pctr = torch.cat(pctr_parts).double().numpy()
        pcvr = torch.cat(pcvr_parts).double().numpy()
    else:
        pctr = pcvr = np.zeros(0)
    pctcvr = pctr * pcvr

    yc, yv = d["y_click_te"], d["y_conv_te"]
    clicked = yc == 1
    has_both = d["n_te"] > 0 and yc.min() != yc.max()
    out = {
        "rows_train": n,
        "rows_test": d["n_te"],
        "epochs": args.epochs,
        "train_seconds": rnd(train_seconds, 4),
        "train_rows_per_sec": rnd(n * args.epochs / train_seconds, 1) if train_seconds > 0 else None,
        "infer_seconds": rnd(infer_seconds, 4),
        "infer_rows_per_sec": rnd(d["n_te"] / infer_seconds, 1) if infer_seconds > 0 else None,
        "auc_ctr": rnd(safe_auc(yc, pctr)),
        "auc_ctcvr": rnd(safe_auc(yc * yv, pctcvr)),
        "auc_cvr_clicked": rnd(safe_auc(yv[clicked], pcvr[clicked])),
        "logloss_ctr": rnd(log_loss(yc, np.clip(pctr, 1e-7, 1 - 1e-7), labels=[0, 1])) if has_both else None,
        "epoch_loss": [rnd(x) for x in epoch_loss],
    }

    if args.predictions:
        with open(args.predictions, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "pctr", "pcvr", "pctcvr"])
            for i, p1, p2, p3 in zip(d["ids"], pctr, pcvr, pctcvr):
                w.writerow([i if i is not None else "", "%.9g" % p1, "%.9g" % p2, "%.9g" % p3])

    print(json.dumps(out))


if __name__ == "__main__":
    main()
