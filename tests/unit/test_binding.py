"""Tests for repaudit.metrics.binding (shape–position binding probe, arXiv:2602.03282 §1.4 [D]).

Synthetic label structure used throughout (stated here, built in ``_scenes``):
6 shapes, scenes hold two distinct shapes (left, right); the class of the ordered pair is

    label = left * 5 + (right if right < left else right - 1)

i.e. ``left * 5 +`` the index of ``right`` among the 5 shapes other than ``left``: 30 classes.
Training scenes use colours 0–3 and test scenes colours 4–7 (disjoint sets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from repaudit.metrics import binding as B

N_SHAPES, N_COLOURS = 6, 8


def _label(left, right):
    return left * 5 + np.where(right < left, right, right - 1)


def _scenes(n_per_class: int, colours: range, seed: int):
    """All 30 ordered pairs, n_per_class scenes each, with colours drawn from ``colours``."""
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a in range(N_SHAPES) for b in range(N_SHAPES) if a != b]
    left = np.repeat([p[0] for p in pairs], n_per_class)
    right = np.repeat([p[1] for p in pairs], n_per_class)
    col = rng.choice(list(colours), size=(left.size, 2))
    return left, right, col


def _colour_code(col):
    """Each colour as a point on the hue circle, 0.5 · (cos θ, sin θ), θ = 2π c / 8."""
    theta = 2 * np.pi * col / N_COLOURS
    return 0.5 * np.stack([np.cos(theta), np.sin(theta)], axis=-1)  # (n, 2 slots, 2)


def _bag_of_shapes(left, right, col, rng, noise=0.15):
    """Position-blind: shape counts (no side), summed colour codes (no side), noise."""
    z = np.zeros((left.size, N_SHAPES))
    z[np.arange(left.size), left] += 1
    z[np.arange(left.size), right] += 1
    z = np.hstack([z, _colour_code(col).sum(axis=1)])
    return z + noise * rng.standard_normal(z.shape)


def _side_aware(left, right, col, rng, noise=0.15):
    """Binding: one-hot (shape, side) features, per-slot colour codes, noise."""
    z = np.zeros((left.size, 2 * N_SHAPES))
    z[np.arange(left.size), left] = 1
    z[np.arange(left.size), N_SHAPES + right] = 1
    z = np.hstack([z, _colour_code(col).reshape(left.size, 4)])
    return z + noise * rng.standard_normal(z.shape)


@pytest.fixture(scope="module")
def data():
    tr = _scenes(12, range(0, 4), seed=0)
    te = _scenes(6, range(4, 8), seed=1)
    return tr, te


def test_label_structure():
    left, right, _ = _scenes(1, range(4), 0)
    lab = _label(left, right)
    assert sorted(lab.tolist()) == list(range(30))


def test_bag_of_shapes_capped_at_half(data):
    (l1, r1, c1), (l2, r2, c2) = data
    rng = np.random.default_rng(2)
    res = B.binding_probe(
        _bag_of_shapes(l1, r1, c1, rng), _label(l1, r1),
        _bag_of_shapes(l2, r2, c2, rng), _label(l2, r2),
        c_grid=(0.01, 1.0), cv=3,
    )  # fmt: skip
    assert res["ood_accuracy"] <= 0.5 + 0.05
    assert res["id_accuracy"] <= 0.5 + 0.05
    assert res["ood_accuracy"] > 0.3  # it does find the unordered pair
    assert res["n_classes"] == 30 and res["n_train"] == 360 and res["n_test"] == 180


def test_side_aware_features_bind(data):
    (l1, r1, c1), (l2, r2, c2) = data
    rng = np.random.default_rng(3)
    res = B.binding_probe(
        _side_aware(l1, r1, c1, rng), _label(l1, r1),
        _side_aware(l2, r2, c2, rng), _label(l2, r2),
        c_grid=(0.01, 1.0), cv=3,
    )  # fmt: skip
    assert res["ood_accuracy"] >= 0.97
    assert res["id_accuracy"] >= 0.97
    assert res["C"] in (0.01, 1.0)
    assert set(res["cv_accuracy"]) == {0.01, 1.0}
    assert 0.0 <= res["train_accuracy"] <= 1.0


def test_cv_choice_is_deterministic_and_matches_reference(data):
    (l1, r1, c1), (l2, r2, c2) = data
    rng = np.random.default_rng(4)
    x1 = _side_aware(l1, r1, c1, rng, noise=1.5)
    x2 = _side_aware(l2, r2, c2, rng, noise=1.5)
    y1, y2 = _label(l1, r1), _label(l2, r2)
    grid = (1e-3, 1e-1, 10.0)
    a = B.binding_probe(x1, y1, x2, y2, c_grid=grid, cv=3, seed=7)
    b = B.binding_probe(x1, y1, x2, y2, c_grid=grid[::-1], cv=3, seed=7)
    assert a == b
    best = max(a["cv_accuracy"].values())
    assert a["C"] == min(c for c, v in a["cv_accuracy"].items() if v == best)
    assert a["id_accuracy"] == best
    # strongly regularised probe on noisy features should not win
    assert a["cv_accuracy"][1e-3] < best

    # slow reference: a fresh scaler + logistic regression per fold, no warm start
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for c in grid:
        correct = 0
        for fit, val in StratifiedKFold(3, shuffle=True, random_state=7).split(x1, y1):
            pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
            correct += np.sum(pipe.fit(x1[fit], y1[fit]).predict(x1[val]) == y1[val])
        assert a["cv_accuracy"][c] == pytest.approx(correct / len(y1), abs=2 / len(y1))
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=a["C"], max_iter=5000))
    ood = np.mean(pipe.fit(x1, y1).predict(x2) == y2)
    assert a["ood_accuracy"] == pytest.approx(ood, abs=1e-12)


def test_probe_errors(data):
    (l1, r1, c1), (l2, r2, c2) = data
    rng = np.random.default_rng(5)
    x1, y1 = _side_aware(l1, r1, c1, rng), _label(l1, r1)
    x2, y2 = _side_aware(l2, r2, c2, rng), _label(l2, r2)
    with pytest.raises(ValueError, match="features"):
        B.binding_probe(x1, y1, x2[:, :-1], y2)
    with pytest.raises(ValueError, match="train_y"):
        B.binding_probe(x1, y1[:-1], x2, y2)
    with pytest.raises(ValueError, match="NaN"):
        bad = x1.copy()
        bad[0, 0] = np.nan
        B.binding_probe(bad, y1, x2, y2)
    with pytest.raises(ValueError, match="fewer than cv"):
        B.binding_probe(x1[:40], y1[:40], x2, y2[:] * 0, cv=20)
    with pytest.raises(ValueError, match="never occur"):
        B.binding_probe(x1[y1 < 10], y1[y1 < 10], x2, y2)
    with pytest.raises(ValueError, match="c_grid"):
        B.binding_probe(x1, y1, x2, y2, c_grid=(0.0, 1.0))
    with pytest.raises(ValueError, match="integer"):
        B.binding_probe(x1, y1.astype(float), x2, y2)


# ---------------------------------------------------------------- kNN


def test_knn_matches_sklearn():
    rng = np.random.default_rng(6)
    xa = rng.standard_normal((200, 5)) + 0.2
    ya = rng.integers(0, 4, 200)
    xa[np.arange(200), ya] += 2.0
    xb = rng.standard_normal((80, 5)) + 0.2
    yb = rng.integers(0, 4, 80)
    xb[np.arange(80), yb] += 2.0
    for k in (1, 5, 10):
        ref = KNeighborsClassifier(k, metric="cosine", algorithm="brute").fit(xa, ya)
        expected = float(np.mean(ref.predict(xb) == yb))
        assert B.knn_readout(xa, ya, xb, yb, k=k) == pytest.approx(expected)
        assert B.knn_readout(xa, ya, xb, yb, k=k, chunk_size=7) == pytest.approx(expected)


def test_knn_on_binding_features(data):
    (l1, r1, c1), (l2, r2, c2) = data
    rng = np.random.default_rng(7)
    good = B.knn_readout(
        _side_aware(l1, r1, c1, rng, 0.1), _label(l1, r1),
        _side_aware(l2, r2, c2, rng, 0.1), _label(l2, r2),
    )  # fmt: skip
    bag = B.knn_readout(
        _bag_of_shapes(l1, r1, c1, rng, 0.1), _label(l1, r1),
        _bag_of_shapes(l2, r2, c2, rng, 0.1), _label(l2, r2),
    )  # fmt: skip
    assert bag <= 0.6 < good
    with pytest.raises(ValueError, match="k must be"):
        B.knn_readout(np.ones((3, 2)), [0, 1, 1], np.ones((2, 2)), [0, 1], k=4)
    with pytest.raises(ValueError, match="all-zero"):
        B.knn_readout(np.zeros((3, 2)), [0, 1, 1], np.ones((2, 2)), [0, 1], k=2)


# ---------------------------------------------------------------- swap AUC


def _pairs(n_pairs: int, feature, seed: int):
    """Same structure: (A,B) twice, other colours. Swapped: (A,B) vs (B,A), same colours."""
    rng = np.random.default_rng(seed)
    za, zb, same = [], [], []
    for p in range(n_pairs):
        a, b = rng.choice(N_SHAPES, 2, replace=False)
        c = rng.integers(0, N_COLOURS, (2, 2))
        if p % 2 == 0:
            za.append(feature(np.array([a]), np.array([b]), c[:1], rng))
            zb.append(feature(np.array([a]), np.array([b]), c[1:], rng))
            same.append(True)
        else:
            za.append(feature(np.array([a]), np.array([b]), c[:1], rng))
            zb.append(feature(np.array([b]), np.array([a]), c[:1], rng))
            same.append(False)
    return np.vstack(za), np.vstack(zb), np.array(same)


def test_swap_auc_symmetric_feature_is_half():
    # colour-free symmetric feature: every pair has cosine 1 -> all ties -> exactly 0.5
    def sym(left, right, col, rng):
        return _bag_of_shapes(left, right, col, rng, noise=0.0)[:, :N_SHAPES]

    za, zb, same = _pairs(60, sym, 0)
    assert B.swap_auc(za, zb, same) == 0.5

    # noisy symmetric feature: same and swapped similarities share one distribution
    def sym_noisy(left, right, col, rng):
        return sym(left, right, col, rng) + 0.3 * rng.standard_normal((1, N_SHAPES))

    za, zb, same = _pairs(2000, sym_noisy, 1)
    assert B.swap_auc(za, zb, same) == pytest.approx(0.5, abs=0.04)


def test_swap_auc_side_aware_feature_is_one():
    za, zb, same = _pairs(200, lambda lft, r, c, rng: _side_aware(lft, r, c, rng, 0.05), 2)
    assert B.swap_auc(za, zb, same) > 0.99


def test_swap_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(3)
    za = rng.standard_normal((300, 4))
    zb = rng.standard_normal((300, 4))
    zb[::3] = za[::3] * 2.0  # exact ties at cosine 1
    same = rng.random(300) < 0.4
    sim = np.sum(za * zb, 1) / np.linalg.norm(za, axis=1) / np.linalg.norm(zb, axis=1)
    assert B.swap_auc(za, zb, same) == pytest.approx(roc_auc_score(same, np.round(sim, 12)))
    # slow reference: P(s+ > s-) + 0.5 P(s+ = s-) over all pairs
    s = np.round(sim, 12)
    pos, neg = s[same], s[~same]
    ref = np.mean((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None]))
    assert B.swap_auc(za, zb, same) == pytest.approx(ref)


def test_swap_auc_errors():
    z = np.ones((4, 3))
    with pytest.raises(ValueError, match="both"):
        B.swap_auc(z, z, np.ones(4, bool))
    with pytest.raises(ValueError, match="same shape"):
        B.swap_auc(z, z[:, :2], np.array([True, False, True, False]))
    with pytest.raises(ValueError, match="bool"):
        B.swap_auc(z, z, np.array([1, 0, 1, 0]))


# ---------------------------------------------------------------- table


def test_binding_table(data):
    (l1, r1, c1), (l2, r2, c2) = data
    rng = np.random.default_rng(8)
    left, right, col = (np.concatenate(v) for v in ((l1, l2), (r1, r2), (c1, c2)))
    labels = _label(left, right)
    split = np.array(["train"] * l1.size + ["test"] * l2.size)
    feats = {
        "0": _bag_of_shapes(left, right, col, rng),
        "final": _side_aware(left, right, col, rng),
    }
    # swap pairs over existing rows: same-structure = same label, swapped = mirrored label
    same_rows = [(12 * c, 12 * c + 1) for c in range(30)]  # training rows come 12 per class
    idx = {
        (a, b): np.flatnonzero((left == a) & (right == b))[0]
        for a, b in zip(left, right, strict=True)
    }
    swap_rows = [(idx[(a, b)], idx[(b, a)]) for a in range(6) for b in range(a + 1, 6)]
    pairs = np.array(same_rows[: len(swap_rows)] + swap_rows)
    same_lab = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    assert same_lab[: len(swap_rows)].all() and not same_lab[len(swap_rows) :].any()

    df = B.binding_table(
        feats, labels, split, layers=None, swap_pairs=pairs, swap_same=same_lab,
        c_grid=(0.1, 1.0), cv=3,
    )  # fmt: skip
    assert list(df.columns) == [
        "layer", "metric", "variant", "value", "C", "cv", "k",
        "n_train", "n_test", "n_pairs", "seed",
    ]  # fmt: skip
    assert set(df.layer) == {"0", "final"}
    assert len(df) == 2 * 6
    get = df.set_index(["layer", "metric"])["value"]
    assert get["final", "binding_ood_accuracy"] > 0.95
    assert get["0", "binding_ood_accuracy"] <= 0.55
    assert get["final", "binding_chance"] == pytest.approx(1 / 30)
    assert get["final", "binding_bag_of_shapes_ceiling"] == 0.5
    assert get["final", "swap_auc"] > get["0", "swap_auc"]
    assert df.value.between(0, 1).all()
    row = df[(df.layer == "final") & (df.metric == "binding_ood_accuracy")].iloc[0]
    ref = B.binding_probe(
        feats["final"][split == "train"], labels[split == "train"],
        feats["final"][split == "test"], labels[split == "test"], c_grid=(0.1, 1.0), cv=3,
    )  # fmt: skip
    assert row.value == ref["ood_accuracy"] and row.C == ref["C"] and row.cv == 3
    assert pd.isna(row.k) and pd.isna(row.n_pairs)
    knn = df[df.metric == "binding_knn_accuracy"].iloc[0]
    assert knn.k == 10 and pd.isna(knn.C)

    # default: final only, no swap rows; probe_mask removes rows from the probe
    mask = np.ones(labels.size, bool)
    mask[0 : l1.size : 12] = False  # one training scene per class
    df2 = B.binding_table(feats, labels, split, c_grid=(1.0,), cv=3, probe_mask=mask)
    assert set(df2.layer) == {"final"} and "swap_auc" not in set(df2.metric)
    assert (df2.n_train == l1.size - 30).all()


def test_binding_table_errors(data):
    (l1, r1, c1), _ = data
    x = _side_aware(l1, r1, c1, np.random.default_rng(0))
    y = _label(l1, r1)
    split = np.where(np.arange(y.size) % 2 == 0, "train", "test")
    with pytest.raises(ValueError, match="labels"):
        B.binding_table({"final": x}, y[:-1], split)
    with pytest.raises(ValueError, match="expected"):
        B.binding_table({"0": x, "final": x[:-1]}, y, split, layers=None)
    with pytest.raises(ValueError, match="not in features"):
        B.binding_table({"0": x}, y, split)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        B.binding_table({"final": x}, y, np.where(split == "test", "val", split))
    with pytest.raises(ValueError, match="together"):
        B.binding_table({"final": x}, y, split, swap_pairs=np.zeros((2, 2), int))
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        B.binding_table({"final": x}, y, split, swap_pairs=np.zeros((2, 3), int),
                        swap_same=np.array([True, False]))  # fmt: skip
    with pytest.raises(ValueError, match="indices"):
        B.binding_table({"final": x}, y, split, swap_pairs=np.array([[0, y.size]]),
                        swap_same=np.array([True]))  # fmt: skip
