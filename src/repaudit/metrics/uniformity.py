"""Uniformity of L2-normalised representations: Wasserstein uniformity and Wang & Isola.

References
----------
.. [Fang2024] G. Fang, X. Li, Y. Sun, Q. Wang. "Rethinking the Uniformity Metric in
   Self-Supervised Learning". ICLR 2024, arXiv:2403.00642. §4 (W2 metric), §3.1 (properties
   IPC, ICC, FCC, FBC), §5 / Fig. 4-6 (synthetic collapse study).
.. [WangIsola2020] T. Wang, P. Isola. "Understanding Contrastive Representation Learning through
   Alignment and Uniformity on the Hypersphere". ICML 2020, arXiv:2005.10242. Eqs. for L_align
   and L_uniform (§4.1).

Sign conventions: every function here returns the *loss-like* quantity (lower = more uniform or
better aligned). The papers' metrics are the negatives, −W2 and −L_U.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from repaudit.metrics._common import as_features, as_tensor, unit_rows

try:  # installed with scikit-learn; only used to run small eigen-solves on one BLAS thread
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

__all__ = [
    "alignment",
    "collapse_study",
    "wang_isola_uniformity",
    "wasserstein_uniformity",
    "wasserstein_uniformity_floor",
    "wasserstein_uniformity_loss",
]

# Row chunk for the covariance accumulation; fixed so that seeded results do not depend on it.
_ROW_CHUNK = 8192
# η grid of Fang et al.'s collapse script (0..1 step 0.05); η = 1 zeroes every coordinate, which
# leaves nothing to normalise, so the grid stops at 0.95.
DEFAULT_ETAS = tuple(round(0.05 * i, 2) for i in range(20))


_BLAS_CONTROLLER = None


def _eigvalsh(M: np.ndarray) -> np.ndarray:
    """``np.linalg.eigvalsh`` (ascending) with the BLAS pool limited to one thread.

    LAPACK's tridiagonalisation is a long series of small BLAS-2 calls; with a multi-threaded
    BLAS each call wakes the pool, which on a loaded machine made a 512 × 512 eigvalsh 15-70×
    slower (0.7-3 s instead of 0.045 s measured on 2 shared cores). The result is the same.
    """
    global _BLAS_CONTROLLER
    if ThreadpoolController is None:  # pragma: no cover
        return np.linalg.eigvalsh(M)
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = ThreadpoolController()
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        return np.linalg.eigvalsh(M)


# --------------------------------------------------------------------------------------------
# Wasserstein uniformity (Fang et al. 2024)
# --------------------------------------------------------------------------------------------
def _moments(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and biased (1/N) covariance of the rows of Z, in float64, two passes in row chunks."""
    n = Z.shape[0]
    mu = np.zeros(Z.shape[1])
    for a in range(0, n, _ROW_CHUNK):
        mu += Z[a : a + _ROW_CHUNK].sum(axis=0, dtype=np.float64)
    mu /= n
    cov = np.zeros((Z.shape[1], Z.shape[1]))
    for a in range(0, n, _ROW_CHUNK):
        B = np.asarray(Z[a : a + _ROW_CHUNK], dtype=np.float64) - mu
        cov += B.T @ B  # numpy dispatches A.T @ A to syrk
    cov /= n
    return mu, cov


def _w2_from_moments(mu: np.ndarray, cov: np.ndarray, dim: int) -> float:
    """W2 between N(mu, cov) and N(0, I/dim), for a covariance padded with zeros up to ``dim``.

    Zero padding (collapsed coordinates) adds zero eigenvalues and zero mean entries, so the
    moments of the non-collapsed block suffice; ``dim`` is the full dimension m.
    """
    lam = _eigvalsh(cov)
    # Eigenvalues below the round-off level of eigvalsh are zero (collapsed directions); left as
    # ±1e-17 they would add √1e-17 each to tr Σ^{1/2}. Negative ones are round-off too.
    lam[lam <= max(float(lam[-1]), 0.0) * len(lam) * np.finfo(np.float64).eps] = 0.0
    tr_sqrt = float(np.sqrt(lam).sum())
    w2_sq = float(mu @ mu) + 1.0 + float(np.trace(cov)) - 2.0 / math.sqrt(dim) * tr_sqrt
    return math.sqrt(max(w2_sq, 0.0))


