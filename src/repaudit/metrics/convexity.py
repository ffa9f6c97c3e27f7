"""Label-region convexity of representations (Tětková et al., arXiv 2305.17154; Nat. Commun. 2025).

Two measures of how convex the region occupied by a class is in the representation of one layer:

* **Graph convexity** approximates geodesic convexity. Build the union-symmetrised Euclidean
  k-nearest-neighbour graph of *all* points (edge weight = distance), sample ordered same-class
  pairs (a, b), take a Dijkstra shortest path between them and score the share of its interior
  vertices that carry the class label:

  .. math::

     s(a, b) = \\begin{cases} 0 & \\text{no path} \\\\ 1 & \\text{direct edge} \\\\
               \\frac{1}{|P^\\circ|}\\sum_{v \\in P^\\circ} [y_v = c] & \\text{otherwise}
               \\end{cases}

  with :math:`P^\\circ` the path without its endpoints. The class score is
  :math:`100\\,\\overline{s}` over the sampled pairs and the layer score is the unweighted mean of
  the class scores.

* **Euclidean convexity** interpolates linearly between two same-class points,
  :math:`z_k = \\lambda_k x_a + (1-\\lambda_k) x_b` with :math:`\\lambda_k = k/(n+1)`, ``k = 1..n``,
  pushes every :math:`z_k` through the rest of the network and scores the share predicted as the
  class.

Both report the paper's "adjusted" standard error :math:`\\mathrm{sd}(s)/\\sqrt{|C_c|}` (it divides
by the number of data points of the class, not by the number of paths, because paths share
vertices). The definitions follow the paper's released code; the implementation is a fast, exact
equivalent: an exact kNN from float32 Gram tiles with certified float64 re-ranking, a sparse graph
and one bidirectional Dijkstra per sampled pair (numba), which stops once the two frontiers prove
the shortest path and so visits a small part of the graph instead of all of it (the path search
no longer grows as N^2). The permutation chance level relabels the same graph, so for
graphs of up to 4,096 points :func:`convexity_table` and :func:`permutation_chance` run one
full Dijkstra per vertex instead and read every labelling's paths from those trees (the same
shortest paths). An approximate kNN (NN-descent) is available and off by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from repaudit.metrics._common import as_features, as_labels
from repaudit.metrics._knn import approximate_knn, exact_knn, knn_recall
from repaudit.metrics._paths import pair_scores, shortest_path_trees, tree_pair_scores

__all__ = [
    "ConvexityResult",
    "convexity_table",
    "euclidean_convexity",
    "euclidean_convexity_rows",
    "graph_convexity",
    "interpolation_weights",
    "knn_graph",
    "permutation_chance",
    "sample_pairs",
]

# Memory budget (bytes) of the blockwise kNN on a torch device other than the CPU.
_KNN_BLOCK_BYTES = 64 * 2**20
# Extra kNN candidates re-ranked with exact distances; rows whose ranking cannot be certified
# from them are redone exactly (see _knn_lists_torch).
_KNN_MARGIN = 8
# Largest graph whose shortest-path trees from every vertex are kept (n² int32 predecessors,
# 64 MiB at the limit): one Dijkstra per source then serves every labelling of the graph (the
# score and each permutation), instead of one search per sampled pair and labelling.
_TREES_MAX_N = 4096
# Queries on which an approximate kNN's recall@k is measured against exact neighbours.
_RECALL_QUERIES = 2000
_KNN_MODES = ("exact", "approximate")


@dataclass
class ConvexityResult:
    """Convexity of the class regions at one layer.

    Attributes
    ----------
    score : float
        Layer score in %, the unweighted mean of ``class_scores`` (NaN when undefined).
    class_scores : dict
        label -> class score in % (100 × mean pair score).
    n_paths : dict
        label -> number of sampled pairs (paths or segments).
    sem : dict
        label -> std(pair scores, ddof=1) / sqrt(|C_c|), the paper's adjusted SEM, in %.
    sem_mean : float
        Mean of ``sem`` over classes (the per-layer "SEM adjusted" of the paper code).
    connected_fraction : dict
        label -> fraction of sampled pairs joined by a path (graph convexity only; empty else).
    connected_overall : float
        Fraction of all sampled pairs, pooled over classes, that are connected (NaN for Euclidean).
    pair_scores : dict
        label -> per-pair scores in [0, 1], in the order of :func:`sample_pairs`.
    class_sizes : dict
        label -> number of data points |C_c| of the class.
    note : str
        Empty, or why the result is undefined (e.g. a graph without edges).
    knn : str
        "exact" or "approximate": how the kNN graph was built (graph convexity only).
    knn_recall : float
        Approximate kNN only: recall@k against exact neighbours on sampled queries (NaN when
        exact).
    """

    score: float
    class_scores: dict
    n_paths: dict
    sem: dict
    sem_mean: float
    connected_fraction: dict = field(default_factory=dict)
    connected_overall: float = math.nan
    pair_scores: dict = field(default_factory=dict)
    class_sizes: dict = field(default_factory=dict)
    note: str = ""
    knn: str = "exact"
    knn_recall: float = math.nan

    @property
    def defined(self) -> bool:
        """False when the score is undefined (see ``note``)."""
        return not self.note


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_labels(y, n: int | None = None, name: str = "y") -> np.ndarray:
    """Integer class labels (as_labels) in which every class has the 2 members a pair needs."""
    y = as_labels(y, n, name, integer=True)
    classes, counts = np.unique(y, return_counts=True)
    small = classes[counts < 2]
    if small.size:
        raise ValueError(
            f"{name}: classes {small.tolist()} have fewer than 2 samples; convexity needs pairs "
            "within a class: drop these classes or add samples"
        )
    return y.astype(np.int64)


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# pair sampling


def _pair_from_rank_ordered(r: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Rank r of itertools.permutations(range(n), 2): a = r // (n-1), b skips a.
    a = r // (n - 1)
    t = r % (n - 1)
    return a, t + (t >= a)


def _pair_from_rank_unordered(r: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Rank r of itertools.combinations(range(n), 2): row a starts at a*n - a(a+1)/2.
    starts = np.arange(n, dtype=np.int64)
    starts = starts * n - starts * (starts + 1) // 2
    a = np.searchsorted(starts, r, side="right") - 1
    return a, a + 1 + (r - starts[a])


def sample_pairs(
    y, max_pairs: int = 5000, ordered: bool = True, seed: int = 0
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Sample same-class index pairs without replacement, as the convexity paper does.

    For each class ``c`` (ascending), enumerate the pairs of its members — ordered pairs
    ``(a, b), a != b`` (``itertools.permutations``, used by graph convexity) or unordered pairs
    ``a < b`` (``itertools.combinations``, used by Euclidean convexity) — and draw
    ``min(max_pairs, #pairs)`` of them uniformly without replacement. Pairs are drawn by rank, so
    all pairs are never materialised. When ``max_pairs >= #pairs`` every pair is returned in
    enumeration order.

    Parameters
    ----------
    y : array-like of int, shape (n_samples,)
        Class labels; every class needs at least 2 samples.
    max_pairs : int
        Maximum number of pairs per class (paper: 5000).
    ordered : bool
        Ordered (graph convexity) or unordered (Euclidean convexity) pairs.
    seed : int
        Seed of ``np.random.default_rng``; classes are sampled in ascending label order from one
        generator.

    Returns
    -------
    dict
        label -> ``(a_idx, b_idx)``, two int64 arrays of indices into ``y``.
    """
    y = _check_labels(y)
    max_pairs = _check_positive_int("max_pairs", max_pairs)
    rng = np.random.default_rng(seed)
    out = {}
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        n = members.size
        total = n * (n - 1) if ordered else n * (n - 1) // 2
        if total <= max_pairs:
            ranks = np.arange(total, dtype=np.int64)
        else:
            ranks = rng.choice(total, size=max_pairs, replace=False).astype(np.int64)
        a, b = (_pair_from_rank_ordered if ordered else _pair_from_rank_unordered)(ranks, n)
        out[int(c)] = (members[a], members[b])
    return out


