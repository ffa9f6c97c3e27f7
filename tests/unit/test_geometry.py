"""Tests for repaudit.metrics.geometry (spectrum, isotropy, α-ReQ, Self-Cluster, the table)."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.stats import ortho_group
from sklearn.neighbors import NearestNeighbors

from repaudit.metrics.geometry import (
    _neighbourhood_ratios,
    _pairwise_pass,
    alpha_req,
    alpha_req_fit,
    effective_rank,
    geometry_table,
    global_isotropy,
    local_isotropy,
    nesum,
    participation_ratio,
    participation_ratio_normalised,
    rankme,
    self_cluster,
)
from repaudit.metrics.uniformity import (
    wang_isola_uniformity,
    wasserstein_uniformity,
    wasserstein_uniformity_floor,
)


def with_singular_values(s, n, d, seed=0, centred=True):
    """X (n × d) whose (centred) data matrix has exactly the singular values s."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, len(s)))
    if centred:
        A -= A.mean(0)
    Q, _ = np.linalg.qr(A)  # orthonormal columns (⊥ 1 when centred)
    V = ortho_group.rvs(d, random_state=seed)[: len(s)]
    return Q @ np.diag(s) @ V


def aniso(n=300, d=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * np.geomspace(3, 0.05, d) + rng.normal(0, 1, d)


# ----------------------------------------------------------------- slow reference implementations
def ref_entropy_rank(s, eps):
    p = s / s.sum() + eps
    p = p[p > 0]
    return math.exp(-np.sum(p * np.log(p)))


def ref_cov_eigvals(X):
    return np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False)))[::-1].clip(0)


def ref_local_isotropy(X, k):
    """Explicit loop: exact distances, self excluded, stable order, np.cov of the neighbours."""
    out = []
    for i in range(len(X)):
        d = np.sum((X - X[i]) ** 2, axis=1)
        d[i] = np.inf
        nb = X[np.argsort(d, kind="stable")[:k]]
        C = np.cov(nb, rowvar=False, bias=True)
        out.append(1 - np.linalg.eigvalsh(C)[-1] / np.trace(C))
    return float(np.mean(out))


def ref_self_cluster(X):
    W = X / np.linalg.norm(X, axis=1, keepdims=True)
    n, d = W.shape
    q = sum(float(W[i] @ W[j]) ** 2 for i in range(n) for j in range(n))
    return (q - n - n * (n - 1) / d) / (n * n - n - n * (n - 1) / d)


# --------------------------------------------------------------------------- hand-derived values
def test_spectrum_metrics_hand_values():
    n, d = 200, 6
    X = with_singular_values([3.0, 1.0], n, d)  # centred singular values exactly (3, 1)
    p = np.array([0.75, 0.25])
    h = -np.sum(p * np.log(p))
    assert effective_rank(X) == pytest.approx(math.exp(h), rel=1e-10)
    assert rankme(X, centred=True, eps=0) == pytest.approx(math.exp(h), rel=1e-10)
    # λ ∝ (9, 1): PR = 10²/82, isotropy = 1 − 9/10, NESum = 10/9
    assert participation_ratio(X) == pytest.approx(100 / 82, rel=1e-10)
    assert participation_ratio_normalised(X) == pytest.approx(100 / 82 / d, rel=1e-10)
    assert global_isotropy(X) == pytest.approx(0.1, rel=1e-10)
    assert nesum(X) == pytest.approx(10 / 9, rel=1e-10)


def test_isotropic_spectrum_gives_maxima():
    d = 8
    X = with_singular_values(np.ones(d), 100, d)
    assert effective_rank(X) == pytest.approx(d, rel=1e-10)
    assert participation_ratio(X) == pytest.approx(d, rel=1e-10)
    assert participation_ratio_normalised(X) == pytest.approx(1.0, rel=1e-10)
    assert global_isotropy(X) == pytest.approx(1 - 1 / d, rel=1e-10)
    assert nesum(X) == pytest.approx(d, rel=1e-10)
    # uncentred, equal singular values: RankMe = D (+ O(eps))
    Y = with_singular_values(np.ones(d), 100, d, centred=False)
    assert rankme(Y) == pytest.approx(d, rel=1e-5)


def test_rankme_uncentred_sees_the_mean():
    X = aniso() + 500.0  # a large mean dominates the uncentred spectrum
    assert rankme(X) < 1.5 < rankme(X, centred=True)