def wasserstein_uniformity(X) -> float:
    r"""Wasserstein uniformity distance W2 of Fang et al. (2024), lower = more uniform.

    The rows are L2-normalised, u_i = x_i / ‖x_i‖, and modelled as a Gaussian N(μ̂, Σ̂) with the
    sample mean μ̂ and the **biased** sample covariance Σ̂ = (1/N) Σ_i (u_i − μ̂)(u_i − μ̂)ᵀ.
    The uniform distribution on S^{m−1} is approximated by N(0, I/m). The closed-form 2-Wasserstein
    distance between the two Gaussians is (arXiv:2403.00642, §4, Eq. 7)

    .. math::

        W_2 = \sqrt{\lVert\hat\mu\rVert_2^2 + 1 + \operatorname{tr}\hat\Sigma
              - \tfrac{2}{\sqrt m}\operatorname{tr}\hat\Sigma^{1/2}},
        \qquad \operatorname{tr}\hat\Sigma^{1/2} = \sum_i \sqrt{\lambda_i(\hat\Sigma)} .

    Eigenvalues come from ``eigvalsh`` in float64 and are clamped at 0 (the paper's code uses the
    general ``eig`` solver, which can return complex or negative round-off); eigenvalues below
    eigvalsh's round-off level λ_max·m·ε_machine count as 0. W2 ∈ [0, √2]:
    0 for Σ̂ = I/m, μ̂ = 0; √2 under constant collapse; √(2 − 2√(1−η)) when the data collapse
    onto (1−η)m isotropic coordinates, whatever m. The paper's metric is −W2.

    Parameters
    ----------
    X : array (n_samples, n_features)
        Representations; rows are L2-normalised here.

    Returns
    -------
    float
        W2 (a distance). Biased upward at finite N: compare with
        :func:`wasserstein_uniformity_floor` at the same (N, m).
    """
    U = unit_rows(as_features(X))
    mu, cov = _moments(U)
    return _w2_from_moments(mu, cov, U.shape[1])


def wasserstein_uniformity_floor(n_samples: int, dim: int, seed: int = 0) -> float:
    r"""Finite-sample floor of W2: the W2 of ``n_samples`` exactly uniform points on S^{dim−1}.

    Perfectly uniform data still give W2 > 0 at finite N because Σ̂ fluctuates around I/m
    (W2_floor ≈ 0.5·√(m/N): 0.080 at m = 256, N = 10k, as in the paper's CIFAR evaluation).
    Measured by one seeded draw: Gaussian samples g ~ N(0, I_m), u = g/‖g‖, then
    :func:`wasserstein_uniformity`'s estimator. Samples are drawn and accumulated in row chunks
    so memory stays O(m² + chunk·m); the covariance is accumulated as Σ u uᵀ/N − μ̂μ̂ᵀ (one pass,
    μ̂ ≈ 0 here so no cancellation).

    Parameters
    ----------
    n_samples, dim : int
        N and m of the data being compared (N ≥ 2, m ≥ 1).
    seed : int
        Seed of ``np.random.default_rng``; same seed, same value.

    Returns
    -------
    float
        W2 of the uniform sample.
    """
    n_samples, dim = int(n_samples), int(dim)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}.")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}.")
    rng = np.random.default_rng(seed)
    s = np.zeros(dim)
    S = np.zeros((dim, dim))
    for a in range(0, n_samples, _ROW_CHUNK):
        G = rng.standard_normal((min(_ROW_CHUNK, n_samples - a), dim))
        G /= np.sqrt(np.einsum("ij,ij->i", G, G))[:, None]
        s += G.sum(axis=0)
        S += G.T @ G
    mu = s / n_samples
    cov = S / n_samples - np.outer(mu, mu)
    return _w2_from_moments(mu, cov, dim)


