"""Graph convexity at the paper's scale, against one Dijkstra search per sampled pair.

Two per-pair baselines on the same kNN graph and pairs: scipy's Dijkstra with a predecessor
walk, and the reference code's own search (nnconvexity: igraph ``get_shortest_paths`` per
pair, edge weights fetched per call as it does). Neither is charged the reference code's dense
pandas graph construction, only our sparse one.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.sparse.csgraph import dijkstra

from repaudit.metrics.convexity import graph_convexity, knn_graph, sample_pairs

N, D, N_CLASSES, K, MAX_PATHS, SEED = 5_000, 256, 10, 10, 5_000, 0
N_BASELINE_PAIRS = 500


def _clustered(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes, so that shortest paths do cross other classes."""
    y = rng.permutation(np.repeat(np.arange(N_CLASSES), N // N_CLASSES))
    centres = 0.4 * rng.standard_normal((N_CLASSES, D))
    return (centres[y] + rng.standard_normal((N, D))).astype(np.float32), y


def _pair_score(graph, y: np.ndarray, c: int, a: int, b: int) -> float:
    """One pair as the paper's code scores it: a shortest path a -> b, share of in-class interior
    vertices (1 for a direct edge, 0 without a path)."""
    # The CSR holds both edge directions, so a directed search is the undirected one.
    dist, pred = dijkstra(graph, directed=True, indices=a, return_predecessors=True)
    if not np.isfinite(dist[b]):
        return 0.0
    interior = []
    v = pred[b]
    while v != a:
        interior.append(v)
        v = pred[v]
    if not interior:
        return 1.0
    return float(np.mean(y[interior] == c))


def _igraph_scores(graph, y: np.ndarray, cls, src, dst) -> list[float]:
    """The reference code's per-pair search (nnconvexity ``compute_paths``) on our graph."""
    from igraph import Graph

    coo = graph.tocoo()
    upper = coo.row < coo.col
    g = Graph(n=graph.shape[0], edges=np.c_[coo.row[upper], coo.col[upper]].tolist())
    g.es["weight"] = coo.data[upper].tolist()
    scores = []
    for c, a, b in zip(cls, src, dst, strict=True):
        path = g.get_shortest_paths(int(a), to=int(b), weights=g.es["weight"], output="vpath")[0]
        scores.append(0.0 if not path else 1.0 if len(path) <= 2 else np.mean(y[path[1:-1]] == c))
    return scores


def test_graph_convexity_vs_per_pair_dijkstra(benchmark, timed):
    """Measures ``graph_convexity`` at N = 5,000, 256 features, 10 classes, k = 10 and 5,000
    sampled paths per class (50,000 pairs), and a per-pair baseline on the same kNN graph and the
    same sampled pairs: one ``scipy.sparse.csgraph.dijkstra`` per pair followed by a predecessor
    walk. The baseline runs on a fixed random subset of 500 pairs and is extrapolated linearly
    to all pairs; the kNN graph build is added to it, so both sides include the same work.

    Goals: graph_convexity < 20 s; speed-up (per-pair / graph_convexity) >= 20x.
    """
    X, y = _clustered(np.random.default_rng(SEED))

    result, t_library = timed(lambda: graph_convexity(X, y, k=K, max_paths=MAX_PATHS, seed=SEED))

    t0 = time.perf_counter()
    graph = knn_graph(X, k=K)
    t_graph = time.perf_counter() - t0

    # The pairs graph_convexity scored, flattened in its order (class by class).
    pairs = sample_pairs(y, MAX_PATHS, ordered=True, seed=SEED)
    cls = np.concatenate([np.full(a.size, c) for c, (a, _) in pairs.items()])
    pos = np.concatenate([np.arange(a.size) for a, _ in pairs.values()])
    src = np.concatenate([a for a, _ in pairs.values()])
    dst = np.concatenate([b for _, b in pairs.values()])
    n_pairs = src.size
    subset = np.random.default_rng(SEED + 1).choice(n_pairs, N_BASELINE_PAIRS, replace=False)

    t0 = time.perf_counter()
    baseline = [_pair_score(graph, y, int(cls[i]), int(src[i]), int(dst[i])) for i in subset]
    t_subset = time.perf_counter() - t0

    library = [result.pair_scores[int(cls[i])][pos[i]] for i in subset]
    np.testing.assert_array_equal(baseline, library)
    assert sum(result.n_paths.values()) == n_pairs

    t_paths_baseline = t_subset / N_BASELINE_PAIRS * n_pairs
    t_baseline = t_graph + t_paths_baseline

    # Graph built outside the timer: the reference code builds its own (slower, dense) one.
    t0 = time.perf_counter()
    reference = _igraph_scores(graph, y, cls[subset], src[subset], dst[subset])
    t_reference = t_graph + (time.perf_counter() - t0) / N_BASELINE_PAIRS * n_pairs
    # Equal shortest paths may tie differently; the scores agree on average.
    assert abs(np.mean(reference) - np.mean(library)) < 0.05
    benchmark.extra_info.update(
        n_pairs=n_pairs,
        score=round(result.score, 2),
        graph_convexity_s=round(t_library, 2),
        knn_graph_s=round(t_graph, 2),
        baseline_subset_pairs=N_BASELINE_PAIRS,
        baseline_subset_s=round(t_subset, 2),
        baseline_extrapolated_s=round(t_baseline, 1),
        speedup=round(t_baseline / t_library, 1),
        speedup_path_finding=round(t_paths_baseline / max(t_library - t_graph, 1e-9), 1),
        reference_per_pair_extrapolated_s=round(t_reference, 1),
        speedup_vs_reference_per_pair=round(t_reference / t_library, 1),
        goal="graph_convexity < 20 s; speedup >= 20x",
    )
