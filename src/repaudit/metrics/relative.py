"""Relative representations and cross-encoder latent-space similarity.

Moschella, Maiorca, Fumero, Norelli, Locatello & Rodolà, "Relative representations enable
zero-shot latent space communication", ICLR 2023, arXiv:2209.15430 (Sec. 3, Eq. 1; Sec. 4.1
latent similarity; Sec. 5.2 zero-shot image-classification stitching). Peers used as baselines:
linear CKA (Kornblith, Norouzi, Lee & Hinton, ICML 2019, arXiv:1905.00414, Eq. 5) and the
mutual k-nearest-neighbour alignment of Huh, Cheung, Wang & Isola, "The Platonic Representation
Hypothesis", ICML 2024, arXiv:2405.07987 (Sec. 2.3).

A relative representation describes a sample by its cosine similarity to a fixed, ordered set of
*anchor* samples, r(x) = [cos(e_x, e_a1), ..., cos(e_x, e_aK)]. The same anchor *items* are
embedded by every encoder, so relative spaces of encoders with different widths share one
K-dimensional coordinate system and are invariant to rotations, reflections and isotropic
rescaling of each latent space.

Public API
----------
select_anchors, relative_projection, linear_cka, mutual_knn, latent_similarity,
weighted_f1_score, train_decoder, decoder_predict, stitching_scores, and the two table
functions relative_table (all-pairs similarity) and stitching_table (zero-shot stitching).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "StitchingDecoder",
    "decoder_predict",
    "latent_similarity",
    "linear_cka",
    "mutual_knn",
    "relative_projection",
    "relative_table",
    "select_anchors",
    "stitching_scores",
    "stitching_table",
    "train_decoder",
    "weighted_f1_score",
]

ANCHOR_METHODS = ("uniform", "stratified", "fps", "kmeans")
STITCHING_VARIANTS = ("relative", "relative_whitened", "absolute")
# Similarity blocks are computed chunk x N at a time; this bounds a block to 2**22 entries
# (16 MiB in float32) whatever N is.
_CHUNK_ELEMS = 2**22


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _as_features(X, name: str, min_rows: int = 2) -> np.ndarray:
    """Return X as a finite float64 (n, d) array or raise a ValueError that says how to fix it."""
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}.")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples); got {arr.shape[0]}.")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} has no feature columns; pass (n_samples, n_features >= 1).")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real numeric array; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf; drop or impute those rows first.")
    return arr


def _as_labels(labels, n: int | None, name: str = "labels") -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,); got shape {lab.shape}.")
    if n is not None and lab.shape[0] != n:
        raise ValueError(f"{name} has {lab.shape[0]} entries but the features have {n} rows.")
    if lab.dtype.kind == "f" and not np.isfinite(lab).all():
        raise ValueError(f"{name} contains NaN or Inf; pass integer class ids.")
    return lab


def _same_rows(X: np.ndarray, Y: np.ndarray, what: str) -> None:
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{what} needs the same samples in both spaces (row i = item i); got "
            f"{X.shape[0]} and {Y.shape[0]} rows."
        )


def _unit_rows(X: np.ndarray, name: str) -> np.ndarray:
    """L2-normalise rows (float64); a zero row has no direction, so its cosine is undefined."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if np.any(norms == 0):
        bad = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise ValueError(
            f"{name} row {bad} has zero norm, so its cosine similarity is undefined; remove "
            "all-zero feature rows (or, with center=True, rows equal to the anchor mean)."
        )
    return X / norms


def _check_k(k: int, n: int, what: str, self_excluded: bool) -> int:
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"{what}: k must be a positive integer; got {k!r}.")
    limit = n - 1 if self_excluded else n
    if k > limit:
        raise ValueError(
            f"{what}: k={k} exceeds the {limit} available neighbours for {n} samples; "
            "lower k or pass more samples."
        )
    return int(k)


# --------------------------------------------------------------------------------------------
# anchors
# --------------------------------------------------------------------------------------------
def select_anchors(
    n_anchors: int,
    *,
    labels=None,
    X=None,
    method: str = "uniform",
    seed: int = 0,
    n_samples: int | None = None,
) -> np.ndarray:
    """Choose the row indices of the anchor samples (arXiv:2209.15430, Sec. 3 and App. A).

    The returned indices name data *items*; the caller embeds those same items with every
    encoder ("parallel anchors"), so one call serves all encoders of a comparison.

    Parameters
    ----------
    n_anchors : int
        Number K of anchors, 1 <= K <= n_samples.
    labels : array (n,), optional
        Class ids; required for ``method="stratified"``; otherwise only gives the pool size.
    X : array (n, d), optional
        Reference space; required for ``"fps"`` and ``"kmeans"`` (rows are L2-normalised first).
    method : {"uniform", "stratified", "fps", "kmeans"}
        - ``uniform``: K distinct rows drawn uniformly without replacement (the paper's vision
          and word experiments).
        - ``stratified``: seeded shuffle of all rows, then round-robin over the classes (sorted
          class ids), taking each class's next row in shuffled order until K rows are taken.
          This is the paper's ``stratified_subset``: balanced classes, K // C per class, the
          first K mod C classes get one more; a class that runs out is skipped.
        - ``fps``: farthest-point sampling on the L2-normalised rows of X (Euclidean distance,
          equivalently largest angle) from a seeded random start.
        - ``kmeans``: k-means (k-means++ initialisation, Lloyd iterations, seeded) with K
          clusters on the L2-normalised rows of X, then for every centroid the nearest sample
          that is not already taken (centroids with the closest match choose first), so the
          K indices are distinct.
    seed : int
        Seed of ``np.random.default_rng`` / ``torch.Generator``; same seed, same indices.
    n_samples : int, optional
        Pool size for ``"uniform"`` when neither labels nor X is given.

    Returns
    -------
    np.ndarray of int64, shape (K,)
        Distinct row indices into the pool, in selection order.

    Notes
    -----
    ``fps`` and ``kmeans`` depend on the reference space X. Choosing them in the space of one
    of the compared encoders makes the anchors well spread *for that encoder* and biases the
    comparison in its favour (the paper picks them in the source space). Pass a reference
    that belongs to no compared encoder, e.g. raw pixels, or the concatenation of the
    L2-normalised train features of *all* compared encoders (what :func:`relative_table`
    does by default).
    """
    if method not in ANCHOR_METHODS:
        raise ValueError(f"method must be one of {ANCHOR_METHODS}; got {method!r}.")
    lab = None
    if labels is not None:
        lab = _as_labels(labels, None)
    Xa = None
    if X is not None:
        Xa = _as_features(X, "X", min_rows=1)
    sizes = {
        name: size
        for name, size in (
            ("labels", None if lab is None else lab.shape[0]),
            ("X", None if Xa is None else Xa.shape[0]),
            ("n_samples", n_samples),
        )
        if size is not None
    }
    if not sizes:
        raise ValueError("select_anchors needs the pool: pass labels, X or n_samples.")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"labels, X and n_samples disagree on the pool size: {sizes}.")
    n = int(next(iter(sizes.values())))
    if isinstance(n_anchors, bool) or int(n_anchors) != n_anchors or not 1 <= n_anchors <= n:
        raise ValueError(
            f"n_anchors must be an integer in [1, {n}] (the pool size); got {n_anchors!r}."
        )
    n_anchors = int(n_anchors)
    rng = np.random.default_rng(seed)

    if method == "uniform":
        return rng.choice(n, size=n_anchors, replace=False).astype(np.int64)
    if method == "stratified":
        if lab is None:
            raise ValueError('method="stratified" needs labels.')
        return _stratified_round_robin(lab, n_anchors, rng)
    if Xa is None:
        raise ValueError(f'method="{method}" needs a reference space X (see the Notes).')
    Xn = _unit_rows(Xa, "X")
    if method == "fps":
        return _farthest_point_sampling(Xn, n_anchors, rng)
    return _kmeans_anchors(Xn, n_anchors, rng)