def test_self_cluster_hand_values():
    d = 5
    # orthonormal basis (N = D): ‖WWᵀ‖_F² = N → −1/(N − 1)
    assert self_cluster(np.eye(d) * 3.0) == pytest.approx(-1 / (d - 1), rel=1e-12)
    # one point repeated: 1
    assert self_cluster(np.tile([1.0, 2.0, 3.0], (10, 1))) == pytest.approx(1.0, rel=1e-12)
    # uniform on the sphere: ≈ 0
    U = np.random.default_rng(0).standard_normal((4000, 16))
    assert abs(self_cluster(U)) < 0.005


def test_local_isotropy_hand_values():
    rng = np.random.default_rng(1)
    line = rng.standard_normal((80, 1)) * np.array([[1.0, -2.0, 0.5]]) + 4.0
    assert local_isotropy(line, k=5) == pytest.approx(0.0, abs=1e-10)
    # a planar grid, k = 4 neighbours of an interior point: ±e1, ±e2 → C = I/2 → 1 − 1/2
    g = np.array([[i, j] for i in range(9) for j in range(9)], dtype=float)
    idx, _ = _pairwise_pass(g, 4, None, "cpu", chunk_size=16)
    ratios = _neighbourhood_ratios(g - g.mean(0), idx, chunk_size=16)
    interior = [i for i, (a, b) in enumerate(g) if 0 < a < 8 and 0 < b < 8]
    np.testing.assert_allclose(ratios.numpy()[interior], 0.5, atol=1e-12)
    assert idx.shape == (81, 4)


def test_alpha_req_recovers_exact_power_law():
    n, d, alpha = 400, 120, 1.3
    lam = np.arange(1, d + 1, dtype=float) ** -alpha
    X = with_singular_values(np.sqrt(lam * (n - 1)), n, d)
    a, r2 = alpha_req_fit(X)
    assert a == pytest.approx(alpha, abs=1e-8)
    assert r2 == pytest.approx(1.0, abs=1e-10)
    assert alpha_req(X, (0, 120)) == pytest.approx(alpha, abs=1e-8)


# ---------------------------------------------------------------- slow-reference agreement
@pytest.mark.parametrize("shape", [(300, 24), (20, 60)])  # N > D and N < D
def test_rankme_and_effective_rank_match_svd(shape):
    X = aniso(*shape)
    s = np.linalg.svd(X, compute_uv=False)
    sc = np.linalg.svd(X - X.mean(0), compute_uv=False)
    assert rankme(X) == pytest.approx(ref_entropy_rank(s, 1e-7), rel=1e-9)
    assert rankme(X, centred=True) == pytest.approx(ref_entropy_rank(sc, 1e-7), rel=1e-9)
    assert rankme(X, eps=1e-3) == pytest.approx(ref_entropy_rank(s, 1e-3), rel=1e-9)
    assert effective_rank(X) == pytest.approx(ref_entropy_rank(sc, 0.0), rel=1e-9)


@pytest.mark.parametrize("shape", [(300, 24), (20, 60)])
def test_covariance_metrics_match_np_cov(shape):
    X = aniso(*shape)
    lam = ref_cov_eigvals(X)
    assert participation_ratio(X) == pytest.approx(lam.sum() ** 2 / np.sum(lam**2), rel=1e-9)
    assert participation_ratio_normalised(X) == pytest.approx(
        lam.sum() ** 2 / np.sum(lam**2) / shape[1], rel=1e-9
    )
    assert global_isotropy(X) == pytest.approx(1 - lam[0] / lam.sum(), rel=1e-9)
    assert nesum(X) == pytest.approx(lam.sum() / lam[0], rel=1e-9)
    # stable rank identity
    Xc = X - X.mean(0)
    assert nesum(X) == pytest.approx(
        np.linalg.norm(Xc, "fro") ** 2 / np.linalg.norm(Xc, 2) ** 2, rel=1e-9
    )


@pytest.mark.parametrize("fit_range", [(10, 100), (2, 20), (0, 5)])
def test_alpha_req_matches_statsmodels_wls(fit_range):
    X = aniso(400, 120, seed=3)
    lam = ref_cov_eigvals(X)
    lo, hi = fit_range[0], min(fit_range[1], len(lam))
    i = np.arange(lo + 1, hi + 1)
    y = np.log(lam[lo:hi])
    exog = sm.add_constant(-np.log(i))
    res = sm.WLS(y, exog, weights=1.0 / i).fit()
    r2 = 1 - np.sum((y - res.fittedvalues) ** 2) / np.sum((y - y.mean()) ** 2)
    a, fit_r2 = alpha_req_fit(X, fit_range)
    assert a == pytest.approx(res.params[1], rel=1e-9)
    assert fit_r2 == pytest.approx(r2, rel=1e-9)


