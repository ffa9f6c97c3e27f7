"""Tests for repaudit.metrics.concepts (Vielhaben et al., arXiv:2412.06639)."""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.metrics import rand_score

from repaudit.metrics import concepts as cm
from repaudit.metrics.concepts import (
    TooFewConceptsError,
    concept_pair_distances,
    concepts_table,
    cross_model_gri,
    discover_concepts,
    generalized_rand_index,
    generalized_rand_index_estimate,
    kmeans_concepts,
    match_concepts,
    one_hot,
    pca_concepts,
    sanity_score,
)
from repaudit.tables import select_samples

# ----------------------------------------------------------------------------- helpers


def soft(n: int, c: int, seed: int, alpha: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(c, alpha), size=n)


def slow_gri(P, Q, cosine=False):
    """Obviously-correct double loop of Hüllermeier et al. (2012)."""
    n = P.shape[0]
    tot = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            if cosine:
                ep = P[i] @ P[j] / np.linalg.norm(P[i]) / np.linalg.norm(P[j])
                eq = Q[i] @ Q[j] / np.linalg.norm(Q[i]) / np.linalg.norm(Q[j])
            else:
                ep = 1 - 0.5 * np.abs(P[i] - P[j]).sum()
                eq = 1 - 0.5 * np.abs(Q[i] - Q[j]).sum()
            tot += abs(ep - eq)
    return 1 - tot / (n * (n - 1) / 2)


def slow_pair_distances(P, Q):
    n = P.shape[0]
    D = np.zeros((P.shape[1], Q.shape[1]))
    for a in range(P.shape[1]):
        for b in range(Q.shape[1]):
            s = 0.0
            for i in range(n):
                for j in range(i + 1, n):
                    s += 0.5 * abs(abs(P[i, a] - P[j, a]) - abs(Q[i, b] - Q[j, b]))
            D[a, b] = s / (n * (n - 1) / 2)
    return D


# ----------------------------------------------------------------------------- GRI


def test_gri_hand_derived_crisp_and_soft():
    P = np.array([[1, 0], [0, 1], [1, 0]], float)
    Q = np.array([[1, 0], [1, 0], [0, 1]], float)
    # pairs (0,1): |0-1|, (0,2): |1-0|, (1,2): |0-0|  ->  1 - 2/3
    assert generalized_rand_index(P, Q) == pytest.approx(1 / 3, abs=1e-7)
    P = np.array([[0.5, 0.5], [1.0, 0.0]])
    Q = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert generalized_rand_index(P, Q) == pytest.approx(0.5, abs=1e-7)


def test_gri_identity_symmetry_permutation():
    P, Q = soft(80, 4, 0), soft(80, 6, 1)
    assert generalized_rand_index(P, P, dtype="float64") == pytest.approx(1.0, abs=1e-12)
    a = generalized_rand_index(P, Q, dtype="float64")
    assert a < 0.99
    assert generalized_rand_index(Q, P, dtype="float64") == pytest.approx(a, abs=1e-12)
    perm_p = np.random.default_rng(2).permutation(4)
    perm_q = np.random.default_rng(3).permutation(6)
    b = generalized_rand_index(P[:, perm_p], Q[:, perm_q], dtype="float64")
    assert b == pytest.approx(a, abs=1e-12)


def test_gri_equals_rand_score_on_one_hot():
    rng = np.random.default_rng(0)
    for n, ka, kb in [(50, 3, 4), (120, 2, 7), (31, 5, 5)]:
        la, lb = rng.integers(0, ka, n), rng.integers(0, kb, n)
        got = generalized_rand_index(one_hot(la), one_hot(lb))
        assert got == pytest.approx(rand_score(la, lb), abs=1e-6)
        # the crisp variant of soft inputs is the Rand index of their argmax
        P, Q = soft(n, ka, 1), soft(n, kb, 2)
        crisp = generalized_rand_index(P, Q, crisp=True)
        assert crisp == pytest.approx(rand_score(P.argmax(1), Q.argmax(1)), abs=1e-6)


