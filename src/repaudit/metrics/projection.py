"""Relative projection: cosine similarity of samples to anchors (arXiv:2209.15430, Eq. 1)."""

from __future__ import annotations

import numpy as np

from repaudit.metrics._common import as_features, same_width, unit_rows

__all__ = ["relative_projection"]

_ZERO_HINT = " (or, with center=True, rows equal to the anchor mean)"


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
    Xa = as_features(X, "X", min_rows=1)
    A = as_features(anchors_X, "anchors_X", min_rows=1)
    same_width(Xa, A, "X", "anchors_X", "embed the anchors with the same encoder and layer as X")
    if center or whiten:
        mu = A.mean(axis=0)
        Xa, A = Xa - mu, A - mu
    if whiten:
        W = _anchor_whitening(A)
        Xa, A = Xa @ W, A @ W
    return unit_rows(Xa, "X", _ZERO_HINT), unit_rows(A, "anchors_X")