def wasserstein_uniformity_loss(z, eps: float = 1e-8, validate: bool = True) -> torch.Tensor:
    r"""Differentiable W2 uniformity loss (Fang et al. 2024, §4.2), for "SSL + W2" training.

    Same estimator as :func:`wasserstein_uniformity` (L2-normalised rows, biased covariance,
    W2² = ‖μ̂‖² + 1 + tr Σ̂ − (2/√m) Σ √λ_i), written in torch. In the paper the loss is computed
    on the concatenation of the two views' projections (2B × m). Safe gradients:

    - ``sqrt(clamp(λ, 0) + eps)``: d√λ/dλ = 1/(2√λ) is infinite at λ = 0, which happens whenever
      the batch is rank-deficient (2B ≤ m) or collapsed. ``eps`` bounds it by 1/(2√eps) (the
      paper's training code adds 1e-8 too). Bias: at most (2/√m)·√eps per zero eigenvalue.
    - ``sqrt(clamp(W2², 0) + eps)`` for the outer root, whose gradient is infinite at W2 = 0.
      Bias at most √eps.

    The covariance and its eigenvalues are computed in float64 (m × m, cheap) and the result is
    cast back to ``z.dtype``. ``eigvalsh``'s backward pass needs only eigenvectors, not the gaps
    between eigenvalues, so repeated eigenvalues do not produce NaN gradients.

    Parameters
    ----------
    z : torch.Tensor (n, m)
        Unnormalised projections, n ≥ 2 (an array-like is converted; gradients need a tensor).
    eps : float
        Stabiliser described above; ``eps=0`` gives the exact estimator (unsafe gradients).
    validate : bool
        Check for NaN/Inf and all-zero rows (raises ValueError). Each check is a host-device
        synchronisation; a training loop may pass False and watch the loss for NaN instead.

    Returns
    -------
    torch.Tensor
        Scalar W2 (lower = more uniform), differentiable w.r.t. ``z``.
    """
    z = as_tensor(z, "z")  # tensors stay on their device, with their autograd graph
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1:
        raise ValueError(
            f"z must be 2-D (n >= 2 samples, m >= 1 features), got shape {tuple(z.shape)}; pass "
            "a batch of at least 2 projections."
        )
    zd = z.to(torch.float64)
    norms = zd.norm(dim=1, keepdim=True)
    if validate:
        if not bool(torch.isfinite(norms).all()):
            raise ValueError("z contains NaN or Inf; check the encoder's outputs for divergence.")
        if bool((norms == 0).any()):
            raise ValueError(
                "z has all-zero rows; L2 normalisation is undefined for them; remove them."
            )
    u = zd / norms
    n, m = u.shape
    mu = u.mean(dim=0)
    uc = u - mu
    cov = uc.T @ uc / n
    lam = torch.linalg.eigvalsh(cov)
    tr_sqrt = torch.sqrt(torch.clamp(lam, min=0.0) + eps).sum()
    w2_sq = mu @ mu + 1.0 + torch.diagonal(cov).sum() - 2.0 / math.sqrt(m) * tr_sqrt
    out_dtype = z.dtype if z.is_floating_point() else torch.float64
    return torch.sqrt(torch.clamp(w2_sq, min=0.0) + eps).to(out_dtype)


