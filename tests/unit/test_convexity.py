"""Tests for repaudit.metrics.convexity (Tětková et al., arXiv 2305.17154)."""

import itertools
import math

import numba
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import dijkstra
from scipy.spatial.distance import cdist

from repaudit.metrics import _knn
from repaudit.metrics.convexity import (
    ConvexityResult,
    _knn_lists_torch,
    _path_scores,
    _shortest_path_trees,
    convexity_table,
    euclidean_convexity,
    euclidean_convexity_rows,
    graph_convexity,
    interpolation_weights,
    knn_graph,
    permutation_chance,
    sample_pairs,
)

# --------------------------------------------------------------------------------------------
# slow, obviously-correct reference (dense distances, explicit kNN, one Dijkstra per pair)


def reference_graph(X, k):
    """Dense W of the paper's code: k+1 smallest per row (stable), keep d > 0, W = max(W, Wᵀ)."""
    d = cdist(X, X, "euclidean")
    n = len(X)
    W = np.zeros((n, n))
    for i in range(n):
        for j in np.argsort(d[i], kind="stable")[: k + 1]:
            if d[i, j] > 0:
                W[j, i] = d[i, j]
    return np.maximum(W, W.T)


def reference_graph_convexity(X, y, k):
    """Class scores (%) over ALL ordered pairs, one single-source Dijkstra per pair."""
    G = sp.csr_matrix(reference_graph(X, k))
    scores = {}
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        per_path = []
        for a, b in itertools.permutations(members, 2):
            dist, pred = dijkstra(G, directed=False, indices=a, return_predecessors=True)
            if not np.isfinite(dist[b]):
                per_path.append(0.0)
                continue
            path = [b]
            while path[-1] != a:
                path.append(pred[path[-1]])
            interior = path[1:-1]
            per_path.append(1.0 if not interior else np.mean([y[v] == c for v in interior]))
        scores[int(c)] = 100 * np.mean(per_path)
    return scores


def _blobs(n_per_class, centers, scale, rng):
    X = np.concatenate([c + scale * rng.normal(size=(n_per_class, len(c))) for c in centers])
    y = np.repeat(np.arange(len(centers)), n_per_class)
    return X, y


# --------------------------------------------------------------------------------------------
# graph convexity vs references


@pytest.mark.parametrize("seed", [0, 1])
def test_graph_convexity_equals_slow_reference(seed):
    rng = np.random.default_rng(seed)
    X, y = _blobs(15, rng.normal(size=(3, 4)), 1.0, rng)  # overlapping, continuous
    ref = reference_graph_convexity(X, y, k=4)
    res = graph_convexity(X, y, k=4, max_paths=10_000, seed=seed)
    assert res.n_paths == {c: 15 * 14 for c in range(3)}
    assert res.class_scores.keys() == ref.keys()
    for c in ref:
        assert res.class_scores[c] == pytest.approx(ref[c], abs=1e-9)
    assert res.score == pytest.approx(np.mean(list(ref.values())), abs=1e-9)
    assert 0 < min(ref.values()) < 100  # the case is not trivial


def test_knn_graph_matches_reference_with_duplicates_and_ties():
    rng = np.random.default_rng(3)
    X = rng.integers(0, 3, size=(40, 2)).astype(float)  # many exact duplicates and distance ties
    for k in (1, 3, 10):
        G = knn_graph(X, k=k).toarray()
        np.testing.assert_array_equal(G, reference_graph(X, k))


@pytest.mark.parametrize("case", ["offset", "outlier", "two_far_clusters"])
def test_knn_graph_exact_when_gram_expansion_is_inaccurate(case):
    # A huge common offset (removed by centring), one far outlier (inflates every row's rounding
    # bound) or two far clusters (the Gram expansion really misorders neighbours; rows are
    # re-ranked exactly) must not change the graph.
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 5))
    if case == "offset":
        X += 1e7
    elif case == "outlier":
        X[0] = 1e8
    else:
        X[:30, 0] += 1e8
        X[30:, 0] -= 1e8
    X[5] = X[6]  # a duplicate as well
    G, W = knn_graph(X, k=5).toarray(), reference_graph(X, 5)
    np.testing.assert_array_equal(G > 0, W > 0)  # the same neighbours
    np.testing.assert_allclose(G, W, rtol=1e-12)  # distances up to summation order