# --------------------------------------------------------------------------------------------
# kNN graph


def _block_rows(n: int, width: int, itemsize: int = 8) -> int:
    return max(1, min(n, _KNN_BLOCK_BYTES // max(1, width * itemsize)))


def _check_knn(knn) -> str:
    if knn not in _KNN_MODES:
        raise ValueError(f"knn must be 'exact' or 'approximate', got {knn!r}")
    return knn


def _knn_lists(
    X: np.ndarray, k: int, device: str, knn: str = "exact", seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """kNN edge list (i, j, distance) with the paper's rule, and recall@k (NaN when exact).

    The k + 1 nearest of every point (self included, ties by the smaller index), those at
    distance 0 dropped. Exact on the CPU with :func:`repaudit.metrics._knn.exact_knn`, on other
    torch devices with :func:`_knn_lists_torch`; approximate with NN-descent, then its recall is
    measured on sampled queries.
    """
    recall = math.nan
    if knn == "approximate":
        nb_idx, nb_d2 = approximate_knn(X, k, seed)
        recall = knn_recall(X, k, nb_idx, nb_d2, _RECALL_QUERIES, seed)
    elif torch.device(device).type == "cpu":
        nb_idx, nb_d2 = exact_knn(X, k)
    else:
        return (*_knn_lists_torch(X, k, device), recall)
    n, kk = nb_idx.shape
    src = np.repeat(np.arange(n, dtype=np.int64), kk)
    dst, d2 = nb_idx.ravel(), nb_d2.ravel()
    keep = d2 > 0  # drops self and exact duplicates (paper: distance > 0)
    return src[keep], dst[keep], np.sqrt(d2[keep]), recall


def _knn_lists_torch(
    X: np.ndarray, k: int, device: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact k-nearest neighbours with the paper's rule, as an edge list (i, j, distance).

    For every point take the k + 1 smallest Euclidean distances of its row (self included; ties
    broken by the smaller index, like pandas ``nsmallest(keep="first")``) and keep those > 0.
    Candidates come from the Gram-matrix expansion in float64 (fast, inexact), are re-ranked
    with exact distances ``sqrt(sum((x_i - x_j)**2))`` (exactly 0 for duplicates) and the
    ranking is certified with a rounding-error bound; uncertified rows are redone exactly.
    """
    n, d = X.shape
    kk = min(n, k + 1)  # with n <= k every point takes all points
    m = min(n, kk + _KNN_MARGIN)
    dev = torch.device(device)
    Xt = torch.as_tensor(X, dtype=torch.float64, device=dev)
    # Centre for the Gram expansion only (smaller norms -> tighter bound); exact distances use X.
    Xc = Xt - Xt.mean(0)
    sq = (Xc * Xc).sum(1)
    # |approx - exact| of a squared distance <= tol_i; generous multiple of the dot-product bound.
    eps = np.finfo(np.float64).eps
    tol = 4.0 * (d + 4) * eps * (sq + sq.max())
    rows_per_block = max(1, min(_block_rows(n, n), _block_rows(n, m * d)))
    nb_idx = np.empty((n, kk), dtype=np.int64)
    nb_d2 = np.empty((n, kk), dtype=np.float64)
    redo = []
    for s in range(0, n, rows_per_block):
        e = min(n, s + rows_per_block)
        xb = Xt[s:e]
        approx = sq[s:e, None] + sq[None, :] - 2.0 * (Xc[s:e] @ Xc.T)
        vals, cand = torch.topk(approx, m, dim=1, largest=False, sorted=True)
        diff = Xt[cand] - xb[:, None, :]
        exact = (diff * diff).sum(-1)
        cand_np, exact_np = cand.cpu().numpy(), exact.cpu().numpy()
        order = np.lexsort((cand_np, exact_np), axis=1)[:, :kk]
        nb_idx[s:e] = np.take_along_axis(cand_np, order, 1)
        nb_d2[s:e] = np.take_along_axis(exact_np, order, 1)
        if m < n:
            # Every non-candidate j has exact_j >= approx_j - tol >= vals[:, -1] - tol.
            ok = (vals[:, -1] - tol[s:e]).cpu().numpy() > nb_d2[s:e, kk - 1]
            redo.extend((s + np.flatnonzero(~ok)).tolist())
    for i in redo:
        # Any member of the true top k+1 has approx <= its exact + tol <= current kth + tol.
        approx = sq[i] + sq - 2.0 * (Xc @ Xc[i])
        cand = torch.nonzero(approx <= float(nb_d2[i, kk - 1]) + float(tol[i])).flatten()
        diff = Xt[cand] - Xt[i]
        cand_np, exact_np = cand.cpu().numpy(), (diff * diff).sum(-1).cpu().numpy()
        order = np.lexsort((cand_np, exact_np))[:kk]
        nb_idx[i], nb_d2[i] = cand_np[order], exact_np[order]
    src = np.repeat(np.arange(n, dtype=np.int64), kk)
    dst, d2 = nb_idx.ravel(), nb_d2.ravel()
    keep = d2 > 0  # drops self and exact duplicates (paper: distance > 0)
    return src[keep], dst[keep], np.sqrt(d2[keep])


def knn_graph(
    X, k: int = 10, device: str = "cpu", knn: str = "exact", seed: int = 0
) -> sp.csr_matrix:
    """Union-symmetrised Euclidean kNN graph of the convexity paper (arXiv 2305.17154, code §1.2).

    ``W[i, j] = ||x_i - x_j||`` if ``j`` is among the ``k`` nearest neighbours of ``i`` (or vice
    versa), with neighbours at distance 0 (self, exact duplicates) dropped after taking the
    ``k + 1`` nearest, so a point with duplicates gets fewer than ``k`` neighbours.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
        Raw features (no normalisation is applied).
    k : int
        Number of neighbours (paper: 10).
    device : str
        Torch device for the exact distance computations off the CPU ("cuda"); on the CPU
        numba and BLAS do them.
    knn : str
        "exact" (default) or "approximate" (NN-descent; edge weights are still exact distances,
        some true neighbours may be missed).
    seed : int
        Seed of the approximate kNN.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_samples, n_samples)
        Symmetric, float64, no explicit zeros and no self-loops.
    """
    X = as_features(X)
    k = _check_positive_int("k", k)
    return _build_graph(X, k, device, _check_knn(knn), seed)[0]


def _build_graph(
    X: np.ndarray, k: int, device: str, knn: str = "exact", seed: int = 0
) -> tuple[sp.csr_matrix, float]:
    n = X.shape[0]
    i, j, w, recall = _knn_lists(X, k, device, knn, seed)
    # Union symmetrisation: keep each undirected edge once (its weight is the same both ways,
    # since (x_i - x_j)**2 == (x_j - x_i)**2 bit for bit), then mirror it.
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    _, first = np.unique(lo * n + hi, return_index=True)
    lo, hi, w = lo[first], hi[first], w[first]
    rows = np.concatenate([lo, hi])
    cols = np.concatenate([hi, lo])
    g = sp.csr_matrix((np.concatenate([w, w]), (rows, cols)), shape=(n, n))
    g.sort_indices()
    return g, recall


# --------------------------------------------------------------------------------------------
# graph convexity


def _shortest_path_trees(graph: sp.csr_matrix) -> np.ndarray | None:
    """Predecessors (n, n) of the shortest-path trees from every vertex, or None when the
    graph is too large to keep them (then each pair gets its own bidirectional search)."""
    n = graph.shape[0]
    if n > _TREES_MAX_N or graph.nnz == 0:
        return None
    return shortest_path_trees(
        graph.indptr.astype(np.int64),
        graph.indices.astype(np.int64),
        graph.data.astype(np.float64),
        max(1, min(n, 4 * numba.get_num_threads())),
    )


def _path_scores(
    graph: sp.csr_matrix,
    y: np.ndarray,
    c: int,
    a: np.ndarray,
    b: np.ndarray,
    trees: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Score pairs (a, b) of class c on shortest paths; returns (scores, connected).

    Paths are symmetric, so (a, b) and (b, a) share one path, read from the smaller index.
    With ``trees`` (:func:`_shortest_path_trees`) it is read from that vertex's tree; otherwise
    one bidirectional Dijkstra per distinct undirected pair, in parallel chunks, each pair
    independently, so the result does not depend on the thread count.
    """
    n = graph.shape[0]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keys, back = np.unique(lo * n + hi, return_inverse=True)
    if trees is not None:
        scores, connected = tree_pair_scores(trees, (y == c).astype(np.int64), keys // n, keys % n)
        return scores[back], connected[back]
    n_chunks = max(1, min(keys.size, 4 * numba.get_num_threads()))
    scores, connected = pair_scores(
        graph.indptr.astype(np.int64),
        graph.indices.astype(np.int64),
        graph.data.astype(np.float64),
        (y == c).astype(np.int64),
        keys // n,
        keys % n,
        n_chunks,
    )
    return scores[back], connected[back]


def _summarise(
    pair_scores: dict, class_sizes: dict, connected: dict | None, note: str = ""
) -> ConvexityResult:
    class_scores, n_paths, sem, conn = {}, {}, {}, {}
    for c, s in pair_scores.items():
        n_paths[c] = int(s.size)
        class_scores[c] = float(100.0 * s.mean())
        sd = float(np.std(s, ddof=1)) if s.size > 1 else math.nan
        sem[c] = 100.0 * sd / math.sqrt(class_sizes[c])
        if connected is not None:
            conn[c] = float(connected[c].mean())
    overall = math.nan
    if connected is not None:
        overall = float(np.concatenate(list(connected.values())).mean())
    return ConvexityResult(
        score=float(np.mean(list(class_scores.values()))),
        class_scores=class_scores,
        n_paths=n_paths,
        sem=sem,
        sem_mean=float(np.mean(list(sem.values()))),
        connected_fraction=conn,
        connected_overall=overall,
        pair_scores=pair_scores,
        class_sizes=dict(class_sizes),
        note=note,
    )


def _undefined(pairs: dict, class_sizes: dict, note: str) -> ConvexityResult:
    nan = {c: math.nan for c in pairs}
    return ConvexityResult(
        score=math.nan,
        class_scores=dict(nan),
        n_paths={c: int(a.size) for c, (a, _) in pairs.items()},
        sem=dict(nan),
        sem_mean=math.nan,
        connected_fraction={c: 0.0 for c in pairs},
        connected_overall=0.0,
        pair_scores={c: np.full(a.size, np.nan) for c, (a, _) in pairs.items()},
        class_sizes=dict(class_sizes),
        note=note,
    )


def _graph_convexity_on(
    graph: sp.csr_matrix,
    y: np.ndarray,
    max_paths: int,
    seed: int,
    note: str,
    trees: np.ndarray | None = None,
) -> ConvexityResult:
    pairs = sample_pairs(y, max_paths, ordered=True, seed=seed)
    sizes = {c: int((y == c).sum()) for c in pairs}
    if graph.nnz == 0:
        return _undefined(pairs, sizes, note)
    scores, connected = {}, {}
    for c, (a, b) in pairs.items():
        scores[c], connected[c] = _path_scores(graph, y, c, a, b, trees)
    return _summarise(scores, sizes, connected)


def _no_edge_note(X: np.ndarray) -> str:
    if (X == X[0]).all():
        return (
            "undefined: all feature vectors are identical (e.g. the CLS token at layer 0), so "
            "every distance is 0 and the kNN graph has no edges"
        )
    return (
        "undefined: the kNN graph has no edges (every point has > k exact duplicates); "
        "increase k or deduplicate"
    )


def graph_convexity(
    X,
    y,
    k: int = 10,
    max_paths: int = 5000,
    seed: int = 0,
    device: str = "cpu",
    knn: str = "exact",
) -> ConvexityResult:
    """Graph convexity of class regions (Tětková et al., arXiv:2305.17154, Sec. 2).

    Steps, as in the paper's code:

    1. Euclidean kNN on the raw features of all points; the ``k + 1`` nearest (self included,
       ties by smaller index) minus those at distance 0, so self and exact duplicates are never
       neighbours and a point with duplicates may get fewer than ``k``.
    2. Weighted graph ``W[i, j] = d(i, j)`` symmetrised by union, ``W = max(W, Wᵀ)``.
    3. Per class ``c``: ``min(max_paths, |C_c|(|C_c|-1))`` ordered pairs sampled without
       replacement (:func:`sample_pairs`).
    4. Dijkstra shortest path per pair; score 0 if unreachable, 1 for a direct edge, else the
       share of interior vertices with label ``c`` (other classes' vertices count as outside).
    5. Class score = 100 · mean pair score; layer score = unweighted mean over classes;
       SEM = std(pair scores, ddof=1) / sqrt(|C_c|).

    Each distinct undirected pair (paths are symmetric) gets one bidirectional Dijkstra that
    stops as soon as the two frontiers prove the shortest path (exact; it visits a small
    neighbourhood of both endpoints rather than the whole graph).

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
        Features of one layer (pooled as the paper does; no normalisation is applied).
    y : array-like of int, shape (n_samples,)
        Ground-truth labels; every class needs >= 2 samples.
    k : int
        Neighbours per point (paper: 10).
    max_paths : int
        Maximum sampled pairs per class (paper: 5000).
    seed : int
        Seed of the pair sampling.
    device : str
        Torch device for the exact kNN search off the CPU.
    knn : str
        "exact" (default) or "approximate": NN-descent neighbours (Dong et al. 2011) for large N;
        the result records ``knn`` and the measured recall@k on 2,000 sampled queries.

    Returns
    -------
    ConvexityResult
        Scores in %. If the graph has no edges (e.g. all features identical, as the ViT's CLS
        token at layer 0, the same vector for every image) the result is *undefined*: NaN
        scores and a ``note``, rather than the paper code's misleading 0 %.

    Notes
    -----
    Deviations: class scores are not rounded to 2 decimals before averaging (paper code rounds);
    the RNG differs from the paper's global ``np.random.choice``, so the sampled pairs differ
    (agreement is within the SEM).

    Ties: kNN distance ties are broken stably by the smaller index (as pandas
    ``nsmallest(keep="first")``), so the graph is identical to the paper code's. Among equally
    short *paths* the one returned depends on the search (heap order, where the two frontiers
    meet) and may differ from igraph's; with continuous features such
    ties have probability 0, with exact duplicates or lattice data they can change a pair score.
    """
    X = as_features(X)
    y = _check_labels(y, X.shape[0])
    k = _check_positive_int("k", k)
    max_paths = _check_positive_int("max_paths", max_paths)
    graph, recall = _build_graph(X, k, device, _check_knn(knn), seed)
    note = _no_edge_note(X) if graph.nnz == 0 else ""
    res = _graph_convexity_on(graph, y, max_paths, seed, note)
    res.knn, res.knn_recall = knn, recall
    return res


def permutation_chance(
    X,
    y,
    k: int = 10,
    max_paths: int = 5000,
    n_permutations: int = 5,
    seed: int = 0,
    device: str = "cpu",
    knn: str = "exact",
) -> tuple[float, float]:
    """Chance level of graph convexity by label permutation (not 1/C: direct edges score 1).

    Chance is not ``1/C``: direct edges score 1 and ``k`` shifts the level. The labels are
    permuted ``n_permutations`` times (class sizes kept) on the same kNN graph, which is built
    once (with its shortest paths, see :func:`_shortest_path_trees`), and graph convexity is
    recomputed each time.

    Parameters
    ----------
    X, y, k, max_paths, device, knn
        As in :func:`graph_convexity`.
    n_permutations : int
        Number of label permutations.
    seed : int
        Seeds the permutations and, per permutation, the pair sampling.

    Returns
    -------
    (float, float)
        Mean and standard deviation (ddof=1; NaN for one permutation) of the permuted layer
        scores in %. NaN, NaN when the graph has no edges.
    """
    X = as_features(X)
    y = _check_labels(y, X.shape[0])
    k = _check_positive_int("k", k)
    max_paths = _check_positive_int("max_paths", max_paths)
    n_permutations = _check_positive_int("n_permutations", n_permutations)
    graph, _ = _build_graph(X, k, device, _check_knn(knn), seed)
    trees = _shortest_path_trees(graph)  # the graph is the same for every permutation
    return _chance_on(graph, y, max_paths, n_permutations, seed, trees)


def _chance_on(
    graph: sp.csr_matrix,
    y: np.ndarray,
    max_paths: int,
    n_permutations: int,
    seed: int,
    trees: np.ndarray | None = None,
) -> tuple[float, float]:
    if graph.nnz == 0:
        return math.nan, math.nan
    children = np.random.SeedSequence(seed).spawn(n_permutations)
    scores = []
    for child in children:
        rng = np.random.default_rng(child)
        perm_seed = int(rng.integers(2**63 - 1))
        res = _graph_convexity_on(graph, rng.permutation(y), max_paths, perm_seed, "", trees)
        scores.append(res.score)
    sd = float(np.std(scores, ddof=1)) if n_permutations > 1 else math.nan
    return float(np.mean(scores)), sd


# --------------------------------------------------------------------------------------------
# Euclidean convexity


def interpolation_weights(n_points: int = 10) -> np.ndarray:
    """λ_k = k / (n_points + 1), k = 1..n_points: interior segment points, endpoints excluded."""
    n_points = _check_positive_int("n_points", n_points)
    return np.arange(1, n_points + 1, dtype=np.float64) / (n_points + 1)


def _hidden_rows(hidden) -> tuple[Callable[[np.ndarray], torch.Tensor], int | None]:
    """``(rows -> hidden states of those samples, n_samples or None)`` for a tensor or callable."""
    if isinstance(hidden, torch.Tensor):
        if hidden.ndim < 2 or hidden.shape[0] < 2:
            raise ValueError(f"hidden needs shape (n_samples >= 2, ...), got {tuple(hidden.shape)}")
        if not torch.is_floating_point(hidden):
            raise ValueError(f"hidden must be floating point, got {hidden.dtype}")
        if not torch.isfinite(hidden).all():
            raise ValueError("hidden contains NaN or Inf; fix these samples first")
        return (lambda rows: hidden[torch.as_tensor(rows, device=hidden.device)]), hidden.shape[0]
    if callable(hidden):
        return hidden, None
    raise ValueError(
        f"hidden must be a torch.Tensor (n_samples, ...) or a callable rows -> states, "
        f"got {type(hidden)}"
    )


def _check_states(h, n_rows: int) -> torch.Tensor:
    if not isinstance(h, torch.Tensor) or h.ndim < 2 or h.shape[0] != n_rows:
        shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ValueError(f"hidden(rows) must return a ({n_rows}, ...) tensor, got {shape}")
    if not torch.is_floating_point(h):
        raise ValueError(f"hidden states must be floating point, got {h.dtype}")
    if not torch.isfinite(h).all():
        raise ValueError("hidden states contain NaN or Inf; fix these samples first")
    return h


def euclidean_convexity(
    hidden: torch.Tensor | Callable[[np.ndarray], torch.Tensor],
    y,
    predict: Callable[[torch.Tensor], np.ndarray | torch.Tensor],
    n_points: int = 10,
    max_pairs: int = 5000,
    seed: int = 0,
    batch_size: int = 256,
) -> ConvexityResult:
    """Euclidean convexity of class regions (Tětková et al., arXiv:2305.17154, Sec. 2).

    For each class ``c``, ``min(max_pairs, |C_c|(|C_c|-1)/2)`` unordered pairs are sampled
    without replacement (:func:`sample_pairs`). For each pair the interior points

    .. math:: z_k = \\lambda_k x_a + (1 - \\lambda_k) x_b, \\quad \\lambda_k = k/(n+1),\\ k=1..n

    are classified by ``predict`` (the rest of the network plus its head). The pair score is the
    share of the ``z_k`` predicted as ``c``; class score = 100 · mean; layer score = unweighted
    mean over classes; SEM = std(pair scores, ddof=1) / sqrt(|C_c|) (NaN with one pair).

    Pairs are processed batch by batch (``batch_size // n_points`` pairs at a time) and only the
    hidden states of one batch's endpoints are needed at a time: passing ``hidden`` as a
    callable that computes them on demand keeps memory independent of ``n_samples``.

    Parameters
    ----------
    hidden : torch.Tensor, shape (n_samples, ...), or callable
        Full representation at one layer (e.g. the whole token sequence), not a pooled vector;
        or ``hidden(rows) -> Tensor (len(rows), ...)`` returning the representations of the
        sample rows ``rows`` (sorted, distinct) on demand.
    y : array-like of int, shape (n_samples,)
        Ground-truth labels in the label space of ``predict``.
    predict : callable
        ``predict(points) -> labels`` with ``points`` of shape (B, ...) on ``hidden``'s device and
        dtype, returning B integer labels (numpy or torch).
    n_points : int
        Interpolants per segment (paper: 10).
    max_pairs : int
        Maximum sampled pairs per class (paper: 5000).
    seed : int
        Seed of the pair sampling.
    batch_size : int
        Interpolants per ``predict`` call (whole segments are batched together).

    Returns
    -------
    ConvexityResult
        ``connected_fraction`` is empty and ``connected_overall`` NaN.
    """
    states, n = _hidden_rows(hidden)
    y = _check_labels(y, n)
    if y.shape[0] < 2:
        raise ValueError(f"Euclidean convexity needs >= 2 samples, got {y.shape[0]}")
    n_points = _check_positive_int("n_points", n_points)
    batch_size = _check_positive_int("batch_size", batch_size)
    weights = interpolation_weights(n_points)
    pairs_per_batch = max(1, batch_size // n_points)
    pairs = sample_pairs(y, max_pairs, ordered=False, seed=seed)
    scores = {}
    with torch.no_grad():
        for c, (a, b) in pairs.items():
            hits = np.empty(a.size, dtype=np.float64)
            for s in range(0, a.size, pairs_per_batch):
                ia, ib = a[s : s + pairs_per_batch], b[s : s + pairs_per_batch]
                rows, where = np.unique(np.concatenate([ia, ib]), return_inverse=True)
                h = _check_states(states(rows), rows.size)
                where = torch.as_tensor(where, device=h.device)
                xa = h[where[: ia.size]].unsqueeze(1)
                xb = h[where[ia.size :]].unsqueeze(1)
                lam = torch.as_tensor(weights, dtype=h.dtype, device=h.device)
                lam = lam.reshape((1, n_points) + (1,) * (h.ndim - 1))
                z = lam * xa + (1 - lam) * xb  # (P, n_points, ...)
                pred = predict(z.reshape((-1, *h.shape[1:])))
                pred = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else pred
                pred = np.asarray(pred).reshape(-1)
                if pred.size != z.shape[0] * n_points:
                    raise ValueError(
                        f"predict returned {pred.size} labels for {z.shape[0] * n_points} points; "
                        "it must return one label per point"
                    )
                hits[s : s + ia.size] = (pred.reshape(-1, n_points) == c).mean(1)
            scores[c] = hits
    sizes = {c: int((y == c).sum()) for c in pairs}
    return _summarise(scores, sizes, None)


# --------------------------------------------------------------------------------------------
# tidy tables


def _rows(
    layer: str,
    metric: str,
    overall: float,
    per_class: Mapping,
    n_paths: Mapping,
    params: dict,
) -> list[dict]:
    total = int(sum(n_paths.values()))
    rows = [dict(layer=layer, metric=metric, variant="", value=float(overall), **params)]
    rows[0].update({"class": "all", "n_paths": total})
    for c, v in per_class.items():
        row = dict(layer=layer, metric=metric, variant="", value=float(v), **params)
        row.update({"class": str(c), "n_paths": int(n_paths[c])})
        rows.append(row)
    return rows


_COLUMNS = ["layer", "metric", "variant", "value", "class"]


def convexity_table(
    features: Mapping[str, np.ndarray],
    labels,
    *,
    k: int = 10,
    max_paths: int = 5000,
    n_permutations: int = 5,
    seed: int = 0,
    device: str = "cpu",
    knn: str = "exact",
) -> pd.DataFrame:
    """Graph convexity (arXiv 2305.17154) of every layer as a tidy table.

    One kNN graph per layer serves the score and its permutation chance level.

    Parameters
    ----------
    features : dict
        layer name -> (n_samples, n_features) features (pooled as for graph convexity: CLS
        for ViTs, patch or channel mean otherwise).
    labels : array-like of int, shape (n_samples,)
        Ground-truth labels.
    k, max_paths, seed, device, knn
        As in :func:`graph_convexity`.
    n_permutations : int
        Label permutations for the chance level (0 skips it).

    Returns
    -------
    pandas.DataFrame
        Columns ``layer, metric, variant, value, class, k, max_paths, n_samples, n_paths, seed,
        knn, knn_recall, n_permutations``; ``knn`` is "exact" or "approximate" and
        ``knn_recall`` the approximate graph's measured recall@k (NaN when exact). Metrics
        (variant ""): ``graph_convexity`` (%; class "all" = layer score, one row per class),
        ``graph_convexity_sem`` (% ; "all" = mean over classes),
        ``graph_convexity_connected`` (fraction; "all" = pooled over pairs),
        ``graph_convexity_chance`` and ``graph_convexity_chance_std`` (%, class "all").
        ``n_paths`` is the class's number of sampled paths (their sum for "all");
        ``n_permutations`` is set on the chance rows and 0 elsewhere. Undefined layers (graph
        without edges, e.g. the layer-0 CLS token) have NaN values.
    """
    if not features:
        raise ValueError("features is empty; pass {layer name: (n_samples, n_features) array}")
    k = _check_positive_int("k", k)
    max_paths = _check_positive_int("max_paths", max_paths)
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int | np.integer):
        raise ValueError(f"n_permutations must be an integer >= 0, got {n_permutations!r}")
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0, got {n_permutations}")
    knn = _check_knn(knn)
    rows = []
    for layer, X in features.items():
        X = as_features(X, f"features[{layer!r}]")
        y = _check_labels(labels, X.shape[0], "labels")
        graph, recall = _build_graph(X, k, device, knn, seed)
        note = _no_edge_note(X) if graph.nnz == 0 else ""
        # One set of shortest paths serves the score and every permutation of the labels.
        trees = _shortest_path_trees(graph) if n_permutations else None
        res = _graph_convexity_on(graph, y, max_paths, seed, note, trees)
        params = dict(k=k, max_paths=max_paths, n_samples=int(X.shape[0]), seed=seed)
        params.update(knn=knn, knn_recall=float(recall))
        params["n_permutations"] = 0
        layer = str(layer)
        rows += _rows(layer, "graph_convexity", res.score, res.class_scores, res.n_paths, params)
        rows += _rows(layer, "graph_convexity_sem", res.sem_mean, res.sem, res.n_paths, params)
        rows += _rows(
            layer,
            "graph_convexity_connected",
            res.connected_overall,
            res.connected_fraction,
            res.n_paths,
            params,
        )
        if n_permutations:
            mean, sd = _chance_on(graph, y, max_paths, int(n_permutations), seed, trees)
            params["n_permutations"] = int(n_permutations)
            rows += _rows(layer, "graph_convexity_chance", mean, {}, res.n_paths, params)
            rows += _rows(layer, "graph_convexity_chance_std", sd, {}, res.n_paths, params)
    df = pd.DataFrame(rows)
    return df[_COLUMNS + [c for c in df.columns if c not in _COLUMNS]]


def euclidean_convexity_rows(
    result: ConvexityResult, layer: str, *, n_points: int, max_pairs: int, seed: int
) -> pd.DataFrame:
    """Format a :func:`euclidean_convexity` result as tidy rows like :func:`convexity_table`.

    Returns
    -------
    pandas.DataFrame
        Metrics ``euclidean_convexity`` (%) and ``euclidean_convexity_sem`` (%), variant "",
        class "all" (layer score / mean SEM) plus one row per class; parameter columns
        ``n_points, max_pairs, n_samples, n_paths, seed``.
    """
    params = dict(
        n_points=int(n_points),
        max_pairs=int(max_pairs),
        n_samples=int(sum(result.class_sizes.values())),
        seed=int(seed),
    )
    layer = str(layer)
    rows = _rows(
        layer, "euclidean_convexity", result.score, result.class_scores, result.n_paths, params
    )
    rows += _rows(
        layer, "euclidean_convexity_sem", result.sem_mean, result.sem, result.n_paths, params
    )
    df = pd.DataFrame(rows)
    return df[_COLUMNS + [c for c in df.columns if c not in _COLUMNS]]