def test_alpha_req_clips_to_positive_eigenvalues():
    X = aniso(30, 200, seed=4)  # rank N − 1 = 29
    lam = ref_cov_eigvals(X)[:29]
    i = np.arange(11, 30)
    res = sm.WLS(np.log(lam[10:29]), sm.add_constant(-np.log(i)), weights=1.0 / i).fit()
    assert alpha_req(X) == pytest.approx(res.params[1], rel=1e-7)


@pytest.mark.parametrize("k,d,chunk", [(5, 3, 7), (10, 40, 512), (20, 8, 33)])
def test_local_isotropy_matches_loop(k, d, chunk):
    X = aniso(150, d, seed=k)
    assert local_isotropy(X, k=k, chunk_size=chunk) == pytest.approx(
        ref_local_isotropy(X, k), abs=1e-10
    )


def test_knn_matches_sklearn():
    X = aniso(400, 12, seed=5)
    idx, _ = _pairwise_pass(X, 15, None, "cpu", chunk_size=64)
    nn = NearestNeighbors(n_neighbors=16).fit(X)
    ref = nn.kneighbors(X, return_distance=False)
    for i in range(len(X)):
        assert set(idx[i].tolist()) == set(ref[i].tolist()) - {i}


@pytest.mark.parametrize("chunk", [1, 13, 64, 1024])
def test_fused_pass_lu_and_knn_match_references(chunk):
    X = (
        aniso(70, 5, seed=12) + 2.0
    )  # off-centre, so the centred decomposition of ⟨x_i, x_j⟩ matters
    idx, lu = _pairwise_pass(X, 6, 2.0, "cpu", chunk_size=chunk, margin=2)
    assert lu == pytest.approx(wang_isola_uniformity(X), abs=1e-12)
    for i in range(len(X)):
        d = np.sum((X - X[i]) ** 2, axis=1)
        d[i] = np.inf
        assert idx[i].tolist() == np.argsort(d, kind="stable")[:6].tolist()
    _, lu_hot = _pairwise_pass(X, None, 300.0, "cpu", chunk_size=chunk)  # logsumexp path
    assert lu_hot == pytest.approx(wang_isola_uniformity(X, t=300.0), abs=1e-9)


def test_knn_ties_broken_by_index():
    # 1-D lattice: the 2 nearest neighbours of interior point i are i − 1 and i + 1 (tie);
    # with k = 3 the third is the lower of i − 2, i + 2.
    X = np.arange(20, dtype=float)[:, None] * np.array([[1.0, 0.0]])
    idx, _ = _pairwise_pass(X, 3, None, "cpu", chunk_size=4)
    assert sorted(idx[10].tolist()) == [8, 9, 11]
    assert idx[10].tolist() == [9, 11, 8]


def test_self_cluster_matches_loop_and_gram_sides():
    X = aniso(60, 7, seed=6)
    assert self_cluster(X) == pytest.approx(ref_self_cluster(X), rel=1e-10)
    Y = aniso(10, 30, seed=7)  # N < D: the N × N Gram is used
    assert self_cluster(Y) == pytest.approx(ref_self_cluster(Y), rel=1e-10)


# -------------------------------------------------------------------------------- invariances
SCALE_FREE = {
    "rankme": rankme,
    "rankme_centred": lambda X: rankme(X, centred=True),
    "effective_rank": effective_rank,
    "participation_ratio": participation_ratio,
    "participation_ratio_normalised": participation_ratio_normalised,
    "global_isotropy": global_isotropy,
    "nesum": nesum,
    "alpha_req": lambda X: alpha_req(X, (2, 20)),
    "alpha_req_r2": lambda X: alpha_req_fit(X, (2, 20))[1],
    "local_isotropy": lambda X: local_isotropy(X, k=10),
    "self_cluster": self_cluster,
}


@pytest.fixture(scope="module")
def inv_data():
    rng = np.random.default_rng(8)
    X = aniso(200, 24, seed=8)
    return X, rng.permutation(len(X)), ortho_group.rvs(24, random_state=2)


