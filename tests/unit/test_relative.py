"""Tests for repaudit.metrics.relative (Moschella et al. 2023, arXiv:2209.15430, + CKA, mkNN)."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from repaudit.metrics import relative as R
from repaudit.metrics import similarity as SIM

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _blobs(n: int, d: int, n_classes: int, seed: int, spread: float = 4.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, d)) * spread
    y = np.arange(n) % n_classes
    return centers[y] + rng.normal(size=(n, d)), y


# ---------------------------------------------------------------- slow references (obvious)
def slow_knn(query: np.ndarray, index: np.ndarray, k: int, exclude: int | None = None):
    """k most cosine-similar rows of index to the vector query, best first."""
    sims = []
    for j, row in enumerate(index):
        if j == exclude:
            continue
        cos = float(query @ row / (np.linalg.norm(query) * np.linalg.norm(row)))
        sims.append((cos, j))
    sims.sort(key=lambda t: -t[0])
    return [j for _, j in sims[:k]]


def slow_latent_similarity(src, tgt, k):
    jac, rr, cos = [], [], []
    for w in range(src.shape[0]):
        T = slow_knn(tgt[w], tgt, k)
        S = slow_knn(src[w], tgt, k)
        jac.append(len(set(T) & set(S)) / len(set(T) | set(S)))
        rr.append(1.0 / (S.index(w) + 1) if w in S else 0.0)
        cos.append(src[w] @ tgt[w] / (np.linalg.norm(src[w]) * np.linalg.norm(tgt[w])))
    return np.mean(jac), np.mean(rr), np.mean(cos)


def slow_mutual_knn(X, Y, k):
    total = 0.0
    for i in range(X.shape[0]):
        a = set(slow_knn(X[i], X, k, exclude=i))
        b = set(slow_knn(Y[i], Y, k, exclude=i))
        total += len(a & b) / k
    return total / X.shape[0]


def kornblith_cka(X, Y):
    """Kornblith et al. 2019: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with H = I - 11ᵀ/n."""
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A, B):
        return np.trace(A @ H @ B @ H)

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


# ---------------------------------------------------------------- relative projection
def test_relative_projection_hand_values():
    X = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, -3.0]])
    A = np.array([[2.0, 0.0], [0.0, 5.0]])
    s = 1 / np.sqrt(2)
    expected = np.array([[1.0, 0.0], [s, s], [0.0, -1.0]])
    np.testing.assert_allclose(R.relative_projection(X, A), expected, atol=1e-15)


def test_relative_projection_invariant_to_rotation_and_scale():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 24))
    Q, s = _rotation(24, 1), 3.7
    anchors = R.select_anchors(40, n_samples=200, seed=2)
    r = R.relative_projection(X, X[anchors])
    r_rot = R.relative_projection(s * X @ Q, (s * X @ Q)[anchors])
    np.testing.assert_allclose(r_rot, r, atol=1e-6)
    assert r.shape == (200, 40)
    # a non-orthogonal map is not an isometry: the projection changes
    M = rng.normal(size=(24, 24))
    assert np.abs(R.relative_projection(X @ M, (X @ M)[anchors]) - r).max() > 0.1


def test_centering_gives_translation_invariance_and_matches_formula():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 8)) + 2.0
    A = X[:10]
    t = rng.normal(size=8) * 5
    rc = R.relative_projection(X, A, center=True)
    np.testing.assert_allclose(R.relative_projection(X + t, A + t, center=True), rc, atol=1e-10)
    assert np.abs(R.relative_projection(X + t, A + t) - R.relative_projection(X, A)).max() > 0.1
    mu = A.mean(0)
    Xc, Ac = X - mu, A - mu
    manual = (Xc / np.linalg.norm(Xc, axis=1, keepdims=True)) @ (
        Ac / np.linalg.norm(Ac, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(rc, manual, atol=1e-12)


def test_whitened_projection_is_affine_invariant_and_matches_scipy_sqrtm():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 6)) * np.array([5.0, 1.0, 1.0, 0.1, 0.1, 0.01]) + 3.0
    A = X[:30]
    rw = R.relative_projection(X, A, whiten=True)
    # invariant to any invertible affine map, which plain (or centred) cosine is not
    M, t = rng.normal(size=(6, 6)), rng.normal(size=6) * 4
    np.testing.assert_allclose(
        R.relative_projection(X @ M + t, A @ M + t, whiten=True), rw, atol=1e-6
    )
    assert np.abs(R.relative_projection(X @ M + t, A @ M + t, center=True) - rw).max() > 0.1
    # slow reference: W = inverse of scipy's matrix square root of the anchors' covariance
    mu = A.mean(0)
    W = np.linalg.inv(np.real(sqrtm(np.cov((A - mu).T, bias=True))))
    Xw, Aw = (X - mu) @ W, (A - mu) @ W
    manual = (Xw / np.linalg.norm(Xw, axis=1, keepdims=True)) @ (
        Aw / np.linalg.norm(Aw, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(rw, manual, atol=1e-8)
    # rank-deficient anchors (fewer than the width): pseudo-inverse, still finite
    wide = rng.normal(size=(40, 50))
    assert np.isfinite(R.relative_projection(wide, wide[:10], whiten=True)).all()
    with pytest.raises(ValueError, match="no variance"):
        R.relative_projection(X, np.ones((4, 6)), whiten=True)


def test_relative_projection_errors():
    X = np.ones((5, 3))
    with pytest.raises(ValueError, match="features"):
        R.relative_projection(X, np.ones((2, 4)))
    with pytest.raises(ValueError, match="zero norm"):
        R.relative_projection(np.vstack([X, np.zeros(3)]), X[:2])
    with pytest.raises(ValueError, match="NaN"):
        R.relative_projection(np.full((3, 3), np.nan), X[:2])
    with pytest.raises(ValueError, match="2-D"):
        R.relative_projection(np.ones(3), X[:2])


# ---------------------------------------------------------------- acceptance: invariance
def test_relative_space_similarity_is_one_for_isometry_absolute_near_chance():
    rng = np.random.default_rng(3)
    n, d = 400, 32
    X = rng.normal(size=(n, d))
    Y = 0.3 * X @ _rotation(d, 4)
    anchors = R.select_anchors(64, n_samples=n, seed=0)
    rel = R.latent_similarity(
        R.relative_projection(X, X[anchors]), R.relative_projection(Y, Y[anchors]), k=5
    )
    assert rel == pytest.approx({"jaccard": 1.0, "mrr": 1.0, "cosine": 1.0}, abs=1e-9)
    ab = R.latent_similarity(X, Y, k=5)
    # chance: |T ∩ S| ~ k²/n -> Jaccard ~ 0.006, MRR ~ 1/n
    assert ab["jaccard"] < 0.05
    assert ab["mrr"] < 0.05
    assert abs(ab["cosine"]) < 0.1


# ---------------------------------------------------------------- latent similarity
@pytest.mark.parametrize("k", [1, 5])
def test_latent_similarity_matches_slow_loop(k):
    rng = np.random.default_rng(5)
    tgt = rng.normal(size=(120, 6))
    src = tgt + 0.6 * rng.normal(size=tgt.shape)
    fast = R.latent_similarity(src, tgt, k=k)
    jac, mrr, cos = slow_latent_similarity(src, tgt, k)
    assert fast["jaccard"] == pytest.approx(jac, abs=1e-12)
    assert fast["mrr"] == pytest.approx(mrr, abs=1e-12)
    assert fast["cosine"] == pytest.approx(cos, abs=1e-12)
    assert 0 < fast["jaccard"] < 1 and 0 < fast["mrr"] < 1


def test_latent_similarity_is_directional_and_identity_is_one():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(80, 5))
    b = a + rng.normal(size=a.shape)
    assert R.latent_similarity(a, a, k=3) == pytest.approx(
        {"jaccard": 1.0, "mrr": 1.0, "cosine": 1.0}
    )
    ab, ba = R.latent_similarity(a, b, k=3), R.latent_similarity(b, a, k=3)
    assert ab["cosine"] == pytest.approx(ba["cosine"])
    assert ab["mrr"] != ba["mrr"]


def test_latent_similarity_chunking(monkeypatch):
    rng = np.random.default_rng(7)
    tgt = rng.normal(size=(90, 4))
    src = tgt + rng.normal(size=tgt.shape)
    full = R.latent_similarity(src, tgt, k=4)
    monkeypatch.setattr(SIM, "CHUNK_ELEMS", 90 * 7)  # 7 query rows per block
    assert R.latent_similarity(src, tgt, k=4) == full


@pytest.mark.parametrize("chunk_rows", [3, 1000])
def test_two_way_search_equals_two_one_way_searches(monkeypatch, chunk_rows):
    rng = np.random.default_rng(22)
    A = torch.nn.functional.normalize(torch.randn(50, 6, dtype=torch.float32), dim=1)
    B = torch.nn.functional.normalize(torch.randn(50, 6, dtype=torch.float32), dim=1)
    k = int(rng.integers(4, 8))
    monkeypatch.setattr(SIM, "CHUNK_ELEMS", 50 * chunk_rows)
    ab, ba = SIM._topk_both_ways(A, B, k)
    np.testing.assert_array_equal(ab, SIM._topk_neighbours(A, B, k))
    np.testing.assert_array_equal(ba, SIM._topk_neighbours(B, A, k))


def test_latent_similarity_errors():
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="widths must match"):
        R.latent_similarity(X, X[:, :2])
    with pytest.raises(ValueError, match="same samples"):
        R.latent_similarity(X, X[:5])
    with pytest.raises(ValueError, match="exceeds"):
        R.latent_similarity(X, X, k=11)
    with pytest.raises(ValueError, match="positive integer"):
        R.latent_similarity(X, X, k=0)


# ---------------------------------------------------------------- mutual kNN
@pytest.mark.parametrize("k", [1, 4])
def test_mutual_knn_matches_slow_loop(k):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(70, 5))
    Y = np.hstack([X[:, :3], rng.normal(size=(70, 6))])  # related but different width
    fast = R.mutual_knn(X, Y, k=k)
    assert fast == pytest.approx(slow_mutual_knn(X, Y, k), abs=1e-12)
    assert 0 < fast < 1


def test_mutual_knn_properties():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(150, 10))
    assert R.mutual_knn(X, 5.0 * X @ _rotation(10, 1), k=10) == pytest.approx(1.0)
    Z = rng.normal(size=(150, 7))
    assert R.mutual_knn(X, Z, k=10) == pytest.approx(R.mutual_knn(Z, X, k=10))
    assert R.mutual_knn(X, Z, k=10) < 0.2  # chance ~ k/(n-1) = 0.067
    with pytest.raises(ValueError, match="exceeds"):
        R.mutual_knn(X, Z, k=150)


# ---------------------------------------------------------------- linear CKA
@pytest.mark.parametrize("shape", [(60, 5, 3), (12, 30, 20)])  # feature- and sample-space form
def test_linear_cka_matches_kornblith_hsic(shape):
    n, d1, d2 = shape
    rng = np.random.default_rng(10)
    X = rng.normal(size=(n, d1)) + 3.0  # uncentred input: CKA must centre
    Y = X[:, :1] * 2 + rng.normal(size=(n, d2))
    assert R.linear_cka(X, Y) == pytest.approx(kornblith_cka(X, Y), rel=1e-10)


def test_linear_cka_invariances_and_bounds():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(300, 16))
    assert R.linear_cka(X, 0.01 * X @ _rotation(16, 2) + 7.0) == pytest.approx(1.0, abs=1e-12)
    for seed in range(5):
        r = np.random.default_rng(seed)
        A, B = r.normal(size=(50, r.integers(2, 40))), r.normal(size=(50, r.integers(2, 40)))
        v = R.linear_cka(A, B)
        assert 0.0 <= v <= 1.0
        assert v == pytest.approx(R.linear_cka(B, A), rel=1e-12)
    with pytest.raises(ValueError, match="constant"):
        R.linear_cka(np.ones((10, 3)), X[:10])


# ---------------------------------------------------------------- weighted F1
def test_weighted_f1_matches_sklearn():
    rng = np.random.default_rng(12)
    for seed in range(5):
        r = np.random.default_rng(seed)
        y = r.integers(0, 6, size=200)
        p = np.where(r.random(200) < 0.6, y, r.integers(0, 8, size=200))  # 6, 7 only predicted
        assert R.weighted_f1_score(y, p) == pytest.approx(
            f1_score(y, p, average="weighted", zero_division=0), abs=1e-12
        )
    y = np.array(["cat", "dog", "dog", "eel"])
    p = np.array(["dog", "dog", "dog", "dog"])
    assert R.weighted_f1_score(y, p) == pytest.approx(f1_score(y, p, average="weighted"))
    # hand value: classes a (2 true, 1 TP, 1 FP) and b (1 true, 0 TP): F1_a = 2/(2+2), F1_b = 0
    assert R.weighted_f1_score([0, 0, 1], [0, 1, 0]) == pytest.approx(2 / 3 * 0.5)
    with pytest.raises(ValueError, match="entries"):
        R.weighted_f1_score(rng.integers(0, 2, 5), rng.integers(0, 2, 4))


# ---------------------------------------------------------------- anchors
def test_stratified_anchors_are_balanced_and_seeded():
    labels = np.repeat(np.arange(5), [40, 30, 50, 20, 60])
    idx = R.select_anchors(50, labels=labels, method="stratified", seed=0)
    assert len(set(idx)) == 50
    np.testing.assert_array_equal(np.bincount(labels[idx]), [10] * 5)
    idx = R.select_anchors(53, labels=labels, method="stratified", seed=0)
    np.testing.assert_array_equal(np.bincount(labels[idx]), [11, 11, 11, 10, 10])
    # a small class runs out: the others keep taking in turn
    idx = R.select_anchors(120, labels=labels, method="stratified", seed=0)
    counts = np.bincount(labels[idx])
    assert (
        counts[3] == 20 and counts.sum() == 120 and counts.max() - counts[[0, 1, 2, 4]].min() <= 1
    )
    np.testing.assert_array_equal(
        R.select_anchors(50, labels=labels, method="stratified", seed=4),
        R.select_anchors(50, labels=labels, method="stratified", seed=4),
    )
    assert not np.array_equal(
        R.select_anchors(50, labels=labels, method="stratified", seed=4),
        R.select_anchors(50, labels=labels, method="stratified", seed=5),
    )


@pytest.mark.parametrize("method", ["uniform", "fps", "kmeans"])
def test_anchor_methods_unique_and_seeded(method):
    X, y = _blobs(300, 6, 4, seed=13)
    a = R.select_anchors(40, labels=y, X=X, method=method, seed=1)
    assert a.shape == (40,) and len(set(a.tolist())) == 40
    assert a.min() >= 0 and a.max() < 300
    np.testing.assert_array_equal(a, R.select_anchors(40, labels=y, X=X, method=method, seed=1))
    assert set(a.tolist()) != set(R.select_anchors(40, X=X, method=method, seed=2).tolist())


@pytest.mark.parametrize("method", ["fps", "kmeans"])
def test_geometric_anchors_cover_separated_clusters(method):
    # 5 tight, well-separated directions: one anchor per direction
    rng = np.random.default_rng(14)
    dirs = np.eye(5)
    y = np.repeat(np.arange(5), 40)
    X = (dirs[y] + 0.01 * rng.normal(size=(200, 5))) * rng.uniform(1, 10, size=(200, 1))
    idx = R.select_anchors(5, X=X, method=method, seed=0)
    assert sorted(y[idx].tolist()) == [0, 1, 2, 3, 4]


def test_fps_is_farthest_point_and_kmeans_handles_duplicates():
    # fps: after the start the next anchor is the row farthest from it (on the unit sphere)
    rng = np.random.default_rng(15)
    X = rng.normal(size=(50, 3))
    idx = R.select_anchors(2, X=X, method="fps", seed=3)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert idx[1] == np.argmax(np.linalg.norm(Xn - Xn[idx[0]], axis=1))
    # fewer distinct points than anchors: still distinct indices
    D = np.repeat(rng.normal(size=(3, 4)), 4, axis=0)
    for method in ("fps", "kmeans"):
        a = R.select_anchors(6, X=D, method=method, seed=0)
        assert len(set(a.tolist())) == 6


def test_select_anchors_errors():
    with pytest.raises(ValueError, match="one of"):
        R.select_anchors(3, n_samples=10, method="random")
    with pytest.raises(ValueError, match=r"\[1, 10\]"):
        R.select_anchors(11, n_samples=10)
    with pytest.raises(ValueError, match="needs labels"):
        R.select_anchors(3, n_samples=10, method="stratified")
    with pytest.raises(ValueError, match="reference space"):
        R.select_anchors(3, labels=np.zeros(10), method="fps")
    with pytest.raises(ValueError, match="pool"):
        R.select_anchors(3)
    with pytest.raises(ValueError, match="disagree"):
        R.select_anchors(3, labels=np.zeros(10), X=np.ones((9, 2)))


# ---------------------------------------------------------------- decoder and stitching
def test_decoder_batch_norm_is_the_papers_permuted_instancenorm():
    torch.manual_seed(0)
    dec = R.StitchingDecoder(7, 16, 3)
    x = torch.randn(20, 7)
    paper_norm = torch.nn.InstanceNorm1d(16)  # applied to the (hidden, batch) transpose
    assert paper_norm.track_running_stats is False and paper_norm.affine is False
    h = torch.tanh(dec.hidden(dec.input_norm(torch.nn.functional.normalize(x, dim=-1))))
    expected = dec.out(paper_norm(h.permute(1, 0)).permute(1, 0))
    torch.testing.assert_close(dec(x), expected, atol=1e-6, rtol=1e-5)
    # transductive: a row's output depends on the rest of the evaluated batch
    assert not torch.allclose(dec(x[:10])[0], dec(x)[0])


def test_train_decoder_is_seeded_and_learns():
    X, y = _blobs(200, 8, 3, seed=16)
    kw = dict(epochs=10, lr=1e-3, hidden=32)
    d1 = R.train_decoder(X, y + 10, seed=5, **kw)
    d2 = R.train_decoder(X, y + 10, seed=5, **kw)
    for p1, p2 in zip(d1.parameters(), d2.parameters(), strict=True):
        assert torch.equal(p1, p2)
    d3 = R.train_decoder(X, y + 10, seed=6, **kw)
    assert not torch.equal(d1.hidden.weight, d3.hidden.weight)
    pred = R.decoder_predict(d1, X)
    assert set(pred.tolist()) <= {10, 11, 12}  # original label values come back
    assert R.weighted_f1_score(y + 10, pred) > 0.9
    with pytest.raises(ValueError, match="decoder expects"):
        R.decoder_predict(d1, X[:, :4])
    with pytest.raises(ValueError, match="2 classes"):
        R.train_decoder(X, np.zeros(200), epochs=1)


def test_stitching_relative_survives_rotation_absolute_does_not():
    rng = np.random.default_rng(17)
    n_classes, d = 5, 32
    X, y = _blobs(500, d, n_classes, seed=18, spread=1.5)
    perm = rng.permutation(500)
    tr, te = perm[:400], perm[400:]
    Q = _rotation(d, 19)
    XQ = 2.0 * X @ Q
    anchors = tr[R.select_anchors(48, n_samples=400, seed=0)]
    narrow = X[:, :16]  # another "encoder" of a different width
    absolute_train = {"A": X[tr], "rot": XQ[tr], "narrow": narrow[tr]}
    absolute_test = {"A": X[te], "rot": XQ[te], "narrow": narrow[te]}
    rel_train = {
        m: R.relative_projection(
            absolute_train[m], {"A": X, "rot": XQ, "narrow": narrow}[m][anchors]
        )
        for m in absolute_train
    }
    rel_test = {
        m: R.relative_projection(
            absolute_test[m], {"A": X, "rot": XQ, "narrow": narrow}[m][anchors]
        )
        for m in absolute_test
    }
    kw = dict(seeds=(0, 1), epochs=4, lr=1e-3, hidden=64)
    rel = R.stitching_scores(rel_train, rel_test, y[tr], y[te], **kw).set_index(
        ["model", "model_b"]
    )
    ab = R.stitching_scores(absolute_train, absolute_test, y[tr], y[te], **kw).set_index(
        ["model", "model_b"]
    )
    base = rel.loc[("A", "A"), "value"]
    assert base > 90
    assert rel.loc[("A", "rot"), "value"] == pytest.approx(base, abs=1e-9)
    assert rel.loc[("rot", "A"), "value"] == pytest.approx(rel.loc[("rot", "rot"), "value"])
    assert ab.loc[("A", "A"), "value"] > 90
    assert ab.loc[("A", "rot"), "value"] < 50  # chance is 20 F1 for 5 balanced classes
    assert np.isnan(ab.loc[("A", "narrow"), "value"])
    assert "width mismatch" in ab.loc[("A", "narrow"), "reason"]
    assert ab.loc[("A", "narrow"), "n_seeds"] == 0
    assert rel.loc[("A", "narrow"), "n_seeds"] == 2 and rel.loc[("A", "narrow"), "reason"] == ""
    assert rel["value_std"].notna().all()


def test_stitching_scores_errors():
    X, y = _blobs(40, 4, 2, seed=0)
    with pytest.raises(ValueError, match="same, non-empty set"):
        R.stitching_scores({"a": X}, {"b": X}, y, y)
    with pytest.raises(ValueError, match="entries"):
        R.stitching_scores({"a": X}, {"a": X}, y[:10], y, epochs=1)


# ---------------------------------------------------------------- table functions
def _features_by_model(n=240, seed=20):
    X, y = _blobs(n, 12, 4, seed=seed, spread=2.0)
    rng = np.random.default_rng(seed)
    split = np.where(np.arange(n) % 3 == 0, "train", "test")
    feats = {
        "base": {"0": X, "final": X[:, :6] ** 2},
        "rotated": {"0": 4.0 * X @ _rotation(12, 21), "final": X[:, :6] ** 2 + 1.0},
        "other": {"0": rng.normal(size=(n, 12)) + 0.1 * X, "final": rng.normal(size=(n, 9))},
        "wide": {"0": np.hstack([X, rng.normal(size=(n, 8))]), "final": X},
    }
    return feats, y, split


def test_relative_table_structure_and_values():
    feats, y, split = _features_by_model()
    df = R.relative_table(feats, y, split, n_anchors=30, k=5, mutual_k=10, seed=0)
    models, layers = list(feats), ["0", "final"]
    assert len(df) == len(layers) * len(models) ** 2 * 8
    for col in ["model", "model_b", "layer", "metric", "variant", "value", "reason"]:
        assert col in df.columns
    for col in ["n_anchors", "anchor_method", "center", "k", "n_samples", "seed"]:
        assert col in df.columns
    assert set(df.metric) == {
        "latent_jaccard",
        "latent_mrr",
        "latent_cosine",
        "linear_cka",
        "mutual_knn",
    }
    assert (df.n_samples == 160).all()
    v = df.set_index(["model", "model_b", "layer", "metric", "variant"])["value"]
    # identical pairs: everything 1
    for m in models:
        for metric in ["latent_jaccard", "latent_mrr", "latent_cosine"]:
            assert v[(m, m, "0", metric, "relative")] == pytest.approx(1.0)
            assert v[(m, m, "0", metric, "absolute")] == pytest.approx(1.0)
        assert v[(m, m, "0", "linear_cka", "absolute")] == pytest.approx(1.0)
        assert v[(m, m, "0", "mutual_knn", "absolute")] == pytest.approx(1.0)
    # rotated + scaled copy: relative space identical, absolute retrieval near chance
    for metric in ["latent_jaccard", "latent_mrr", "latent_cosine"]:
        assert v[("base", "rotated", "0", metric, "relative")] == pytest.approx(1.0)
    assert v[("base", "rotated", "0", "latent_mrr", "absolute")] < 0.2
    assert v[("base", "rotated", "0", "linear_cka", "absolute")] == pytest.approx(1.0)
    # width mismatch: absolute retrieval undefined, relative defined
    row = df[
        (df.model == "base")
        & (df.model_b == "wide")
        & (df.layer == "0")
        & (df.metric == "latent_mrr")
    ]
    ab = row[row.variant == "absolute"].iloc[0]
    assert np.isnan(ab.value) and "width mismatch" in ab.reason
    assert np.isfinite(row[row.variant == "relative"].iloc[0].value)
    # symmetric measures are symmetric
    assert v[("base", "other", "final", "linear_cka", "absolute")] == pytest.approx(
        v[("other", "base", "final", "linear_cka", "absolute")]
    )
    # parameters: relative rows carry the anchor parameters, CKA has no k
    rel_rows = df[df.variant == "relative"]
    assert (rel_rows.n_anchors == 30).all() and (rel_rows.anchor_method == "uniform").all()
    assert df[df.metric == "linear_cka"].k.isna().all()
    assert (df[df.metric == "mutual_knn"].k == 10).all()
    assert (df[df.metric == "latent_mrr"].k == 5).all()


def test_relative_table_matches_direct_calls_with_train_anchors():
    feats, y, split = _features_by_model()
    df = R.relative_table(
        feats, y, split, layers=["0"], n_anchors=20, anchor_method="stratified", center=True, seed=3
    )
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    anchors = train[R.select_anchors(20, labels=y[train], method="stratified", seed=3)]
    A, B = feats["base"]["0"], feats["other"]["0"]
    expected = R.latent_similarity(
        R.relative_projection(A[test], A[anchors], center=True),
        R.relative_projection(B[test], B[anchors], center=True),
        k=5,
    )
    got = df[(df.model == "base") & (df.model_b == "other") & (df.variant == "relative")]
    got = dict(zip(got.metric, got.value, strict=True))
    assert got["latent_jaccard"] == pytest.approx(expected["jaccard"])
    assert got["latent_mrr"] == pytest.approx(expected["mrr"])
    assert got["latent_cosine"] == pytest.approx(expected["cosine"])
    rows = df[(df.model == "base") & (df.model_b == "other")].set_index("metric")["value"]
    assert rows["linear_cka"] == pytest.approx(R.linear_cka(A[test], B[test]))
    assert rows["mutual_knn"] == pytest.approx(R.mutual_knn(A[test], B[test], k=10))
    absolute = R.latent_similarity(A[test], B[test], k=5)
    got_abs = df[(df.model == "base") & (df.model_b == "other") & (df.variant == "absolute")]
    assert got_abs.set_index("metric").loc["latent_mrr", "value"] == pytest.approx(absolute["mrr"])


@pytest.mark.parametrize("method", ["uniform", "kmeans"])
def test_relative_table_is_deterministic(method):
    feats, y, split = _features_by_model(n=120)
    kw = dict(layers=["final"], n_anchors=12, anchor_method=method, seed=1)
    pd.testing.assert_frame_equal(
        R.relative_table(feats, y, split, **kw), R.relative_table(feats, y, split, **kw)
    )


def test_relative_table_errors():
    feats, y, split = _features_by_model(n=60)
    with pytest.raises(ValueError, match="lacks layers"):
        R.relative_table(feats, y, split, layers=["7"], n_anchors=5)
    with pytest.raises(ValueError, match="train"):
        R.relative_table(feats, y, np.full(60, "test"), n_anchors=5)
    with pytest.raises(ValueError, match="n_anchors"):
        R.relative_table(feats, y, split, n_anchors=500)
    bad = {m: dict(v) for m, v in feats.items()}
    bad["base"]["0"] = bad["base"]["0"].copy()
    bad["base"]["0"][3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        R.relative_table(bad, y, split, n_anchors=5)
    with pytest.raises(ValueError, match="expected"):
        R.relative_table({"a": {"0": np.ones((5, 2))}}, y, split, n_anchors=5)


def test_stitching_table_structure():
    feats, y, split = _features_by_model(n=150)
    feats = {m: feats[m] for m in ["base", "rotated", "wide"]}
    df = R.stitching_table(
        feats, y, split, layers=["0"], n_anchors=20, seeds=(0,), epochs=2, lr=1e-3, hidden=32
    )
    assert len(df) == 2 * 3 * 3
    assert set(df.variant) == {"relative", "absolute"} and (df.metric == "stitching_f1").all()
    for col in ["model", "model_b", "layer", "value", "value_std", "n_seeds", "reason"]:
        assert col in df.columns
    v = df.set_index(["model", "model_b", "variant"])
    assert v.loc[("base", "rotated", "relative"), "value"] == pytest.approx(
        v.loc[("base", "base", "relative"), "value"]
    )
    assert np.isnan(v.loc[("base", "wide", "absolute"), "value"])
    assert "width mismatch" in v.loc[("base", "wide", "absolute"), "reason"]
    assert v.loc[("base", "wide", "relative"), "n_seeds"] == 1
    assert df.value_std.isna().all()  # one seed: no spread
    assert (df[df.variant == "relative"].n_anchors == 20).all()
    assert df[df.variant == "absolute"].n_anchors.isna().all()


def test_stitching_table_whitened_variant_recovers_a_low_variance_class_direction():
    # Two classes differ only along one direction whose spread is 1/100 of 15 nuisance
    # directions (offset from the origin): with cosine to the anchors, plain or not, the decoder
    # stays at chance; after anchor whitening it separates the classes.
    rng = np.random.default_rng(5)
    n, y = 400, np.arange(400) % 2
    X = rng.normal(size=(n, 16)) * 10.0 + 30.0
    X[:, 0] = 0.1 * (2 * y - 1) + 0.02 * rng.normal(size=n)
    split = np.where(np.arange(n) < 300, "train", "test")
    df = R.stitching_table(
        {"m": {"0": X}}, y, split, layers=["0"], n_anchors=60, seeds=(0,), epochs=20, lr=1e-3,
        hidden=32, variants=("relative_whitened", "absolute", "relative"),
    )  # fmt: skip
    v = df.set_index("variant").value
    assert list(df.variant) == ["relative_whitened", "absolute", "relative"]
    assert v["relative_whitened"] > 95 and v["relative"] < 65 and v["absolute"] < 65
    with pytest.raises(ValueError, match="variants"):
        R.stitching_table({"m": {"0": X}}, y, split, layers=["0"], n_anchors=40, variants=("x",))
    with pytest.raises(ValueError, match="variants"):
        R.stitching_table({"m": {"0": X}}, y, split, layers=["0"], n_anchors=40, variants=())
