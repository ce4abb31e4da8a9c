"""What the PyTorch peers (esmm_peer.py, mmoe_peer.py) share: reading the
CSV exports, turning columns into the extension's inputs, the layers, the
optimizers and the metrics.  One place, so that both peers handle the data
exactly as the extension does, and a change reaches both.

Import it after setting OPENBLAS_NUM_THREADS: it imports numpy and torch.
"""
import csv
import math
import sys

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import roc_auc_score


ACTS = ["none", "relu", "lrelu", "sigmoid", "tanh", "elu", "gelu", "swish", "silu"]


def csv_list(s):
    return [x.strip() for x in s.split(",") if x.strip()] if s else []


# ---------------------------------------------------------------------- data

def read_csv(prog, path, columns):
    """Read the wanted columns of a CSV with header; returns {col: list of str or None}."""
    with open(path, newline="") as f:
        r = csv.reader(f)
        try:
            header = next(r)
        except StopIteration:
            sys.exit("%s: %s is empty" % (prog, path))
        idx = {}
        for c in columns:
            if c not in header:
                sys.exit("%s: column %r not in %s (header: %s)" % (prog, c, path, ",".join(header)))
            idx[c] = header.index(c)
        out = {c: [] for c in columns}
        pairs = list(idx.items())
        for row in r:
            if not row:
                continue
            for c, i in pairs:
                v = row[i]
                out[c].append(v if v != "" else None)
    return out


def to_float(prog, values, name, path):
    a = np.empty(len(values), dtype=np.float64)
    for k, v in enumerate(values):
        if v is None:
            a[k] = np.nan
        else:
            try:
                a[k] = float(v)
            except ValueError:
                sys.exit("%s: %s: non-numeric value %r in column %r" % (prog, path, v, name))
    return a


def encode_features(prog, args, tr, te, n_tr, n_te):
    """The extension's inputs from the train and test columns.

    Categorical: ids factorized over the train and test values; NULL (and
    nothing else, since test values are in the vocabulary) is the last row.
    Numeric: optional signed log1p, then standardized with the TRAIN mean
    and population std (a std of 0 becomes 1); NULL becomes 0 afterwards.
    Returns (vocab_sizes, cat_tr, cat_te, num_tr, num_te).
    """
    cat_tr = np.zeros((n_tr, len(args.categorical)), dtype=np.int64)
    cat_te = np.zeros((n_te, len(args.categorical)), dtype=np.int64)
    vocab_sizes = []
    for j, c in enumerate(args.categorical):
        vocab = {}
        for v in tr[c]:
            if v is not None and v not in vocab:
                vocab[v] = len(vocab)
        for v in te[c]:
            if v is not None and v not in vocab:
                vocab[v] = len(vocab)
        missing = len(vocab)
        cat_tr[:, j] = [vocab.get(v, missing) if v is not None else missing for v in tr[c]]
        cat_te[:, j] = [vocab.get(v, missing) if v is not None else missing for v in te[c]]
        vocab_sizes.append(len(vocab) + 1)

    num_tr = np.zeros((n_tr, len(args.numeric)), dtype=np.float32)
    num_te = np.zeros((n_te, len(args.numeric)), dtype=np.float32)
    for j, c in enumerate(args.numeric):
        a = to_float(prog, tr[c], c, args.train)
        b = to_float(prog, te[c], c, args.test)
        if c in args.log_numeric:
            a = np.sign(a) * np.log1p(np.abs(a))
            b = np.sign(b) * np.log1p(np.abs(b))
        ok = ~np.isnan(a)
        if ok.any():
            mean = float(a[ok].mean())
            std = float(a[ok].std())          # population std (ddof=0)
        else:
            mean, std = 0.0, 1.0
        if not std > 0 or not math.isfinite(std):
            std = 1.0
        a = (a - mean) / std
        b = (b - mean) / std
        num_tr[:, j] = np.where(np.isnan(a), 0.0, a)
        num_te[:, j] = np.where(np.isnan(b), 0.0, b)
    return vocab_sizes, cat_tr, cat_te, num_tr, num_te


# --------------------------------------------------------------------- model

def make_act(name):
    return {
        "none": None,
        "relu": nn.ReLU(),
        "lrelu": nn.LeakyReLU(0.2),          # Keras' LeakyReLU default slope
        "sigmoid": nn.Sigmoid(),
        "tanh": nn.Tanh(),
        "elu": nn.ELU(alpha=1.0),
        "gelu": nn.GELU(),                   # exact (erf)
        "swish": nn.SiLU(),
        "silu": nn.SiLU(),
    }[name]


def glorot_linear(n_in, n_out):
    lin = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(lin.weight)      # Keras' glorot_uniform
    nn.init.zeros_(lin.bias)
    return lin


def make_mlp(n_in, units, act, out_width=None):
    """Linear layers of the given widths, the activation after each; then an
    optional Linear(-> out_width) without activation."""
    layers = []
    for u in units:
        layers.append(glorot_linear(n_in, u))
        a = make_act(act)
        if a is not None:
            layers.append(a)
        n_in = u
    if out_width is not None:
        layers.append(glorot_linear(n_in, out_width))
    return nn.Sequential(*layers)


def make_embeddings(vocab_sizes, emb_dim, sparse):
    """One table per categorical column, U(-0.05, 0.05) as Keras' default."""
    embs = nn.ModuleList()
    for v in vocab_sizes:
        e = nn.Embedding(v, emb_dim, sparse=sparse)
        nn.init.uniform_(e.weight, -0.05, 0.05)
        embs.append(e)
    return embs


def embed_inputs(embs, cat, num):
    """The model input: every column's embedding, then the numeric values."""
    parts = [e(cat[:, j]) for j, e in enumerate(embs)]
    if num.shape[1] > 0:
        parts.append(num)
    return torch.cat(parts, dim=1)


def make_optimizers(model, lr, sparse):
    """Adam (eps 1e-7, Keras'); with sparse, SparseAdam on the tables
    (model.embs), the lazy Adam of the extension."""
    if not sparse:
        return [torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-7)]
    dense = [p for n_, p in model.named_parameters() if not n_.startswith("embs.")]
    opts = [torch.optim.Adam(dense, lr=lr, betas=(0.9, 0.999), eps=1e-7)]
    if len(model.embs):
        opts.append(torch.optim.SparseAdam(list(model.embs.parameters()), lr=lr,
                                           betas=(0.9, 0.999), eps=1e-7))
    return opts


# ------------------------------------------------------------------- metrics

def safe_auc(y, s):
    y = np.asarray(y)
    if y.size == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, s))


def rnd(x, k=6):
    return None if x is None else round(float(x), k)
