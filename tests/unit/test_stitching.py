"""The batched stitching trainer of repaudit.metrics.stitching against the obvious per-decoder loop.

Reference: one StitchingDecoder per (seed, model), trained with autograd and torch.optim.Adam one
batch at a time (the implementation the batched one replaced), scored with sklearn's F1.
"""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from repaudit.metrics import stitching as S

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(n: int, d: int, n_classes: int, seed: int, spread: float = 4.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, d)) * spread
    y = np.arange(n) % n_classes
    return centers[y] + rng.normal(size=(n, d)), y


# ---------------------------------------------------------------- slow reference (obvious)
def slow_train_decoder(X, y, *, epochs, lr, batch_size, hidden, seed):
    classes, y_idx = np.unique(y, return_inverse=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dec = S.StitchingDecoder(X.shape[1], hidden, len(classes))
    dec.classes_ = classes
    Xt = torch.from_numpy(X.astype(np.float32))
    yt = torch.from_numpy(y_idx.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(dec.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=gen)
        for s in range(0, len(X), batch_size):
            idx = order[s : s + batch_size]
            loss = F.cross_entropy(dec(Xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return dec.eval()


def slow_stitching_values(train, test, ytr, yte, seeds, **kw):
    out = {}
    for a in train:
        for b in test:
            vals = []
            for seed in seeds:
                if train[a].shape[1] != test[b].shape[1]:
                    continue
                dec = slow_train_decoder(train[a], ytr, seed=seed, **kw)
                with torch.no_grad():
                    logits = dec(torch.from_numpy(test[b].astype(np.float32)))
                pred = dec.classes_[logits.argmax(1).numpy()]
                vals.append(100 * f1_score(yte, pred, average="weighted", zero_division=0))
            out[a, b] = vals
    return out


# ---------------------------------------------------------------- tests
KW = dict(epochs=3, lr=1e-3, batch_size=16, hidden=24)


@pytest.mark.parametrize("n", [101, 96])  # a trailing batch of 5 samples, and none
def test_train_decoder_matches_autograd_loop(n):
    X, y = _blobs(n, 6, 3, seed=1, spread=1.0)
    for seed in (0, 7):
        ref = slow_train_decoder(X, y + 4, seed=seed, **KW)
        new = S.train_decoder(X, y + 4, seed=seed, **KW)
        for p_ref, p_new in zip(ref.parameters(), new.parameters(), strict=True):
            torch.testing.assert_close(p_new, p_ref, atol=2e-6, rtol=1e-5)
        np.testing.assert_array_equal(S.decoder_predict(new, X), S.decoder_predict(ref, X))


def test_trailing_batch_of_one_sample():
    X, y = _blobs(33, 5, 2, seed=2, spread=1.0)  # 2 batches of 16, then 1
    ref = slow_train_decoder(X, y, seed=3, **KW)
    new = S.train_decoder(X, y, seed=3, **KW)
    for p_ref, p_new in zip(ref.parameters(), new.parameters(), strict=True):
        torch.testing.assert_close(p_new, p_ref, atol=2e-6, rtol=1e-5)


def test_heads_trained_together_equal_heads_trained_alone():
    X, y = _blobs(90, 7, 3, seed=4, spread=1.0)
    rng = np.random.default_rng(5)
    models = [X, X @ rng.normal(size=(7, 7)), rng.normal(size=X.shape)]
    Xn = torch.stack([S._prenorm(torch.from_numpy(m.astype(np.float32)), 1e-5) for m in models])
    yt = torch.from_numpy(y.astype(np.int64))
    kw = dict(epochs=2, lr=1e-3, batch_size=16, hidden=24)
    together = S._train_heads(Xn, yt, 3, [0, 9], **kw)
    for si, seed in enumerate((0, 9)):
        for mi in range(3):
            alone = S._train_heads(Xn[mi : mi + 1], yt, 3, [seed], **kw)
            for p_all, p_one in zip(together, alone, strict=True):
                torch.testing.assert_close(p_all[si * 3 + mi], p_one[0], atol=1e-6, rtol=1e-5)


def test_stitching_scores_match_per_decoder_loop():
    X, y = _blobs(160, 8, 4, seed=6, spread=3.0)
    rng = np.random.default_rng(7)
    tr, te = np.arange(160) < 110, np.arange(160) >= 110
    spaces = {"a": X, "b": X @ rng.normal(size=(8, 8)), "narrow": X[:, :5], "c": X + 0.5}
    train = {m: v[tr] for m, v in spaces.items()}
    test = {m: v[te] for m, v in spaces.items()}
    seeds = (0, 1, 2)
    ref = slow_stitching_values(train, test, y[tr], y[te], seeds, **KW)
    df = S.stitching_scores(train, test, y[tr], y[te], seeds=seeds, **KW)
    assert len(df) == 16
    for row in df.itertuples():
        vals = ref[row.model, row.model_b]
        assert row.n_seeds == len(vals)
        if vals:
            assert row.value == pytest.approx(np.mean(vals), abs=1e-9)
            assert row.value_std == pytest.approx(np.std(vals, ddof=1), abs=1e-9)
            assert row.reason == ""
        else:
            assert np.isnan(row.value) and "width mismatch" in row.reason
    # same seeds, same numbers
    again = S.stitching_scores(train, test, y[tr], y[te], seeds=seeds, **KW)
    pd.testing.assert_frame_equal(df, again)


def test_weighted_f1_rows_matches_sklearn():
    rng = np.random.default_rng(8)
    y_true = rng.integers(0, 5, 60)
    y_true[:3] = 6  # a class that is never predicted
    preds = rng.integers(0, 6, (7, 60))  # class 5: predicted only
    preds[0] = y_true
    preds[1] = 0
    got = S._weighted_f1_rows(y_true, preds, 7)
    want = [f1_score(y_true, p, average="weighted", zero_division=0) for p in preds]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] == 1.0


def test_stitching_scores_labels_missing_from_train():
    X, y = _blobs(120, 6, 4, seed=9)
    tr, te = np.arange(120) < 80, np.arange(120) >= 80
    ytr, yte = y[tr].copy(), y[te].copy()
    ytr[ytr == 3] = 2  # class 3 only in the test labels: its F1 is 0, weighted by its support
    kw = dict(seeds=(0,), **KW)
    df = S.stitching_scores({"m": X[tr]}, {"m": X[te]}, ytr, yte, **kw)
    dec = S.train_decoder(X[tr], ytr, seed=0, **KW)
    pred = S.decoder_predict(dec, X[te])
    want = 100 * f1_score(yte, pred, average="weighted", zero_division=0)
    assert df.value.iloc[0] == pytest.approx(want, abs=1e-9)