def test_gri_distance_triangle_inequality():
    parts = [soft(40, c, s) for s, c in enumerate([2, 3, 5, 4, 6])]
    parts.append(one_hot(np.arange(40) % 3))
    d = {
        (i, j): 1 - generalized_rand_index(parts[i], parts[j], dtype="float64")
        for i in range(len(parts))
        for j in range(len(parts))
    }
    for i, j, k in itertools.permutations(range(len(parts)), 3):
        assert d[i, k] <= d[i, j] + d[j, k] + 1e-12


@pytest.mark.parametrize("cosine", [False, True])
def test_gri_matches_slow_double_loop(cosine):
    P, Q = soft(37, 3, 4), soft(37, 5, 5)
    dist = "cosine" if cosine else "l1"
    got = generalized_rand_index(P, Q, dtype="float64", distance=dist, chunk=7)
    assert got == pytest.approx(slow_gri(P, Q, cosine), abs=1e-12)


def test_gri_sub_stochastic_rows_match_slow_loop():
    # HDBSCAN membership vectors sum to <= 1; the definition is applied as is.
    P = soft(30, 4, 6) * np.random.default_rng(7).uniform(0.5, 1.0, (30, 1))
    Q = soft(30, 2, 8)
    assert generalized_rand_index(P, Q, dtype="float64") == pytest.approx(slow_gri(P, Q), abs=1e-12)


def test_gri_float32_precision_and_chunking():
    P, Q = soft(1500, 20, 9), soft(1500, 30, 10)
    ref = generalized_rand_index(P, Q, dtype="float64")
    assert generalized_rand_index(P, Q, dtype="float32") == pytest.approx(ref, abs=1e-6)
    P, Q = P[:300], Q[:300]
    ref = generalized_rand_index(P, Q, dtype="float64")
    for chunk in (7, 97, 5000):
        got = generalized_rand_index(P, Q, dtype="float64", chunk=chunk)
        assert got == pytest.approx(ref, abs=1e-12)


def test_gri_monte_carlo_close_to_exact_and_reported():
    P, Q = soft(3000, 8, 11, alpha=0.3), soft(3000, 5, 12, alpha=0.3)
    exact = generalized_rand_index_estimate(P, Q)
    assert exact.exact and exact.n_pairs == 3000 * 2999 // 2 and exact.n_samples == 3000
    mc = generalized_rand_index_estimate(P, Q, exact_max_n=1000, n_pairs=200_000, seed=3)
    assert not mc.exact and mc.n_pairs == 200_000
    assert abs(mc.value - exact.value) < 0.01
    again = generalized_rand_index_estimate(P, Q, exact_max_n=1000, n_pairs=200_000, seed=3)
    assert again.value == mc.value
    other = generalized_rand_index_estimate(P, Q, exact_max_n=1000, n_pairs=200_000, seed=4)
    assert other.value != mc.value


@pytest.mark.parametrize(
    ("P", "Q", "match"),
    [
        (np.ones((5, 2)) / 2, np.ones((4, 2)) / 2, "same samples"),
        (-soft(5, 2, 0), soft(5, 2, 1), "outside"),
        (np.full((5, 2), 0.8), soft(5, 2, 1), "more than 1"),
        (np.full((5, 2), np.nan), soft(5, 2, 1), "NaN"),
        (np.ones(5), soft(5, 2, 1), "2-D"),
        (np.ones((1, 2)) / 2, np.ones((1, 2)) / 2, "at least|>= 2"),
    ],
)
def test_gri_bad_input(P, Q, match):
    with pytest.raises(ValueError, match=match):
        generalized_rand_index(P, Q)


def test_gri_bad_options():
    P = soft(5, 2, 0)
    with pytest.raises(ValueError, match="distance"):
        generalized_rand_index(P, P, distance="l2")
    with pytest.raises(ValueError, match="dtype"):
        generalized_rand_index(P, P, dtype="float16")


# ----------------------------------------------------------------------------- concept pairs


def test_pair_distances_hand_derived():
    P = np.array([[1.0, 0.0], [0.0, 1.0]])
    Q = np.array([[1.0, 0.0], [1.0, 0.0]])
    # one pair: |ΔP_a| = 1 for both a, |ΔQ_b| = 0 for both b  ->  ½·1
    np.testing.assert_allclose(concept_pair_distances(P, Q), np.full((2, 2), 0.5), atol=1e-15)