def test_point_with_duplicates_gets_fewer_than_k_neighbours():
    X = np.array([[0.0], [0.0], [0.0], [1.0], [2.0], [3.0]])
    G = knn_graph(X, k=2)
    # Points 0-2: their 3 nearest are 0, 1, 2 (all at distance 0), so they pick no neighbour.
    # Point 3 (x = 1) picks itself, then 0 and 1 among the ties at distance 1 (smaller index).
    W = reference_graph(X, 2)
    np.testing.assert_array_equal(G.toarray(), W)
    assert W[0, 3] == W[1, 3] == 1.0
    assert np.count_nonzero(W[0]) == 1 and W[2].sum() == 0


def test_cross_check_nnconvexity_all_pairs():
    graph_mod = pytest.importorskip("nnconvexity.graph")
    rng = np.random.default_rng(5)
    X, y = _blobs(12, rng.normal(size=(3, 6)) * 0.8, 1.0, rng)
    _, theirs = graph_mod.compute_graph_convexity(X, y, n_neighbors=5, max_n_paths=10_000)
    ours = graph_convexity(X, y, k=5, max_paths=10_000)
    for c in range(3):
        assert ours.class_scores[c] == pytest.approx(theirs[c], abs=0.006)  # they round to 2 dp


def test_cross_check_nnconvexity_sampled_within_sem():
    graph_mod = pytest.importorskip("nnconvexity.graph")
    rng = np.random.default_rng(6)
    X, y = _blobs(25, rng.normal(size=(2, 5)) * 0.3, 1.0, rng)
    np.random.seed(0)  # noqa: NPY002 -- nnconvexity samples with the global numpy RNG
    _, theirs = graph_mod.compute_graph_convexity(X, y, n_neighbors=5, max_n_paths=200)
    ours = graph_convexity(X, y, k=5, max_paths=200, seed=1)
    exact = graph_convexity(X, y, k=5, max_paths=10_000)
    for c in range(2):
        se_paths = np.std(ours.pair_scores[c], ddof=1) * 100 / math.sqrt(200)
        assert abs(ours.class_scores[c] - theirs[c]) < 4 * math.sqrt(2) * se_paths + 0.01
        assert abs(ours.class_scores[c] - exact.class_scores[c]) < 4 * se_paths
        assert 20 < exact.class_scores[c] < 95  # not a trivial case


# --------------------------------------------------------------------------------------------
# fast path (bidirectional search, float32 kNN) vs obvious references


def one_dijkstra_per_pair(G, y, c, a, b):
    """Pair scores with one full scipy Dijkstra per pair and a predecessor walk."""
    scores, connected = [], []
    for s, t in zip(a, b, strict=True):
        dist, pred = dijkstra(G, directed=False, indices=s, return_predecessors=True)
        connected.append(bool(np.isfinite(dist[t])))
        if not connected[-1]:
            scores.append(0.0)
            continue
        interior, v = [], pred[t]
        while v != s:
            interior.append(v)
            v = pred[v]
        scores.append(1.0 if not interior else float(np.mean(y[interior] == c)))
    return np.array(scores), np.array(connected)


def _random_graph(n, p, rng):
    """Symmetric graph with continuous weights (unique shortest paths), often disconnected."""
    W = sp.random(n, n, density=p, random_state=rng, data_rvs=lambda m: rng.uniform(0.1, 1.0, m))
    W = sp.triu(W, 1)
    return sp.csr_matrix(W + W.T)