@pytest.mark.parametrize("name", list(SCALE_FREE))
def test_invariance_permutation_rotation_scale(inv_data, name):
    X, perm, Q = inv_data
    f = SCALE_FREE[name]
    v = f(X)
    assert f(X[perm]) == pytest.approx(v, rel=1e-9, abs=1e-12)
    assert f(X @ Q) == pytest.approx(v, rel=1e-8, abs=1e-10)
    assert f(0.013 * X) == pytest.approx(v, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "name", ["rankme_centred", "effective_rank", "participation_ratio", "global_isotropy",
             "nesum", "alpha_req", "local_isotropy"],
)  # fmt: skip
def test_centred_metrics_are_translation_invariant(inv_data, name):
    X, _, _ = inv_data
    f = SCALE_FREE[name]
    assert f(X + 3.0) == pytest.approx(f(X), rel=1e-8)


def test_table_is_permutation_invariant(inv_data):
    X, perm, _ = inv_data
    kw = dict(local_k=10, alpha_range=(2, 20))
    a = geometry_table({"0": X}, **kw)
    b = geometry_table({"0": X[perm]}, **kw)
    np.testing.assert_allclose(a.value, b.value, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------ degenerate input
ALL = {**SCALE_FREE, "alpha_req": alpha_req}


@pytest.mark.parametrize("name", list(ALL))
def test_malformed_input_raises(name):
    f = ALL[name]
    X = aniso(50, 6)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        f(bad)
    bad[3, 2] = -np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        f(bad)
    with pytest.raises(ValueError, match="at least 2"):
        f(X[:1])
    with pytest.raises(ValueError, match="2-D"):
        f(X[:, 0])


@pytest.mark.parametrize(
    "name", ["rankme_centred", "effective_rank", "participation_ratio",
             "participation_ratio_normalised", "global_isotropy", "nesum", "alpha_req",
             "local_isotropy"],
)  # fmt: skip
def test_zero_variance_raises(name):
    X = np.tile(np.array([0.1, 0.7, -0.3]), (40, 1))  # identical rows, inexact mean
    with pytest.raises(ValueError, match="zero variance"):
        ALL[name](X)


def test_other_degenerate_cases_raise():
    with pytest.raises(ValueError, match="all zeros"):
        rankme(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="all-zero row"):
        self_cluster(np.vstack([np.ones((3, 4)), np.zeros((1, 4))]))
    with pytest.raises(ValueError, match="D >= 2"):
        self_cluster(np.arange(1.0, 6.0)[:, None])
    X = aniso(30, 4)
    with pytest.raises(ValueError, match="k"):
        local_isotropy(X, k=30)
    with pytest.raises(ValueError, match="k"):
        local_isotropy(X, k=1)
    dup = np.vstack([np.tile(X[0], (6, 1)), X[1:]])  # 6 copies: 5-NN of a copy are identical
    with pytest.raises(ValueError, match="identical"):
        local_isotropy(dup, k=5)
    with pytest.raises(ValueError, match="at least 3"):
        alpha_req(aniso(100, 12))  # (10, 100) leaves 2 eigenvalues
    with pytest.raises(ValueError, match="fit_range"):
        alpha_req(X, (5, 5))


# ------------------------------------------------------------------------------------- table
@pytest.fixture(scope="module")
def table_features():
    rng = np.random.default_rng(9)
    return {
        "0": aniso(180, 16, seed=10).astype(np.float32),
        "1": rng.standard_normal((180, 40)).astype(np.float32),
        "final": aniso(180, 12, seed=11).astype(np.float32),
    }


@pytest.fixture(scope="module")
def table(table_features):
    return geometry_table(table_features, local_k=8, alpha_range=(1, 10), seed=3)


METRICS = {
    "rankme", "effective_rank", "participation_ratio", "participation_ratio_normalised",
    "global_isotropy", "local_isotropy", "nesum", "alpha_req", "alpha_req_r2", "self_cluster",
    "wasserstein_uniformity", "wasserstein_uniformity_floor", "wang_isola_uniformity",
}  # fmt: skip


def test_table_format(table, table_features):
    cols = ["layer", "metric", "variant", "value", "n_samples", "dim", "k", "fit_range", "t"]
    assert list(table.columns) == cols
    assert list(dict.fromkeys(table.layer)) == ["0", "1", "final"]
    for layer, sub in table.groupby("layer", sort=False):
        assert set(sub.metric) == METRICS
        assert len(sub) == len(METRICS) + 1  # rankme twice
        assert sorted(sub[sub.metric == "rankme"].variant) == ["centred", "uncentred"]
        assert set(sub[sub.metric != "rankme"].variant) == {""}
        assert set(sub.n_samples) == {180}
        assert set(sub.dim) == {table_features[layer].shape[1]}
    assert set(table[table.metric == "local_isotropy"].k) == {8}
    assert table[table.metric != "local_isotropy"].k.isna().all()
    alpha_rows = table.metric.isin(["alpha_req", "alpha_req_r2"])
    assert set(table[alpha_rows].fit_range) == {"1-10"}
    assert set(table[~alpha_rows].fit_range) == {""}
    assert set(table[table.metric == "wang_isola_uniformity"].t) == {2.0}
    assert table[table.metric != "wang_isola_uniformity"].t.isna().all()
    assert table.value.notna().all()


def test_table_values_equal_public_functions(table, table_features):
    X = table_features["1"]
    got = table[table.layer == "1"].set_index(["metric", "variant"]).value
    expect = {
        ("rankme", "uncentred"): rankme(X),
        ("rankme", "centred"): rankme(X, centred=True),
        ("effective_rank", ""): effective_rank(X),
        ("participation_ratio", ""): participation_ratio(X),
        ("participation_ratio_normalised", ""): participation_ratio_normalised(X),
        ("global_isotropy", ""): global_isotropy(X),
        ("local_isotropy", ""): local_isotropy(X, k=8),
        ("nesum", ""): nesum(X),
        ("alpha_req", ""): alpha_req(X, (1, 10)),
        ("alpha_req_r2", ""): alpha_req_fit(X, (1, 10))[1],
        ("self_cluster", ""): self_cluster(X),
        ("wasserstein_uniformity", ""): wasserstein_uniformity(X),
        ("wasserstein_uniformity_floor", ""): wasserstein_uniformity_floor(180, 40, seed=3),
        ("wang_isola_uniformity", ""): wang_isola_uniformity(X),
    }
    for key, v in expect.items():
        assert got[key] == pytest.approx(v, rel=1e-10, abs=1e-12), key


def test_table_subsamples_the_same_rows_for_every_layer(table_features):
    df = geometry_table(table_features, local_k=8, alpha_range=(1, 10), max_samples=100, seed=5)
    assert set(df.n_samples) == {100}
    sel = np.sort(np.random.default_rng(5).choice(180, 100, replace=False))
    X = table_features["0"][sel]
    got = df[(df.layer == "0")].set_index(["metric", "variant"]).value
    assert got[("nesum", "")] == pytest.approx(nesum(X), rel=1e-12)
    assert got[("local_isotropy", "")] == pytest.approx(local_isotropy(X, k=8), rel=1e-12)
    again = geometry_table(table_features, local_k=8, alpha_range=(1, 10), max_samples=100, seed=5)
    pd.testing.assert_frame_equal(df, again)


def test_table_degenerate_layer_nan_or_raise():
    feats = {"0": np.full((50, 6), 0.3, dtype=np.float32), "1": aniso(50, 6)}
    with pytest.warns(RuntimeWarning, match="layer '0'"):
        df = geometry_table(feats, local_k=5, alpha_range=(0, 5))
    l0 = df[df.layer == "0"].set_index(["metric", "variant"]).value
    assert np.isnan(l0[("participation_ratio", "")])
    assert np.isnan(l0[("local_isotropy", "")])
    assert l0[("wasserstein_uniformity", "")] == pytest.approx(math.sqrt(2), abs=1e-9)
    assert l0[("self_cluster", "")] == pytest.approx(1.0, abs=1e-12)
    assert df[df.layer == "1"].value.notna().all()
    with pytest.raises(ValueError, match="zero variance"):
        geometry_table(feats, local_k=5, alpha_range=(0, 5), on_degenerate="raise")


def test_table_zero_row_only_drops_sphere_metrics():
    X = aniso(60, 6)
    X[7] = 0.0
    with pytest.warns(RuntimeWarning, match="all-zero row"):
        df = geometry_table({"0": X}, local_k=5, alpha_range=(0, 5))
    v = df.set_index("metric").value
    for m in ("self_cluster", "wasserstein_uniformity", "wang_isola_uniformity"):
        assert np.isnan(v[m])
    assert v["local_isotropy"] == pytest.approx(local_isotropy(X, k=5), rel=1e-12)
    assert v["nesum"] == pytest.approx(nesum(X), rel=1e-12)


def test_table_rejects_bad_input():
    X = aniso(30, 5)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        geometry_table({"0": X, "1": bad}, local_k=5, alpha_range=(0, 4))
    with pytest.raises(ValueError, match="at least 2"):
        geometry_table({"0": X[:1]})
    with pytest.raises(ValueError, match="empty"):
        geometry_table({})
    with pytest.raises(ValueError, match="on_degenerate"):
        geometry_table({"0": X}, on_degenerate="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy layer emits no warning
        geometry_table({"0": X}, local_k=5, alpha_range=(0, 4))