def test_pair_distances_match_slow_loop_and_self_zero():
    P, Q = soft(25, 3, 13), soft(25, 4, 14)
    np.testing.assert_allclose(concept_pair_distances(P, Q), slow_pair_distances(P, Q), atol=1e-13)
    np.testing.assert_allclose(
        concept_pair_distances(P, Q, chunk=1), slow_pair_distances(P, Q), atol=1e-13
    )
    np.testing.assert_allclose(np.diag(concept_pair_distances(P, P)), 0.0, atol=1e-14)


def test_pair_distances_bound_the_gri_distance():
    # |E_P − E_Q| = ½|Σ_a (|ΔP_a| − |ΔQ_π(a)|)| ≤ Σ_a D-terms for every bijection π.
    P, Q = soft(200, 4, 15), soft(200, 4, 16)
    d = 1 - generalized_rand_index(P, Q, dtype="float64")
    D = concept_pair_distances(P, Q)
    for perm in itertools.permutations(range(4)):
        assert d <= D[np.arange(4), perm].sum() + 1e-12


def _shared_concept_pair(n=400, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    g1, g2, g3 = (rng.integers(0, 2, n) for _ in range(3))

    def col(g):
        return np.clip(0.45 * g + noise * rng.random(n), 0, 0.5)

    pa, pb = col(g1), col(g2)  # P: concept A (shared), concept B (own)
    qa, qc = col(g1), col(g3)  # Q: concept A (shared), concept C (own)
    P = np.stack([pa, pb, 1 - pa - pb], axis=1)
    Q = np.stack([qc, 1 - qa - qc, qa], axis=1)  # the shared concept is Q's column 2
    return P, Q


def test_matching_finds_the_shared_concept():
    P, Q = _shared_concept_pair()
    D = concept_pair_distances(P, Q)
    assert np.unravel_index(D.argmin(), D.shape) == (0, 2)
    m = match_concepts(D, threshold=0.05)
    first = m.pairs.iloc[0]
    assert (first.concept_a, first.concept_b) == (0, 2)
    assert first.universal
    assert 1 in m.unique_a and 0 in m.unique_b  # concept B and concept C are unique
    assert 0 not in m.unique_a and 2 not in m.unique_b


def test_match_concepts_hand_built():
    D = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.05]])
    m = match_concepts(D, threshold=0.15)
    pairs = set(zip(m.pairs.concept_a, m.pairs.concept_b, strict=True))
    assert pairs == {(0, 1), (1, 2)}
    assert list(m.pairs.distance) == [0.05, 0.1]
    assert m.pairs.universal.all()
    np.testing.assert_array_equal(m.unique_b, [0])  # unmatched
    m = match_concepts(D, threshold=0.07)
    np.testing.assert_array_equal(m.unique_a, [0])
    np.testing.assert_array_equal(m.unique_b, [0, 1])
    with pytest.raises(ValueError, match="finite"):
        match_concepts(np.array([[np.nan]]), threshold=0.1)


# ----------------------------------------------------------------------------- sanity score


def test_sanity_score_hand_built():
    G = np.array(
        [
            [1.0, 0.9, 0.5, 0.2],
            [0.9, 1.0, 0.8, 0.3],
            [0.5, 0.8, 1.0, 0.4],
            [0.2, 0.3, 0.4, 1.0],
        ]
    )
    assert sanity_score(G) == 1.0
    G[0, 3] = G[3, 0] = 0.6  # layer 3's best partner is now layer 0
    assert sanity_score(G) == 0.75
    assert sanity_score(G, k=3) == 1.0
    # layer 3 sits at depth 5: its best partner (depth 0) and layer 2's (depth 1) still count
    assert sanity_score(G, positions=[0, 1, 2, 5]) == 0.75
    with pytest.raises(ValueError, match="NaN"):
        sanity_score(np.array([[1, np.nan], [np.nan, 1]]))
    with pytest.raises(ValueError, match="square"):
        sanity_score(np.ones((2, 3)))


