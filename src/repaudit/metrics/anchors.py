"""Anchor selection for relative representations (arXiv:2209.15430, Sec. 3 and App. A).

Moschella et al., "Relative representations enable zero-shot latent space communication",
ICLR 2023: the anchors are a fixed, ordered set of data items that every encoder embeds.
"""

from __future__ import annotations

import numpy as np

from repaudit.metrics._common import (
    CHUNK_ELEMS,
    as_features,
    as_labels,
    kmeans,
    sq_dists,
    unit_rows,
)

__all__ = ["ANCHOR_METHODS", "select_anchors"]

ANCHOR_METHODS = ("uniform", "stratified", "fps", "kmeans")


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
        lab = as_labels(labels, None)
    Xa = None
    if X is not None:
        Xa = as_features(X, "X", min_rows=1)
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
    Xn = unit_rows(Xa, "X")
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


def _kmeans_anchors(Xn: np.ndarray, n_clusters: int, rng, max_iter: int = 100) -> np.ndarray:
    # k-means (k-means++ seeding, Lloyd) with sklearn's default tolerance: 1e-4 x the mean
    # feature variance, summed squared centroid shift
    tol = 1e-4 * float(np.mean(np.var(Xn, axis=0)))
    centers = kmeans(Xn, n_clusters, rng, max_iter=max_iter, tol=tol)[0]
    n = Xn.shape[0]
    # nearest distinct sample per centroid: each centroid keeps its n_clusters nearest rows as
    # candidates (others can take at most n_clusters - 1, so one is always free); centroids
    # with the closest match choose first
    n_cand = min(n, n_clusters)
    cand = np.empty((n_clusters, n_cand), dtype=np.int64)
    crow = max(1, CHUNK_ELEMS // n)
    for s in range(0, n_clusters, crow):
        d = sq_dists(centers[s : s + crow], Xn)
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
