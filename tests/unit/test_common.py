"""Shared metric helpers (repaudit.metrics._common) and the places that use them.

The pinned values were produced by the private copies these helpers replaced (the k-means of
metrics/relative.py and metrics/concepts.py, the average ranks of metrics/binding.py), run on
the same inputs and seeds before those copies were deleted; bitwise equality with the old
copies was checked on more inputs at the time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from repaudit.metrics import _common as C
from repaudit.metrics.anchors import select_anchors
from repaudit.metrics.concepts import kmeans_concepts


def _X():
    return np.random.default_rng(3).standard_normal((120, 6))


def test_kmeans_anchors_as_before():
    idx = select_anchors(10, X=_X(), method="kmeans", seed=1)
    assert idx.tolist() == [35, 113, 119, 53, 30, 31, 2, 47, 43, 42]


def test_kmeans_concepts_as_before():
    res = kmeans_concepts(_X(), 4, seed=2)
    # fmt: off
    labels = [0, 1, 0, 1, 1, 1, 3, 0, 3, 0, 2, 3, 0, 1, 0, 2, 1, 3, 2, 3, 0, 0, 2, 0, 0, 0, 0, 1,
              1, 1, 3, 1, 0, 1, 3, 0, 2, 3, 3, 2, 2, 3, 0, 0, 1, 1, 3, 3, 3, 2, 2, 3, 1, 2, 1, 1,
              0, 3, 0, 0, 2, 0, 1, 0, 2, 2, 2, 1, 1, 3, 1, 0, 3, 2, 0, 3, 3, 1, 0, 3, 3, 3, 1, 1,
              3, 1, 3, 0, 3, 1, 1, 2, 1, 2, 3, 1, 2, 1, 3, 0, 0, 0, 1, 0, 0, 3, 3, 2, 0, 1, 2, 3,
              1, 1, 2, 1, 0, 3, 0, 3]
    # fmt: on
    assert res.labels.tolist() == labels
    np.testing.assert_allclose(
        res.memberships.sum(0),
        [31.074407198621625, 30.633766427795255, 27.599862417620944, 30.691963955962173],
        rtol=1e-13,
    )
    assert res.memberships[0, 0] == pytest.approx(0.33662714945765826, rel=1e-13)


def test_kmeans_chunking_does_not_change_the_result(monkeypatch):
    X = _X()
    full = C.kmeans(X, 5, np.random.default_rng(0), max_iter=100, tol=0.0)
    monkeypatch.setattr(C, "CHUNK_ELEMS", 5 * 7)  # 7 rows per distance block
    chunked = C.kmeans(X, 5, np.random.default_rng(0), max_iter=100, tol=0.0)
    for a, b in zip(full, chunked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = np.repeat(centres, 30, axis=0) + 0.1 * rng.standard_normal((90, 2))
    _, labels, inertia = C.kmeans(X, 3, rng, max_iter=100, tol=1e-8)
    assert len(set(labels[:30])) == len(set(labels[30:60])) == len(set(labels[60:])) == 1
    assert len(set(labels)) == 3
    assert inertia < 90 * 2 * 0.1**2 * 2  # about n d sigma^2 around the true centres


def test_as_features_checks_and_converts():
    out = C.as_features(torch.ones(3, 2))
    assert out.dtype == np.float64 and out.flags.c_contiguous
    kept = C.as_features(np.ones((3, 2), dtype=np.float32), dtype=None)
    assert kept.dtype == np.float32
    with pytest.raises(ValueError, match="2-D"):
        C.as_features(np.ones(3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        C.as_features(np.ones((1, 3)))
    assert C.as_features(np.ones((1, 3)), min_rows=1).shape == (1, 3)
    with pytest.raises(ValueError, match="no feature columns"):
        C.as_features(np.ones((3, 0)))
    with pytest.raises(ValueError, match="real numeric"):
        C.as_features(np.ones((3, 2), dtype=complex))
    with pytest.raises(ValueError, match=r"NaN or Inf in 1 row"):
        C.as_features(np.array([[1.0, np.inf], [1.0, 2.0]]))


def test_unit_rows():
    U = C.unit_rows(np.array([[3.0, 4.0], [0.0, 2.0]]))
    np.testing.assert_allclose(U, [[0.6, 0.8], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"all-zero row.*first: row 1"):
        C.unit_rows(np.array([[1.0, 0.0], [0.0, 0.0]]), hint=" (a hint)")


def test_rankdata_gives_average_ranks_as_the_old_binding_helper():
    a = np.array([0.3, 0.1, 0.3, 0.2, 0.1, 0.3])
    np.testing.assert_array_equal(rankdata(a), [5.0, 1.5, 5.0, 3.0, 1.5, 5.0])