# ----------------------------------------------------------------------------- baselines


def test_kmeans_concepts_scores_and_determinism():
    X, y = make_blobs(200, centers=4, n_features=6, cluster_std=0.5, random_state=0)
    r = kmeans_concepts(X, 4, seed=0)
    assert r.n_concepts == 4 and r.noise_ratio == 0.0 and r.method == "kmeans"
    assert rand_score(y, r.labels) == 1.0
    mu = np.stack([X[r.labels == c].mean(0) for c in range(4)])
    s = 1 / (np.linalg.norm(X[:, None] - mu[None], axis=2) + 1e-6)
    np.testing.assert_allclose(r.memberships, s / s.sum(1, keepdims=True), atol=1e-12)
    r2 = kmeans_concepts(X, 4, seed=0)
    np.testing.assert_array_equal(r.memberships, r2.memberships)
    with pytest.raises(ValueError, match="n_concepts"):
        kmeans_concepts(X, 1)
    with pytest.raises(ValueError, match="NaN"):
        kmeans_concepts(np.full((5, 2), np.nan), 2)


def test_pca_concepts_against_eigh_reference():
    X, _ = make_blobs(150, centers=3, n_features=8, random_state=1)
    X = X + 3.0
    r = pca_concepts(X, 3)
    # independent reference: eigenvectors of the covariance, sign rule on the scores
    Xc = X - X.mean(0)
    w, V = np.linalg.eigh(Xc.T @ Xc)
    V = V[:, np.argsort(w)[::-1][:3]]
    scores = Xc @ V
    V = V * np.sign(scores[np.abs(scores).argmax(0), np.arange(3)])
    cos = np.clip(X @ V / np.linalg.norm(X, axis=1, keepdims=True), 0, 1)
    ok = cos.sum(1) > 0
    np.testing.assert_allclose(r.memberships[ok], cos[ok] / cos[ok].sum(1, keepdims=True), 1e-8)
    np.testing.assert_allclose(r.memberships[~ok], 1 / 3)
    assert r.noise_ratio == pytest.approx(np.mean(~ok))
    # same subspace as sklearn's PCA (up to sign)
    comp = PCA(3).fit(X).components_
    np.testing.assert_allclose(np.abs(V.T @ comp.T), np.eye(3), atol=1e-8)
    assert pca_concepts(X, 20).n_concepts == 8  # capped at the width, as in the reference


def test_pca_concepts_rows_without_positive_cosine_are_uniform():
    X = np.array([[2.0, 0.0], [1.0, 0.1], [-1.0, 0.0], [0.0, 0.0], [3.0, -0.2]])
    r = pca_concepts(X, 2)
    assert np.allclose(r.memberships.sum(1), 1)
    assert (r.labels == -1).sum() == round(r.noise_ratio * 5)
    assert r.noise_ratio > 0  # the zero row has no positive cosine
    np.testing.assert_allclose(r.memberships[3], [0.5, 0.5])


# ----------------------------------------------------------------------------- NLMCD discovery

UMAP_SMALL = {
    "n_components": 5,
    "n_neighbors": 15,
    "min_dist": 0.01,
    "min_cluster_size": 30,
    "min_samples": 10,
}


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(400, centers=4, n_features=16, cluster_std=1.0, random_state=3)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def blob_concepts(blobs):
    X, _ = blobs
    raw = discover_concepts(X, seed=0, renormalize=False, **UMAP_SMALL)
    return discover_concepts(X, seed=0, **UMAP_SMALL), raw


