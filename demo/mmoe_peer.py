#!/usr/bin/python3
"""PyTorch MMoE peer for the esmm PostgreSQL extension.

Trains the same MMoE model (Ma et al., "Modeling Task Relationships in
Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018) as the
extension -- same features, architecture, initialisation, loss and optimiser --
on CSV exports of the same rows, and prints one line of JSON with speeds and
test metrics, so that the benchmark can run both side by side.

    /usr/bin/python3 demo/mmoe_peer.py --train train.csv --test test.csv \\
        --categorical c1,c2,... --numeric n1,... \\
        --labels income,never_married [--task-types binary,binary] \\
        --experts 8 --expert-units 16 --tower-units 8 --emb-dim 4 \\
        --batch-size 256 --epochs 3 --lr 0.001 --threads 2 --seed 42 \\
        [--act relu] [--predictions out.csv]

CSV files have a header line (psql: \\copy (...) TO 'f.csv' CSV HEADER);
an empty field is NULL (so an empty string is NULL too).

Model:
  x        = concat(embedding of each categorical column, standardized numerics)
  expert_k = MLP(x), --expert-units widths, activation after every layer
  gate_t   = softmax(Linear(x -> n_experts))            (one gate per task)
  f_t      = sum_k gate_t[k] * expert_k
  y_t      = Linear(MLP(f_t) -> 1), --tower-units widths (one tower per task)
  loss     = sum over tasks of BCE-with-logits (binary) or MSE (regression),
             each a batch mean

Needs Debian's /usr/bin/python3 with python3-torch, python3-numpy and
python3-sklearn.
"""

import argparse
import csv
import json
import math
import os
import sys
import time

# Debian's torch does its matrix products in the system OpenBLAS, whose
# pthread build keeps its own pool of threads (one per core) beside torch's
# OpenMP pool (--threads).  Both spin on 2 cores and training gets about 3
# times slower.  So OpenBLAS runs single-threaded, unless the caller sets
# OPENBLAS_NUM_THREADS; this must happen before numpy or torch is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import log_loss

from peer_common import (ACTS, csv_list, embed_inputs, encode_features, glorot_linear,
                         make_act, make_embeddings, make_mlp, make_optimizers, read_csv,
                         rnd, safe_auc, to_float)

PROG = "mmoe_peer"
TASK_TYPES = ["binary", "regression"]


# ----------------------------------------------------------------- arguments

def int_list(s):
    try:
        return [int(x) for x in csv_list(s)]
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated integers, got %r" % s)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="PyTorch MMoE peer of the esmm extension")
    p.add_argument("--train", required=True, help="training CSV (with header)")
    p.add_argument("--test", required=True, help="test CSV (with header)")
    p.add_argument("--categorical", type=csv_list, default=[],
                   help="comma-separated categorical columns (one embedding table each)")
    p.add_argument("--numeric", type=csv_list, default=[],
                   help="comma-separated numeric columns (standardized)")
    p.add_argument("--log-numeric", type=csv_list, default=[],
                   help="numeric columns that get sign(x)*log1p(|x|) before standardizing "
                        "(default none)")
    p.add_argument("--labels", type=csv_list, required=True,
                   help="label columns, in task order")
    p.add_argument("--task-types", type=csv_list, default=None,
                   help="binary or regression per label (default all binary)")
    p.add_argument("--experts", type=int, default=8, help="number of experts")
    p.add_argument("--expert-units", type=int_list, default=[16],
                   help="hidden widths of each expert, e.g. 16 or 64,32")
    p.add_argument("--tower-units", type=int_list, default=[8],
                   help="hidden widths of each task tower before its width-1 output "
                        "(may be empty: '')")
    p.add_argument("--act", default="relu", choices=ACTS,
                   help="activation after every expert and tower hidden layer")
    p.add_argument("--emb-dim", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--sparse-embeddings", action="store_true",
                   help="sparse embedding gradients with SparseAdam (lazy Adam: a step moves "
                        "only the rows the batch looked up); by default embeddings are dense "
                        "and Adam moves every row")
    p.add_argument("--predictions", help="write id and one prediction per task for the test rows")
    p.add_argument("--id", default="id", help="id column for --predictions (default id)")
    a = p.parse_args(argv)

    if a.task_types is None:
        a.task_types = ["binary"] * len(a.labels)
    if not a.labels:
        p.error("--labels: give at least one label column")
    if len(set(a.labels)) != len(a.labels):
        p.error("--labels: a label is listed twice")
    if len(a.task_types) != len(a.labels):
        p.error("--task-types has %d entries for %d labels" % (len(a.task_types), len(a.labels)))
    for t in a.task_types:
        if t not in TASK_TYPES:
            p.error("--task-types: %r is not one of %s" % (t, ", ".join(TASK_TYPES)))
    for c in a.log_numeric:
        if c not in a.numeric:
            p.error("--log-numeric column %r is not in --numeric" % c)
    feats = a.categorical + a.numeric
    if not feats:
        p.error("no features: give --categorical and/or --numeric")
    if len(set(feats)) != len(feats):
        p.error("a feature column is listed twice")
    for c in a.labels:
        if c in feats:
            p.error("label %r is also a feature" % c)
    if (a.emb_dim < 1 or a.batch_size < 1 or a.epochs < 0 or a.threads < 1 or a.experts < 1
            or not a.expert_units or min(a.expert_units) < 1
            or (a.tower_units and min(a.tower_units) < 1)):
        p.error("--emb-dim, --batch-size, --threads, --experts and every width must be >= 1, "
                "--expert-units non-empty, --epochs >= 0")
    return a