# --------------------------------------------------------------------------------------------
# Wang & Isola (2020)
# --------------------------------------------------------------------------------------------
def _lu_logsumexp(
    Z: np.ndarray,
    t: float,
    chunk_size: int,
    device: str | torch.device = "cpu",
    backend: str | None = None,
) -> float:
    r"""log mean_{i<j} exp(−t‖z_i − z_j‖²) over the rows of Z as given (no normalisation).

    Tiles of the upper triangle, ``chunk_size`` × ``chunk_size`` at a time, in float64; peak
    extra memory ≈ 8 · chunk_size² bytes per tile (32 MB at 2048), independent of N.
    The exponent tile comes out of a single GEMM on augmented rows,
    [2t·a, −t‖a‖², 1] · [b, 1, −t‖b‖²] = −t‖a − b‖². Every exponent lies in
    [−t(2·max‖z‖)², 0] (up to round-off); when that bound is above −700 the exp() sums cannot
    underflow in float64 and are added directly, otherwise each tile is reduced with a shifted
    logsumexp. ``backend`` None picks numpy for ``device="cpu"`` (faster BLAS for float64 here)
    and torch otherwise; "torch" forces torch on ``device`` (tested against numpy on CPU).
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    n = Z.shape[0]
    sq = np.einsum("ij,ij->i", Z, Z)
    direct = t * 4.0 * float(sq.max()) < 700.0
    ones = np.ones((n, 1))
    left = np.hstack([2.0 * t * Z, -t * sq[:, None], ones])
    right = np.hstack([Z, ones, -t * sq[:, None]])
    if backend is None:
        backend = "numpy" if str(device) == "cpu" else "torch"
    if backend == "torch":
        return _lu_tiles_torch(left, right, chunk_size, direct, torch.device(device))
    # Diagonal tiles keep pairs i < j only: the rest is set to −inf (exp → 0).
    lower = np.tril(np.ones((min(chunk_size, n),) * 2, dtype=bool))
    log_parts = []
    for a in range(0, n, chunk_size):
        L = left[a : a + chunk_size]
        for b in range(a, n, chunk_size):
            e = L @ right[b : b + chunk_size].T
            if a == b:
                if len(e) < 2:
                    continue
                e[lower[: len(e), : len(e)]] = -np.inf
            log_parts.append(_tile_log_sum_exp(e, direct))
    lse = float(np.logaddexp.reduce(np.asarray(log_parts)))
    return lse - math.log(n * (n - 1) / 2.0)


def _tile_log_sum_exp(e: np.ndarray, direct: bool) -> float:
    """log Σ exp(e) of one exponent tile (``e`` is overwritten); shifted by its maximum unless
    ``direct`` (no exponent below −700, so nothing underflows)."""
    if direct:
        return math.log(float(np.exp(e, out=e).sum()))
    mx = float(e.max())
    return mx + math.log(float(np.exp(e - mx).sum()))


def _lu_tiles_torch(
    left: np.ndarray, right: np.ndarray, chunk_size: int, direct: bool, device: torch.device
) -> float:
    """Torch version of the tile loop of :func:`_lu_logsumexp` (for GPUs)."""
    n = left.shape[0]
    Lt = torch.from_numpy(left).to(device)
    Rt = torch.from_numpy(right).to(device)
    parts = []
    for a in range(0, n, chunk_size):
        L = Lt[a : a + chunk_size]
        for b in range(a, n, chunk_size):
            e = L @ Rt[b : b + chunk_size].T
            if a == b:
                e = e[torch.triu_indices(len(e), len(e), offset=1, device=device).unbind()]
                if e.numel() == 0:
                    continue
            if direct:
                parts.append(torch.log(e.reshape(-1).exp_().sum()))
            else:
                parts.append(torch.logsumexp(e.reshape(-1), dim=0))
    lse = torch.logsumexp(torch.stack(parts), dim=0).item()
    return lse - math.log(n * (n - 1) / 2.0)


def wang_isola_uniformity(
    X, t: float = 2.0, chunk_size: int = 2048, device: str | torch.device = "cpu"
) -> float:
    r"""Uniformity loss L_U of Wang & Isola (2020), lower = more uniform.

    .. math::

        L_U = \log \frac{2}{N(N-1)} \sum_{i<j} \exp\!\left(-t\,\lVert u_i - u_j\rVert_2^2\right),
        \qquad u_i = x_i/\lVert x_i\rVert_2

    (arXiv:2005.10242, §4.1, L_uniform; as used by Fang et al. 2024, §2, with t = 2). The
    reference code is ``torch.pdist(u).pow(2).mul(-t).exp().mean().log()``; here the pairs are
    visited in ``chunk_size``² tiles of the upper triangle with a float64 logsumexp, so no N × N
    matrix exists and memory is O(chunk_size²) (N = 50k has 1.25·10⁹ pairs). On the unit sphere
    L_U ∈ [−4t, 0]; it tends to −4 (t = 2) for a uniform high-dimensional sphere.

    Parameters
    ----------
    X : array (n_samples, n_features)
        Representations; rows are L2-normalised here.
    t : float
        Kernel temperature (paper: 2).
    chunk_size : int
        Tile side; extra memory is about 8·chunk_size² bytes beyond the (N, m+2) float64 copy.
    device : str
        "cpu" computes the tiles with numpy; another torch device (e.g. "cuda") with torch.

    Returns
    -------
    float
        L_U (the paper's metric is −L_U).
    """
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}.")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    U = unit_rows(as_features(X))
    return _lu_logsumexp(U, float(t), int(chunk_size), device)


def alignment(Xa, Xb, alpha: float = 2.0) -> float:
    r"""Alignment loss L_A of Wang & Isola (2020) for positive pairs, lower = better aligned.

    .. math::

        L_A = \frac{1}{N}\sum_{i=1}^{N} \lVert u^a_i - u^b_i\rVert_2^{\alpha},
        \qquad u = x/\lVert x\rVert_2

    Row i of ``Xa`` and row i of ``Xb`` are two views of the same item (arXiv:2005.10242, §4.1,
    L_align; α = 2 as in Fang et al. 2024, Table 2). Range [0, 2^α].

    Parameters
    ----------
    Xa, Xb : array (n_samples, n_features)
        The two views, same shape.
    alpha : float
        Exponent α > 0.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}.")
    A = unit_rows(as_features(Xa, "Xa", min_rows=1), "Xa")
    B = unit_rows(as_features(Xb, "Xb", min_rows=1), "Xb")
    if A.shape != B.shape:
        raise ValueError(
            f"Xa and Xb must have the same shape (row i = two views of item i), "
            f"got {A.shape} and {B.shape}."
        )
    dist = np.sqrt(np.einsum("ij,ij->i", A - B, A - B))
    return float(np.mean(dist**alpha))


