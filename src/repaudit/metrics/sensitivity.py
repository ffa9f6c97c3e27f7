"""Functional sensitivity of an encoder: the input–output Jacobian of its final embedding.

Chung & Kim, "Global Geometry Is Not Enough for Vision Representations", ICML 2026
(arXiv:2602.03282). Their functional-sensitivity measure is the **Jacobian Effective Rank**
(Eq. 1):

    JER(x) = (Σ_{i≤k} s_i)² / Σ_{i≤k} s_i²,        reported value = mean_x JER(x),

where s_1 ≥ … ≥ s_k are the top-k singular values of J(x) = ∂f/∂x ∈ ℝ^{D_out×D_in}, estimated by
a randomized range finder with subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4) with
k = 32 probe directions and q = 5 power iterations, on 100 natural images and on Gaussian-noise
images as a control.

The model ``f`` is any ``torch.nn.Module`` that maps float images ``(B, 3, H, W)`` in raw ``[0, 1]``
pixel space to embeddings ``(B, D)``; the model-specific ``Normalize(mean, std)`` must happen inside
``f`` so that every encoder is differentiated in the same input coordinates [D]. ``f`` must treat
the samples of a batch independently (true for any encoder in eval mode): the Jacobian of the
batched map is then block-diagonal, and one batched JVP/VJP gives every image's own product.

How the model is run (none of it leaks outside the call):

- eval mode (training flags of every submodule are restored afterwards);
- float32 copies of the parameters and buffers through ``torch.func.functional_call``
  (the module itself is never cast or moved);
- fused attention off: every submodule with a boolean ``fused_attn`` attribute (timm's attention
  blocks read ``timm.layers.use_fused_attn()`` once, at construction) is switched to the explicit
  softmax path, and ``F.scaled_dot_product_attention`` is restricted to its math backend, because
  the fused SDPA kernels have no forward-mode AD rule. Both are restored on exit.

Everything marked [D] is our design, not the paper's (its code is not public).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call, jvp, vjp, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from repaudit.metrics._common import as_tensor, to_numpy

__all__ = [
    "exact_jacobian_effective_rank",
    "exact_jacobian_singular_values",
    "jacobian_effective_rank",
    "jacobian_effective_rank_per_image",
    "jacobian_frobenius_sq",
    "jacobian_singular_values",
    "noise_images",
    "relative_jacobian_frobenius",
    "relative_jacobian_frobenius_per_image",
    "sensitivity_table",
    "singular_value_participation_ratio",
]

INPUT_SPACE = "raw [0,1] pixels"

# Stream tags so that range-finder probes and Hutchinson probes of the same (seed, image) differ.
_STREAM_RANGE_FINDER = 0
_STREAM_HUTCHINSON = 1

Fn = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------
# Model preparation and input checks
# --------------------------------------------------------------------------------------------


def _as_float32(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    t = t.detach()
    if t.is_floating_point() or t.is_complex():
        t = t.to(dtype=torch.float32)
    return t.to(device)


def _model_device(f: torch.nn.Module) -> torch.device:
    for t in f.parameters():
        return t.device
    for t in f.buffers():
        return t.device
    return torch.device("cpu")


@contextmanager
def _differentiable_model(f: torch.nn.Module, device: str | torch.device | None) -> Iterator[Fn]:
    """Yield ``x -> f(x)`` in eval mode, float32, without fused attention; restore ``f`` after.

    The parameters are passed as detached float32 copies (no copy when they already are float32
    on ``device``), so ``torch.func`` transforms differentiate with respect to the input only.
    """
    if not isinstance(f, torch.nn.Module):
        raise ValueError(f"f must be a torch.nn.Module, got {type(f).__name__}")
    dev = torch.device(device) if device is not None else _model_device(f)
    state = {n: _as_float32(p, dev) for n, p in f.named_parameters()}
    state.update({n: _as_float32(b, dev) for n, b in f.named_buffers()})
    modules = list(f.modules())
    training = [m.training for m in modules]
    fused = [(m, m.fused_attn) for m in modules if isinstance(getattr(m, "fused_attn", None), bool)]
    try:
        f.eval()
        for m, _ in fused:
            m.fused_attn = False
        with sdpa_kernel([SDPBackend.MATH]):

            def fn(x: torch.Tensor) -> torch.Tensor:
                return functional_call(f, state, (x,))

            yield fn
    finally:
        for m, was_training in zip(modules, training, strict=True):
            m.training = was_training
        for m, flag in fused:
            m.fused_attn = flag


def _check_images(images, name: str = "images") -> torch.Tensor:
    """Validate a float image batch (B, C, H, W) in [0, 1]; return it as a float32 tensor."""
    images = as_tensor(images, name)
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be float in raw [0, 1] pixel space, got dtype {images.dtype}; "
            "convert uint8 (N, H, W, 3) images with x.permute(0, 3, 1, 2).float() / 255"
        )
    if images.ndim != 4:
        raise ValueError(
            f"{name} must have shape (B, C, H, W), got {tuple(images.shape)}; "
            "add a batch axis with x[None] for a single image"
        )
    if images.shape[0] < 1 or images[0].numel() < 1:
        raise ValueError(
            f"{name} is empty: shape {tuple(images.shape)}; pass at least one image with "
            "C, H, W >= 1"
        )
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or Inf values; remove or repair those images")
    if images.min() < 0 or images.max() > 1:
        raise ValueError(
            f"{name} must lie in raw [0, 1] pixel space (normalisation belongs inside f), got "
            f"range [{float(images.min()):.3g}, {float(images.max()):.3g}]"
        )
    return images.to(torch.float32)


def _single_or_batch(image) -> tuple[torch.Tensor, bool]:
    """Accept one image (C, H, W) or a batch (B, C, H, W)."""
    t = as_tensor(image, "image")
    if t.ndim == 3:
        return _check_images(t[None], "image"), True
    return _check_images(t, "image"), False


def _embed(fn: Fn, x: torch.Tensor) -> torch.Tensor:
    y = fn(x)
    if not isinstance(y, torch.Tensor) or y.ndim != 2 or y.shape[0] != x.shape[0]:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(
            f"f must map (B, C, H, W) images to (B, D) embeddings, got output {shape}; "
            "pool feature maps inside f (e.g. timm create_model(..., num_classes=0))"
        )
    if not torch.isfinite(y).all():
        raise ValueError("f produced NaN or Inf embeddings; check the model weights and inputs")
    return y


def _check_seed(seed) -> int:
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _derived_seed(seed: int, index: int, stream: int) -> int:
    """Seed of the probe stream for one image: depends only on (seed, image index, stream)."""
    _check_seed(seed)
    return int(np.random.SeedSequence([int(seed), int(index), stream]).generate_state(1)[0])


def _probes(n_in: int, k: int, seed: int, indices: range, stream: int) -> torch.Tensor:
    """Standard Gaussian probes (len(indices), n_in, k), one fixed stream per image index."""
    out = torch.empty(len(indices), n_in, k, dtype=torch.float32)
    for j, i in enumerate(indices):
        g = torch.Generator().manual_seed(_derived_seed(seed, i, stream))
        out[j] = torch.randn(n_in, k, generator=g, dtype=torch.float32)
    return out


def _check_int(value, name: str, minimum: int) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# Batched Jacobian products
# --------------------------------------------------------------------------------------------


def _jvp_batch(fn: Fn, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """J(x_b) v_b for every image b and probe: v (B, D_in, k) -> (B, D_out, k).

    vmap over the k probes batches only the tangents; the primal forward is computed once.
    """
    b, k = v.shape[0], v.shape[-1]
    tangents = v.permute(2, 0, 1).reshape(k, *x.shape).to(x.dtype)
    out = vmap(lambda t: jvp(fn, (x,), (t,))[1])(tangents)  # (k, B, D_out)
    return out.permute(1, 2, 0).reshape(b, -1, k)


def _vjp_batch(vjp_fn, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """J(x_b)ᵀ u_b for every image b and probe: u (B, D_out, k) -> (B, D_in, k)."""
    b, k = u.shape[0], u.shape[-1]
    cot = u.permute(2, 0, 1).contiguous().to(x.dtype)  # (k, B, D_out)
    (g,) = vmap(vjp_fn)(cot)  # (k, B, C, H, W)
    return g.reshape(k, b, -1).permute(1, 2, 0)


def _orth(a: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the column space of each matrix in a batch (QR in float64)."""
    return torch.linalg.qr(a.to(torch.float64), mode="reduced").Q