# ---------------------------------------------------------------------- data

def to_label(values, name, path, task_type):
    a = to_float(PROG, values, name, path)
    if np.isnan(a).any():
        sys.exit(PROG + ": %s: NULL in label column %r" % (path, name))
    if task_type == "binary":
        if not np.isin(a, (0.0, 1.0)).all():
            sys.exit(PROG + ": %s: binary label %r has values other than 0 and 1" % (path, name))
    elif not np.isfinite(a).all():
        sys.exit(PROG + ": %s: non-finite value in label column %r" % (path, name))
    return a.astype(np.float32)


def prepare(args):
    cols = list(dict.fromkeys(args.categorical + args.numeric + args.labels))
    need_id = bool(args.predictions)
    tr = read_csv(PROG, args.train, cols)
    te = read_csv(PROG, args.test, cols + ([args.id] if need_id and args.id not in cols else []))
    n_tr = len(tr[args.labels[0]])
    n_te = len(te[args.labels[0]])
    if n_tr == 0:
        sys.exit(PROG + ": no training rows")

    vocab_sizes, cat_tr, cat_te, num_tr, num_te = encode_features(PROG, args, tr, te, n_tr, n_te)

    y_tr = np.stack([to_label(tr[c], c, args.train, t)
                     for c, t in zip(args.labels, args.task_types)], axis=1)
    y_te = np.stack([to_label(te[c], c, args.test, t)
                     for c, t in zip(args.labels, args.task_types)], axis=1) \
        if n_te else np.zeros((0, len(args.labels)), dtype=np.float32)
    ids = te[args.id] if need_id else None
    return dict(n_tr=n_tr, n_te=n_te, vocab_sizes=vocab_sizes,
                cat_tr=cat_tr, cat_te=cat_te, num_tr=num_tr, num_te=num_te,
                y_tr=y_tr, y_te=y_te, ids=ids)


# --------------------------------------------------------------------- model

class Experts(nn.Module):
    """n_experts MLPs on the same input, evaluated together.

    Layer l of all experts is one (E, in, out) weight tensor, so a layer is
    one batched matmul instead of E small ones.  Mathematically it is E
    separate experts: each expert's slice is initialised on its own, as its
    own Linear(in, out) would be (Glorot uniform with that layer's fan-in
    and fan-out, zero bias), and no parameter is shared.
    Returns (E, batch, last width).
    """

    def __init__(self, n_in, n_experts, units, act):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.acts = []
        for u in units:
            w = torch.empty(n_experts, n_in, u)
            for k in range(n_experts):
                # a fresh Glorot draw per expert, in Linear's (out, in) layout
                w_k = torch.empty(u, n_in)
                nn.init.xavier_uniform_(w_k)
                w[k] = w_k.t()
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(n_experts, 1, u)))
            self.acts.append(make_act(act))
            n_in = u
        self.out_width = n_in

    def forward(self, x):
        h = None
        for w, b, act in zip(self.weights, self.biases, self.acts):
            if h is None:
                # (B, in) x (E, in, out) -> (E, B, out): one matmul on the shared input
                e, n_in, n_out = w.shape
                h = (x @ w.permute(1, 0, 2).reshape(n_in, e * n_out)) \
                    .view(-1, e, n_out).transpose(0, 1)
                h = h + b
            else:
                h = torch.baddbmm(b, h, w)
            if act is not None:
                h = act(h)
        return h