def test_discover_concepts_finds_blobs(blobs, blob_concepts):
    y = blobs[1]
    r, raw = blob_concepts
    assert r.n_concepts == 4 and r.method == "manifold"
    assert r.memberships.shape == (400, 4)
    assert (r.memberships >= 0).all()
    np.testing.assert_allclose(r.memberships.sum(1), 1.0, atol=1e-12)
    assert r.noise_ratio == pytest.approx(np.mean(r.labels == -1))
    assert generalized_rand_index(r.memberships, one_hot(y)) > 0.97
    keep = r.labels >= 0
    assert rand_score(y[keep], r.labels[keep]) == 1.0
    # seeded determinism, bit for bit (a second UMAP + HDBSCAN run, kept raw)
    np.testing.assert_array_equal(r.labels, raw.labels)
    np.testing.assert_array_equal(r.memberships, raw.memberships / raw.memberships.sum(1)[:, None])
    # the reference code's raw membership_vector rows sum to P(in some cluster) <= 1
    assert (raw.memberships.sum(1) <= 1 + 1e-9).all() and raw.memberships.sum(1).min() < 0.99


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_components": 99}, "n_components"),
        ({"n_neighbors": 100}, "n_neighbors"),
        ({"min_cluster_size": 51}, "min_cluster_size"),
        ({"min_samples": 0}, "min_samples"),
        ({"selection": "best"}, "selection"),
    ],
)
def test_discover_concepts_size_errors(kw, match):
    X = np.random.default_rng(0).normal(size=(100, 5))
    with pytest.raises(ValueError, match=match):
        discover_concepts(X, **{**UMAP_SMALL, **kw})


def test_discover_concepts_too_few_concepts():
    X = np.random.default_rng(0).normal(size=(120, 4))
    with pytest.raises(TooFewConceptsError, match="concept") as err:
        discover_concepts(X, n_components=3, n_neighbors=10, min_cluster_size=60, min_samples=30)
    assert err.value.n_found in (0, 1)


# ----------------------------------------------------------------------------- tables


def test_concepts_table_structure_and_values(blobs):
    X, y = blobs
    rng = np.random.default_rng(0)
    feats = {
        "0": X + rng.normal(0, 4.0, X.shape).astype(np.float32),
        "1": X,
        "final": X[:, ::-1].copy(),
    }
    rows, mem = concepts_table(feats, y, max_samples=240, seed=1, **UMAP_SMALL)
    assert {"layer", "layer_b", "metric", "variant", "value", "n_samples", "seed"} <= set(rows)
    assert set(rows.metric) == {
        "n_concepts",
        "noise_ratio",
        "concept_failed",
        "gri_layers",
        "gri_labels",
        "concept_sanity",
    }
    assert set(rows.variant) == {"manifold", "kmeans", "pca"}
    assert (rows.n_samples == 240).all()
    nc = rows.query("metric == 'n_concepts'")
    nc = nc.pivot(index="layer", columns="variant", values="value")
    assert (nc.manifold == nc.kmeans).all()  # baselines use NLMCD's C
    assert nc.loc["1", "manifold"] == 4
    lab = rows.query("metric == 'gri_labels' and variant == 'manifold'").set_index("layer").value
    assert lab["1"] > 0.95
    g = rows.query("metric == 'gri_layers' and variant == 'kmeans'")
    G = g.pivot(index="layer", columns="layer_b", values="value")
    np.testing.assert_allclose(G.values, G.values.T)
    np.testing.assert_allclose(np.diag(G.values), 1.0)
    s = rows.query("metric == 'concept_sanity'")
    assert len(s) == 3 and s.value.between(0, 1).all() and (s.layer == "all").all()
    # memberships hold the sampled rows, consistent with the table
    r = mem["manifold"]["1"]
    assert r.memberships.shape[0] == 240 and r.sample_index.shape == (240,)
    ref = generalized_rand_index(r.memberships, one_hot(y[r.sample_index]))
    assert ref == pytest.approx(lab["1"])

    cross = cross_model_gri(mem, mem, model_b="same")
    assert set(cross.metric) == {"gri_models"} and (cross.model_b == "same").all()
    assert len(cross) == 3 * 3 * 3
    same = cross.query("layer == layer_b")
    np.testing.assert_allclose(same.value, 1.0, atol=1e-6)

    other = {m: {k: cm.ConceptResult(**v.__dict__) for k, v in d.items()} for m, d in mem.items()}
    other["pca"]["0"].sample_index = np.arange(240)
    with pytest.raises(ValueError, match="different samples"):
        cross_model_gri(mem, other)