def _jacobian(fn: Fn, x: torch.Tensor, n_out: int, chunk_size: int = 64):
    """f(x) (B, D_out) and the full Jacobians J(x_b) (B, D_out, D_in), float32.

    One forward; the rows Jᵀe_j come from VJPs vmapped over chunks of the output basis (the
    cotangent e_j is shared by the batch, whose Jacobian is block-diagonal) [D].
    """
    b, n_in = x.shape[0], x[0].numel()
    y, vjp_fn = vjp(fn, x)
    jac = torch.empty(b, n_out, n_in, dtype=torch.float32, device=x.device)
    eye = torch.eye(n_out, dtype=x.dtype, device=x.device)
    for j0 in range(0, n_out, chunk_size):
        basis = eye[j0 : j0 + chunk_size]  # (c, D_out)
        u = basis.T.unsqueeze(0).expand(b, n_out, basis.shape[0])
        jac[:, j0 : j0 + basis.shape[0]] = _vjp_batch(vjp_fn, x, u).transpose(1, 2)
    return y.detach(), jac


# Largest Jacobian batch (B·D_out·D_in float32) built explicitly for the range finder [D].
_EXPLICIT_JACOBIAN_BYTES = 1 << 30


def _explicit_is_cheaper(b: int, n_in: int, n_out: int, k: int, power_iters: int) -> bool:
    """Whether to build J (D_out VJPs) instead of the k(1+q) JVPs + k(1+q) VJPs of the range finder.

    Both give the same estimator (the same products J·W, Jᵀ·Q, up to float32 rounding); the
    explicit J wins for narrow embeddings (a vmapped JVP costs about two VJPs) when it fits.
    """
    return n_out <= 2 * k * (1 + power_iters) and b * n_out * n_in * 4 <= _EXPLICIT_JACOBIAN_BYTES