def _stratified_round_robin(labels: np.ndarray, n_anchors: int, rng) -> np.ndarray:
    order = rng.permutation(labels.shape[0])
    classes = np.unique(labels)
    # rows of each class in shuffled order
    queues = [order[labels[order] == c] for c in classes]
    picked: list[int] = []
    depth = 0
    while len(picked) < n_anchors:
        for queue in queues:
            if depth < queue.shape[0]:
                picked.append(int(queue[depth]))
                if len(picked) == n_anchors:
                    break
        depth += 1
    return np.asarray(picked, dtype=np.int64)


def _farthest_point_sampling(Xn: np.ndarray, n_anchors: int, rng) -> np.ndarray:
    n = Xn.shape[0]
    picked = np.empty(n_anchors, dtype=np.int64)
    picked[0] = rng.integers(n)
    # squared distance of every row to its nearest picked row; unit rows: |x - y|^2 = 2 - 2 x.y
    dist = np.maximum(2.0 - 2.0 * (Xn @ Xn[picked[0]]), 0.0)
    dist[picked[0]] = -np.inf  # never pick a row twice, even among duplicate points
    for j in range(1, n_anchors):
        nxt = int(np.argmax(dist))
        picked[j] = nxt
        np.minimum(dist, np.maximum(2.0 - 2.0 * (Xn @ Xn[nxt]), 0.0), out=dist)
        dist[picked[: j + 1]] = -np.inf
    return picked