def test_concepts_table_records_failed_layers(monkeypatch):
    X, y = make_blobs(120, centers=3, n_features=5, random_state=0)
    calls = []

    def fake(X, **kw):
        calls.append(kw)
        if len(calls) == 2:
            raise TooFewConceptsError("only one concept", n_found=1, noise_ratio=0.5)
        return cm.ConceptResult(
            memberships=one_hot(np.arange(len(X)) % 3),
            labels=np.arange(len(X)) % 3,
            n_concepts=3,
            noise_ratio=0.0,
            method="manifold",
        )

    monkeypatch.setattr(cm, "discover_concepts", fake)
    feats = {str(i): X + i for i in range(4)}
    rows, mem = concepts_table(feats, y, methods=("manifold", "pca"), **UMAP_SMALL)
    failed = rows.query("metric == 'concept_failed' and value == 1")
    assert set(failed.layer) == {"1"} and set(failed.variant) == {"manifold", "pca"}
    assert "1" not in mem["manifold"] and "1" not in mem["pca"]
    assert rows.query("metric == 'n_concepts' and layer == '1'").value.tolist() == [1.0]
    assert (
        not rows.query("metric == 'gri_layers'")
        .pipe(lambda d: (d.layer == "1") | (d.layer_b == "1"))
        .any()
    )


def test_concepts_table_errors():
    X = np.zeros((10, 3))
    y = np.zeros(10, int)
    with pytest.raises(ValueError, match="unknown methods"):
        concepts_table({"0": X}, y, methods=("umap",))
    with pytest.raises(ValueError, match="n_concepts"):
        concepts_table({"0": X}, y, methods=("kmeans",))
    with pytest.raises(ValueError, match="do not match"):
        concepts_table({"0": X}, y[:5], methods=("kmeans",), n_concepts=2)
    with pytest.raises(ValueError, match="empty"):
        concepts_table({}, y)


# ----------------------------------------------------------------------------- pipeline steps


def test_sampled_concepts_table_maps_rows_back_to_the_feature_file(blobs):
    X, y = blobs
    split = np.where(np.arange(len(y)) % 3 == 0, "test", "train")
    params = {"split": "train", "max_samples": 90, "methods": ("kmeans",), "n_concepts": 3}
    rows, mem = cm.sampled_concepts_table({"0": X}, y, split, params=params, seed=4)
    idx = select_samples(y, split, "train", 90, 4)
    direct_rows, direct = cm.concepts_table({"0": X[idx]}, y[idx], methods=("kmeans",),
                                            n_concepts=3, seed=4)  # fmt: skip
    assert rows.equals(direct_rows)
    got, want = mem["kmeans"]["0"], direct["kmeans"]["0"]
    np.testing.assert_array_equal(got.memberships, want.memberships)
    np.testing.assert_array_equal(got.sample_index, idx)  # rows of the full file
    assert set(split[got.sample_index]) == {"train"}
    assert params["split"] == "train"  # the caller's section is not modified


def test_cross_model_gri_table_all_ordered_pairs_on_the_chosen_layers(blobs):
    X, y = blobs
    params = {"split": "all", "max_samples": None, "methods": ("kmeans",), "n_concepts": 3}
    feats = {"0": X, "1": X[:, ::-1].copy()}
    split = np.full(len(y), "train")
    mem = {m: cm.sampled_concepts_table(feats, y, split, params=params, seed=s)[1]
           for m, s in (("a", 0), ("b", 1))}  # fmt: skip
    table = cm.cross_model_gri_table(mem, ["1"], seed=0)
    assert table.columns[0] == "model" and "model_b" in table
    assert set(zip(table.model, table.model_b, strict=True)) == {
        ("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")
    }  # fmt: skip
    assert set(table.layer) == set(table.layer_b) == {"1"}
    same = table.query("model == 'a' and model_b == 'b'").reset_index(drop=True)
    direct = cm.cross_model_gri(
        {"kmeans": {"1": mem["a"]["kmeans"]["1"]}},
        {"kmeans": {"1": mem["b"]["kmeans"]["1"]}},
        model_b="b",
    )
    np.testing.assert_array_equal(same["value"].to_numpy(), direct["value"].to_numpy())