def _jacobian_if_cheaper(fn: Fn, x: torch.Tensor, n_out: int, k: int, power_iters: int):
    """(f(x), J(x)) from :func:`_jacobian` where :func:`_explicit_is_cheaper`, else None."""
    if _explicit_is_cheaper(x.shape[0], x[0].numel(), n_out, k, power_iters):
        return _jacobian(fn, x, n_out)
    return None


def _range_finder_singular_values(
    fn: Fn,
    x: torch.Tensor,
    k: int,
    power_iters: int,
    seed: int,
    first_index: int,
    jac: torch.Tensor | None = None,
) -> torch.Tensor:
    """Top-k singular values of J(x_b) for a batch of images (B, k), float64, descending.

    Halko, Martinsson & Tropp (2011), Alg. 4.4 (randomized subspace iteration), with the
    re-orthonormalisation after every product (Q = orth(Y), W = orth(Jᵀ Q)). The products use
    ``jac`` (B, D_out, D_in) when given, else matrix-free JVPs/VJPs.
    """
    n_in = x[0].numel()
    idx = range(first_index, first_index + x.shape[0])
    omega = _probes(n_in, k, seed, idx, _STREAM_RANGE_FINDER)
    w = _orth(omega.to(x.device))
    if jac is not None:
        jt = jac.transpose(1, 2)

        def jprod(v):
            return jac @ v.to(jac.dtype)

        def jtprod(u):
            return jt @ u.to(jac.dtype)

    else:
        _, vjp_fn = vjp(fn, x)  # one forward; the VJP closure is reused 1 + power_iters times

        def jprod(v):
            return _jvp_batch(fn, x, v)

        def jtprod(u):
            return _vjp_batch(vjp_fn, x, u)

    y = jprod(w)
    for _ in range(power_iters):
        q = _orth(y)
        w = _orth(jtprod(q))
        y = jprod(w)
    q = _orth(y)
    bt = jtprod(q).to(torch.float64)  # (B, D_in, k) = (Qᵀ J)ᵀ
    return torch.linalg.svdvals(bt)


def _range_finder_batch(
    fn: Fn, x: torch.Tensor, n_out: int, k: int, power_iters: int, seed: int, first_index: int
) -> torch.Tensor:
    """:func:`_range_finder_singular_values` through the explicit Jacobian when cheaper."""
    yjac = _jacobian_if_cheaper(fn, x, n_out, k, power_iters)
    jac = None if yjac is None else yjac[1]
    return _range_finder_singular_values(fn, x, k, power_iters, seed, first_index, jac)


