"""Concept-based alignment of representations (Vielhaben et al., NeurIPS 2025, arXiv:2412.06639).

"Beyond Scalars: Concept-Based Alignment Analysis in Vision Transformers" (NLMCD). Concepts are
non-linear manifolds found by UMAP followed by HDBSCAN; each sample gets a soft *concept proximity*
vector P_i (HDBSCAN soft clustering). Two representations of the same samples are compared with
the generalised (fuzzy) Rand index of Hüllermeier et al. (IEEE TFS 20(3), 2012), the paper's
Eq. 3, which decomposes into concept pairs (Eq. 4) that are matched with the Hungarian algorithm.

Pipeline pieces:

- :func:`discover_concepts` (NLMCD), :func:`kmeans_concepts` and :func:`pca_concepts` (the
  paper's linear/non-manifold baselines with the same number of concepts C);
- :func:`generalized_rand_index` (+ :func:`generalized_rand_index_estimate` with the exact/Monte
  Carlo bookkeeping), :func:`concept_pair_distances`, :func:`match_concepts`,
  :func:`sanity_score`;
- the table functions :func:`concepts_table` (one model) and :func:`cross_model_gri` (two models).

Reference code read to pin the details: ``jvielhaben/NLMCD`` (``mcd/virtual_concept_layer.py``,
``source/experiments/alignment.py``, ``executable_scripts/evaluate_alignment.py``).
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from repaudit.metrics._common import as_features, as_labels, kmeans, sq_dists, to_numpy
from repaudit.tables import select_samples, subset, with_keys

__all__ = [
    "ConceptMatch",
    "ConceptResult",
    "GRIEstimate",
    "TooFewConceptsError",
    "concept_pair_distances",
    "concepts_table",
    "cross_model_gri",
    "cross_model_gri_table",
    "discover_concepts",
    "generalized_rand_index",
    "generalized_rand_index_estimate",
    "kmeans_concepts",
    "match_concepts",
    "one_hot",
    "pca_concepts",
    "sampled_concepts_table",
    "sanity_score",
]

_METHODS = ("manifold", "kmeans", "pca")
# Tolerance on soft-partition rows: membership rows may sum to at most 1 (HDBSCAN's
# membership_vector rows sum to the probability of being in *some* cluster, i.e. <= 1).
_ROW_TOL = 1e-4


class TooFewConceptsError(ValueError):
    """HDBSCAN found fewer than two concepts; ``n_found`` says how many (0 or 1)."""

    def __init__(self, message: str, n_found: int, noise_ratio: float):
        super().__init__(message)
        self.n_found = n_found
        self.noise_ratio = noise_ratio


@dataclass
class ConceptResult:
    """Concepts of one representation.

    Attributes
    ----------
    memberships : (N, C) float64 concept proximity scores, entries in [0, 1], rows sum to <= 1.
    labels : (N,) int64 hard concept labels, -1 = noise / unassigned.
    n_concepts : C.
    noise_ratio : share of samples with label -1.
    method : "manifold", "kmeans" or "pca".
    seconds : wall time of the discovery (not part of any table: it is not reproducible).
    sample_index : rows of the caller's arrays these samples are (set by :func:`concepts_table`).
    """

    memberships: np.ndarray
    labels: np.ndarray
    n_concepts: int
    noise_ratio: float
    method: str
    seconds: float = 0.0
    sample_index: np.ndarray | None = None


@dataclass(frozen=True)
class GRIEstimate:
    """A generalised Rand index and how it was computed."""

    value: float
    exact: bool  # True: all N(N-1)/2 pairs; False: Monte-Carlo over n_pairs random pairs
    n_pairs: int
    n_samples: int


@dataclass(frozen=True)
class ConceptMatch:
    """Hungarian matching of the concepts of two representations (see :func:`match_concepts`)."""

    pairs: pd.DataFrame  # columns concept_a, concept_b, distance, universal
    unique_a: np.ndarray  # concepts of P without a universal partner
    unique_b: np.ndarray  # concepts of Q without a universal partner
    threshold: float


# --------------------------------------------------------------------------- validation


def _check_partition(P, name: str) -> np.ndarray:
    raw = to_numpy(P, name)
    # A low-precision input cannot sum to 1 more exactly than its own rounding allows.
    tol = _ROW_TOL
    if raw.dtype.kind == "f" and raw.ndim == 2:
        tol = max(tol, raw.shape[1] * float(np.finfo(raw.dtype).eps))
    P = as_features(raw, name)
    if P.min() < -tol or P.max() > 1 + tol:
        raise ValueError(
            f"{name} has entries outside [0, 1] (min {P.min():.3g}, max {P.max():.3g}); "
            "clip projection scores to [0, 1] and renormalise rows first"
        )
    if P.sum(axis=1).max() > 1 + tol:
        raise ValueError(
            f"{name} has rows summing to more than 1 (max {P.sum(axis=1).max():.6g}); "
            "normalise rows, e.g. P / P.sum(1, keepdims=True)"
        )
    return P


def _check_pair(P: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    P = _check_partition(P, "P")
    Q = _check_partition(Q, "Q")
    if P.shape[0] != Q.shape[0]:
        raise ValueError(
            f"P and Q must describe the same samples: got {P.shape[0]} and {Q.shape[0]} rows"
        )
    return P, Q


def one_hot(labels) -> np.ndarray:
    """One-hot (N, K) float64 matrix of integer labels (K = number of distinct labels).

    Label -1 is treated as an ordinary class here; the crisp partition of ground-truth labels.
    """
    labels = as_labels(labels, None)
    _, inv = np.unique(labels, return_inverse=True)
    out = np.zeros((labels.shape[0], int(inv.max()) + 1))
    out[np.arange(labels.shape[0]), inv] = 1.0
    return out


# --------------------------------------------------------------------------- UMAP speed-ups

# The numba kernels of umap-learn that one discover_concepts call compiles lazily. umap-learn
# compiles them without cache=True (pynndescent's have it), which cost ~8 s of every discovery
# job. Only the serial SGD epoch is listed: the parallel one shares its source, so it would
# share its cache entries (numba keys them on source and signature, not on the flags).
_UMAP_JIT = (
    ("umap.distances", "euclidean"),
    ("umap.utils", "fast_knn_indices"),
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.layouts", "clip"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
)


@functools.cache
def _cache_umap_kernels() -> None:
    """Let numba cache UMAP's kernels on disk, so they compile once per environment, not per job.

    A cache hit loads the machine code that a fresh compile makes (numba keys entries on source,
    signature and target CPU, which :mod:`repaudit` pins to "generic"): results are unchanged.
    The cache lives where numba puts those of ``cache=True`` functions (``NUMBA_CACHE_DIR``, which
    the workflow sets, else the package's ``__pycache__`` or the user cache).
    """
    import importlib

    from numba.core.caching import NullCache

    for module, name in _UMAP_JIT:
        fn = getattr(importlib.import_module(module), name, None)
        if isinstance(getattr(fn, "_cache", None), NullCache):
            try:
                fn.enable_caching()
            except RuntimeError:  # no writable cache location: compile per process as before
                pass


@functools.cache
def _umap_pairwise():
    """(kernel, metric): UMAP's euclidean metric on all pairs of rows, in one numba loop."""
    import numba
    from umap.distances import euclidean

    @numba.njit
    def pairwise(X):
        # sklearn's callable-metric loop: upper triangle mirrored, then metric(x_i, x_i) on the
        # diagonal, each value rounded to X's dtype.
        n = X.shape[0]
        out = np.zeros((n, n), dtype=X.dtype)
        for i in range(n):
            for j in range(i + 1, n):
                d = euclidean(X[i], X[j])
                out[i, j] = d
                out[j, i] = d
            out[i, i] = euclidean(X[i], X[i])
        return out

    return pairwise, euclidean


@contextlib.contextmanager
def _fast_umap_distances():
    """UMAP's exact small-data distances (N < 4096) without sklearn's per-pair Python loop.

    UMAP fills the N x N matrix with ``sklearn.metrics.pairwise_distances(X, metric=<its numba
    euclidean>)``, one Python call per pair (~0.4 s per layer at N = 800). Calling the same
    compiled metric from a numba loop gives the same bits in milliseconds (checked by
    test_concepts); other inputs go to sklearn. The patch lasts for one fit (not thread-safe).
    """
    from umap import umap_

    slow = umap_.pairwise_distances
    kernel, euclidean = _umap_pairwise()

    def fast(X, Y=None, metric="euclidean", **kwds):
        if (
            metric is euclidean
            and Y is None
            and not kwds
            and isinstance(X, np.ndarray)
            and X.ndim == 2
            and X.dtype == np.float32
            and X.flags.c_contiguous
            and np.isfinite(X).all()  # sklearn raises on these; let it
        ):
            return kernel(X)
        return slow(X, Y, metric=metric, **kwds)

    umap_.pairwise_distances = fast
    try:
        yield
    finally:
        umap_.pairwise_distances = slow


# --------------------------------------------------------------------------- concept discovery


def discover_concepts(
    X: np.ndarray,
    *,
    n_components: int = 50,
    n_neighbors: int = 30,
    min_dist: float = 0.01,
    min_cluster_size: int = 50,
    min_samples: int = 20,
    selection: str = "leaf",
    renormalize: bool = True,
    seed: int = 0,
) -> ConceptResult:
    """Non-linear manifold concept discovery (NLMCD; arXiv:2412.06639).

    ``Z = UMAP(n_components, n_neighbors, min_dist, euclidean, random_state=seed)(X)``, then
    ``H = HDBSCAN(min_cluster_size, min_samples, cluster_selection_method=selection,
    prediction_data=True).fit(Z)``. The C non-noise clusters are the concepts; the concept
    proximity scores are HDBSCAN's soft clustering ``P = membership_vector(H, Z)`` (combining
    distance-to-exemplar and outlier/tree membership), as in the reference code.

    Parameters
    ----------
    X : (N, D) features.
    n_components, n_neighbors, min_dist : UMAP settings (paper: 50, 30, 0.01).
    min_cluster_size, min_samples, selection : HDBSCAN settings (paper: 50, 20, "leaf").
        For small N scale them in the config; nothing is rescaled here.
    renormalize : HDBSCAN's ``membership_vector`` rows sum to P(point in some cluster) <= 1,
        not to 1. True (default; the paper's proximity scores sum to 1) divides each row by its
        sum, giving a fuzzy partition in Hüllermeier's sense. False keeps the raw vectors as the
        reference code passes them to the GRI; pairs in different concepts then never reach
        E = 0 (the missing mass counts as shared), which biases the GRI against crisp partitions
        upwards of 0.05 on clean blobs.
    seed : UMAP ``random_state`` (makes UMAP single-threaded and deterministic).

    Returns
    -------
    ConceptResult with labels = ``H.labels_`` (-1 = noise) and noise_ratio = #(-1) / N.

    Raises
    ------
    ValueError if the sizes do not fit N; :class:`TooFewConceptsError` (a ValueError) if HDBSCAN
    finds fewer than 2 clusters.
    """
    X = as_features(X, dtype=None)  # UMAP sees the features in their own dtype
    n = X.shape[0]
    if not 2 <= n_components < n - 1:
        raise ValueError(
            f"UMAP n_components={n_components} must be in [2, N-1) for N={n} samples; "
            "lower n_components or pass more samples"
        )
    if not 2 <= n_neighbors < n:
        raise ValueError(
            f"UMAP n_neighbors={n_neighbors} must be in [2, N) for N={n}; lower n_neighbors"
        )
    if not 2 <= min_cluster_size <= n // 2:
        raise ValueError(
            f"min_cluster_size={min_cluster_size} must be in [2, N/2={n // 2}] so that two "
            "concepts can exist; lower min_cluster_size (scale it with N in the config)"
        )
    if not 1 <= min_samples < n:
        raise ValueError(f"min_samples={min_samples} must be in [1, N={n}); lower min_samples")
    if selection not in ("leaf", "eom"):
        raise ValueError(f"selection must be 'leaf' or 'eom', got {selection!r}")
    # deferred until the input is known to be valid: importing UMAP takes seconds
    import hdbscan
    import hdbscan.prediction
    import umap

    _cache_umap_kernels()
    t0 = time.perf_counter()
    with warnings.catch_warnings(), _fast_umap_distances():
        # UMAP warns that random_state forces n_jobs=1, and about spectral init on
        # disconnected graphs; neither changes the result.
        warnings.simplefilter("ignore", UserWarning)
        Z = umap.UMAP(
            n_components=n_components,
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            metric="euclidean",
            random_state=seed,
            n_jobs=1,
        ).fit_transform(np.asarray(X, dtype=np.float32))
    H = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        cluster_selection_method=selection,
        metric="euclidean",
        prediction_data=True,
    ).fit(Z)
    labels = np.asarray(H.labels_, dtype=np.int64)
    n_concepts = int(labels.max()) + 1
    noise_ratio = float(np.mean(labels < 0))
    if n_concepts < 2:
        raise TooFewConceptsError(
            f"HDBSCAN found {max(n_concepts, 0)} concept(s) (noise ratio {noise_ratio:.2f}) in "
            f"N={n} samples; a concept alignment needs >= 2. Lower min_cluster_size/min_samples "
            "or pass more samples",
            n_found=max(n_concepts, 0),
            noise_ratio=noise_ratio,
        )
    P = np.asarray(hdbscan.prediction.membership_vector(H, Z), dtype=np.float64)
    if P.shape != (n, n_concepts) or not np.all(np.isfinite(P)):
        raise ValueError(f"HDBSCAN returned invalid memberships (shape {P.shape}, N={n})")
    if renormalize:
        tot = P.sum(axis=1, keepdims=True)
        # A row with no mass at all (P(in some cluster) = 0) carries no preference: uniform.
        P = np.where(tot > 0, P / np.where(tot > 0, tot, 1.0), 1.0 / n_concepts)
    return ConceptResult(
        memberships=P,
        labels=labels,
        n_concepts=n_concepts,
        noise_ratio=noise_ratio,
        method="manifold",
        seconds=time.perf_counter() - t0,
    )


