"""Helpers shared by the metric modules: input coercion and validation, row normalisation and
k-means.

One home for each: the metric modules (relative representations, anchors, similarity,
stitching, uniformity, geometry, concepts, convexity, binding, sensitivity) and
``repaudit.models.training`` import them from here instead of keeping private copies. Every
public metric passes its array inputs through :func:`as_features` / :func:`as_labels` (or
:func:`to_numpy` / :func:`as_tensor` for other shapes), so any array-like works: strided or
negative-stride views, float16, nested lists, torch tensors on any device.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CHUNK_ELEMS",
    "as_features",
    "as_labels",
    "as_tensor",
    "kmeans",
    "same_width",
    "sq_dists",
    "to_numpy",
    "unit_rows",
]

# Distance/similarity blocks are computed chunk x N at a time; this bounds a block to 2**22
# entries (32 MiB in float64, 16 MiB in float32) whatever N is.
CHUNK_ELEMS = 2**22


def to_numpy(x, name: str) -> np.ndarray:
    """Any array-like as a numpy array, without a copy when it already is one.

    Torch tensors are detached and moved to the CPU (torch is not imported here); bfloat16,
    which numpy lacks, becomes float32. Nested sequences of unequal lengths raise a ValueError
    naming ``name`` (numpy's own message does not say which argument is ragged).
    """
    if hasattr(x, "detach") and hasattr(x, "resolve_neg"):  # a torch tensor
        t = x.detach().cpu().resolve_conj().resolve_neg()
        x = (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()
    try:
        return np.asarray(x)
    except ValueError as err:
        if "inhomogeneous" not in str(err):
            raise ValueError(f"{name} cannot be read as an array: {err}") from None
        raise ValueError(
            f"{name} is ragged (nested sequences of different lengths); pass a rectangular "
            "array, one row per sample."
        ) from None


def as_tensor(x, name: str):
    """Any array-like as a torch tensor for the torch-native metrics (tensors keep their device).

    numpy arrays of any layout (negative strides included, which torch cannot view) are copied
    to a contiguous tensor; lists go through :func:`to_numpy`.
    """
    import torch  # deferred: the numpy-only metrics must not need torch

    if isinstance(x, torch.Tensor):
        return x
    arr = np.ascontiguousarray(to_numpy(x, name))
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"{name} must be a numeric array or tensor; got dtype {arr.dtype}.")
    return torch.from_numpy(arr)


def as_features(X, name: str = "X", *, min_rows: int = 2, dtype=np.float64) -> np.ndarray:
    """Validate a (n_samples, n_features) real, finite array and return it C-contiguous.

    Accepts numpy arrays of any layout (non-contiguous or negative-stride views, any real
    dtype), nested lists and torch tensors (detached, moved to the CPU). With the default
    ``dtype`` the result is float64; ``dtype=None`` keeps the input dtype (a copy only when the
    input is not C-contiguous). Raises a one-line ValueError that names ``name`` and the fix.
    """
    arr = to_numpy(X, name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}; reshape it, "
            "e.g. X.reshape(len(X), -1)."
        )
    if arr.shape[0] < min_rows:
        raise ValueError(
            f"{name} needs at least {min_rows} rows (n_samples); got {arr.shape[0]}; pass more "
            "samples."
        )
    if arr.shape[1] < 1:
        raise ValueError(f"{name} has no feature columns; pass (n_samples, n_features >= 1).")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(
            f"{name} must be a real numeric array; got dtype {arr.dtype}; cast it, e.g. "
            "X.astype(float)."
        )
    arr = np.ascontiguousarray(arr, dtype=dtype)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int((~finite).any(axis=1).sum())
        raise ValueError(
            f"{name} contains NaN or Inf in {bad} row(s); drop or repair those samples first "
            "(every value must be finite)."
        )
    return arr


def same_width(X: np.ndarray, Y: np.ndarray, x_name: str, y_name: str, fix: str) -> None:
    """Raise a ValueError (ending in ``fix``) unless X and Y have the same number of columns."""
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"{x_name} has {X.shape[1]} features but {y_name} has {Y.shape[1]}; {fix}."
        )


def as_labels(
    labels,
    n: int | None,
    name: str = "labels",
    *,
    integer: bool = False,
    expected: str = "one per row of the features",
) -> np.ndarray:
    """Validate a non-empty 1-D label vector (of ``n`` entries when ``n`` is given); return it.

    Accepts the same array-likes as :func:`as_features`. ``integer`` requires integer (or bool)
    class ids. ``expected`` says, in the length error, what the ``n`` entries correspond to.
    """
    lab = to_numpy(labels, name)
    if lab.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (n_samples,); got shape {lab.shape}; pass one label per sample."
        )
    if n is not None and lab.shape[0] != n:
        raise ValueError(
            f"{name} has {lab.shape[0]} entries, expected {n} ({expected}); pass one label per "
            "sample."
        )
    if lab.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass one label per sample.")
    if integer and not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == np.bool_):
        raise ValueError(
            f"{name} must hold integer class labels, got dtype {lab.dtype}; encode the classes "
            "as integers, e.g. np.unique(y, return_inverse=True)[1]."
        )
    if lab.dtype.kind == "f" and not np.isfinite(lab).all():
        raise ValueError(f"{name} contains NaN or Inf; pass integer class ids.")
    return lab


def unit_rows(X: np.ndarray, name: str = "X", hint: str = "") -> np.ndarray:
    """L2-normalise the rows of X; a zero row has no direction, so it is an error.

    ``hint`` is appended to the error message (e.g. how a caller's option can create zero rows).
    """
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ValueError(
            f"{name} has {zero.size} all-zero row(s) (first: row {int(zero[0])}): zero norm, so "
            "its direction and cosine similarity are undefined; remove zero rows" + hint + "."
        )
    return X / norms


def sq_dists(X: np.ndarray, C: np.ndarray, x_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances (n, m) between the rows of X (n, d) and C (m, d)."""
    x_sq = np.einsum("ij,ij->i", X, X) if x_sq is None else x_sq
    d = x_sq[:, None] - 2.0 * (X @ C.T) + np.einsum("ij,ij->i", C, C)[None, :]
    return np.maximum(d, 0.0, out=d)


def _assign(
    X: np.ndarray, centers: np.ndarray, x_sq: np.ndarray, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of every row and its squared distance, ``rows`` rows at a time."""
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    dmin = np.empty(n)
    for s in range(0, n, rows):
        d = sq_dists(X[s : s + rows], centers, x_sq[s : s + rows])
        labels[s : s + rows] = np.argmin(d, axis=1)
        dmin[s : s + rows] = np.take_along_axis(d, labels[s : s + rows, None], 1)[:, 0]
    return labels, dmin


def kmeans(
    X: np.ndarray, k: int, rng: np.random.Generator, *, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """One k-means run: k-means++ seeding (Arthur & Vassilvitskii 2007), then Lloyd iterations.

    X is float64 (n, d). Seeding draws the first centre uniformly and every further one with
    probability proportional to the squared distance to the nearest chosen centre (uniformly
    if every point coincides with a centre). Lloyd iterations stop when the assignment no longer
    changes, when the summed squared centre shift is at most ``tol``, or after ``max_iter``
    steps; an empty cluster is re-seeded at the points worst served by their centre. Distance
    blocks are at most :data:`CHUNK_ELEMS` entries.

    Returns
    -------
    (centers (k, d), labels (n,) int64 of the nearest final centre, inertia)
    """
    n = X.shape[0]
    x_sq = np.einsum("ij,ij->i", X, X)
    centers = np.empty((k, X.shape[1]))
    centers[0] = X[rng.integers(n)]
    d2 = sq_dists(X, centers[:1], x_sq)[:, 0]
    for c in range(1, k):
        total = d2.sum()
        idx = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centers[c] = X[idx]
        d2 = np.minimum(d2, sq_dists(X, centers[c : c + 1], x_sq)[:, 0])
    rows = max(1, CHUNK_ELEMS // k)
    labels = np.full(n, -1)
    for _ in range(max_iter):
        new, dmin = _assign(X, centers, x_sq, rows)
        new_centers = np.zeros_like(centers)
        np.add.at(new_centers, new, X)
        counts = np.bincount(new, minlength=k)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            far = np.argsort(-dmin, kind="stable")[: empty.size]
            new_centers[empty] = X[far]
            counts[empty] = 1
        new_centers /= counts[:, None]
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        if np.array_equal(new, labels) or shift <= tol:
            break
        labels = new
    labels, dmin = _assign(X, centers, x_sq, rows)
    return centers, labels, float(dmin.sum())