@pytest.mark.parametrize("seed", range(6))
def test_bidirectional_search_equals_one_dijkstra_per_pair(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    G = _random_graph(n, float(rng.uniform(0.01, 0.08)), rng)
    y = rng.integers(0, 3, n)
    members = np.flatnonzero(y == 0)
    a, b = (np.array(v) for v in zip(*itertools.permutations(members, 2), strict=True))
    ours = _path_scores(G, y, 0, a, b)
    ref = one_dijkstra_per_pair(G, y, 0, a, b)
    np.testing.assert_array_equal(ours[1], ref[1])
    np.testing.assert_array_equal(ours[0], ref[0])
    # paths read from the shortest-path trees of every vertex (the permutation baseline's)
    tree = _path_scores(G, y, 0, a, b, _shortest_path_trees(G))
    np.testing.assert_array_equal(tree[1], ref[1])
    np.testing.assert_array_equal(tree[0], ref[0])
    assert 0 < ref[1].mean() < 1 or seed  # some seeds give disconnected pairs


def test_graph_convexity_equals_per_pair_dijkstra_on_sampled_knn_pairs():
    # The library's own sampled pairs on a kNN graph of overlapping classes, scored one full
    # Dijkstra at a time: the bidirectional search must give the same score for every pair.
    rng = np.random.default_rng(19)
    X, y = _blobs(400, rng.normal(size=(3, 16)) * 0.5, 1.0, rng)
    res = graph_convexity(X, y, k=6, max_paths=150, seed=4)
    G = knn_graph(X, k=6)
    pairs = sample_pairs(y, 150, ordered=True, seed=4)
    for c, (a, b) in pairs.items():
        ref, conn = one_dijkstra_per_pair(G, y, c, a, b)
        np.testing.assert_array_equal(res.pair_scores[c], ref)
        assert res.connected_fraction[c] == conn.mean()
        assert 0.3 < ref.mean() < 0.99 and (ref % 1 > 0).any()  # multi-hop, mixed paths


def test_pair_scores_do_not_depend_on_thread_count():
    rng = np.random.default_rng(20)
    X, y = _blobs(60, rng.normal(size=(3, 6)), 1.0, rng)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = graph_convexity(X, y, k=5, max_paths=500, seed=2)
        numba.set_num_threads(before)
        many = graph_convexity(X, y, k=5, max_paths=500, seed=2)
    finally:
        numba.set_num_threads(before)
    for c in one.pair_scores:
        np.testing.assert_array_equal(one.pair_scores[c], many.pair_scores[c])


def test_table_with_shared_trees_equals_per_pair_searches(monkeypatch):
    # The table keeps one set of shortest-path trees per layer for the score and every
    # permutation; without them (large graphs) each pair gets its own bidirectional search.
    rng = np.random.default_rng(21)
    X, y = _blobs(50, rng.normal(size=(3, 8)) * 0.5, 1.0, rng)
    feats = {"a": X, "b": X[:, :4]}
    shared = convexity_table(feats, y, k=5, max_paths=300, n_permutations=3, seed=1)
    chance = permutation_chance(X, y, k=5, max_paths=300, n_permutations=3, seed=1)
    with monkeypatch.context() as m:
        m.setattr("repaudit.metrics.convexity._TREES_MAX_N", 0)
        assert _shortest_path_trees(knn_graph(X, k=5)) is None
        searched = convexity_table(feats, y, k=5, max_paths=300, n_permutations=3, seed=1)
        assert permutation_chance(X, y, k=5, max_paths=300, n_permutations=3, seed=1) == chance
    pd.testing.assert_frame_equal(shared, searched)
    row = shared[(shared.layer == "a") & (shared.metric == "graph_convexity_chance")]
    assert row.value.item() == chance[0]


@pytest.mark.parametrize("case", ["gaussian", "duplicates", "offset"])
def test_exact_knn_tiles_equal_dense_reference(monkeypatch, case):
    # Small tiles so that the symmetric tile pass (rows and transposed columns) is exercised.
    monkeypatch.setattr(_knn, "_TILE", 16)
    rng = np.random.default_rng(21)
    X = rng.normal(size=(90, 7))
    if case == "duplicates":
        X = rng.integers(0, 3, size=(90, 3)).astype(float)
    elif case == "offset":
        X[:45, 0] += 1e6  # two far clusters: float32 misranks, rows are redone exactly
    for k in (1, 4, 12):
        G = knn_graph(X, k=k).toarray()
        W = reference_graph(X, k)
        np.testing.assert_array_equal(G > 0, W > 0)
        np.testing.assert_allclose(G, W, rtol=1e-12)
        assert (G == G.T).all()


def test_exact_knn_of_query_rows_and_torch_path_agree():
    rng = np.random.default_rng(22)
    X = rng.normal(size=(300, 5))
    idx, d2 = _knn.exact_knn(X, 6)
    rows = np.array([3, 50, 299])
    q_idx, q_d2 = _knn.exact_knn(X, 6, rows)
    np.testing.assert_array_equal(q_idx, idx[rows])
    np.testing.assert_array_equal(q_d2, d2[rows])
    _, j, w = _knn_lists_torch(X, 6, "cpu")  # the path for GPU devices
    np.testing.assert_array_equal(j.reshape(300, -1), idx[:, 1:])
    np.testing.assert_allclose(w.reshape(300, -1), np.sqrt(d2[:, 1:]), rtol=1e-12)


def test_approximate_knn_records_mode_and_recall():
    rng = np.random.default_rng(23)
    X, y = _blobs(100, rng.normal(size=(3, 8)), 1.0, rng)
    exact = graph_convexity(X, y, k=5, max_paths=300, seed=0)
    approx = graph_convexity(X, y, k=5, max_paths=300, seed=0, knn="approximate")
    again = graph_convexity(X, y, k=5, max_paths=300, seed=0, knn="approximate")
    assert exact.knn == "exact" and math.isnan(exact.knn_recall)
    assert approx.knn == "approximate" and 0.8 <= approx.knn_recall <= 1.0
    assert approx.class_scores == again.class_scores and approx.knn_recall == again.knn_recall
    assert abs(approx.score - exact.score) < 5
    # Recall is measured against exact neighbours: exact lists have recall 1.
    idx, d2 = _knn.exact_knn(X, 5)
    assert _knn.knn_recall(X, 5, idx, d2, 50, seed=0) == 1.0
    # A list missing one of the 5 neighbours of every point has recall 4/5.
    wrong = idx.copy()
    wrong[:, 1] = (np.arange(len(X)) + 150) % len(X)
    d2w = np.where(wrong == np.arange(len(X))[:, None], 0.0, 1.0)
    assert _knn.knn_recall(X, 5, wrong, d2w, 300, seed=0) == pytest.approx(0.8, abs=0.02)
    df = convexity_table({"1": X}, y, k=5, max_paths=50, n_permutations=0, knn="approximate")
    assert (df.knn == "approximate").all() and df.knn_recall.between(0.8, 1.0).all()
    with pytest.raises(ValueError, match="knn must be"):
        graph_convexity(X, y, knn="hnsw")


# --------------------------------------------------------------------------------------------
# hand-built cases


def test_separated_blobs_score_100():
    rng = np.random.default_rng(7)
    X, y = _blobs(20, np.eye(4) * 100, 1.0, rng)
    res = graph_convexity(X, y, k=5, max_paths=100, seed=0)
    assert res.score == 100.0
    assert all(v == 100.0 for v in res.class_scores.values())
    assert res.connected_overall == 1.0


def test_separated_blobs_disconnected_pairs_score_zero():
    # Two far clusters of the same class: cross-cluster pairs have no path (score 0).
    rng = np.random.default_rng(8)
    X = np.concatenate([rng.normal(size=(10, 3)), 100 + rng.normal(size=(10, 3))])
    y = np.zeros(20, dtype=int)
    res = graph_convexity(X, y, k=3, max_paths=10_000)
    assert res.connected_fraction[0] == pytest.approx(2 * 10 * 9 / (20 * 19))
    assert res.class_scores[0] == pytest.approx(100 * 2 * 10 * 9 / (20 * 19))


def test_shuffled_labels_near_permutation_chance():
    rng = np.random.default_rng(9)
    X, y = _blobs(40, np.eye(5) * 50, 1.0, rng)  # perfectly convex with true labels
    y_shuffled = rng.permutation(y)
    score = graph_convexity(X, y_shuffled, k=10, max_paths=500, seed=0).score
    mean, sd = permutation_chance(X, y, k=10, max_paths=500, n_permutations=6, seed=1)
    assert graph_convexity(X, y, k=10, max_paths=500).score == 100.0
    assert sd > 0
    assert abs(score - mean) < 4 * sd + 1.0
    assert mean < 40  # chance is far below the true score


def test_chance_level_random_gaussian_matches_spec():
    # Spec §1.6.6 [computed]: random Gaussian, 10 random classes x 50 points, 64-d, k = 10: 11.1 %.
    rng = np.random.default_rng(10)
    X = rng.normal(size=(500, 64))
    y = rng.permutation(np.repeat(np.arange(10), 50))
    mean, _ = permutation_chance(X, y, k=10, max_paths=2450, n_permutations=2, seed=0)
    assert 8.0 < mean < 14.5


def test_u_shaped_class_less_convex_than_blob():
    rng = np.random.default_rng(11)
    t = rng.uniform(np.pi, 2 * np.pi, 120)
    arc = np.c_[np.cos(t), np.sin(t)] * 2.0
    arms = np.concatenate(
        [np.c_[np.full(40, s * 2.0), rng.uniform(0, 3, 40)] for s in (-1.0, 1.0)], axis=0
    )
    u = np.concatenate([arc, arms]) + 0.03 * rng.normal(size=(200, 2))
    inside = np.c_[rng.uniform(-1.6, 1.6, 200), rng.uniform(-1.0, 3.0, 200)]
    inside = inside[np.hypot(inside[:, 0], np.minimum(inside[:, 1], 0)) < 1.6]
    X = np.concatenate([u, inside])
    y = np.r_[np.zeros(len(u), int), np.ones(len(inside), int)]
    res = graph_convexity(X, y, k=8, max_paths=2000, seed=0)
    assert res.class_scores[0] < res.class_scores[1] - 10
    assert res.class_scores[1] > 90


# --------------------------------------------------------------------------------------------
# statistics, invariances, determinism, degeneracy


def test_sem_and_aggregates_follow_the_paper():
    rng = np.random.default_rng(12)
    X, y = _blobs(20, rng.normal(size=(3, 4)), 1.0, rng)
    y = np.where(np.arange(len(y)) < 5, 7, y)  # unequal class sizes, labels not 0..C-1
    res = graph_convexity(X, y, k=4, max_paths=50, seed=3)
    assert set(res.class_scores) == {0, 1, 2, 7}
    for c, s in res.pair_scores.items():
        n_c = int((y == c).sum())
        assert res.n_paths[c] == min(50, n_c * (n_c - 1)) == s.size
        assert res.sem[c] == pytest.approx(100 * np.std(s, ddof=1) / math.sqrt(n_c))
        assert res.class_scores[c] == pytest.approx(100 * s.mean())
    assert res.score == pytest.approx(np.mean(list(res.class_scores.values())))
    assert res.sem_mean == pytest.approx(np.mean(list(res.sem.values())))


def test_invariant_to_sample_order_rotation_and_translation():
    rng = np.random.default_rng(13)
    X, y = _blobs(12, rng.normal(size=(3, 5)), 1.0, rng)
    base = graph_convexity(X, y, k=4, max_paths=10_000).class_scores
    perm = rng.permutation(len(y))
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    moved = graph_convexity(X[perm] @ Q + 3.0, y[perm], k=4, max_paths=10_000).class_scores
    for c in base:
        assert moved[c] == pytest.approx(base[c], abs=1e-9)


def test_same_seed_bit_identical_other_seed_differs():
    rng = np.random.default_rng(14)
    X, y = _blobs(30, rng.normal(size=(3, 4)), 1.0, rng)
    r1 = graph_convexity(X, y, k=5, max_paths=100, seed=5)
    r2 = graph_convexity(X, y, k=5, max_paths=100, seed=5)
    r3 = graph_convexity(X, y, k=5, max_paths=100, seed=6)
    assert r1.class_scores == r2.class_scores and r1.sem == r2.sem
    assert r1.class_scores != r3.class_scores


def test_identical_features_are_undefined_not_zero():
    X = np.ones((10, 4))
    y = np.repeat([0, 1], 5)
    res = graph_convexity(X, y)
    assert isinstance(res, ConvexityResult)
    assert math.isnan(res.score) and not res.defined and "identical" in res.note
    assert all(math.isnan(v) for v in res.class_scores.values())
    assert math.isnan(permutation_chance(X, y, n_permutations=2)[0])


# --------------------------------------------------------------------------------------------
# pair sampling


@pytest.mark.parametrize("ordered", [True, False])
def test_sample_pairs_all_pairs_in_enumeration_order(ordered):
    y = np.array([2, 0, 2, 2, 0, 2, 1, 1, 2])
    pairs = sample_pairs(y, max_pairs=1000, ordered=ordered, seed=0)
    enum = itertools.permutations if ordered else itertools.combinations
    for c, (a, b) in pairs.items():
        expected = list(enum(np.flatnonzero(y == c).tolist(), 2))
        assert list(zip(a.tolist(), b.tolist(), strict=True)) == expected


@pytest.mark.parametrize("ordered", [True, False])
def test_sample_pairs_without_replacement(ordered):
    y = np.repeat([0, 1, 5], [30, 12, 3])
    pairs = sample_pairs(y, max_pairs=100, ordered=ordered, seed=1)
    for c, (a, b) in pairs.items():
        n = int((y == c).sum())
        total = n * (n - 1) // (1 if ordered else 2)
        assert a.size == min(100, total)
        assert (y[a] == c).all() and (y[b] == c).all() and (a != b).all()
        if not ordered:
            assert (a < b).all()
        assert len(set(zip(a.tolist(), b.tolist(), strict=True))) == a.size
    again = sample_pairs(y, max_pairs=100, ordered=ordered, seed=1)
    assert all(np.array_equal(pairs[c][0], again[c][0]) for c in pairs)


def test_sample_pairs_is_uniform():
    y = np.zeros(5, dtype=int)
    counts = np.zeros((5, 5))
    for s in range(400):
        a, b = sample_pairs(y, max_pairs=3, ordered=True, seed=s)[0]
        np.add.at(counts, (a, b), 1)
    off = counts[~np.eye(5, dtype=bool)]
    assert off.sum() == 1200 and np.diag(counts).sum() == 0
    assert off.min() > 35 and off.max() < 85  # expected 60 each


# --------------------------------------------------------------------------------------------
# Euclidean convexity


def test_interpolation_grid_is_k_over_n_plus_1():
    seen = []

    def predict(z):
        seen.append(z.clone())
        return torch.zeros(len(z), dtype=torch.long)

    hidden = torch.tensor([[1.0], [0.0]], dtype=torch.float64)  # pair (0, 1): z_k = λ_k
    res = euclidean_convexity(hidden, [0, 0], predict, n_points=10)
    z = torch.cat(seen).flatten().numpy()
    expected = np.arange(1, 11) / 11
    np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(interpolation_weights(10), expected)
    assert res.class_scores == {0: 100.0} and res.n_paths == {0: 1}
    assert math.isnan(res.sem[0])  # one pair: no spread


def test_euclidean_linear_predictor_gives_100():
    rng = np.random.default_rng(15)
    w = torch.tensor(rng.normal(size=6))
    pts = rng.normal(size=(200, 3, 2))
    proj = pts.reshape(200, -1) @ w.numpy()
    keep = np.abs(proj) > 0.1
    hidden = torch.tensor(pts[keep])
    y = (proj[keep] > 0).astype(int)

    def predict(z):
        return (z.reshape(len(z), -1) @ w > 0).long()

    res = euclidean_convexity(hidden, y, predict, n_points=10, max_pairs=300, seed=0)
    assert res.class_scores == {0: 100.0, 1: 100.0} and res.score == 100.0
    assert res.n_paths == {0: 300, 1: 300}


def test_euclidean_annulus_pair_across_hole():
    def predict(z):
        r = torch.linalg.norm(z, dim=1)
        return np.where((r >= 1.0) & (r <= 2.0), 1, 0)

    # |z_k| = 1.5 |2λ_k − 1| ≥ 1 only for k = 1 and k = 10: pair score 2/10.
    hidden = torch.tensor([[1.5, 0.0], [-1.5, 0.0], [0.1, 0.0], [0.0, 0.2]], dtype=torch.float64)
    res = euclidean_convexity(hidden, [1, 1, 0, 0], predict, n_points=10)
    assert res.pair_scores[1].tolist() == [pytest.approx(0.2)]
    assert res.class_scores[1] == pytest.approx(20.0)
    assert res.class_scores[0] == 100.0


def test_euclidean_annulus_many_pairs_below_100_and_batching_invariant():
    rng = np.random.default_rng(16)
    theta = rng.uniform(0, 2 * np.pi, 60)
    ring = np.c_[np.cos(theta), np.sin(theta)] * rng.uniform(1.2, 1.8, (60, 1))
    disc = rng.uniform(-0.5, 0.5, (20, 2))
    hidden = torch.tensor(np.concatenate([ring, disc]), dtype=torch.float32)
    y = np.r_[np.ones(60, int), np.zeros(20, int)]

    def predict(z):
        r = torch.linalg.norm(z, dim=1)
        return ((r >= 1.0) & (r <= 2.0)).long()

    r1 = euclidean_convexity(hidden, y, predict, max_pairs=500, seed=2, batch_size=256)
    r2 = euclidean_convexity(hidden, y, predict, max_pairs=500, seed=2, batch_size=7)
    assert r1.class_scores == r2.class_scores
    assert 30 < r1.class_scores[1] < 95
    assert r1.class_scores[0] == 100.0


def test_euclidean_rows_table():
    hidden = torch.tensor(np.random.default_rng(0).normal(size=(8, 2)))
    res = euclidean_convexity(hidden, np.repeat([0, 1], 4), lambda z: np.zeros(len(z), int))
    df = euclidean_convexity_rows(res, "5", n_points=10, max_pairs=5000, seed=0)
    assert set(df.metric) == {"euclidean_convexity", "euclidean_convexity_sem"}
    row = df[(df.metric == "euclidean_convexity") & (df["class"] == "all")].iloc[0]
    assert row.value == 50.0 and row.n_paths == 12 and row.n_samples == 8 and row.layer == "5"
    assert df[(df.metric == "euclidean_convexity") & (df["class"] == "1")].value.item() == 0.0


# --------------------------------------------------------------------------------------------
# table


def test_convexity_table():
    rng = np.random.default_rng(17)
    X, y = _blobs(15, np.eye(3) * 30, 1.0, rng)
    feats = {"0": np.ones_like(X, dtype=np.float32), "1": X.astype(np.float32)}
    df = convexity_table(feats, y, k=4, max_paths=50, n_permutations=3, seed=0)
    for col in ("layer", "metric", "variant", "value", "class", "k", "max_paths", "n_samples"):
        assert col in df.columns
    assert set(df.metric) == {
        "graph_convexity",
        "graph_convexity_sem",
        "graph_convexity_connected",
        "graph_convexity_chance",
        "graph_convexity_chance_std",
    }
    assert (df.variant == "").all() and set(df.layer) == {"0", "1"}
    gc = df[(df.layer == "1") & (df.metric == "graph_convexity")]
    assert gc[gc["class"] == "all"].value.item() == 100.0
    assert sorted(gc["class"]) == ["0", "1", "2", "all"]
    assert (gc[gc["class"] != "all"].n_paths == 50).all()
    chance = df[(df.layer == "1") & (df.metric == "graph_convexity_chance")]
    assert chance.value.item() < 60 and chance.n_permutations.item() == 3
    # Degenerate layer: undefined (NaN), not 0 %; none of its pairs is connected.
    layer0 = df[df.layer == "0"]
    assert layer0[layer0.metric != "graph_convexity_connected"].value.isna().all()
    assert (layer0[layer0.metric == "graph_convexity_connected"].value == 0).all()
    again = convexity_table(feats, y, k=4, max_paths=50, n_permutations=3, seed=0)
    pd.testing.assert_frame_equal(df, again)
    assert (df.knn == "exact").all() and df.knn_recall.isna().all()
    assert (df.dtypes["value"] == np.float64) and df.k.eq(4).all() and df.n_samples.eq(45).all()


# --------------------------------------------------------------------------------------------
# errors


def test_errors():
    X = np.random.default_rng(0).normal(size=(10, 3))
    y = np.repeat([0, 1], 5)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        graph_convexity(bad, y)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        graph_convexity(bad, y)
    with pytest.raises(ValueError, match="fewer than 2 samples"):
        graph_convexity(X, np.r_[np.zeros(9, int), 1])
    with pytest.raises(ValueError, match="one label per sample"):
        graph_convexity(X, y[:-1])
    with pytest.raises(ValueError, match="k must be"):
        graph_convexity(X, y, k=0)
    with pytest.raises(ValueError, match="max_paths must be"):
        graph_convexity(X, y, max_paths=0)
    with pytest.raises(ValueError, match="2-D"):
        graph_convexity(X[:, 0], y)
    with pytest.raises(ValueError, match="integers"):
        graph_convexity(X, y.astype(float))
    with pytest.raises(ValueError, match="n_permutations"):
        permutation_chance(X, y, n_permutations=0)
    with pytest.raises(ValueError, match="empty"):
        convexity_table({}, y)
    h = torch.tensor(X)
    pred = lambda z: np.zeros(len(z), int)  # noqa: E731
    with pytest.raises(ValueError, match="NaN or Inf"):
        euclidean_convexity(torch.tensor(bad), y, pred)
    with pytest.raises(ValueError, match="fewer than 2 samples"):
        euclidean_convexity(h, np.r_[np.zeros(9, int), 1], pred)
    with pytest.raises(ValueError, match="one label per sample"):
        euclidean_convexity(h, y[:-1], pred)
    with pytest.raises(ValueError, match=r"torch\.Tensor"):
        euclidean_convexity(X, y, pred)
    with pytest.raises(ValueError, match="n_points"):
        euclidean_convexity(h, y, pred, n_points=0)
    with pytest.raises(ValueError, match="one label per point"):
        euclidean_convexity(h, y, lambda z: np.zeros(1, int))
