"""Global and local geometry of representations: spectrum, isotropy and uniformity statistics.

The label-free "global geometry" metrics that Chung & Kim (ICML 2026, arXiv:2602.03282) compare
with compositional binding, plus peer label-free representation-quality metrics (RankMe,
α-ReQ, NESum, Self-Cluster; cited at each function). One table function, :func:`geometry_table`,
computes all of them for every layer.

Notation: X ∈ ℝ^{N×D} (rows are samples), X̄ = X − 1x̄ᵀ the column-centred data,
Σ = X̄ᵀX̄/(N−1) with eigenvalues λ₁ ≥ … ≥ λ_D ≥ 0, and s_k the singular values of the matrix named
in each function. Everything is computed in float64. Eigenvalues come from the smaller of the
two Gram matrices (D × D or N × N; they share their non-zero spectrum); values below the
round-off level λ_max·min(N, D)·ε_machine (including negative ones) are set to 0, and
min(N, D) eigenvalues / singular values are used (singular values as √ of Gram eigenvalues).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch

from repaudit.metrics._common import as_features, unit_rows
from repaudit.metrics.uniformity import (
    _eigvalsh,
    _moments,
    _w2_from_moments,
    wasserstein_uniformity_floor,
)

__all__ = [
    "alpha_req",
    "alpha_req_fit",
    "effective_rank",
    "geometry_table",
    "global_isotropy",
    "local_isotropy",
    "nesum",
    "participation_ratio",
    "participation_ratio_normalised",
    "rankme",
    "self_cluster",
]

# A total variance below this fraction of the mean squared norm is treated as zero: the mean of
# N identical float rows is not exactly the row, which leaves ~1e-32 relative variance.
_ZERO_VAR_RTOL = 1e-24


# --------------------------------------------------------------------------------------------
# spectra
# --------------------------------------------------------------------------------------------
def _gram_eigvals(M: np.ndarray) -> np.ndarray:
    """Descending eigenvalues of MᵀM or MMᵀ, whichever is smaller: min(N, D) values.

    Values at or below eigvalsh's round-off level, λ_max·size·ε_machine, are set to 0: they are
    numerically zero, and their square roots (≈1e-8·s_max) would otherwise enter the
    singular-value entropies as spurious directions.
    """
    G = M.T @ M if M.shape[0] >= M.shape[1] else M @ M.T
    lam = _eigvalsh(G)[::-1].copy()
    lam[lam <= max(float(lam[0]), 0.0) * len(lam) * np.finfo(np.float64).eps] = 0.0
    return lam


def _check_variance(X: np.ndarray, what: str) -> None:
    """Raise if the total variance of X is zero relative to its mean squared norm."""
    total = float(np.sum((X - X.mean(axis=0)) ** 2))
    scale = float(np.einsum("ij,ij->", X, X))
    if total <= _ZERO_VAR_RTOL * scale:
        raise ValueError(
            f"{what}: the features have zero variance (all samples identical, or all zero), so "
            "the spectrum is degenerate; this layer carries no geometry to measure."
        )


def _centred_cov_eigvals(X: np.ndarray) -> np.ndarray:
    """Eigenvalues λ₁ ≥ … of Σ = X̄ᵀX̄/(N−1); raises on zero variance."""
    _check_variance(X, "covariance spectrum")
    return _gram_eigvals(X - X.mean(axis=0)) / (X.shape[0] - 1)


def _entropy_rank(s: np.ndarray, eps: float) -> float:
    """exp(−Σ p log p) with p = s/‖s‖₁ + eps; terms with p = 0 contribute 0."""
    p = s / s.sum() + eps
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def rankme(X, centred: bool = False, eps: float = 1e-7) -> float:
    r"""RankMe of Garrido et al. (2023): smooth effective rank of the embedding matrix.

    .. math::

        \mathrm{RankMe}(Z) = \exp\Big(-\sum_{k=1}^{\min(N,D)} p_k \log p_k\Big),\qquad
        p_k = \frac{s_k(Z)}{\lVert s(Z)\rVert_1} + \varepsilon

    with s_k the singular values of Z **itself** (the paper's definition: no centring; Garrido,
    Balestriero, Najman, LeCun, "RankMe: Assessing the Downstream Performance of Pretrained
    Self-Supervised Representations by Their Rank", ICML 2023, arXiv:2210.02885, Eq. 1).
    ``centred=True`` uses X̄ instead (the variant of reptrix and several follow-ups; their use of
    s² is *not* reproduced). Scale- and rotation-invariant; ∈ (0, min(N, D)] up to ε.

    Parameters
    ----------
    X : array (N, D)
    centred : bool
        Use the column-centred matrix X̄.
    eps : float
        ε of the paper's formula (1e-7 as in common code).
    """
    X = as_features(X)
    if centred:
        _check_variance(X, "rankme (centred)")
    s2 = _gram_eigvals(X - X.mean(axis=0) if centred else X)
    if not s2.sum() > 0:
        raise ValueError("rankme: X is all zeros; its singular values are all 0.")
    return _entropy_rank(np.sqrt(s2), eps)


def effective_rank(X) -> float:
    r"""Effective rank of Roy & Vetterli (2007) of the column-centred data.

    .. math::

        \mathrm{erank}(X) = \exp\Big(-\sum_{k=1}^{\min(N,D)} p_k \log p_k\Big),\qquad
        p_k = \frac{\sigma_k(\bar X)}{\sum_j \sigma_j(\bar X)}, \quad 0\log 0 := 0

    σ_k are the singular values of the column-centred data matrix X̄ = X − 1x̄ᵀ (N × D), computed
    as square roots of the eigenvalues of X̄ᵀX̄ (or X̄X̄ᵀ) in float64 and clamped at 0
    (O. Roy, M. Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO
    2007, Def. 1-2). Unlike :func:`rankme` there is no ε: exactly RankMe(centred, ε = 0).
    ∈ [1, min(N, D)]; scale-, rotation- and translation-invariant.
    """
    X = as_features(X)
    _check_variance(X, "effective_rank")
    s2 = _gram_eigvals(X - X.mean(axis=0))
    return _entropy_rank(np.sqrt(s2), 0.0)


def _pr(lam: np.ndarray) -> float:
    return float(lam.sum() ** 2 / np.sum(lam**2))


def participation_ratio(X) -> float:
    r"""Participation ratio of the covariance spectrum.

    .. math:: \mathrm{PR} = \frac{(\sum_i \lambda_i)^2}{\sum_i \lambda_i^2} \in [1, D]

    λ_i are the eigenvalues of Σ = X̄ᵀX̄/(N−1) (the normalisation cancels). Used as "global PR"
    by Chung & Kim (2026, arXiv:2602.03282); the plug-in estimate is biased low by about PR/N.
    """
    return _pr(_centred_cov_eigvals(as_features(X)))


def participation_ratio_normalised(X) -> float:
    r"""Global participation ratio G.PR = PR / D ∈ (0, 1], 1 = isotropic (Chung & Kim 2026).

    D is the number of features (not min(N, D)); see :func:`participation_ratio`.
    """
    X = as_features(X)
    return _pr(_centred_cov_eigvals(X)) / X.shape[1]


def global_isotropy(X) -> float:
    r"""Global isotropy 1 − λ₁/Σλ of the centred, unnormalised covariance (Chung & Kim 2026).

    .. math:: \mathrm{iso} = 1 - \frac{\lambda_1}{\sum_i \lambda_i} \in [0, 1 - 1/D]

    0 when the variance lies on one axis, 1 − 1/D for an isotropic cloud. Rows are not
    L2-normalised.
    """
    lam = _centred_cov_eigvals(as_features(X))
    return float(1.0 - lam[0] / lam.sum())


def nesum(X) -> float:
    r"""NESum of He & Ozay (ICML 2022, "Exploring the Gap between Collapsed & Whitened Features
    in Self-Supervised Learning", Def. 4.1): Σ_i λ_i / λ₁ ∈ [1, D].

    Eigenvalues of the centred covariance; equals the stable rank ‖X̄‖_F²/‖X̄‖₂² and
    1/(1 − global isotropy).
    """
    lam = _centred_cov_eigvals(as_features(X))
    return float(lam.sum() / lam[0])


def _alpha_fit(lam: np.ndarray, fit_range: tuple[int, int], n: int, d: int) -> tuple[float, float]:
    lo, hi = (int(v) for v in fit_range)
    if lo < 0 or hi <= lo:
        raise ValueError(f"fit_range must be (a, b) with 0 <= a < b, got {fit_range}.")
    # Numerically zero eigenvalues (rank < D) would put −∞ into the regression.
    n_pos = int(np.sum(lam > lam[0] * max(n, d) * np.finfo(np.float64).eps))
    hi = min(hi, n_pos)
    if hi - lo < 3:
        raise ValueError(
            f"alpha_req: fit_range {tuple(fit_range)} leaves {max(hi - lo, 0)} eigenvalue(s) "
            f"(only {n_pos} are numerically positive); at least 3 are needed. Use more samples/"
            "features or a smaller fit range."
        )
    i = np.arange(lo + 1, hi + 1, dtype=np.float64)  # 1-based ranks
    y = np.log(lam[lo:hi])
    x = -np.log(i)
    w = 1.0 / i
    # Weighted least squares y ≈ α·x + c with weights w (closed form).
    xw, yw = np.average(x, weights=w), np.average(y, weights=w)
    alpha = float(np.sum(w * (x - xw) * (y - yw)) / np.sum(w * (x - xw) ** 2))
    c = yw - alpha * xw
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((y - (alpha * x + c)) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return alpha, r2


def alpha_req_fit(X, fit_range: tuple[int, int] = (10, 100)) -> tuple[float, float]:
    r"""α-ReQ power-law fit of the covariance spectrum, returning (α, R²).

    Agrawal, Mondal, Ghosh, Richards, "α-ReQ: Assessing Representation Quality in
    Self-Supervised Learning by measuring eigenspectrum decay", NeurIPS 2022: λ_i ∝ i^{−α}.
    Weighted least squares (as in the authors' reptrix code, after Stringer et al. 2019):

    .. math::

        \min_{\alpha, c} \sum_{i \in R} \frac{1}{i}
        \big(\log\lambda_i - \alpha(-\log i) - c\big)^2

    over the 1-based eigenvalue ranks i ∈ R. ``fit_range=(a, b)`` is a Python slice of the
    descending spectrum — positions a ≤ p < b, i.e. ranks i = a+1 … b — which is exactly
    reptrix's ``np.arange(a, b)`` (default (10, 100): ranks 11-100). The range is clipped to the
    numerically positive eigenvalues (λ > λ₁·max(N, D)·ε_machine); fewer than 3 remaining points
    raise ValueError. R² is the ordinary (unweighted) coefficient of determination of log λ_i
    over R. λ are the eigenvalues of the centred covariance Σ = X̄ᵀX̄/(N−1).
    """
    X = as_features(X)
    return _alpha_fit(_centred_cov_eigvals(X), fit_range, *X.shape)


def alpha_req(X, fit_range: tuple[int, int] = (10, 100)) -> float:
    r"""α-ReQ eigenspectrum decay coefficient α (see :func:`alpha_req_fit`, which also gives R²)."""
    return alpha_req_fit(X, fit_range)[0]


def _self_cluster_unit(W: np.ndarray) -> float:
    n, d = W.shape
    if d < 2:
        raise ValueError("self_cluster needs D >= 2 features (the normaliser is 0 for D = 1).")
    G = W.T @ W if n >= d else W @ W.T  # ‖WWᵀ‖_F = ‖WᵀW‖_F
    q = float(np.einsum("ij,ij->", G, G))
    base = n + n * (n - 1) / d
    return (q - base) / (n * n - base)


def self_cluster(X) -> float:
    r"""Self-Cluster of Tsitsulin, Munkhoeva & Perozzi (2023, arXiv:2305.16562, Def. 3.5).

    .. math::

        \mathrm{SC} = \frac{\lVert WW^\top\rVert_F^2 - N - N(N-1)/D}{N^2 - N - N(N-1)/D}

    with W the row-L2-normalised X (not centred). ‖WWᵀ‖_F² = ‖WᵀW‖_F² is computed from the smaller
    Gram matrix, O(N·D·min(N, D)). 0 in expectation for points uniform on the sphere
    (E⟨w_i, w_j⟩² = 1/D), 1 when all points coincide.
    """
    return _self_cluster_unit(unit_rows(as_features(X)))


# --------------------------------------------------------------------------------------------
# local isotropy
# --------------------------------------------------------------------------------------------
def _pairwise_pass(
    X: np.ndarray,
    k: int | None,
    t: float | None,
    device: str | torch.device = "cpu",
    chunk_size: int = 2048,
    margin: int = 8,
) -> tuple[torch.Tensor | None, float | None]:
    r"""One float64 pass over the upper-triangle tiles of the Gram matrix of the centred rows.

    Gives, from the same GEMM tiles (the O(N²D) cost is paid once):

    - the exact Euclidean k nearest neighbours of every row (``k`` not None), self excluded,
      ties broken by lower index: ‖x_i − x_j‖² = ‖x̄_i‖² + ‖x̄_j‖² − 2⟨x̄_i, x̄_j⟩ on centred
      rows x̄ = x − μ. Each tile gives the k + ``margin`` best candidates of its rows *and*
      of its columns (symmetry halves the GEMMs); the candidates of a row are finally ordered by
      (distance, index). (Exactly tied distances beyond ``margin`` may drop a lower index.)
    - Wang & Isola's L_U of the L2-normalised raw rows (``t`` not None):
      −t‖u_i − u_j‖² = 2t(c_ij − 1), c_ij = ⟨x_i, x_j⟩/(‖x_i‖‖x_j‖) and
      ⟨x_i, x_j⟩ = ⟨x̄_i, x̄_j⟩ + ⟨x̄_i, μ⟩ + ⟨μ, x̄_j⟩ + ‖μ‖², summed over i < j as in
      :func:`repaudit.metrics.uniformity.wang_isola_uniformity`.

    Memory beyond X: a few chunk_size² float64 tiles plus the candidates, N²(k + margin)/chunk_size
    values and indices. Returns (indices (N, k) or None, L_U or None). Rows must be non-zero
    when ``t`` is given. Large tiles on purpose: every torch op is a parallel region, and fewer,
    larger ops run much faster on a loaded machine.
    """
    n = X.shape[0]
    if k is None and t is None:
        return None, None
    dev = torch.device(device)
    mu = X.mean(axis=0)
    Xc = X - mu
    Xt = torch.from_numpy(Xc).to(dev)
    sq = (Xt * Xt).sum(dim=1)
    starts = list(range(0, n, chunk_size))
    if k is not None:
        c = int(k) + margin
        cand: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {a: [] for a in starts}
    if t is not None:
        p = Xt @ torch.from_numpy(mu).to(dev)  # ⟨x̄_i, μ⟩
        q = p + float(mu @ mu)
        w = math.sqrt(2.0 * t) / torch.from_numpy(np.linalg.norm(X, axis=1)).to(dev)  # √(2t)/‖x_i‖
        direct = 4.0 * t < 700.0  # exp(2t·c) ∈ [e^{−2t}, e^{2t}]: no overflow or underflow
        parts = []
    for a0 in starts:
        a1 = min(a0 + chunk_size, n)
        for b0 in range(a0, n, chunk_size):
            b1 = min(b0 + chunk_size, n)
            # torch's GEMM, not numpy's: alternating the OpenBLAS and OpenMP thread pools tile
            # by tile makes both spin against each other on a loaded machine.
            G = Xt[a0:a1] @ Xt[b0:b1].T
            diag = a0 == b0
            if k is not None:
                D = torch.add(sq[None, b0:b1], G, alpha=-2.0).add_(sq[a0:a1, None])
                if diag:
                    D.fill_diagonal_(torch.inf)
                vals, ids = D.topk(min(c, b1 - b0), dim=1, largest=False, sorted=False)
                cand[a0].append((vals, ids + b0))
                if not diag:
                    vals, ids = D.topk(min(c, a1 - a0), dim=0, largest=False, sorted=False)
                    cand[b0].append((vals.T, ids.T + a0))
                del D
            if t is not None:
                S = G.add_(q[a0:a1, None]).add_(p[None, b0:b1])  # ⟨x_i, x_j⟩, in place
                S.mul_(w[a0:a1, None]).mul_(w[None, b0:b1])  # 2t·c_ij
                if diag and a1 - a0 < 2:
                    continue
                if direct and diag:
                    # Σ_{i<j} = (Σ_all − Σ_i) / 2 on the symmetric tile: no triangle gather.
                    S = S.exp_()
                    tot = (S.sum() - torch.diagonal(S).sum()) / 2.0
                    parts.append(torch.log(tot) - 2.0 * t)
                    continue
                if diag:
                    S = S[torch.triu_indices(a1 - a0, a1 - a0, offset=1, device=dev).unbind()]
                if direct:
                    parts.append(torch.log(S.exp_().sum()) - 2.0 * t)
                else:
                    parts.append(torch.logsumexp(S.reshape(-1) - 2.0 * t, dim=0))
    idx = lu = None
    if k is not None:
        idx = torch.empty((n, int(k)), dtype=torch.int64, device=dev)
        for a0, parts_a in cand.items():
            d = torch.cat([v for v, _ in parts_a], dim=1)
            i, perm = torch.cat([j for _, j in parts_a], dim=1).sort(dim=1)  # by index, then
            order = d.gather(1, perm).sort(dim=1, stable=True).indices[:, : int(k)]  # distance
            idx[a0 : a0 + chunk_size] = i.gather(1, order)
    if t is not None:
        lu = torch.logsumexp(torch.stack(parts), dim=0).item() - math.log(n * (n - 1) / 2.0)
    return idx, lu


def _neighbourhood_ratios(
    Xc: np.ndarray, idx: torch.Tensor, chunk_size: int = 1024
) -> torch.Tensor:
    """1 − λ₁(C_i)/tr C_i for every row i, C_i the covariance of the rows idx[i] of Xc.

    Batched over rows: the k × k Gram matrix of the neighbours is double-centred,
    HGH with H = I − 11ᵀ/k (= the Gram matrix of the centred neighbours, whose non-zero
    spectrum is that of k·C_i). Xc is globally centred, so this does not lose precision.
    """
    n, k = idx.shape
    dev = idx.device
    X64 = torch.from_numpy(Xc).to(dev)
    tol = _ZERO_VAR_RTOL * k * float((X64 * X64).sum(dim=1).mean())
    ratios = torch.empty(n, dtype=torch.float64, device=dev)
    for a in range(0, n, chunk_size):
        nb = X64[idx[a : a + chunk_size]]  # (b, k, D)
        G = nb @ nb.transpose(1, 2)
        G = G - G.mean(dim=1, keepdim=True)
        G = G - G.mean(dim=2, keepdim=True)
        tr = torch.diagonal(G, dim1=1, dim2=2).sum(dim=1)
        bad = torch.nonzero(tr <= tol)
        if bad.numel():
            raise ValueError(
                f"local_isotropy: the {k} nearest neighbours of sample {a + int(bad[0, 0])} are "
                "identical (zero local variance); remove duplicate samples or increase k."
            )
        ratios[a : a + chunk_size] = 1.0 - torch.linalg.eigvalsh(G)[:, -1] / tr
    return ratios


def _check_k(k: int, n: int) -> int:
    k = int(k)
    if not 2 <= k <= n - 1:
        raise ValueError(f"local_isotropy needs 2 <= k <= N - 1 = {n - 1}, got k = {k}.")
    return k


def local_isotropy(
    X, k: int = 20, device: str | torch.device = "cpu", chunk_size: int = 2048
) -> float:
    r"""Local isotropy: mean over points of 1 − λ₁(C_i)/tr(C_i) over k-NN neighbourhoods.

    .. math::

        \mathrm{liso} = \frac{1}{N}\sum_{i=1}^{N}
            \Big(1 - \frac{\lambda_1(C_i)}{\operatorname{tr} C_i}\Big),
        \qquad C_i = \frac{1}{k}\sum_{j \in \mathcal N_k(i)}
            (x_j - \bar x_{(i)})(x_j - \bar x_{(i)})^\top

    𝒩_k(i) are the k nearest neighbours of x_i in Euclidean distance, **excluding x_i itself**
    (by index; exact duplicates of x_i count as neighbours; ties broken by lower index), and
    x̄_(i) their mean. The 1/k normalisation cancels. Named by Chung & Kim (2026,
    arXiv:2602.03282); their k is unknown, k = 20 is our design choice [D]. Exact float64 kNN
    from tiles of the Gram matrix (symmetry halves the O(N²D) work); λ₁(C_i) and tr C_i are read
    from the k × k Gram matrix of the centred neighbours (same non-zero spectrum as C_i), batched
    eigen-solves. ∈ [0, 1 − 1/min(k−1, D)].

    Parameters
    ----------
    X : array (N, D)
    k : int
        Neighbourhood size, 2 ≤ k ≤ N − 1.
    device : str
        torch device for the kNN search and the batched eigenvalues ("cpu" or "cuda").
    chunk_size : int
        Tile side; extra memory ≈ 3·8·chunk_size² + 8·chunk_size·k·D bytes.

    Raises
    ------
    ValueError
        If the data or a neighbourhood have zero variance (k + 1 identical points).
    """
    X = as_features(X)
    k = _check_k(k, X.shape[0])
    _check_variance(X, "local_isotropy")
    idx, _ = _pairwise_pass(X, k, None, device, int(chunk_size))
    ratios = _neighbourhood_ratios(X - X.mean(axis=0), idx, int(chunk_size))
    return float(ratios.mean())


# --------------------------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------------------------
_COLUMNS = ["layer", "metric", "variant", "value", "n_samples", "dim", "k", "fit_range", "t"]
_METRIC_ORDER = [
    "rankme", "effective_rank", "participation_ratio", "participation_ratio_normalised",
    "global_isotropy", "local_isotropy", "nesum", "alpha_req", "alpha_req_r2", "self_cluster",
    "wasserstein_uniformity", "wasserstein_uniformity_floor", "wang_isola_uniformity",
]  # fmt: skip


def _layer_rows(
    layer: str,
    X: np.ndarray,
    *,
    local_k: int,
    alpha_range: tuple[int, int],
    t: float,
    device: str,
    on_degenerate: str,
    floor: Callable[[int, int], float],
) -> list[dict]:
    """All metrics of one layer (X already validated, float64); see :func:`geometry_table`."""
    n, d = X.shape
    rows: list[dict] = []

    def add(metric, value, variant="", k=np.nan, fit_range="", tt=np.nan):
        rows.append(
            dict(layer=layer, metric=metric, variant=variant, value=float(value), n_samples=n,
                 dim=d, k=k, fit_range=fit_range, t=tt)
        )  # fmt: skip

    def guarded(metrics: list[tuple[str, dict]], fn: Callable[[], list[float]]) -> None:
        try:
            values = fn()
        except ValueError as err:
            if on_degenerate == "raise":
                raise
            names = ", ".join(m for m, _ in metrics)
            warnings.warn(
                f"geometry_table: layer {layer!r}, {names}: {err} Value set to NaN.",
                RuntimeWarning,
                stacklevel=4,
            )
            values = [np.nan] * len(metrics)
        for (metric, kw), v in zip(metrics, values, strict=True):
            add(metric, v, **kw)

    Xc = X - X.mean(axis=0)
    s2c = _gram_eigvals(Xc)  # = (N−1)·λ, shared by every centred-spectrum metric

    def spectrum() -> list[float]:
        _check_variance(X, "covariance spectrum")
        lam = s2c / (n - 1)
        return [
            _entropy_rank(np.sqrt(s2c), 1e-7),
            _entropy_rank(np.sqrt(s2c), 0.0),
            _pr(lam),
            _pr(lam) / d,
            1.0 - lam[0] / lam.sum(),
            lam.sum() / lam[0],
        ]

    def uncentred() -> list[float]:
        s2 = _gram_eigvals(X)
        if not s2.sum() > 0:
            raise ValueError("rankme: X is all zeros; its singular values are all 0.")
        return [_entropy_rank(np.sqrt(s2), 1e-7)]

    def alpha() -> list[float]:
        _check_variance(X, "covariance spectrum")
        return list(_alpha_fit(s2c / (n - 1), alpha_range, n, d))

    def on_sphere() -> list[float]:
        U = unit_rows(X, name=f"layer {layer!r}")
        mu, cov = _moments(U)
        return [_self_cluster_unit(U), _w2_from_moments(mu, cov, d)]

    # kNN (local isotropy) and L_U share one pass over the O(N²D) Gram tiles; each part runs
    # only if its metric is defined, and reports its own error otherwise.
    knn_err: ValueError | None = None
    lu_err: ValueError | None = None
    try:
        k = _check_k(local_k, n)
        _check_variance(X, "local_isotropy")
    except ValueError as err:
        knn_err = err
    try:
        unit_rows(X, name=f"layer {layer!r}")
    except ValueError as err:
        lu_err = err
    idx, lu = _pairwise_pass(X, None if knn_err else k, None if lu_err else float(t), device)

    def local() -> list[float]:
        if knn_err is not None:
            raise knn_err
        return [float(_neighbourhood_ratios(Xc, idx).mean())]

    def uniformity_lu() -> list[float]:
        if lu_err is not None:
            raise lu_err
        return [lu]

    guarded([("rankme", {"variant": "uncentred"})], uncentred)
    guarded(
        [
            ("rankme", {"variant": "centred"}),
            ("effective_rank", {}),
            ("participation_ratio", {}),
            ("participation_ratio_normalised", {}),
            ("global_isotropy", {}),
            ("nesum", {}),
        ],
        spectrum,
    )
    fr = {"fit_range": f"{int(alpha_range[0])}-{int(alpha_range[1])}"}
    guarded([("alpha_req", fr), ("alpha_req_r2", fr)], alpha)
    guarded([("local_isotropy", {"k": int(local_k)})], local)
    guarded([("self_cluster", {}), ("wasserstein_uniformity", {})], on_sphere)
    guarded([("wang_isola_uniformity", {"tt": float(t)})], uniformity_lu)
    add("wasserstein_uniformity_floor", floor(n, d))
    return rows


def geometry_table(
    features: Mapping[str, np.ndarray],
    *,
    local_k: int = 20,
    alpha_range: tuple[int, int] = (10, 100),
    max_samples: int | None = None,
    seed: int = 0,
    t: float = 2.0,
    device: str = "cpu",
    on_degenerate: str = "nan",
) -> pd.DataFrame:
    """Every global-geometry and uniformity metric for every layer, as one tidy table.

    Per layer (features[name], (N, D)); when ``max_samples`` < N the same seeded subsample of rows
    (``np.random.default_rng(seed).choice``, sorted) is used for every layer of equal N.

    Metrics (``metric`` / ``variant``), all as defined in this module and in
    :mod:`repaudit.metrics.uniformity`:

    - ``rankme`` / ``uncentred`` (paper definition) and ``centred``;
    - ``effective_rank``, ``participation_ratio``, ``participation_ratio_normalised``,
      ``global_isotropy``, ``nesum`` (centred covariance spectrum);
    - ``alpha_req`` and ``alpha_req_r2`` (``fit_range`` = "a-b");
    - ``local_isotropy`` (``k``);
    - ``self_cluster``;
    - ``wasserstein_uniformity`` (W2, lower = more uniform) and ``wasserstein_uniformity_floor``
      (W2 of N uniform-sphere samples in D dimensions, seeded with ``seed``; compare W2 with it);
    - ``wang_isola_uniformity`` (L_U, lower = more uniform; ``t``).

    Parameters
    ----------
    features : mapping layer name -> array (N, D)
    local_k : int
        k of local isotropy.
    alpha_range : (int, int)
        Fit range of α-ReQ (slice of the descending spectrum; see :func:`alpha_req_fit`).
    max_samples : int or None
        Subsample rows to at most this many (None: all).
    seed : int
        Seed of the subsample and of the W2 floor.
    t : float
        Temperature of L_U.
    device : str
        torch device for local isotropy's kNN search and L_U ("cpu" or "cuda").
    on_degenerate : {"nan", "raise"}
        What to do when a metric is undefined for a layer (zero variance, e.g. a ViT's layer-0
        CLS token; zero rows; too few eigenvalues for the α fit): "nan" writes NaN and emits a
        RuntimeWarning naming the layer, metrics and reason; "raise" re-raises the ValueError.
        Malformed input (not 2-D, < 2 samples, NaN/Inf) always raises.

    Returns
    -------
    pandas.DataFrame
        Columns ``layer, metric, variant, value, n_samples, dim, k, fit_range, t``, ordered by
        layer (input order) then metric: ``variant`` is "" except for rankme; ``k`` is set for
        local_isotropy, ``fit_range`` ("10-100") for alpha_req and alpha_req_r2, ``t`` for
        wang_isola_uniformity, and NaN / "" elsewhere.
    """
    if on_degenerate not in ("nan", "raise"):
        raise ValueError(f"on_degenerate must be 'nan' or 'raise', got {on_degenerate!r}.")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}.")
    if max_samples is not None and int(max_samples) < 2:
        raise ValueError(f"max_samples must be >= 2 or None, got {max_samples}.")
    if not features:
        raise ValueError("features is empty; pass at least one layer.")
    floors: dict[tuple[int, int], float] = {}

    def floor(n: int, d: int) -> float:
        if (n, d) not in floors:
            floors[(n, d)] = wasserstein_uniformity_floor(n, d, seed=seed)
        return floors[(n, d)]

    rows: list[dict] = []
    for name, raw in features.items():
        X = as_features(raw, name=f"features[{name!r}]")
        if max_samples is not None and X.shape[0] > int(max_samples):
            rng = np.random.default_rng(seed)
            X = X[np.sort(rng.choice(X.shape[0], int(max_samples), replace=False))]
        rows += _layer_rows(
            str(name),
            X,
            local_k=local_k,
            alpha_range=alpha_range,
            t=t,
            device=device,
            on_degenerate=on_degenerate,
            floor=floor,
        )
    df = pd.DataFrame(rows, columns=_COLUMNS)
    rank = {m: i for i, m in enumerate(_METRIC_ORDER)}
    layer_rank = {str(n): i for i, n in enumerate(features)}
    key = df["layer"].map(layer_rank) * 100 + df["metric"].map(rank)
    return df.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)