def kmeans_concepts(
    X: np.ndarray,
    n_concepts: int,
    seed: int = 0,
    *,
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 1e-8,
) -> ConceptResult:
    """K-means baseline concepts with centroid-distance proximity (arXiv:2412.06639).

    K-means with C = ``n_concepts`` clusters on the raw features (in-house numpy: k-means++
    seeding, Lloyd iterations, best inertia of ``n_init`` runs; the reference uses sklearn's
    KMeans whose default then was n_init=10). Proximity scores::

        s_ic = 1 / (‖x_i − μ_c‖ + 1e-6),   P_ic = s_ic / Σ_c' s_ic'

    The reference also adds 1e-6 to the row normaliser, which makes rows sum to 1 − O(1e-6·‖x‖);
    we normalise exactly so that rows are a fuzzy partition.
    """
    X = as_features(X)
    n = X.shape[0]
    if not 2 <= n_concepts <= n:
        raise ValueError(f"n_concepts={n_concepts} must be in [2, N={n}]")
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        run = kmeans(X, n_concepts, rng, max_iter=max_iter, tol=tol)
        if best is None or run[2] < best[2]:
            best = run
    centers, labels, _ = best
    dist = np.sqrt(sq_dists(X, centers))
    s = 1.0 / (dist + 1e-6)
    P = s / s.sum(axis=1, keepdims=True)
    return ConceptResult(
        memberships=P,
        labels=labels.astype(np.int64),
        n_concepts=n_concepts,
        noise_ratio=0.0,
        method="kmeans",
        seconds=time.perf_counter() - t0,
    )