_LU_TILE = 512  # tile side of _lu_prefix_sums; fixed so that seeded results do not depend on it


def _lu_prefix_sums(G: np.ndarray, widths: Sequence[int], ts: Sequence[float]) -> np.ndarray:
    r"""L_U of the unit rows of every prefix G[:, :r], r in ``widths``, at every t in ``ts``.

    Returns an array (len(widths), len(ts)): entry (k, l) equals
    ``_lu_logsumexp(unit_rows(G[:, :widths[k]]), ts[l], ...)`` up to float rounding. The work
    is shared: with s_i = 1/‖g_i[:r]‖, u_i·u_j = s_i s_j (g_i[:r]·g_j[:r]), and the prefix dot
    products of nested prefixes are running sums of the dot products of the column blocks between
    consecutive widths, so each tile of pairs costs one GEMM over all m columns instead of one
    per width (Σ r ≈ 10 m for the collapse grid), and its exponent tile serves every t.
    Upper-triangle tiles only; the diagonal tiles keep their i < j entries. Float64 throughout.
    """
    Z = np.asarray(G, dtype=np.float64)
    n = Z.shape[0]
    order = np.argsort(widths, kind="stable")
    bounds = [0] + [int(widths[k]) for k in order]
    # squared prefix norms, |u|^2 (1 up to rounding, as _lu_logsumexp sees it) and 1/‖g[:r]‖
    sq_blocks = np.stack(
        [np.einsum("ij,ij->i", Z[:, a:b], Z[:, a:b]) for a, b in itertools.pairwise(bounds)]
    )
    n2 = np.cumsum(sq_blocks, axis=0)
    scale = 1.0 / np.sqrt(n2)
    sq = n2 * scale * scale
    ts = np.asarray(ts, dtype=np.float64)
    direct = ts[None, :] * 4.0 * sq.max(axis=1)[:, None] < 700.0  # see _lu_logsumexp
    log_parts: list[list[list[float]]] = [[[] for _ in ts] for _ in order]
    T = _LU_TILE
    for a in range(0, n, T):
        for b in range(a, n, T):
            P = np.zeros((min(T, n - a), min(T, n - b)))
            diag = a == b
            for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
                if hi > lo:
                    P += Z[a : a + T, lo:hi] @ Z[b : b + T, lo:hi].T
                sa, sb = scale[k, a : a + T], scale[k, b : b + T]
                # -‖u_i - u_j‖² = 2 s_i s_j P_ij - |u_i|² - |u_j|²
                d = (2.0 * sa)[:, None] * P * sb[None, :]
                d -= sq[k, a : a + T, None]
                d -= sq[k, None, b : b + T]
                if diag:  # pairs i < j only
                    if len(d) < 2:
                        continue
                    d = d[np.triu_indices(len(d), k=1)]
                for j, t in enumerate(ts):
                    log_parts[k][j].append(_tile_log_sum_exp(t * d, direct[k, j]))
    out = np.array([[np.logaddexp.reduce(np.asarray(p)) for p in row] for row in log_parts])
    out -= math.log(n * (n - 1) / 2.0)
    res = np.empty_like(out)
    res[order] = out
    return res