def _sq_dists(X: np.ndarray, C: np.ndarray, x_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances (n, m) between the rows of X (n, d) and C (m, d)."""
    x_sq = (X * X).sum(1) if x_sq is None else x_sq
    d = x_sq[:, None] - 2.0 * (X @ C.T) + (C * C).sum(1)[None, :]
    return np.maximum(d, 0.0, out=d)


def _kmeans_anchors(Xn: np.ndarray, n_clusters: int, rng, max_iter: int = 100) -> np.ndarray:
    n = Xn.shape[0]
    # k-means++ initialisation (Arthur & Vassilvitskii 2007)
    centers = np.empty((n_clusters, Xn.shape[1]))
    centers[0] = Xn[rng.integers(n)]
    x_sq = (Xn * Xn).sum(1)
    closest = _sq_dists(Xn, centers[:1], x_sq)[:, 0]
    for j in range(1, n_clusters):
        total = closest.sum()
        nxt = rng.choice(n, p=closest / total) if total > 0 else rng.integers(n)
        centers[j] = Xn[nxt]
        np.minimum(closest, _sq_dists(Xn, centers[j : j + 1], x_sq)[:, 0], out=closest)

    # Lloyd iterations until the assignment stops changing or the centroids move less than
    # sklearn's default tolerance (1e-4 x the mean feature variance, summed squared shift)
    tol = 1e-4 * float(np.mean(np.var(Xn, axis=0)))
    rows = max(1, _CHUNK_ELEMS // n_clusters)
    assign = None
    for _ in range(max_iter):
        new_assign = np.empty(n, dtype=np.int64)
        dmin = np.empty(n)
        for s in range(0, n, rows):
            d = _sq_dists(Xn[s : s + rows], centers, x_sq[s : s + rows])
            new_assign[s : s + rows] = np.argmin(d, axis=1)
            dmin[s : s + rows] = np.take_along_axis(d, new_assign[s : s + rows, None], 1)[:, 0]
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        previous = centers.copy()
        counts = np.bincount(assign, minlength=n_clusters)
        order = np.argsort(assign, kind="stable")
        filled = np.flatnonzero(counts)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[filled]
        centers[filled] = np.add.reduceat(Xn[order], starts, axis=0) / counts[filled, None]
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            # re-seed an empty cluster at the points worst served by their centroid
            centers[empty] = Xn[np.argsort(-dmin, kind="stable")[: empty.size]]
        if np.sum((centers - previous) ** 2) <= tol:
            break

    # nearest distinct sample per centroid: each centroid keeps its n_clusters nearest rows as
    # candidates (others can take at most n_clusters - 1, so one is always free); centroids
    # with the closest match choose first
    n_cand = min(n, n_clusters)
    cand = np.empty((n_clusters, n_cand), dtype=np.int64)
    crow = max(1, _CHUNK_ELEMS // n)
    for s in range(0, n_clusters, crow):
        d = _sq_dists(centers[s : s + crow], Xn)
        idx = np.argpartition(d, n_cand - 1, axis=1)[:, :n_cand] if n_cand < n else None
        if idx is None:
            idx = np.broadcast_to(np.arange(n), d.shape)
        near = np.argsort(np.take_along_axis(d, idx, 1), axis=1, kind="stable")
        cand[s : s + crow] = np.take_along_axis(idx, near, 1)
    best = np.sum((centers - Xn[cand[:, 0]]) ** 2, axis=1)
    taken = np.zeros(n, dtype=bool)
    picked = np.empty(n_clusters, dtype=np.int64)
    for c in np.argsort(best, kind="stable"):
        row = cand[c]
        free = row[~taken[row]][0]
        taken[free] = True
        picked[c] = free
    return picked


# --------------------------------------------------------------------------------------------
# relative projection and similarity measures
# --------------------------------------------------------------------------------------------
def relative_projection(X, anchors_X, center: bool = False, whiten: bool = False) -> np.ndarray:
    """Relative representation: cosine similarity of every sample to every anchor.

    arXiv:2209.15430, Eq. 1 with the cosine similarity::

        r(x)_j = cos(e_x - mu, e_aj - mu),   j = 1..K,

    with ``mu = 0`` (the paper's setting, ``center=False``) or ``mu = mean_j e_aj``, the anchor
    mean (``center=True``, as latentis' ``Centering``; adds invariance to translations).

    ``whiten=True`` (not in the paper; the "whitened inner products" of "Improving Relative
    Representations with Learned Anchors and Whitened Inner Products", OpenReview t0vP2ge9fw)
    takes the cosine in the anchors' whitened coordinates, ``cos(W(e_x - mu), W(e_aj - mu))``
    with ``mu`` the anchor mean and ``W = Σ^{-1/2}`` (symmetric, pseudo-inverse over the
    eigenvalues above ``1e-10 λ_max``) of the anchors' covariance Σ. Why: r is linear in the
    unit embedding, so its covariance carries the *square* of the latent space's anisotropy; class
    information in low-variance directions, which a linear read-out of the absolute space still
    finds, shrinks further in r. Whitening removes the anisotropy and makes r invariant to every
    invertible affine map of the latent space (with Σ of full rank), not only to similarities.

    Parameters
    ----------
    X : array (n, d)
        Absolute embeddings of the samples.
    anchors_X : array (K, d)
        The same encoder's embeddings of the anchor items, in the shared anchor order.
    center : bool
        Subtract the anchor mean from samples and anchors before the cosine.
    whiten : bool
        Centre and whiten samples and anchors with the anchors' statistics (implies ``center``).

    Returns
    -------
    np.ndarray float64 (n, K), entries in [-1, 1].
    """
    Xu, Au = _relative_factors(X, anchors_X, center, whiten)
    return Xu @ Au.T


def _anchor_whitening(A: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Symmetric inverse square root of the anchors' covariance (pseudo-inverse below rtol)."""
    Ac = A - A.mean(axis=0)
    evals, evecs = np.linalg.eigh(Ac.T @ Ac / A.shape[0])
    keep = evals > rtol * max(float(evals[-1]), 0.0)
    if not keep.any():
        raise ValueError("anchors_X has no variance; whitening is undefined (pick other anchors).")
    V = evecs[:, keep]
    return (V / np.sqrt(evals[keep])) @ V.T


def _relative_factors(
    X, anchors_X, center: bool, whiten: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows of the (optionally anchor-centred or -whitened) samples and anchors; r = Xu Auᵀ."""
    Xa = _as_features(X, "X", min_rows=1)
    A = _as_features(anchors_X, "anchors_X", min_rows=1)
    if Xa.shape[1] != A.shape[1]:
        raise ValueError(
            f"X has {Xa.shape[1]} features but anchors_X has {A.shape[1]}; embed the anchors "
            "with the same encoder and layer as X."
        )
    if center or whiten:
        mu = A.mean(axis=0)
        Xa, A = Xa - mu, A - mu
    if whiten:
        W = _anchor_whitening(A)
        Xa, A = Xa @ W, A @ W
    return _unit_rows(Xa, "X"), _unit_rows(A, "anchors_X")


def _centered_gram_norm(Xc: np.ndarray) -> float:
    return float(np.linalg.norm(Xc.T @ Xc if Xc.shape[0] >= Xc.shape[1] else Xc @ Xc.T))


def linear_cka(X, Y) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019, arXiv:1905.00414, Eq. 5).

    With column-centred X_c (n, d1) and Y_c (n, d2)::

        CKA(X, Y) = ||Y_cᵀ X_c||_F² / (||X_cᵀ X_c||_F · ||Y_cᵀ Y_c||_F)
                  = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),  K = X Xᵀ, L = Y Yᵀ,

    (biased HSIC, ``tr(K H L H)`` with the centring matrix H). The feature-space form costs
    O(n d1 d2) and never builds an n x n matrix; when n is small next to the widths the
    identical sample-space form (n x n Grams) is used instead. Computed in float64.

    Returns
    -------
    float in [0, 1]; 1 iff the spaces agree up to an orthogonal map and isotropic scaling.
    """
    Xa = _as_features(X, "X")
    Ya = _as_features(Y, "Y")
    _same_rows(Xa, Ya, "linear_cka")
    Xc = Xa - Xa.mean(axis=0)
    Yc = Ya - Ya.mean(axis=0)
    return _cka_from_centered(Xc, Yc, _centered_gram_norm(Xc), _centered_gram_norm(Yc))


def _cka_from_centered(Xc: np.ndarray, Yc: np.ndarray, nx: float, ny: float) -> float:
    if nx == 0 or ny == 0:
        raise ValueError(
            "linear CKA is undefined for a space whose features are constant across samples "
            "(zero centred Gram matrix); drop that layer or pass varying samples."
        )
    n, d1 = Xc.shape
    d2 = Yc.shape[1]
    if d1 * d2 <= n * (d1 + d2):
        num = float(np.linalg.norm(Yc.T @ Xc) ** 2)
    else:
        num = float(np.sum((Xc @ Xc.T) * (Yc @ Yc.T)))
    return num / (nx * ny)


def _unit_tensor(X: np.ndarray, name: str, device) -> torch.Tensor:
    """Unit rows as float32 (the precision of the paper's FAISS search) on ``device``."""
    return torch.from_numpy(_unit_rows(X, name).astype(np.float32)).to(device)


def _topk_neighbours(
    queries: torch.Tensor, index: torch.Tensor, k: int, exclude_self: bool = False
) -> np.ndarray:
    """Indices (n_q, k) of the k largest inner products in ``index``, best first.

    float32 inner products on unit rows (as the paper's FAISS IndexFlatIP), chunked over the
    queries; with ``exclude_self`` query i (== index row i) cannot return itself.
    """
    n_q, n_i = queries.shape[0], index.shape[0]
    rows = max(1, _CHUNK_ELEMS // n_i)
    out = torch.empty((n_q, k), dtype=torch.long)
    for s in range(0, n_q, rows):
        sim = queries[s : s + rows] @ index.T
        if exclude_self:
            r = torch.arange(sim.shape[0], device=sim.device)
            sim[r, r + s] = -torch.inf
        out[s : s + rows] = torch.topk(sim, k, dim=1, sorted=True).indices.cpu()
    return out.numpy()


def _topk_both_ways(A: torch.Tensor, B: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k neighbours of the rows of A among B *and* of the rows of B among A.

    Both come from the same similarity blocks A_c Bᵀ (row top-k for A -> B, a running column
    top-k for B -> A), which halves the work of the all-pairs table. Best first.
    """
    n_a, n_b = A.shape[0], B.shape[0]
    rows = max(1, _CHUNK_ELEMS // n_b)
    a_to_b = torch.empty((n_a, k), dtype=torch.long)
    col_val = col_idx = None
    for s in range(0, n_a, rows):
        sim = A[s : s + rows] @ B.T
        a_to_b[s : s + rows] = torch.topk(sim, k, dim=1, sorted=True).indices.cpu()
        val, idx = torch.topk(sim, min(k, sim.shape[0]), dim=0, sorted=True)
        idx = idx + s
        if col_val is not None:
            val, idx = torch.cat([col_val, val]), torch.cat([col_idx, idx])
            val, pos = torch.topk(val, min(k, val.shape[0]), dim=0, sorted=True)
            idx = torch.gather(idx, 0, pos)
        col_val, col_idx = val, idx
    return a_to_b.numpy(), col_idx.T.contiguous().cpu().numpy()


def _relative_pair_operands(fa, fb, device) -> tuple[torch.Tensor, torch.Tensor]:
    """L, R (float32, n x p) with L Rᵀ = cosine similarities between two relative spaces.

    With unit relative rows ``U_a = D_a X_a A_aᵀ`` (``fa = (D_a X_a, A_a)``, X_a (n, d_a)
    and A_a (K, d_a) unit rows) the similarity is ``U_a U_bᵀ = (D_a X_a)(A_aᵀ A_b)(D_b X_b)ᵀ``,
    so the n x n search costs n² min(d_a, d_b, K) instead of n² K.
    """
    (La, Aa), (Lb, Ab) = fa, fb
    K, da, db = Aa.shape[0], Aa.shape[1], Ab.shape[1]
    if min(da, db) >= K:
        left, right = La @ Aa.T, Lb @ Ab.T
    elif da <= db:
        left, right = La, Lb @ (Ab.T @ Aa)
    else:
        left, right = La @ (Aa.T @ Ab), Lb
    return (
        torch.from_numpy(left.astype(np.float32)).to(device),
        torch.from_numpy(right.astype(np.float32)).to(device),
    )


def _overlap(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """|A_i ∩ B_i| for rows of two index arrays without repeated entries (n, k)."""
    return (A[:, :, None] == B[:, None, :]).sum(axis=(1, 2))


def _jaccard_mrr(T: np.ndarray, S: np.ndarray) -> tuple[float, float]:
    k = T.shape[1]
    inter = _overlap(T, S)
    jaccard = inter / (2 * k - inter)
    hit = S == np.arange(S.shape[0])[:, None]
    rr = np.where(hit.any(axis=1), 1.0 / (np.argmax(hit, axis=1) + 1), 0.0)
    return float(jaccard.mean()), float(rr.mean())


def _mean_row_cosine(A: np.ndarray, B: np.ndarray) -> float:
    """mean_i cos(A_i, B_i) in float64."""
    return float(np.mean(np.sum(_unit_rows(A, "src") * _unit_rows(B, "tgt"), axis=1)))


def mutual_knn(X, Y, k: int = 10, *, device: str = "cpu") -> float:
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024, arXiv:2405.07987, Sec. 2.3).

    ::

        m_kNN(X, Y) = (1/n) Σ_i |N_k^X(i) ∩ N_k^Y(i)| / k,

    where N_k^X(i) are the k nearest neighbours of sample i among the other samples by cosine
    similarity (inner product of L2-normalised rows; i itself excluded), as in platonic-rep's
    ``mutual_knn`` (default ``topk=10``). Ranges in [0, 1]; chance level is about k / (n - 1).
    """
    Xa = _as_features(X, "X")
    Ya = _as_features(Y, "Y")
    _same_rows(Xa, Ya, "mutual_knn")
    k = _check_k(k, Xa.shape[0], "mutual_knn", self_excluded=True)
    Xt, Yt = _unit_tensor(Xa, "X", device), _unit_tensor(Ya, "Y", device)
    nx = _topk_neighbours(Xt, Xt, k, exclude_self=True)
    ny = _topk_neighbours(Yt, Yt, k, exclude_self=True)
    return float(np.mean(_overlap(nx, ny)) / k)


def latent_similarity(src, tgt, k: int = 5, *, device: str = "cpu") -> dict[str, float]:
    """Retrieval agreement between two spaces of the same items (arXiv:2209.15430, Sec. 4.1).

    The paper's word-embedding protocol (``quantitative_analysis.ipynb``): index the target
    vectors for cosine kNN; for every item w::

        T(w) = kNN_k of tgt(w) in the target index      (contains w itself)
        S(w) = kNN_k of src(w) in the target index
        jaccard = mean_w |T(w) ∩ S(w)| / |T(w) ∪ S(w)|
        mrr     = mean_w 1 / rank of w in S(w)   (rank from 1; 0 if w ∉ S(w))
        cosine  = mean_w cos(src(w), tgt(w))

    Searches use float32 inner products on unit rows (the paper's FAISS IndexFlatIP), chunked
    over queries; the cosine is float64. Searching src vectors in the target index needs equal
    widths: relative spaces with shared anchors always qualify, absolute spaces only when the
    encoders happen to have the same width.

    Parameters
    ----------
    src, tgt : arrays (n, d)
        The same n items (row i = item i) in the source and target spaces.
    k : int
        Neighbourhood size (the paper uses 5).

    Returns
    -------
    dict with float ``jaccard``, ``mrr`` and ``cosine`` (all 1 when src == tgt).
    """
    S_ = _as_features(src, "src")
    T_ = _as_features(tgt, "tgt")
    _same_rows(S_, T_, "latent_similarity")
    if S_.shape[1] != T_.shape[1]:
        raise ValueError(
            f"latent_similarity searches src vectors in the tgt index, so the widths must match;"
            f" got {S_.shape[1]} and {T_.shape[1]}. Compare relative projections onto shared "
            "anchors (relative_projection) instead."
        )
    k = _check_k(k, S_.shape[0], "latent_similarity", self_excluded=False)
    tgt_t = _unit_tensor(T_, "tgt", device)
    T = _topk_neighbours(tgt_t, tgt_t, k)
    S = _topk_neighbours(_unit_tensor(S_, "src", device), tgt_t, k)
    jaccard, mrr = _jaccard_mrr(T, S)
    return {"jaccard": jaccard, "mrr": mrr, "cosine": _mean_row_cosine(S_, T_)}


# --------------------------------------------------------------------------------------------
# zero-shot stitching
# --------------------------------------------------------------------------------------------
def weighted_f1_score(y_true, y_pred) -> float:
    """Support-weighted F1 over classes (sklearn ``f1_score(average="weighted")``).

    ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)`` (0 when a class is never true nor predicted
    correctly), averaged with weights n_c / n, n_c = number of true samples of class c; classes
    that occur only among the predictions have weight 0. Returned in [0, 1].
    """
    yt = _as_labels(y_true, None, "y_true")
    yp = _as_labels(y_pred, yt.shape[0], "y_pred")
    if yt.shape[0] == 0:
        raise ValueError("weighted_f1_score needs at least one sample.")
    classes, support = np.unique(yt, return_counts=True)
    tp = np.array([np.sum((yt == c) & (yp == c)) for c in classes], dtype=np.float64)
    n_pred = np.array([np.sum(yp == c) for c in classes], dtype=np.float64)
    denom = support + n_pred  # = 2 TP + FP + FN
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.sum(f1 * support) / support.sum())


class StitchingDecoder(nn.Module):
    """The paper's CIFAR-100 stitching classifier (``vision_stitching_cifar100.ipynb``).

    x -> L2-normalise -> LayerNorm(in) -> Linear(in, hidden) -> Tanh
      -> InstanceNorm1d over the batch -> Linear(hidden, n_classes).

    The paper applies ``nn.InstanceNorm1d(hidden)`` to the transposed (hidden, batch) tensor:
    every hidden unit is standardised over the samples of the batch (biased variance, eps 1e-5,
    no affine parameters, no running statistics). It is written out here so that a trailing
    batch of one sample gives zeros instead of an error. Because no statistics are stored,
    predictions depend on the whole batch that is evaluated (see :func:`decoder_predict`).
    """

    def __init__(self, in_features: int, hidden: int, n_classes: int, eps: float = 1e-5):
        super().__init__()
        self.input_norm = nn.LayerNorm(in_features)
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, n_classes)
        self.eps = eps
        self.classes_: np.ndarray = np.arange(n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.hidden(self.input_norm(F.normalize(x, p=2, dim=-1))))
        mean = h.mean(dim=0, keepdim=True)
        var = h.var(dim=0, unbiased=False, keepdim=True)
        return self.out((h - mean) / torch.sqrt(var + self.eps))


def train_decoder(
    X_train,
    y_train,
    *,
    epochs: int = 10,
    lr: float = 1e-4,
    batch_size: int = 32,
    hidden: int = 768,
    seed: int = 0,
    device: str = "cpu",
) -> StitchingDecoder:
    """Train the stitching decoder on one encoder's (relative or absolute) space.

    arXiv:2209.15430, Sec. 5.2: Adam (lr 1e-4), batch 32, shuffled every epoch, cross-entropy;
    10 epochs for CIFAR-100 coarse, 20 for fine. ``seed`` fixes the initial weights and the
    batch order (bit-identical on CPU). Returns the decoder in eval mode on ``device``; its
    ``classes_`` maps output units to the original label values (sorted unique ``y_train``).
    """
    X = _as_features(X_train, "X_train")
    y = _as_labels(y_train, X.shape[0], "y_train")
    for name, val in (("epochs", epochs), ("batch_size", batch_size), ("hidden", hidden)):
        if isinstance(val, bool) or int(val) != val or val < 1:
            raise ValueError(f"{name} must be a positive integer; got {val!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr!r}.")
    classes, y_idx = np.unique(y, return_inverse=True)
    if classes.shape[0] < 2:
        raise ValueError("train_decoder needs at least 2 classes in y_train.")
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(seed)
        decoder = StitchingDecoder(X.shape[1], int(hidden), classes.shape[0])
    decoder.classes_ = classes
    decoder.to(device).train()
    Xt = torch.from_numpy(X.astype(np.float32)).to(device)
    yt = torch.from_numpy(y_idx.astype(np.int64)).to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(decoder.parameters(), lr=lr)
    for _ in range(int(epochs)):
        order = torch.randperm(X.shape[0], generator=gen).to(device)
        for s in range(0, X.shape[0], int(batch_size)):
            idx = order[s : s + int(batch_size)]
            loss = F.cross_entropy(decoder(Xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return decoder.eval()


@torch.no_grad()
def decoder_predict(decoder: StitchingDecoder, X) -> np.ndarray:
    """Predicted labels for all rows of X, evaluated as ONE batch (transductive).

    The decoder's batch-wise InstanceNorm has no running statistics, so, as in the paper's
    notebooks, the whole evaluation set goes through in a single forward pass and the hidden
    units are standardised over that set; smaller evaluation batches would give different
    predictions.
    """
    Xa = _as_features(X, "X")
    if Xa.shape[1] != decoder.input_norm.normalized_shape[0]:
        raise ValueError(
            f"X has {Xa.shape[1]} features but the decoder expects "
            f"{decoder.input_norm.normalized_shape[0]}; pass the space it was trained on."
        )
    device = next(decoder.parameters()).device
    logits = decoder.eval()(torch.from_numpy(Xa.astype(np.float32)).to(device))
    return decoder.classes_[logits.argmax(dim=1).cpu().numpy()]


def stitching_scores(
    train_spaces: Mapping[str, np.ndarray],
    test_spaces: Mapping[str, np.ndarray],
    y_train,
    y_test,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 10,
    lr: float = 1e-4,
    batch_size: int = 32,
    hidden: int = 768,
    device: str = "cpu",
) -> pd.DataFrame:
    """Zero-shot stitching: decoder trained on model A, fed the test embeddings of model B.

    arXiv:2209.15430, Sec. 5.2 / Table 5: for every seed and every (A, B), train
    :func:`train_decoder` on ``train_spaces[A]`` and score ``decoder_predict`` on
    ``test_spaces[B]`` with 100 x weighted F1. A == A is the non-stitched reference. When the
    widths differ (absolute spaces of different encoders) stitching is undefined: NaN with a
    ``reason``.

    Returns
    -------
    DataFrame with columns ``model`` (decoder A), ``model_b`` (encoder B), ``value`` (mean F1
    x 100 over seeds), ``value_std`` (sample std, ddof=1; NaN for one seed), ``n_seeds``,
    ``reason`` ("" when defined).
    """
    if set(train_spaces) != set(test_spaces) or not train_spaces:
        raise ValueError(
            "train_spaces and test_spaces must name the same, non-empty set of models; got "
            f"{sorted(train_spaces)} and {sorted(test_spaces)}."
        )
    if not seeds:
        raise ValueError("seeds must list at least one seed.")
    models = list(train_spaces)
    train = {m: _as_features(train_spaces[m], f"train_spaces[{m!r}]") for m in models}
    test = {m: _as_features(test_spaces[m], f"test_spaces[{m!r}]") for m in models}
    ytr = _as_labels(y_train, None, "y_train")
    yte = _as_labels(y_test, None, "y_test")
    for m in models:
        _as_labels(ytr, train[m].shape[0], f"y_train (vs train_spaces[{m!r}])")
        _as_labels(yte, test[m].shape[0], f"y_test (vs test_spaces[{m!r}])")
        if train[m].shape[1] != test[m].shape[1]:
            raise ValueError(
                f"model {m!r}: train width {train[m].shape[1]} != test width "
                f"{test[m].shape[1]}; both must come from the same encoder and layer."
            )
    scores: dict[tuple[str, str], list[float]] = {(a, b): [] for a in models for b in models}
    for seed in seeds:
        for a in models:
            decoder = train_decoder(
                train[a],
                ytr,
                epochs=epochs,
                lr=lr,
                batch_size=batch_size,
                hidden=hidden,
                seed=int(seed),
                device=device,
            )
            for b in models:
                if test[b].shape[1] == train[a].shape[1]:
                    pred = decoder_predict(decoder, test[b])
                    scores[a, b].append(100.0 * weighted_f1_score(yte, pred))
    rows = []
    for (a, b), vals in scores.items():
        if vals:
            arr = np.asarray(vals)
            std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
            rows.append((a, b, float(arr.mean()), std, arr.size, ""))
        else:
            reason = (
                f"width mismatch: decoder input {train[a].shape[1]} vs encoder output "
                f"{test[b].shape[1]}"
            )
            rows.append((a, b, float("nan"), float("nan"), 0, reason))
    return pd.DataFrame(
        rows, columns=["model", "model_b", "value", "value_std", "n_seeds", "reason"]
    )


# --------------------------------------------------------------------------------------------
# table functions
# --------------------------------------------------------------------------------------------
def _prepare_tables(features_by_model, labels, split, layers):
    if not isinstance(features_by_model, Mapping) or not features_by_model:
        raise ValueError("features_by_model must be a non-empty dict model -> {layer: array}.")
    models = list(features_by_model)
    split_arr = np.asarray(split).astype(str)
    if split_arr.ndim != 1:
        raise ValueError(f"split must be 1-D (n_samples,); got shape {split_arr.shape}.")
    n = split_arr.shape[0]
    lab = _as_labels(labels, n, "labels (vs split)")
    if layers is None:
        first = list(features_by_model[models[0]])
        layers = [ly for ly in first if all(ly in features_by_model[m] for m in models)]
    layers = [str(ly) for ly in layers]
    if not layers:
        raise ValueError("no layer is shared by all models; pass layers= explicitly.")
    for m in models:
        missing = [ly for ly in layers if ly not in features_by_model[m]]
        if missing:
            raise ValueError(f"model {m!r} lacks layers {missing}; extract them or drop them.")
        for ly in layers:
            arr = np.asarray(features_by_model[m][ly])
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(
                    f"features[{m!r}][{ly!r}] has shape {arr.shape}; expected ({n}, d) to match "
                    "labels and split."
                )
            if not np.isfinite(arr).all():
                raise ValueError(
                    f"features[{m!r}][{ly!r}] contains NaN or Inf; fix the extraction or drop "
                    "those samples from every model."
                )
    train_idx = np.flatnonzero(split_arr == "train")
    test_idx = np.flatnonzero(split_arr == "test")
    if train_idx.size == 0 or test_idx.size < 2:
        raise ValueError(
            f"need a 'train' split (anchors, decoders) and >= 2 'test' items; got "
            f"{train_idx.size} train and {test_idx.size} test rows."
        )
    return models, layers, lab, train_idx, test_idx


def _features(features_by_model, model, layer, rows) -> np.ndarray:
    return _as_features(
        np.asarray(features_by_model[model][layer])[rows], f"features[{model!r}][{layer!r}]"
    )


def _table_anchors(
    features_by_model, models, layer, lab, train_idx, n_anchors, method, seed, anchor_X
) -> np.ndarray:
    """Anchor positions within the train split, shared by every model."""
    if method in ("uniform", "stratified"):
        return select_anchors(n_anchors, labels=lab[train_idx], method=method, seed=seed)
    if anchor_X is not None:
        ref = _as_features(anchor_X, "anchor_X", min_rows=1)
        if ref.shape[0] != lab.shape[0]:
            raise ValueError(
                f"anchor_X has {ref.shape[0]} rows; expected one per sample ({lab.shape[0]})."
            )
        ref = ref[train_idx]
    else:
        # reference shared by all encoders: their unit-norm train features side by side, so no
        # single encoder decides where the anchors go
        ref = np.concatenate(
            [_unit_rows(_features(features_by_model, m, layer, train_idx), m) for m in models],
            axis=1,
        )
    return select_anchors(n_anchors, X=ref, method=method, seed=seed)


def relative_table(
    features_by_model: Mapping[str, Mapping[str, np.ndarray]],
    labels,
    split,
    *,
    layers: Sequence[str] | None = None,
    n_anchors: int = 768,
    anchor_method: str = "uniform",
    center: bool = False,
    k: int = 5,
    mutual_k: int = 10,
    seed: int = 0,
    anchor_X=None,
    device: str = "cpu",
) -> pd.DataFrame:
    """All-pairs similarity of encoders in relative and absolute space (arXiv:2209.15430).

    Anchors: ``n_anchors`` items of the ``train`` split chosen once by ``anchor_method`` and
    ``seed`` (:func:`select_anchors`) and shared by every model (and layer for uniform /
    stratified; fps / kmeans choose per layer in the concatenated unit-norm train features of
    all models, or once in ``anchor_X`` (n, p) if given, e.g. pixels). Compared items: the
    ``test`` split. For every ordered pair (model = source A, model_b = target B, A == B
    included) and layer:

    - ``latent_jaccard`` / ``latent_mrr`` / ``latent_cosine`` (:func:`latent_similarity`, k),
      variant ``relative`` (relative projections, ``center``) and ``absolute`` (raw features;
      NaN with a ``reason`` unless the widths match);
    - ``linear_cka`` (:func:`linear_cka`, absolute, symmetric);
    - ``mutual_knn`` (:func:`mutual_knn`, absolute, symmetric, k = ``mutual_k``; platonic-rep's
      default is 10 while the paper's retrieval uses 5).

    Returns
    -------
    Tidy DataFrame: ``model``, ``model_b``, ``layer``, ``metric``, ``variant``, ``value``,
    ``reason`` ("" if defined), and parameters ``n_anchors``, ``anchor_method``, ``center``,
    ``seed`` (relative rows only; NA otherwise), ``k`` (neighbourhood size; NA for CKA) and
    ``n_samples`` (test items compared).
    """
    models, layers, lab, train_idx, test_idx = _prepare_tables(
        features_by_model, labels, split, layers
    )
    n_test = test_idx.size
    k = _check_k(k, n_test, "relative_table (k)", self_excluded=False)
    mutual_k = _check_k(mutual_k, n_test, "relative_table (mutual_k)", self_excluded=True)
    if anchor_method not in ANCHOR_METHODS:
        raise ValueError(f"anchor_method must be one of {ANCHOR_METHODS}; got {anchor_method!r}.")
    if not 1 <= n_anchors <= train_idx.size:
        raise ValueError(
            f"n_anchors={n_anchors} but the train split has {train_idx.size} rows; lower n_anchors."
        )
    rel_params = {
        "n_anchors": n_anchors,
        "anchor_method": anchor_method,
        "center": center,
        "seed": seed,
    }
    na_params = dict.fromkeys(rel_params)
    rows: list[dict] = []

    def add(a, b, layer, metric, variant, value, kk, params, reason=""):
        rows.append(
            {
                "model": a,
                "model_b": b,
                "layer": layer,
                "metric": metric,
                "variant": variant,
                "value": float(value),
                "reason": reason,
                **params,
                "k": kk,
                "n_samples": n_test,
            }
        )

    anchors = None
    for layer in layers:
        if anchors is None or (anchor_method in ("fps", "kmeans") and anchor_X is None):
            anchors = _table_anchors(
                features_by_model,
                models,
                layer,
                lab,
                train_idx,
                n_anchors,
                anchor_method,
                seed,
                anchor_X,
            )
        width, centered, gram_norm, factors, abs_t, knn_self = {}, {}, {}, {}, {}, {}
        unit, T = {}, {}  # keyed by (variant, model)
        for m in models:
            X = _features(features_by_model, m, layer, test_idx)
            A = _features(features_by_model, m, layer, train_idx[anchors])
            width[m] = X.shape[1]
            centered[m] = X - X.mean(axis=0)
            gram_norm[m] = _centered_gram_norm(centered[m])
            Xu, Au = _relative_factors(X, A, center)
            rel = Xu @ Au.T  # = relative_projection(X, A, center)
            unit["relative", m] = _unit_rows(rel, f"relative features[{m!r}][{layer!r}]")
            unit["absolute", m] = Xu if not center else _unit_rows(X, f"features[{m!r}]")
            # unit relative rows = diag(1/|r|) Xu Auᵀ, kept factored for the kNN searches
            factors[m] = (Xu / np.linalg.norm(rel, axis=1, keepdims=True), Au)
            T["relative", m] = _topk_neighbours(
                *_relative_pair_operands(factors[m], factors[m], device), k
            )
            abs_t[m] = torch.from_numpy(unit["absolute", m].astype(np.float32)).to(device)
            T["absolute", m] = _topk_neighbours(abs_t[m], abs_t[m], k)
            knn_self[m] = _topk_neighbours(abs_t[m], abs_t[m], mutual_k, exclude_self=True)
        # S(w) for src a, tgt b; one similarity pass serves (a, b) and (b, a), and for a == b
        # the search is exactly the one that gave T
        S: dict[tuple[str, str, str], np.ndarray] = {}
        for variant in ("relative", "absolute"):
            for i, a in enumerate(models):
                for b in models[i:]:
                    if a == b:
                        S[variant, a, a] = T[variant, a]
                    elif variant == "relative":
                        S[variant, a, b], S[variant, b, a] = _topk_both_ways(
                            *_relative_pair_operands(factors[a], factors[b], device), k
                        )
                    elif width[a] == width[b]:
                        S[variant, a, b], S[variant, b, a] = _topk_both_ways(abs_t[a], abs_t[b], k)
        symmetric: dict[tuple[str, str], tuple[float, float]] = {}
        for a in models:
            for b in models:
                for variant in ("relative", "absolute"):
                    if (variant, a, b) in S:
                        jac, mrr = _jaccard_mrr(T[variant, b], S[variant, a, b])
                        cos = float(np.mean(np.sum(unit[variant, a] * unit[variant, b], axis=1)))
                        reason = ""
                    else:
                        jac = mrr = cos = float("nan")
                        reason = (
                            f"width mismatch ({width[a]} vs {width[b]}): absolute spaces are "
                            "not comparable"
                        )
                    params = rel_params if variant == "relative" else na_params
                    for metric, val in (
                        ("latent_jaccard", jac),
                        ("latent_mrr", mrr),
                        ("latent_cosine", cos),
                    ):
                        add(a, b, layer, metric, variant, val, k, params, reason)
                if (b, a) in symmetric:
                    cka, mknn = symmetric[b, a]
                else:
                    cka = _cka_from_centered(centered[a], centered[b], gram_norm[a], gram_norm[b])
                    mknn = float(np.mean(_overlap(knn_self[a], knn_self[b])) / mutual_k)
                    symmetric[a, b] = (cka, mknn)
                add(a, b, layer, "linear_cka", "absolute", cka, pd.NA, na_params)
                add(a, b, layer, "mutual_knn", "absolute", mknn, mutual_k, na_params)
    df = pd.DataFrame(rows)
    df["n_anchors"] = df["n_anchors"].astype("Int64")
    df["seed"] = df["seed"].astype("Int64")
    df["k"] = df["k"].astype("Int64")
    df["center"] = df["center"].astype("boolean")
    return df


def stitching_table(
    features_by_model: Mapping[str, Mapping[str, np.ndarray]],
    labels,
    split,
    *,
    layers: Sequence[str] | None = None,
    n_anchors: int = 768,
    anchor_method: str = "uniform",
    center: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 10,
    lr: float = 1e-4,
    batch_size: int = 32,
    hidden: int = 768,
    seed: int = 0,
    anchor_X=None,
    variants: Sequence[str] = ("relative", "absolute"),
    device: str = "cpu",
) -> pd.DataFrame:
    """Zero-shot stitching table (arXiv:2209.15430, Sec. 5.2, Table 5 protocol).

    Anchors are drawn from the ``train`` split as in :func:`relative_table` (``seed``); for
    every layer, each model gets a decoder per seed in ``seeds`` trained on its train split
    in each of ``variants`` (:data:`STITCHING_VARIANTS`: ``relative``, projections onto its own
    embeddings of the shared anchors, as the paper; ``relative_whitened``, the same after anchor
    whitening, see :func:`relative_projection`; ``absolute``, raw features), which is scored on
    the ``test`` split of every model (:func:`stitching_scores`).

    Returns
    -------
    Tidy DataFrame: ``model`` (decoder), ``model_b`` (encoder at test time), ``layer``,
    ``metric`` = ``stitching_f1`` (100 x weighted F1), ``variant`` (one of ``variants``),
    ``value`` (mean over seeds), ``value_std``, ``n_seeds``, ``reason``, and
    parameters ``n_anchors``, ``anchor_method``, ``center``, ``seed`` (relative rows only; NA
    otherwise), ``epochs``, ``lr``, ``hidden``, ``n_samples`` (test items).
    """
    models, layers, lab, train_idx, test_idx = _prepare_tables(
        features_by_model, labels, split, layers
    )
    if anchor_method not in ANCHOR_METHODS:
        raise ValueError(f"anchor_method must be one of {ANCHOR_METHODS}; got {anchor_method!r}.")
    if not 1 <= n_anchors <= train_idx.size:
        raise ValueError(
            f"n_anchors={n_anchors} but the train split has {train_idx.size} rows; lower n_anchors."
        )
    unknown = [v for v in variants if v not in STITCHING_VARIANTS]
    if unknown or not variants or len(set(variants)) != len(variants):
        raise ValueError(
            f"variants must be distinct names from {STITCHING_VARIANTS}; got {list(variants)}."
        )
    y_train, y_test = lab[train_idx], lab[test_idx]
    rows, n_train = np.concatenate([train_idx, test_idx]), train_idx.size
    kwargs = dict(
        seeds=seeds, epochs=epochs, lr=lr, batch_size=batch_size, hidden=hidden, device=device
    )
    frames = []
    anchors = None
    for layer in layers:
        if anchors is None or (anchor_method in ("fps", "kmeans") and anchor_X is None):
            anchors = _table_anchors(
                features_by_model,
                models,
                layer,
                lab,
                train_idx,
                n_anchors,
                anchor_method,
                seed,
                anchor_X,
            )
        # train rows first, then test: one projection per model serves both splits (the anchor
        # statistics are computed once), and anchor positions index the train rows
        feats = {m: _features(features_by_model, m, layer, rows) for m in models}
        for variant in variants:
            rel = variant != "absolute"
            spaces = feats
            if rel:
                whiten = variant == "relative_whitened"
                spaces = {
                    m: relative_projection(f, f[anchors], center, whiten) for m, f in feats.items()
                }
            tr = {m: s[:n_train] for m, s in spaces.items()}
            te = {m: s[n_train:] for m, s in spaces.items()}
            df = stitching_scores(tr, te, y_train, y_test, **kwargs)
            df.insert(2, "layer", layer)
            df.insert(3, "metric", "stitching_f1")
            df.insert(4, "variant", variant)
            df["n_anchors"] = pd.array([n_anchors if rel else pd.NA] * len(df), dtype="Int64")
            df["anchor_method"] = anchor_method if rel else None
            df["center"] = pd.array([center if rel else pd.NA] * len(df), dtype="boolean")
            df["seed"] = pd.array([seed if rel else pd.NA] * len(df), dtype="Int64")
            df["epochs"] = epochs
            df["lr"] = lr
            df["hidden"] = hidden
            df["n_samples"] = test_idx.size
            frames.append(df)
    return pd.concat(frames, ignore_index=True)
