"""Similarity of two latent spaces of the same items.

Linear CKA (Kornblith, Norouzi, Lee & Hinton, ICML 2019, arXiv:1905.00414, Eq. 5), the mutual
k-nearest-neighbour alignment of Huh, Cheung, Wang & Isola, "The Platonic Representation
Hypothesis", ICML 2024, arXiv:2405.07987 (Sec. 2.3), and the retrieval agreement (Jaccard, MRR,
cosine) of Moschella et al., arXiv:2209.15430, Sec. 4.1.
"""

from __future__ import annotations

import numpy as np
import torch

from repaudit.metrics._common import CHUNK_ELEMS, as_features, unit_rows

__all__ = ["latent_similarity", "linear_cka", "mutual_knn"]


def _same_rows(X: np.ndarray, Y: np.ndarray, what: str) -> None:
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{what} needs the same samples in both spaces (row i = item i); got "
            f"{X.shape[0]} and {Y.shape[0]} rows."
        )


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
    Xa = as_features(X, "X")
    Ya = as_features(Y, "Y")
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
    return torch.from_numpy(unit_rows(X, name).astype(np.float32)).to(device)


def _topk_neighbours(
    queries: torch.Tensor, index: torch.Tensor, k: int, exclude_self: bool = False
) -> np.ndarray:
    """Indices (n_q, k) of the k largest inner products in ``index``, best first.

    float32 inner products on unit rows (as the paper's FAISS IndexFlatIP), chunked over the
    queries; with ``exclude_self`` query i (== index row i) cannot return itself.
    """
    n_q, n_i = queries.shape[0], index.shape[0]
    rows = max(1, CHUNK_ELEMS // n_i)
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
    rows = max(1, CHUNK_ELEMS // n_b)
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
    return float(np.mean(np.sum(unit_rows(A, "src") * unit_rows(B, "tgt"), axis=1)))


def mutual_knn(X, Y, k: int = 10, *, device: str = "cpu") -> float:
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024, arXiv:2405.07987, Sec. 2.3).

    ::

        m_kNN(X, Y) = (1/n) Σ_i |N_k^X(i) ∩ N_k^Y(i)| / k,

    where N_k^X(i) are the k nearest neighbours of sample i among the other samples by cosine
    similarity (inner product of L2-normalised rows; i itself excluded), as in platonic-rep's
    ``mutual_knn`` (default ``topk=10``). Ranges in [0, 1]; chance level is about k / (n - 1).
    """
    Xa = as_features(X, "X")
    Ya = as_features(Y, "Y")
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
    S_ = as_features(src, "src")
    T_ = as_features(tgt, "tgt")
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