# --------------------------------------------------------------------------------------------
# synthetic study (Fang et al. 2024, §5 and Fig. 4-6)
# --------------------------------------------------------------------------------------------
def _collapsed_unit(G: np.ndarray, r: int) -> np.ndarray:
    """Keep the first r of m Gaussian coordinates (the rest are zeroed), L2-normalise, float64.

    The zeroed coordinates are dropped rather than stored: they contribute zero mean, zero
    covariance and zero distance, so every metric only needs the r-dimensional block plus m.
    """
    U = np.asarray(G[:, :r], dtype=np.float64)
    U /= np.sqrt(np.einsum("ij,ij->i", U, U))[:, None]
    return U


def _n_zeroed(eta: float, dim: int) -> int:
    if not 0.0 <= eta < 1.0:
        raise ValueError(f"collapse degree eta must be in [0, 1), got {eta}.")
    z = int(np.rint(eta * dim))
    if z >= dim:
        raise ValueError(
            f"eta = {eta} zeroes all {dim} coordinates; nothing is left to normalise. "
            "Use a smaller eta."
        )
    return z


def _unit_moments(U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_moments` in one pass, Σ u uᵀ/N − μ̂μ̂ᵀ, for the collapse study's unit rows.

    Their mean is ~N^{-1/2} per coordinate (symmetric Gaussian data), so the subtraction loses
    ~log10(N) of float64's 16 digits, and the centred copy of U (one more pass over 20000 × r
    in float64 per η) is saved; as in :func:`wasserstein_uniformity_floor`.
    """
    n = U.shape[0]
    mu = U.sum(axis=0) / n
    cov = U.T @ U  # syrk
    cov /= n
    cov -= np.outer(mu, mu)
    return mu, cov


def _lu_values(G: np.ndarray, widths: Sequence[int], ts: Sequence[float], device) -> np.ndarray:
    """:func:`_lu_prefix_sums` on the CPU; per width and t with :func:`_lu_logsumexp` else."""
    if str(device) == "cpu":
        return _lu_prefix_sums(G, widths, ts)
    return np.array(
        [[_lu_logsumexp(_collapsed_unit(G, r), t, 2048, device) for t in ts] for r in widths]
    )


def collapse_study(
    dims: Sequence[int] = (32, 256, 2048),
    etas: Sequence[float] = DEFAULT_ETAS,
    n_samples: int = 20_000,
    n_samples_lu: int = 4_000,
    clones: Iterable[int] = range(1, 11),
    seed: int = 0,
    *,
    property_dim: int = 32,
    property_etas: Sequence[float] = (0.25, 0.5, 0.75),
    n_samples_icc: int = 1_000,
    t: float = 2.0,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    r"""Fang et al.'s synthetic study: W2 and L_U under dimensional collapse and the properties.

    Data (arXiv:2403.00642, §5): z ~ N(0, I_m); the last round(η·m) coordinates are set to 0
    ("collapse degree" η); rows are L2-normalised. Theory for W2 is √(2 − 2√(1−η)), whatever m.

    Studies (``study`` column):

    - ``"collapse"``: W2 (on ``n_samples`` rows) and L_U (on the first ``n_samples_lu`` rows;
      N = 4000 keeps its O(N²) pairs cheap) for every m in ``dims`` and η in ``etas``.
    - ``"ICC"`` instance cloning, D ⊎ … ⊎ D (n copies of every row), D = ``n_samples_icc`` rows
      (paper: N = 1000). W2 is exactly unchanged; the clones add zero-distance pairs, so L_U
      rises (−L_U falls).
    - ``"FCC"`` feature cloning, z ⊕ … ⊕ z (n copies of the feature vector, dimension n·m),
      **not re-normalised**, as in the paper's proof and script. −L_U rises, −W2 falls.
    - ``"FBC"`` feature baby, z ⊕ 0^{(n−1)m} ((n−1) zero blocks of size m appended; rows stay unit
      norm). L_U is unchanged; −W2 falls.

    The property studies use m = ``property_dim`` and η ∈ ``property_etas`` (paper: 32 and
    25/50/75 %); FCC and FBC use ``n_samples`` rows for W2 and ``n_samples_lu`` for L_U.
    ``n_clones`` = n is the number of copies of D (ICC, rows) or feature blocks (FCC: copies of z;
    FBC: z plus n − 1 zero blocks), so n = 1 is the original D in all three studies.

    Default sizes: N = 20,000 for W2 (the paper's collapse script), 4,000 for L_U (its pairs
    cost O(N²)), |D| = 1,000 for ICC (the paper's), m ∈ {32, 256, 2048}, 20 values of η,
    n = 1-10.
    Cost: about 25 s of CPU on one core (one BLAS/OpenMP thread), half of it the W2 covariances
    of 20000 × r for m = 2048; BLAS-3 work parallelises. L_U shares its work: one pass over the
    pairs of the first ``n_samples_lu`` rows serves all η of a dimension (prefix dot products
    are running sums), and ICC / FCC / FBC take L_U from D's own pairs (see the code comments:
    clones multiply pair counts, FCC scales squared distances by n, FBC leaves them as they are).

    Parameters
    ----------
    dims : sequence of int
        Dimensions m of the collapse study.
    etas : sequence of float
        Collapse degrees in [0, 1); default 0, 0.05, …, 0.95 (η = 1 leaves only zero vectors).
    n_samples, n_samples_lu, n_samples_icc : int
        Rows for W2, for L_U, and the size of D in ICC.
    clones : iterable of int
        Values of n for the property studies (paper: 1-10).
    seed : int
        Seeds ``np.random.default_rng``; one independent stream per m (collapse) and one for the
        property data.
    property_dim, property_etas, t, device
        m and η of the property studies, the L_U temperature, the torch device for L_U.

    Returns
    -------
    pandas.DataFrame
        Long format, columns ``study, dim, eta, n_clones, metric, value, n_samples``:
        ``metric`` is ``"wasserstein_uniformity"`` (W2) or ``"wang_isola_uniformity"`` (L_U),
        both lower = more uniform (plot −value for the paper's metrics). ``dim`` is the dimension
        the metric saw (n·m for FCC/FBC), ``eta`` the realised fraction of zeroed coordinates
        round(η·m)/m, ``n_clones`` 1 in the collapse study, ``n_samples`` the rows the metric saw
        (n·|D| for ICC).
    """
    dims = [int(m) for m in dims]
    clones = [int(c) for c in clones]
    if any(m < 1 for m in dims) or property_dim < 1:
        raise ValueError(f"dims must be >= 1, got {dims} and property_dim={property_dim}.")
    if any(c < 1 for c in clones):
        raise ValueError(f"clones must be >= 1 (1 = the original data), got {clones}.")
    for name, v in (("n_samples", n_samples), ("n_samples_lu", n_samples_lu)):
        if int(v) < 2:
            raise ValueError(f"{name} must be >= 2, got {v}.")
    if int(n_samples_icc) < 2:
        raise ValueError(f"n_samples_icc must be >= 2, got {n_samples_icc}.")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}.")
    for m in dims:  # fail before any compute
        for eta in etas:
            _n_zeroed(float(eta), m)
    for eta in property_etas:
        _n_zeroed(float(eta), int(property_dim))
    n_max = max(n_samples, n_samples_lu, n_samples_icc)
    W2, LU = "wasserstein_uniformity", "wang_isola_uniformity"
    rows: list[dict] = []

    def add(study, dim, eta, n_clones, metric, value, n):
        rows.append(
            dict(study=study, dim=dim, eta=eta, n_clones=n_clones, metric=metric,
                 value=float(value), n_samples=n)
        )  # fmt: skip

    streams = np.random.SeedSequence(seed).spawn(len(dims) + 1)
    for m, ss in zip(dims, streams[:-1], strict=True):
        G = np.random.default_rng(ss).standard_normal((n_max, m), dtype=np.float32)
        zeroed = [_n_zeroed(float(eta), m) for eta in etas]
        # L_U of every η from one pass over the pairs (prefix dot products are running sums)
        lus = _lu_values(G[:n_samples_lu], [m - z for z in zeroed], [t], device)[:, 0]
        for z, lu in zip(zeroed, lus, strict=True):
            mu, cov = _unit_moments(_collapsed_unit(G[:n_samples], m - z))
            add("collapse", m, z / m, 1, W2, _w2_from_moments(mu, cov, m), n_samples)
            add("collapse", m, z / m, 1, LU, lu, n_samples_lu)
        del G

    m = int(property_dim)
    G = np.random.default_rng(streams[-1]).standard_normal((n_max, m), dtype=np.float32)
    for eta in property_etas:
        z = _n_zeroed(float(eta), m)
        # Zeroed coordinates are materialised here: FCC clones the full m-vector.
        D_full = np.zeros((n_max, m))
        D_full[:, : m - z] = _collapsed_unit(G, m - z)
        D_w2, D_icc = D_full[:n_samples], D_full[:n_samples_icc]
        # L_U from the pairs of D itself, exactly (up to rounding) as on the constructed data:
        # FCC z ⊕ … ⊕ z (n copies, row norm √n) has n × D's squared distances, so its L_U at t
        # is D's at n·t; FBC's zero blocks change no distance (D's L_U at t); ICC's pairs are
        # n² copies of each pair of D plus N·n(n−1)/2 pairs of clones at distance 0 (exp = 1).
        lu_t = _lu_values(G[:n_samples_lu], [m - z], [t] + [n * t for n in clones], device)[0]
        lu_icc = _lu_values(G[:n_samples_icc], [m - z], [t], device)[0, 0]
        N = n_samples_icc
        log_pairs_d = lu_icc + math.log(N * (N - 1) / 2.0)  # log Σ_{a<b} exp(−t‖d_a − d_b‖²)
        for n, lu_fcc in zip(clones, lu_t[1:], strict=True):
            # ICC: every row repeated n times.
            Di = np.tile(D_icc, (n, 1))
            mu, cov = _moments(Di)
            add("ICC", m, z / m, n, W2, _w2_from_moments(mu, cov, m), len(Di))
            log_sum = 2.0 * math.log(n) + log_pairs_d
            if n > 1:
                log_sum = float(np.logaddexp(log_sum, math.log(N * n * (n - 1) / 2.0)))
            add("ICC", m, z / m, n, LU, log_sum - math.log(n * N * (n * N - 1) / 2.0), len(Di))
            # FCC: z ⊕ … ⊕ z, not re-normalised (row norm √n); FBC: z ⊕ 0 ⊕ … ⊕ 0.
            for study, blocks, lu in (
                ("FCC", [D_w2] * n, lu_fcc),
                ("FBC", [D_w2] + [np.zeros_like(D_w2)] * (n - 1), lu_t[0]),
            ):
                mu, cov = _moments(np.hstack(blocks))
                add(study, n * m, z / m, n, W2, _w2_from_moments(mu, cov, n * m), n_samples)
                add(study, n * m, z / m, n, LU, lu, n_samples_lu)
    return pd.DataFrame(
        rows, columns=["study", "dim", "eta", "n_clones", "metric", "value", "n_samples"]
    )