def test_umap_distances_are_sklearns_bit_for_bit():
    """The numba all-pairs loop that replaces sklearn's per-pair loop in UMAP's small-data path
    returns the same float32 matrix, bit for bit (odd widths, duplicates, a zero row)."""
    from sklearn.metrics import pairwise_distances

    kernel, euclidean = cm._umap_pairwise()
    rng = np.random.default_rng(0)
    for n, d in ((50, 1), (97, 33), (120, 64)):
        X = (rng.standard_normal((n, d)) * rng.uniform(0.1, 50.0)).astype(np.float32)
        X[1] = X[0]
        X[2] = 0.0
        ref = pairwise_distances(X, metric=euclidean)
        got = kernel(X)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_discover_concepts_speed_ups_change_nothing(blobs, monkeypatch):
    """Same memberships without the fast distances (sklearn's loop), and UMAP's kernels cache
    on disk except the parallel SGD epoch (it shares the serial one's cache entries)."""
    from umap import layouts

    X, _ = blobs
    fast = discover_concepts(X, seed=0, **UMAP_SMALL)
    monkeypatch.setattr(cm, "_fast_umap_distances", contextlib.nullcontext)
    slow = discover_concepts(X, seed=0, **UMAP_SMALL)
    np.testing.assert_array_equal(fast.labels, slow.labels)
    np.testing.assert_array_equal(fast.memberships, slow.memberships)
    null = type(layouts._nb_optimize_layout_euclidean_single_epoch_parallel._cache)
    assert type(layouts._nb_optimize_layout_euclidean_single_epoch._cache) is not null


def test_discover_concepts_is_the_same_with_one_and_two_threads():
    """UMAP + HDBSCAN memberships do not depend on BLAS, numba or torch thread counts.

    Overlapping classes, so that rounding differences would move points between concepts.
    """
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    X, _ = make_blobs(300, centers=4, n_features=24, cluster_std=4.0, random_state=7)
    X = X.astype(np.float32)
    runs = []
    numba_before, torch_before = numba.get_num_threads(), torch.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            torch.set_num_threads(threads)
            with threadpool_limits(threads):
                runs.append(discover_concepts(X, seed=0, **UMAP_SMALL))
    finally:
        numba.set_num_threads(numba_before)
        torch.set_num_threads(torch_before)
    one, two = runs
    assert one.n_concepts >= 2
    np.testing.assert_array_equal(one.labels, two.labels)
    np.testing.assert_array_equal(one.memberships, two.memberships)


_PORTABLE_RUN = """
import sys, numpy as np
from sklearn.datasets import make_blobs
from repaudit.metrics.concepts import discover_concepts
X, _ = make_blobs(300, centers=4, n_features=24, cluster_std=4.0, random_state=7)
r = discover_concepts(X.astype(np.float32), seed=0, n_components=5, n_neighbors=15,
                      min_dist=0.01, min_cluster_size=20, min_samples=5, selection="leaf")
np.save(sys.argv[1], r.memberships)
"""


def test_concepts_are_the_same_under_another_blas_kernel_and_thread_count(tmp_path):
    """What differs between two machines, short of the CPU itself: the BLAS kernel OpenBLAS
    picks for the CPU and the thread counts. Importing repaudit pins numba to portable
    x86-64 code (host-specific code gave 4 concepts here where portable code gives 5)."""
    import os
    import subprocess
    import sys

    runs = []
    for i, (kernel, threads) in enumerate((("Prescott", "1"), ("Sandybridge", "2"))):
        env = {
            **os.environ,
            "OPENBLAS_CORETYPE": kernel,
            "OMP_NUM_THREADS": threads,
            "NUMBA_NUM_THREADS": threads,
        }
        env.pop("NUMBA_CPU_NAME", None)  # the library's own default
        out = tmp_path / f"run{i}.npy"
        subprocess.run([sys.executable, "-c", _PORTABLE_RUN, str(out)], env=env, check=True)
        runs.append(np.load(out))
    assert runs[0].shape[1] >= 2
    np.testing.assert_array_equal(runs[0], runs[1])