def _check_k(k: int, n_in: int, n_out: int) -> None:
    if k > min(n_in, n_out):
        raise ValueError(
            f"k={k} exceeds min(D_in={n_in}, D_out={n_out}), the rank bound of the Jacobian; "
            f"choose k <= {min(n_in, n_out)}"
        )


# --------------------------------------------------------------------------------------------
# Public API: JER
# --------------------------------------------------------------------------------------------


def singular_value_participation_ratio(s, k: int | None = None) -> float:
    """Participation ratio of singular values, (Σ s_i)² / Σ s_i² (JER of one input, Eq. 1).

    Parameters
    ----------
    s : array-like (n,)
        Non-negative singular values (any order).
    k : int or None
        Keep only the k largest values (the paper's top-k truncation); None keeps all.

    Returns
    -------
    float in [1, n]; invariant to a global rescaling of s. NaN if all values are zero.
    """
    s = to_numpy(s, "s").astype(np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"s must be a non-empty 1-D array of singular values, got {s.shape}")
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("s must hold finite, non-negative singular values; got NaN, Inf or < 0")
    s = np.sort(s)[::-1]
    if k is not None:
        s = s[: _check_int(k, "k", 1)]
    ss = float(np.sum(s * s))
    return float(np.sum(s) ** 2 / ss) if ss > 0 else float("nan")