def pca_concepts(X: np.ndarray, n_concepts: int) -> ConceptResult:
    """PCA baseline concepts with projection proximity (arXiv:2412.06639).

    Concepts are the top-C principal directions v_c of X (C = ``n_concepts``, capped at
    min(N, D) as the reference caps it at the width). Scores are the cosine of the *raw* (not
    centred, as in the reference) features with each direction, clipped to [0, 1] and
    renormalised to sum 1 (reference ``use_l1``)::

        P_ic = max(cos(x_i, v_c), 0) / Σ_c' max(cos(x_i, v_c'), 0)

    Choices: C components (not the reference's full 768) so that the baseline has the same
    number of concepts as NLMCD; component signs follow sklearn's ``svd_flip`` rule (the
    largest-|.| score of each component is positive), since clipping depends on the sign.
    Rows with no positive cosine (the reference divides 0/0 there) get the uniform row 1/C and
    label -1; their share is reported as ``noise_ratio``. Labels = argmax of P otherwise.
    """
    X = as_features(X)
    n, d = X.shape
    if n_concepts < 2:
        raise ValueError(f"n_concepts={n_concepts} must be >= 2")
    t0 = time.perf_counter()
    k = min(n_concepts, n, d)
    U, _, Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    U, Vt = U[:, :k], Vt[:k]
    signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(k)])
    signs[signs == 0] = 1.0
    V = Vt * signs[:, None]
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    cos = (X @ V.T) / np.where(norms > 0, norms, 1.0)
    S = np.clip(cos, 0.0, 1.0)
    tot = S.sum(axis=1, keepdims=True)
    empty = tot[:, 0] <= 0
    P = np.where(empty[:, None], 1.0 / k, S / np.where(empty[:, None], 1.0, tot))
    labels = np.where(empty, -1, P.argmax(axis=1)).astype(np.int64)
    return ConceptResult(
        memberships=P,
        labels=labels,
        n_concepts=k,
        noise_ratio=float(empty.mean()),
        method="pca",
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- GRI


def _torch_dtype(dtype: str) -> torch.dtype:
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return torch.float32 if dtype == "float32" else torch.float64


def _pair_dissimilarity(A: torch.Tensor, B: torch.Tensor, distance: str) -> torch.Tensor:
    """1 − E(i, j) for all rows of A against all rows of B."""
    if distance == "l1":
        return 0.5 * torch.cdist(A, B, p=1)
    return 1.0 - A @ B.T  # rows pre-normalised for the cosine variant


def _rowwise_dissimilarity(
    X: torch.Tensor, i: torch.Tensor, j: torch.Tensor, distance: str
) -> torch.Tensor:
    """1 − E(i_k, j_k) for the index pairs (i_k, j_k)."""
    a, b = X.index_select(0, i), X.index_select(0, j)
    if distance == "l1":
        return a.sub_(b).abs_().sum(dim=1).mul_(0.5)
    return 1.0 - a.mul_(b).sum(dim=1)


def generalized_rand_index_estimate(
    P: np.ndarray,
    Q: np.ndarray,
    *,
    exact_max_n: int = 20000,
    n_pairs: int = 1_000_000,
    seed: int = 0,
    chunk: int | None = None,
    distance: str = "l1",
    crisp: bool = False,
    dtype: str = "float32",
    device: str = "cpu",
) -> GRIEstimate:
    """Generalised (fuzzy) Rand index with its bookkeeping (arXiv:2412.06639 Eq. 3; Hüllermeier
    et al. 2012).

    For soft partitions P (N, C) and Q (N, C') (entries in [0, 1], rows summing to <= 1;
    C != C' allowed)::

        E_P(i, j) = 1 − ½ ‖P_i − P_j‖₁
        GRI(P, Q) = 1 − (2 / (N(N−1))) Σ_{i<j} |E_P(i, j) − E_Q(i, j)|

    1 − GRI is a pseudo-metric; on one-hot partitions GRI is the Rand index.

    Parameters
    ----------
    exact_max_n : all N(N−1)/2 pairs when N <= exact_max_n (chunked over i, torch ``cdist``);
        beyond it a Monte-Carlo estimate over ``n_pairs`` uniformly drawn pairs i != j (seeded;
        an unbiased estimate with standard error <= 0.5 / sqrt(n_pairs)).
    chunk : rows i per block; default ``2**23 // N`` (≈ 3 blocks of chunk·N values live).
    distance : "l1" (the paper) or "cosine" (E = cos(P_i, P_j); in the reference code, unused
        in the paper).
    crisp : compare one-hot argmax partitions instead (the reference's ``crisp`` variant).
    dtype : per-pair arithmetic precision; sums are accumulated in float64 either way.
    """
    P, Q = _check_pair(P, Q)
    if distance not in ("l1", "cosine"):
        raise ValueError(f"distance must be 'l1' or 'cosine', got {distance!r}")
    if (chunk is not None and chunk < 1) or n_pairs < 1 or exact_max_n < 2:
        raise ValueError("chunk and n_pairs must be >= 1 and exact_max_n >= 2")
    if crisp:
        P = np.eye(P.shape[1])[P.argmax(axis=1)]
        Q = np.eye(Q.shape[1])[Q.argmax(axis=1)]
    n = P.shape[0]
    if chunk is None:
        chunk = max(1, (1 << 23) // n)
    tdt = _torch_dtype(dtype)
    Pt = torch.as_tensor(P, dtype=tdt, device=device)
    Qt = torch.as_tensor(Q, dtype=tdt, device=device)
    if distance == "cosine":
        Pt = torch.nn.functional.normalize(Pt, dim=1)
        Qt = torch.nn.functional.normalize(Qt, dim=1)

    total = torch.zeros((), dtype=torch.float64, device=device)
    if n <= exact_max_n:
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            # Block rows i in [s, e) against columns j >= s; only j > i is kept.
            diff = (
                _pair_dissimilarity(Pt[s:e], Pt[s:], distance)
                - _pair_dissimilarity(Qt[s:e], Qt[s:], distance)
            ).abs_()
            total += diff[:, : e - s].triu(1).sum(dtype=torch.float64)
            total += diff[:, e - s :].sum(dtype=torch.float64)
        m = n * (n - 1) // 2
        return GRIEstimate(1.0 - float(total) / m, True, m, n)

    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=n_pairs)
    j = (i + rng.integers(1, n, size=n_pairs)) % n  # uniform over ordered pairs with j != i
    step = max(1, (1 << 22) // max(P.shape[1], Q.shape[1]))  # pairs per block (bounds memory)
    for s in range(0, n_pairs, step):
        ii = torch.as_tensor(i[s : s + step], device=device)
        jj = torch.as_tensor(j[s : s + step], device=device)
        diff = (
            _rowwise_dissimilarity(Pt, ii, jj, distance)
            - _rowwise_dissimilarity(Qt, ii, jj, distance)
        ).abs_()
        total += diff.sum(dtype=torch.float64)
    return GRIEstimate(1.0 - float(total) / n_pairs, False, int(n_pairs), n)


def generalized_rand_index(
    P: np.ndarray,
    Q: np.ndarray,
    *,
    exact_max_n: int = 20000,
    n_pairs: int = 1_000_000,
    seed: int = 0,
    chunk: int | None = None,
    distance: str = "l1",
    crisp: bool = False,
    dtype: str = "float32",
    device: str = "cpu",
) -> float:
    """Generalised Rand index GRI(P, Q) as a float; see :func:`generalized_rand_index_estimate`
    for the definition (arXiv:2412.06639 Eq. 3) and whether it was exact."""
    return generalized_rand_index_estimate(
        P,
        Q,
        exact_max_n=exact_max_n,
        n_pairs=n_pairs,
        seed=seed,
        chunk=chunk,
        distance=distance,
        crisp=crisp,
        dtype=dtype,
        device=device,
    ).value


# --------------------------------------------------------------------------- concept pairs


def _gini_sum(x: torch.Tensor) -> torch.Tensor:
    """Σ_{i<j} |x_i − x_j| along the last axis, by sorting: Σ_k (2k − N + 1) x_(k)."""
    n = x.shape[-1]
    w = 2.0 * torch.arange(n, dtype=x.dtype, device=x.device) - (n - 1)
    return (torch.sort(x, dim=-1).values * w).sum(dim=-1)


def concept_pair_distances(
    P: np.ndarray, Q: np.ndarray, *, chunk: int = 1 << 22, device: str = "cpu"
) -> np.ndarray:
    """Concept-pair decomposition of the GRI distance (arXiv:2412.06639 Eq. 4).

    ::

        D[a, b] = (2 / (N(N−1))) Σ_{i<j} ½ | |P_ia − P_ja| − |Q_ib − Q_jb| |

    Small D[a, b]: concepts a and b group and separate the same sample pairs (a shared concept).
    D is not normalised by concept size (as in the paper): small concepts have small D.

    Computed exactly in O(C·C'·N log N) instead of O(N²·C·C') with the identity
    ``||u| − |v|| = |u + v| + |u − v| − |u| − |v|`` applied to u = P_ia − P_ja, v = Q_ib − Q_jb:
    every term is then a sum of pairwise absolute differences of one vector (p_a ± q_b, p_a, q_b),
    which sorting gives in O(N log N). float64 throughout (the terms cancel).

    Returns
    -------
    (C, C') float64 array.
    """
    P, Q = _check_pair(P, Q)
    n = P.shape[0]
    Pt = torch.as_tensor(P.T.copy(), dtype=torch.float64, device=device)  # (C, N)
    Qt = torch.as_tensor(Q.T.copy(), dtype=torch.float64, device=device)  # (C', N)
    gp, gq = _gini_sum(Pt), _gini_sum(Qt)
    ca, cb = Pt.shape[0], Qt.shape[0]
    rows = max(1, chunk // max(cb * n, 1))  # concepts a per block (bounds the (rows, C', N) sort)
    out = torch.empty((ca, cb), dtype=torch.float64, device=device)
    for s in range(0, ca, rows):
        pa = Pt[s : s + rows, None, :]
        out[s : s + rows] = (
            _gini_sum(pa + Qt[None]) + _gini_sum(pa - Qt[None]) - gp[s : s + rows, None] - gq[None]
        )
    # Σ ½·(...) divided by the number of pairs N(N−1)/2.
    D = (out / (n * (n - 1))).cpu().numpy()
    return np.maximum(D, 0.0)  # round-off can leave -1e-17 where D is exactly 0


def match_concepts(D: np.ndarray, threshold: float) -> ConceptMatch:
    """Hungarian one-to-one concept matching on D (arXiv:2412.06639).

    ``scipy.optimize.linear_sum_assignment(D)`` pairs min(C, C') concepts with the smallest
    total distance. Rule: a matched pair with ``D[a, b] <= threshold`` is *universal* (shared by
    both representations); a concept is *unique* when it is unmatched (C != C') or its match is
    farther than ``threshold``. The threshold is the caller's choice (e.g. a quantile of D or a
    null distribution from shuffled samples); it is not a value from the paper.
    """
    from scipy.optimize import linear_sum_assignment

    D = as_features(D, "D", min_rows=1)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    a, b = linear_sum_assignment(D)
    dist = D[a, b]
    universal = dist <= threshold
    pairs = pd.DataFrame(
        {"concept_a": a, "concept_b": b, "distance": dist, "universal": universal}
    ).sort_values("distance", kind="stable", ignore_index=True)
    unique_a = np.setdiff1d(np.arange(D.shape[0]), a[universal])
    unique_b = np.setdiff1d(np.arange(D.shape[1]), b[universal])
    return ConceptMatch(pairs, unique_a, unique_b, float(threshold))


# --------------------------------------------------------------------------- sanity check


def sanity_score(
    gri_matrix: np.ndarray, *, k: int = 1, positions: Sequence[int] | None = None
) -> float:
    """Layer sanity score (arXiv:2412.06639; reference ``alignment_sanity_check_score``).

    For each layer l, take its most-aligned *other* layer m* = argmax_{m != l} GRI[l, m] (the
    first one on ties); the score is the share of layers with 1 <= |pos(m*) − pos(l)| <= k.
    Neighbouring blocks should be the most similar, so a good concept definition scores near 1.

    Parameters
    ----------
    gri_matrix : (L, L) layer × layer alignment (symmetric for the GRI), L >= 2, finite (drop
        failed layers and pass ``positions``).
    k : adjacency radius (paper: 1).
    positions : depth index of each row (default 0..L−1); pass it when some layers are missing.
    """
    G = as_features(gri_matrix, "gri_matrix")
    if G.shape[0] != G.shape[1]:
        raise ValueError(f"gri_matrix must be square (L, L) with L >= 2, got shape {G.shape}")
    pos = np.arange(G.shape[0]) if positions is None else to_numpy(positions, "positions")
    if pos.shape != (G.shape[0],):
        raise ValueError(f"positions must have length {G.shape[0]}, got shape {pos.shape}")
    G = G.copy()
    np.fill_diagonal(G, -np.inf)
    best = G.argmax(axis=1)
    gap = np.abs(pos[best] - pos)
    return float(np.mean((gap >= 1) & (gap <= k)))


# --------------------------------------------------------------------------- tables


def _layer_arrays(features: Mapping, n: int) -> dict[str, np.ndarray]:
    """Every layer as a checked numpy array of n rows, before the (slow) discovery starts."""
    arrays = {}
    for name, x in features.items():
        X = as_features(x, f"features[{name!r}]", dtype=None)
        if X.shape[0] != n:
            raise ValueError(
                f"features[{name!r}] has {X.shape[0]} rows, which do not match the {n} labels; "
                "pass one label per sample"
            )
        arrays[name] = X
    return arrays


def _discover(method: str, X: np.ndarray, n_concepts: int | None, seed: int, kw) -> ConceptResult:
    if method == "manifold":
        return discover_concepts(X, seed=seed, **kw)
    if method == "kmeans":
        return kmeans_concepts(X, n_concepts, seed)
    return pca_concepts(X, n_concepts)


def concepts_table(
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    methods: Sequence[str] = _METHODS,
    n_components: int = 50,
    n_neighbors: int = 30,
    min_dist: float = 0.01,
    min_cluster_size: int = 50,
    min_samples: int = 20,
    selection: str = "leaf",
    renormalize: bool = True,
    n_concepts: int | None = None,
    max_samples: int | None = None,
    exact_max_n: int = 20000,
    n_pairs: int = 1_000_000,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[pd.DataFrame, dict[str, dict[str, ConceptResult]]]:
    """Concept discovery and concept-based alignment within one model (arXiv:2412.06639).

    Per layer and method ("manifold" = NLMCD, "kmeans", "pca"): discover concepts; the
    baselines use the C that NLMCD found at that layer (or ``n_concepts`` when "manifold" is not
    among the methods). Then, per method: the layer × layer GRI, the layer sanity score and the
    GRI against the one-hot ground-truth labels (the "semantic structure" curve).

    Samples: when ``max_samples`` < N, a seeded uniform subset (sorted indices; the same for every
    model with the same N, seed and max_samples, which :func:`cross_model_gri` checks).

    A layer where HDBSCAN finds < 2 concepts is recorded (``n_concepts`` = what was found,
    ``concept_failed`` = 1) and left out of every GRI, for all methods; the sanity score then uses
    the remaining layers at their original depth positions.

    Returns
    -------
    rows : tidy DataFrame with columns layer, layer_b, metric, variant, value, n_samples, seed,
        exact, n_pairs. Metrics (variant = method):
        ``n_concepts``, ``noise_ratio``, ``concept_failed`` (per layer);
        ``gri_layers`` (layer, layer_b; the full symmetric matrix incl. the diagonal);
        ``gri_labels`` (per layer); ``concept_sanity`` (layer = "all").
        ``layer_b`` is "" where it does not apply; ``exact``/``n_pairs`` describe the GRI.
    memberships : {method: {layer: ConceptResult}} for :func:`cross_model_gri` and the concept
        matching; each result carries ``sample_index`` and its wall time ``seconds``.
    """
    methods = tuple(methods)
    bad = [m for m in methods if m not in _METHODS]
    if bad or not methods:
        raise ValueError(f"unknown methods {bad}; choose from {_METHODS}")
    if "manifold" not in methods and n_concepts is None:
        raise ValueError("baselines need a concept count: include 'manifold' or pass n_concepts")
    if not features:
        raise ValueError("features is empty; pass at least one layer")
    labels = as_labels(labels, None)
    layer_names = list(features)
    n = labels.shape[0]
    arrays = _layer_arrays(features, n)
    if max_samples is not None and max_samples < n:
        if max_samples < 2:
            raise ValueError(f"max_samples={max_samples} must be >= 2")
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))
    else:
        idx = np.arange(n)
    y = labels[idx]
    n_used = idx.shape[0]
    gri_kw = {"exact_max_n": exact_max_n, "n_pairs": n_pairs, "seed": seed, "device": device}

    mem: dict[str, dict[str, ConceptResult]] = {m: {} for m in methods}
    rows: list[dict] = []

    def row(layer, metric, variant, value, layer_b="", est: GRIEstimate | None = None):
        rows.append(
            {
                "layer": layer,
                "layer_b": layer_b,
                "metric": metric,
                "variant": variant,
                "value": float(value),
                "n_samples": n_used,
                "seed": seed,
                "exact": bool(est.exact) if est else True,
                "n_pairs": int(est.n_pairs) if est else 0,
            }
        )

    umap_kw = {
        "n_components": n_components,
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
        "min_cluster_size": min_cluster_size,
        "min_samples": min_samples,
        "selection": selection,
        "renormalize": renormalize,
    }
    for name in layer_names:
        X = arrays[name][idx]
        c = n_concepts
        failed = False
        for method in ("manifold", "kmeans", "pca"):
            if method not in methods:
                continue
            if failed:
                row(name, "concept_failed", method, 1.0)
                continue
            try:
                res = _discover(method, X, c, seed, umap_kw)
            except TooFewConceptsError as err:
                failed = True
                row(name, "n_concepts", method, err.n_found)
                row(name, "noise_ratio", method, err.noise_ratio)
                row(name, "concept_failed", method, 1.0)
                continue
            if method == "manifold":
                c = res.n_concepts
            res.sample_index = idx
            mem[method][name] = res
            row(name, "n_concepts", method, res.n_concepts)
            row(name, "noise_ratio", method, res.noise_ratio)
            row(name, "concept_failed", method, 0.0)

    truth = one_hot(y)
    position = {name: i for i, name in enumerate(layer_names)}
    for method in methods:
        done = list(mem[method])
        for name in done:
            est = generalized_rand_index_estimate(mem[method][name].memberships, truth, **gri_kw)
            row(name, "gri_labels", method, est.value, est=est)
        G = np.eye(len(done))
        for a in range(len(done)):
            row(done[a], "gri_layers", method, 1.0, layer_b=done[a])
            for b in range(a + 1, len(done)):
                est = generalized_rand_index_estimate(
                    mem[method][done[a]].memberships, mem[method][done[b]].memberships, **gri_kw
                )
                G[a, b] = G[b, a] = est.value
                row(done[a], "gri_layers", method, est.value, layer_b=done[b], est=est)
                row(done[b], "gri_layers", method, est.value, layer_b=done[a], est=est)
        if len(done) >= 2:
            score = sanity_score(G, positions=[position[d] for d in done])
            row("all", "concept_sanity", method, score)
    return pd.DataFrame(rows), mem


def cross_model_gri(
    memberships_a: Mapping[str, Mapping[str, ConceptResult]],
    memberships_b: Mapping[str, Mapping[str, ConceptResult]],
    *,
    model_b: str = "",
    exact_max_n: int = 20000,
    n_pairs: int = 1_000_000,
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """GRI between every (layer of model A, layer of model B) pair (arXiv:2412.06639).

    Both inputs come from :func:`concepts_table` on the same dataset with the same sampling
    (checked through ``sample_index``). For every method present in both, returns rows with
    columns layer, model_b, layer_b, metric = "gri_models", variant = method, value, n_samples,
    seed, exact, n_pairs (the workflow adds model A's columns).
    """
    rows = []
    for method in memberships_a:
        if method not in memberships_b:
            continue
        for la, ra in memberships_a[method].items():
            for lb, rb in memberships_b[method].items():
                ia, ib = ra.sample_index, rb.sample_index
                if ia is not None and ib is not None and not np.array_equal(ia, ib):
                    raise ValueError(
                        f"layers {la!r} and {lb!r} were computed on different samples; run "
                        "concepts_table with the same data, max_samples and seed for both models"
                    )
                est = generalized_rand_index_estimate(
                    ra.memberships,
                    rb.memberships,
                    exact_max_n=exact_max_n,
                    n_pairs=n_pairs,
                    seed=seed,
                    device=device,
                )
                rows.append(
                    {
                        "layer": la,
                        "model_b": model_b,
                        "layer_b": lb,
                        "metric": "gri_models",
                        "variant": method,
                        "value": est.value,
                        "n_samples": est.n_samples,
                        "seed": seed,
                        "exact": est.exact,
                        "n_pairs": est.n_pairs,
                    }
                )
    cols = [
        "layer",
        "model_b",
        "layer_b",
        "metric",
        "variant",
        "value",
        "n_samples",
        "seed",
        "exact",
        "n_pairs",
    ]
    return pd.DataFrame(rows, columns=cols)


def sampled_concepts_table(
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    split: np.ndarray,
    *,
    params: Mapping,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, dict[str, ConceptResult]]]:
    """:func:`concepts_table` on the config's sample of one feature file.

    ``params`` is the concepts config section: ``split`` and ``max_samples`` choose the rows
    (:func:`repaudit.tables.select_samples`, stratified and seeded, so every model of a dataset
    sees the same images); the other keys go to :func:`concepts_table`. Each result's
    ``sample_index`` is translated to rows of the full feature file, so memberships of
    different models can be matched by row.
    """
    labels = as_labels(labels, None)
    split = as_labels(split, labels.shape[0], "split", expected="one per entry of labels")
    features = _layer_arrays(features, labels.shape[0])
    p = dict(params)
    idx = select_samples(labels, split, p.pop("split"), p.pop("max_samples"), seed)
    table, memberships = concepts_table(subset(features, idx), labels[idx], seed=seed, **p)
    for by_layer in memberships.values():
        for result in by_layer.values():
            rows = result.sample_index
            result.sample_index = idx[rows] if rows is not None else idx
    return table, memberships


def cross_model_gri_table(
    memberships_by_model: Mapping[str, Mapping[str, Mapping[str, ConceptResult]]],
    layers: Sequence[str],
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`cross_model_gri` for every ordered pair of models (A == B included), on ``layers``.

    ``memberships_by_model`` maps model -> method -> layer -> result (as written by
    :func:`sampled_concepts_table`); layers not in ``layers`` are left out. The rows of (A, B)
    carry ``model`` = A (first column) and ``model_b`` = B.
    """
    keep = set(layers)
    sets = {
        m: {
            method: {lay: r for lay, r in by_layer.items() if lay in keep}
            for method, by_layer in by_method.items()
        }
        for m, by_method in memberships_by_model.items()
    }
    frames = [
        with_keys(cross_model_gri(sets[a], sets[b], model_b=b, seed=seed), model=a)
        for a in sets
        for b in sets
    ]
    return pd.concat(frames, ignore_index=True)