class MMoE(nn.Module):
    def __init__(self, vocab_sizes, n_numeric, emb_dim, n_experts, expert_units,
                 tower_units, act, n_tasks, sparse=False):
        super().__init__()
        self.embs = make_embeddings(vocab_sizes, emb_dim, sparse)
        n_in = len(vocab_sizes) * emb_dim + n_numeric
        self.experts = Experts(n_in, n_experts, expert_units, act)
        self.gates = nn.ModuleList([glorot_linear(n_in, n_experts) for _ in range(n_tasks)])
        self.towers = nn.ModuleList([make_mlp(self.experts.out_width, tower_units, act, 1)
                                     for _ in range(n_tasks)])

    def forward(self, cat, num):
        x = embed_inputs(self.embs, cat, num)
        ex = self.experts(x)                                  # (E, B, H)
        outs = []
        for gate, tower in zip(self.gates, self.towers):
            g = torch.softmax(gate(x), dim=1)                 # (B, E)
            f = torch.einsum("be,ebh->bh", g, ex)             # sum_k g[k] * expert_k
            outs.append(tower(f).squeeze(1))
        return torch.stack(outs, dim=1)                       # (B, T) logits / values


def task_losses(out, y, is_binary):
    """One batch-mean loss per task: BCE with logits (binary) or MSE (regression)."""
    losses = []
    for t, binary in enumerate(is_binary):
        if binary:
            losses.append(F.binary_cross_entropy_with_logits(out[:, t], y[:, t]))
        else:
            losses.append(F.mse_loss(out[:, t], y[:, t]))
    return losses


# ---------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    d = prepare(args)
    is_binary = [t == "binary" for t in args.task_types]
    n_tasks = len(args.labels)
    model = MMoE(d["vocab_sizes"], len(args.numeric), args.emb_dim, args.experts,
                 args.expert_units, args.tower_units, args.act, n_tasks,
                 sparse=args.sparse_embeddings)
    opts = make_optimizers(model, args.lr, args.sparse_embeddings)

    cat_tr = torch.from_numpy(d["cat_tr"])
    num_tr = torch.from_numpy(d["num_tr"])
    y_tr = torch.from_numpy(d["y_tr"])
    cat_te = torch.from_numpy(d["cat_te"])
    num_te = torch.from_numpy(d["num_te"])
    gen = torch.Generator()
    gen.manual_seed(args.seed)

    n, bs = d["n_tr"], args.batch_size
    epoch_loss = []
    epoch_task_loss = [[] for _ in range(n_tasks)]
    model.train()
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=gen)
        task_total = torch.zeros(n_tasks, dtype=torch.float64)
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            out = model(cat_tr[idx], num_tr[idx])
            losses = task_losses(out, y_tr[idx], is_binary)
            loss = torch.stack(losses).sum()
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in opts:
                opt.step()
            m = idx.numel()
            task_total += torch.stack(losses).detach().double() * m
        task_mean = (task_total / n).tolist()
        for t in range(n_tasks):
            epoch_task_loss[t].append(task_mean[t])
        epoch_loss.append(sum(task_mean))
        if not math.isfinite(epoch_loss[-1]):
            sys.exit(PROG + ": training diverged (non-finite loss)")
    train_seconds = time.perf_counter() - t0

    model.eval()
    parts = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, d["n_te"], 4096):
            out = model(cat_te[s:s + 4096], num_te[s:s + 4096])
            parts.append(out)
    infer_seconds = time.perf_counter() - t0
    out_te = torch.cat(parts).double().numpy() if parts else np.zeros((0, n_tasks))
    pred = np.empty_like(out_te)
    for t in range(n_tasks):
        pred[:, t] = 1.0 / (1.0 + np.exp(-out_te[:, t])) if is_binary[t] else out_te[:, t]

    res = {
        "rows_train": n,
        "rows_test": d["n_te"],
        "epochs": args.epochs,
        "train_seconds": rnd(train_seconds, 4),
        "train_rows_per_sec": rnd(n * args.epochs / train_seconds, 1) if train_seconds > 0 else None,
        "infer_seconds": rnd(infer_seconds, 4),
        "infer_rows_per_sec": rnd(d["n_te"] / infer_seconds, 1) if infer_seconds > 0 else None,
        "threads": args.threads,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    y_te = d["y_te"]
    for t, lab in enumerate(args.labels):
        y = y_te[:, t]
        if is_binary[t]:
            res["auc_" + lab] = rnd(safe_auc(y, pred[:, t]))
            both = y.size > 0 and y.min() != y.max()
            res["logloss_" + lab] = rnd(log_loss(y, np.clip(pred[:, t], 1e-7, 1 - 1e-7),
                                                 labels=[0, 1])) if both else None
        else:
            res["mse_" + lab] = rnd(float(np.mean((pred[:, t] - y) ** 2))) if y.size else None
    res["epoch_loss"] = [rnd(x) for x in epoch_loss]
    for t, lab in enumerate(args.labels):
        res["epoch_loss_" + lab] = [rnd(x) for x in epoch_task_loss[t]]

    if args.predictions:
        with open(args.predictions, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id"] + ["p_" + lab for lab in args.labels])
            for i, row in zip(d["ids"], pred):
                w.writerow([i if i is not None else ""] + ["%.9g" % v for v in row])

    print(json.dumps(res))


if __name__ == "__main__":
    main()