def jacobian_singular_values(
    f: torch.nn.Module,
    image,
    k: int = 32,
    power_iters: int = 5,
    seed: int = 0,
    *,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Top-k singular values of the input–output Jacobian by randomized subspace iteration.

    J(x) = ∂f(x)/∂x ∈ ℝ^{D_out×D_in} with x in raw [0, 1] pixels (arXiv:2602.03282, Sec. 4.1 and
    App. F). Estimator (Halko et al. 2011, Alg. 4.4)::

        Ω = orth(randn(D_in, k));  Y = J Ω
        repeat q times:  Q = orth(Y);  W = orth(Jᵀ Q);  Y = J W
        Q = orth(Y);  B = Qᵀ J;  s = svdvals(B)

    k(2 + 2q) Jacobian–vector products per image (384 for k = 32, q = 5), computed with
    ``torch.func.jvp`` / ``torch.func.vjp`` vmapped over the k probes and batched over images,
    or, when D_out <= 2k(1 + q) and the batch's J fits in 1 GiB, as matrix products with J built
    from D_out VJPs (cheaper for narrow embeddings; same products up to float32 rounding) [D].
    Products run in float32; orthonormalisation and the final SVD in float64.

    Parameters
    ----------
    f : torch.nn.Module
        Maps float images (B, C, H, W) in [0, 1] to embeddings (B, D); sample-wise in eval mode.
    image : tensor or ndarray, (C, H, W) or (B, C, H, W)
        Raw [0, 1] pixels.
    k : int
        Number of probe directions and of returned singular values (no oversampling, as in the
        paper; k <= min(D_in, D_out)).
    power_iters : int
        Subspace (power) iterations q.
    seed : int
        Probe seed. The probes of image b of a batch depend only on (seed, b) [D], so a batch gives
        the same values as the images one by one.
    device : str or torch.device, optional
        Where to compute (default: the model's device). The model is not moved.

    Returns
    -------
    torch.Tensor, float64, (k,) for one image or (B, k) for a batch, descending.
    """
    x, single = _single_or_batch(image)
    k = _check_int(k, "k", 1)
    power_iters = _check_int(power_iters, "power_iters", 0)
    _check_seed(seed)
    with _differentiable_model(f, device) as fn:
        x = x.to(_model_device(f) if device is None else torch.device(device))
        with torch.no_grad():
            n_out = _embed(fn, x[:1]).shape[1]
        _check_k(k, x[0].numel(), n_out)
        s = _range_finder_batch(fn, x, n_out, k, power_iters, seed, 0).cpu()
    return s[0] if single else s


def jacobian_effective_rank_per_image(
    f: torch.nn.Module,
    images,
    k: int = 32,
    power_iters: int = 5,
    seed: int = 0,
    batch_size: int = 8,
    *,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """JER(x) = (Σ_{i≤k} s_i)² / Σ_{i≤k} s_i² for every image (arXiv:2602.03282, Eq. 1).

    The s_i come from :func:`jacobian_singular_values` (randomized range finder). Image n of
    ``images`` always uses the probe stream (seed, n), whatever ``batch_size`` [D].

    Returns
    -------
    np.ndarray float64 (N,), each value in [1, k].
    """
    x = _check_images(images)
    k = _check_int(k, "k", 1)
    power_iters = _check_int(power_iters, "power_iters", 0)
    batch_size = _check_int(batch_size, "batch_size", 1)
    _check_seed(seed)
    out = np.empty(x.shape[0], dtype=np.float64)
    with _differentiable_model(f, device) as fn:
        dev = _model_device(f) if device is None else torch.device(device)
        with torch.no_grad():
            n_out = _embed(fn, x[:1].to(dev)).shape[1]
        _check_k(k, x[0].numel(), n_out)
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(dev)
            s = _range_finder_batch(fn, xb, n_out, k, power_iters, seed, start)
            out[start : start + xb.shape[0]] = _pr_rows(s.cpu())
    return out


def _pr_rows(s: torch.Tensor) -> np.ndarray:
    """(Σ s)² / Σ s² along the last axis, float64."""
    s = s.to(torch.float64)
    return (s.sum(-1) ** 2 / (s * s).sum(-1)).numpy()


def jacobian_effective_rank(
    f: torch.nn.Module,
    images,
    k: int = 32,
    power_iters: int = 5,
    seed: int = 0,
    batch_size: int = 8,
    *,
    device: str | torch.device | None = None,
) -> float:
    """Jacobian Effective Rank, mean over images (Chung & Kim, arXiv:2602.03282, Eq. 1).

    JER = mean_x (Σ_{i≤k} s_i(x))² / Σ_{i≤k} s_i(x)², with s_i(x) the top-k singular values of
    ∂f/∂x estimated by :func:`jacobian_singular_values` (k = 32, q = 5 as in the paper).
    JER ∈ [1, k]; invariant to a global rescaling of f; not comparable across different k.

    Parameters
    ----------
    f, images, k, power_iters, seed, device
        As in :func:`jacobian_effective_rank_per_image`.
    batch_size : int
        Images per batched JVP/VJP call (memory ~ batch_size · k activations).

    Returns
    -------
    float
    """
    return float(
        np.mean(
            jacobian_effective_rank_per_image(
                f, images, k, power_iters, seed, batch_size, device=device
            )
        )
    )


# --------------------------------------------------------------------------------------------
# Public API: exact Jacobian (validation)
# --------------------------------------------------------------------------------------------


def _exact_sv_batch(fn: Fn, x: torch.Tensor, n_out: int, chunk_size: int) -> torch.Tensor:
    """All singular values of J(x_b) for a batch, (B, min(D_in, D_out)) float64, descending.

    Rows Jᵀe_j come from vmapped VJPs over chunks of the output basis; then G = J Jᵀ (float64,
    accumulated over input chunks) and s² = eigvalsh(G) [D].
    """
    n_in = x[0].numel()
    jac = _jacobian(fn, x, n_out, chunk_size)[1]
    gram = torch.zeros(x.shape[0], n_out, n_out, dtype=torch.float64, device=x.device)
    for c0 in range(0, n_in, 16384):  # bound the float64 working copy
        block = jac[:, :, c0 : c0 + 16384].to(torch.float64)
        gram += block @ block.transpose(1, 2)
    ev = torch.linalg.eigvalsh(gram).clamp_min(0.0).flip(-1)
    return ev[:, : min(n_in, n_out)].sqrt()


def exact_jacobian_singular_values(
    f: torch.nn.Module,
    image,
    *,
    chunk_size: int = 64,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """All singular values of the full Jacobian ∂f/∂x (validation of the range finder).

    Builds J ∈ ℝ^{D_out×D_in} row by row with D_out VJPs (vmapped in chunks of ``chunk_size``
    output directions), then s² = eigvalsh(J Jᵀ) in float64 [D].

    Returns
    -------
    torch.Tensor, float64, (min(D_in, D_out),) for one image or (B, min(D_in, D_out)), descending.
    """
    x, single = _single_or_batch(image)
    chunk_size = _check_int(chunk_size, "chunk_size", 1)
    with _differentiable_model(f, device) as fn:
        x = x.to(_model_device(f) if device is None else torch.device(device))
        with torch.no_grad():
            n_out = _embed(fn, x[:1]).shape[1]
        s = _exact_sv_batch(fn, x, n_out, chunk_size).cpu()
    return s[0] if single else s


def exact_jacobian_effective_rank(
    f: torch.nn.Module,
    images,
    k: int | None = 32,
    *,
    batch_size: int = 2,
    chunk_size: int = 64,
    device: str | torch.device | None = None,
) -> float:
    """JER from the exact singular values, mean over images (arXiv:2602.03282, Eq. 1).

    Parameters
    ----------
    k : int or None
        Truncate to the top k singular values like the paper (default 32); None uses the full
        spectrum (min(D_in, D_out) values) [D].
    batch_size : int
        Images per call; memory ≈ batch_size · D_out · D_in · 4 bytes for the Jacobians
        (≈ 0.46 GB per image for ViT-B at 224²).
    chunk_size : int
        Output directions per vmapped VJP call.

    Returns
    -------
    float
    """
    x = _check_images(images)
    if k is not None:
        k = _check_int(k, "k", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    chunk_size = _check_int(chunk_size, "chunk_size", 1)
    vals = []
    with _differentiable_model(f, device) as fn:
        dev = _model_device(f) if device is None else torch.device(device)
        with torch.no_grad():
            n_out = _embed(fn, x[:1].to(dev)).shape[1]
        if k is not None:
            _check_k(k, x[0].numel(), n_out)
        for start in range(0, x.shape[0], batch_size):
            s = _exact_sv_batch(fn, x[start : start + batch_size].to(dev), n_out, chunk_size)
            vals.append(_pr_rows(s[:, :k].cpu() if k is not None else s.cpu()))
    return float(np.mean(np.concatenate(vals)))


# --------------------------------------------------------------------------------------------
# Public API: Frobenius norm (Hutchinson)
# --------------------------------------------------------------------------------------------


def _frobenius_batch(
    fn: Fn,
    x: torch.Tensor,
    n_probes: int,
    seed: int,
    first_index: int,
    yjac: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hutchinson ‖J‖²_F estimate, its standard error and ‖f(x)‖ for a batch of images.

    ``yjac``: (f(x), J(x)) from :func:`_jacobian`, reused instead of new JVPs when given.
    """
    idx = range(first_index, first_index + x.shape[0])
    v = _probes(x[0].numel(), n_probes, seed, idx, _STREAM_HUTCHINSON)
    if yjac is not None:
        y, jac = yjac
        jv = (jac @ v.to(jac.device)).permute(2, 0, 1)  # (n_probes, B, D_out)
    else:
        tangents = v.permute(2, 0, 1).reshape(n_probes, *x.shape).to(x.device)
        y, jv = vmap(lambda t: jvp(fn, (x,), (t,)), out_dims=(None, 0))(tangents)
    sq = (jv.to(torch.float64) ** 2).sum(-1)  # (n_probes, B): ‖J v‖²
    est = sq.mean(0)
    if n_probes > 1:
        se = sq.std(0, correction=1) / math.sqrt(n_probes)
    else:
        se = torch.full_like(est, math.nan)
    return est, se, torch.linalg.vector_norm(y.to(torch.float64), dim=-1)


def _frobenius_all(f, images, n_probes, seed, batch_size, device):
    x = _check_images(images)
    n_probes = _check_int(n_probes, "n_probes", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    _check_seed(seed)
    n = x.shape[0]
    est, se, fnorm = (np.empty(n) for _ in range(3))
    with _differentiable_model(f, device) as fn:
        dev = _model_device(f) if device is None else torch.device(device)
        with torch.no_grad():
            _embed(fn, x[:1].to(dev))
        for start in range(0, n, batch_size):
            xb = x[start : start + batch_size].to(dev)
            e, s, fn_norm = _frobenius_batch(fn, xb, n_probes, seed, start)
            sl = slice(start, start + xb.shape[0])
            est[sl], se[sl], fnorm[sl] = e.cpu().numpy(), s.cpu().numpy(), fn_norm.cpu().numpy()
    return est, se, fnorm, _pixel_norms(x)


def _pixel_norms(x: torch.Tensor) -> np.ndarray:
    """‖x‖ of every image's raw pixels, float64 (N,)."""
    return torch.linalg.vector_norm(x.reshape(x.shape[0], -1).to(torch.float64), dim=1).numpy()


def _relative(est: np.ndarray, fnorm: np.ndarray, xnorm: np.ndarray) -> np.ndarray:
    """‖J‖_F · ‖x‖ / ‖f(x)‖ per image from the Hutchinson estimate of ‖J‖²_F."""
    if (fnorm <= 0).any():
        raise ValueError("f(x) = 0 for some image; the relative sensitivity is undefined")
    return np.sqrt(est) * xnorm / fnorm


def jacobian_frobenius_sq(
    f: torch.nn.Module,
    images,
    n_probes: int = 16,
    seed: int = 0,
    batch_size: int = 8,
    *,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hutchinson estimate of ‖J(x)‖²_F per image, with its standard error [D].

    ‖J‖²_F = tr(JᵀJ) = E_v ‖J v‖² for v ~ N(0, I_{D_in}) (Hutchinson 1989). The estimate is the
    mean of ‖J v_j‖² over ``n_probes`` probes (vmapped JVPs); the standard error is the sample
    standard deviation / √n_probes (NaN for one probe). Probes of image n depend only on
    (seed, n), on a stream separate from the range finder's.

    Returns
    -------
    (estimate, standard_error) : two float64 arrays (N,)
    """
    est, se, _, _ = _frobenius_all(f, images, n_probes, seed, batch_size, device)
    return est, se


def relative_jacobian_frobenius_per_image(
    f: torch.nn.Module,
    images,
    n_probes: int = 16,
    seed: int = 0,
    batch_size: int = 8,
    *,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Relative sensitivity ‖J(x)‖_F · ‖x‖ / ‖f(x)‖ per image [D].

    A scale-free sensitivity (a first-order condition number of f at x): invariant to rescaling
    f by a constant. ‖J‖_F is the square root of the Hutchinson estimate of
    :func:`jacobian_frobenius_sq`; ‖x‖ is the Euclidean norm of the raw [0, 1] pixels.

    Returns
    -------
    np.ndarray float64 (N,)
    """
    est, _, fnorm, xnorm = _frobenius_all(f, images, n_probes, seed, batch_size, device)
    return _relative(est, fnorm, xnorm)


def relative_jacobian_frobenius(
    f: torch.nn.Module,
    images,
    n_probes: int = 16,
    seed: int = 0,
    batch_size: int = 8,
    *,
    device: str | torch.device | None = None,
) -> float:
    """Mean over images of ‖J(x)‖_F · ‖x‖ / ‖f(x)‖ (Hutchinson estimate of ‖J‖_F) [D].

    Not from arXiv:2602.03282 (whose measure is the JER); a magnitude companion to it.
    See :func:`relative_jacobian_frobenius_per_image`.

    Returns
    -------
    float
    """
    return float(
        np.mean(
            relative_jacobian_frobenius_per_image(
                f, images, n_probes, seed, batch_size, device=device
            )
        )
    )


# --------------------------------------------------------------------------------------------
# Control inputs and the table
# --------------------------------------------------------------------------------------------


def noise_images(n: int, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """Gaussian-noise control images: N(0.5, 0.25²) per pixel, clipped to [0, 1].

    The paper uses Gaussian-noise inputs as a control (App. E.1, [S]); the mean 0.5 and standard
    deviation 0.25 in raw pixel space are our choice [D].

    Parameters
    ----------
    n : int
        Number of images.
    shape : (C, H, W)
    seed : int
        np.random.default_rng seed.

    Returns
    -------
    torch.Tensor float32 (n, C, H, W)
    """
    n = _check_int(n, "n", 1)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (C, H, W) with positive sizes, got {shape}")
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(0.5, 0.25, size=(n, *shape)), 0.0, 1.0).astype(np.float32)
    return torch.from_numpy(x)


class _L2Normalised(torch.nn.Module):
    """x -> f(x)/‖f(x)‖, whose Jacobian is (I − ûûᵀ) J / ‖f(x)‖ (a robustness check)."""

    def __init__(self, f: torch.nn.Module):
        super().__init__()
        self.f = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.f(x)
        return y / torch.linalg.vector_norm(y, dim=-1, keepdim=True)


def _jer_and_relative(f, inputs, k, power_iters, n_probes, seed, batch_size, device):
    """{name: (mean JER, mean relative Frobenius)} for each image set of ``inputs``.

    Same values as :func:`jacobian_effective_rank` and :func:`relative_jacobian_frobenius` (same
    probe streams), in one model context; when the explicit Jacobian is cheaper, one Jacobian per
    batch serves both the range finder and the Hutchinson probes.
    """
    k = _check_int(k, "k", 1)
    power_iters = _check_int(power_iters, "power_iters", 0)
    n_probes = _check_int(n_probes, "n_probes", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    _check_seed(seed)
    out = {}
    with _differentiable_model(f, device) as fn:
        dev = _model_device(f) if device is None else torch.device(device)
        for name, x in inputs.items():
            n, n_in = x.shape[0], x[0].numel()
            with torch.no_grad():
                n_out = _embed(fn, x[:1].to(dev)).shape[1]
            _check_k(k, n_in, n_out)
            jer, est, fnorm = (np.empty(n) for _ in range(3))
            for start in range(0, n, batch_size):
                xb = x[start : start + batch_size].to(dev)
                yjac = _jacobian_if_cheaper(fn, xb, n_out, k, power_iters)
                s = _range_finder_singular_values(
                    fn, xb, k, power_iters, seed, start, None if yjac is None else yjac[1]
                )
                e, _, fn_norm = _frobenius_batch(fn, xb, n_probes, seed, start, yjac)
                sl = slice(start, start + xb.shape[0])
                jer[sl], est[sl], fnorm[sl] = (
                    _pr_rows(s.cpu()),
                    e.cpu().numpy(),
                    fn_norm.cpu().numpy(),
                )
            out[name] = (
                float(np.mean(jer)),
                float(np.mean(_relative(est, fnorm, _pixel_norms(x)))),
            )
    return out


def sensitivity_table(
    f: torch.nn.Module,
    images,
    *,
    k: int = 32,
    power_iters: int = 5,
    n_probes: int = 16,
    seed: int = 0,
    noise_control: bool = True,
    l2_normalized: bool = False,
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Functional-sensitivity table of one encoder (arXiv:2602.03282, Sec. 4.1).

    Rows (all at ``layer = "final"``, the pooled embedding that ``f`` returns):

    - ``jacobian_effective_rank`` (Eq. 1, mean over images), variant ``"images"`` and, with
      ``noise_control``, ``"noise"`` (as many N(0.5, 0.25²)-clipped noise images of the same shape,
      :func:`noise_images` with the same seed);
    - ``relative_jacobian_frobenius`` [D] (mean ‖J‖_F·‖x‖/‖f(x)‖), same variants.

    With ``l2_normalized`` the same rows are added for the L2-normalised embedding f/‖f‖
    (variants ``"images_l2norm"``, ``"noise_l2norm"``), a robustness check [D].

    Parameter columns: ``k``, ``power_iters`` (JER rows; NA on Frobenius rows), ``n_probes``
    (Frobenius rows; NA on JER rows), ``n_images``, ``seed``, ``input_space`` ("raw [0,1] pixels").

    Returns
    -------
    pandas.DataFrame with columns layer, metric, variant, value, k, power_iters, n_images,
    n_probes, seed, input_space.
    """
    x = _check_images(images)
    inputs = {"images": x}
    if noise_control:
        inputs["noise"] = noise_images(x.shape[0], tuple(x.shape[1:]), seed)
    models = {"": f, "_l2norm": _L2Normalised(f)} if l2_normalized else {"": f}
    rows = []
    for suffix, model in models.items():
        for name, (jer, rel) in _jer_and_relative(
            model, inputs, k, power_iters, n_probes, seed, batch_size, device
        ).items():
            variant = name + suffix
            rows.append(("jacobian_effective_rank", variant, jer, k, power_iters, pd.NA))
            rows.append(("relative_jacobian_frobenius", variant, rel, pd.NA, pd.NA, n_probes))
    df = pd.DataFrame(rows, columns=["metric", "variant", "value", "k", "power_iters", "n_probes"])
    df.insert(0, "layer", "final")
    df["value"] = df["value"].astype(float)
    for col in ("k", "power_iters", "n_probes"):
        df[col] = df[col].astype("Int64")
    df["n_images"] = int(x.shape[0])
    df["seed"] = int(seed)
    df["input_space"] = INPUT_SPACE
    return df[
        [
            "layer",
            "metric",
            "variant",
            "value",
            "k",
            "power_iters",
            "n_images",
            "n_probes",
            "seed",
            "input_space",
        ]
    ]
