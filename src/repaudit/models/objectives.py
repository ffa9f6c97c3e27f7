"""Pretraining objectives: supervised, SimCLR, MoCo v2, BYOL (each SSL one also + W2), Barlow
Twins, VICReg.

Each objective is a small ``nn.Module`` holding its trainable head (linear classifier or MLP
projector) and mapping the encoder embeddings of the augmented views to a dict of scalar tensors:
``"loss"`` (what is minimised) plus its named parts (for the training history). MoCo v2 and BYOL
also hold a momentum (EMA) copy of the encoder and projector, which embeds the same augmented
images (``inputs``) and follows the online network through :meth:`PretrainObjective.after_step`.
The pure loss functions are exposed too, so that tests can check them against hand-derived values.

References
----------
- SimCLR / NT-Xent: Chen, Kornblith, Norouzi, Hinton (2020), "A Simple Framework for Contrastive
  Learning of Visual Representations", arXiv 2002.05709, Eq. (1).
- Barlow Twins: Zbontar, Jing, Misra, LeCun, Deny (2021), arXiv 2103.03230, Eq. (1)-(2).
- VICReg: Bardes, Ponce, LeCun (2022), arXiv 2105.04906, Eq. (1)-(6).
- MoCo: He, Fan, Wu, Xie, Girshick (2020), "Momentum Contrast for Unsupervised Visual
  Representation Learning", arXiv 1911.05722, Alg. 1; MoCo v2: Chen, Fan, Girshick, He (2020),
  arXiv 2003.04297 (MLP head, stronger augmentation).
- BYOL: Grill et al. (2020), "Bootstrap Your Own Latent", arXiv 2006.07733, §3.1-3.2, Eq. (2).
- Wasserstein uniformity: Fang, Li, Sun, Wang (2024), "Rethinking the Uniformity Metric in
  Self-Supervised Learning", arXiv 2403.00642, Eq. (8) and App. F (linearly decayed weight).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from repaudit.models.objective_names import OBJECTIVE_ALIASES, OBJECTIVES, canonical_objective

__all__ = [
    "OBJECTIVES",
    "OBJECTIVE_ALIASES",
    "SUPERVISED_HEADS",
    "BYOLObjective",
    "BYOLW2Objective",
    "BarlowTwinsObjective",
    "MoCoV2Objective",
    "MoCoV2W2Objective",
    "MomentumObjective",
    "PretrainObjective",
    "ProjectionHead",
    "SimCLRObjective",
    "SimCLRW2Objective",
    "SupervisedObjective",
    "VICRegObjective",
    "W2Auxiliary",
    "barlow_twins_loss",
    "build_objective",
    "byol_loss",
    "canonical_objective",
    "ema_update_",
    "moco_infonce_loss",
    "momentum_schedule",
    "nt_xent_loss",
    "supervised_cross_entropy",
    "vicreg_loss",
    "w2_weight_schedule",
    "wasserstein_uniformity_loss",
]

#: Classifier heads of supervised pretraining (:class:`SupervisedObjective`).
SUPERVISED_HEADS = ("linear", "mlp")


def _check_pair(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"expected two (B, D) tensors of the same shape, got {tuple(z1.shape)} and "
            f"{tuple(z2.shape)}"
        )
    if z1.shape[0] < 2:
        raise ValueError(f"need a batch of at least 2 samples, got {z1.shape[0]}; raise batch_size")


# --------------------------------------------------------------------------------------------
# Pure losses
# --------------------------------------------------------------------------------------------


def supervised_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy -1/B Σ_i log softmax(logits_i)[y_i] (supervised baseline)."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected logits (B, C) and labels (B,), got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    return F.cross_entropy(logits, labels)


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent / InfoNCE loss of SimCLR (Chen et al. 2020, arXiv 2002.05709, Eq. 1).

    With u the 2B L2-normalised projections (view 1 then view 2) and s_ij = u_i·u_j / τ,

        ℓ(i, j) = -log( exp(s_ij) / Σ_{k ≠ i} exp(s_ik) ),
        L = 1/(2B) Σ_{k=1..B} [ℓ(k, k+B) + ℓ(k+B, k)],

    i.e. each sample's positive is its other view and the 2B - 2 other samples are negatives.
    τ = 0.2 is the setting of Fang et al. (2024, App. F).
    """
    _check_pair(z1, z2)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    sim = (u @ u.T) / temperature
    self_mask = torch.eye(2 * b, dtype=torch.bool, device=u.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    idx = torch.arange(b, device=u.device)
    targets = torch.cat([idx + b, idx])
    return F.cross_entropy(sim, targets)


def moco_infonce_loss(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2
) -> torch.Tensor:
    """InfoNCE of MoCo with a queue of negatives (He et al. 2020, arXiv 1911.05722, Eq. 1, Alg. 1).

    With q̂_b, k̂_b the L2-normalised query and key of image b and n_1..n_K the (normalised) keys
    of earlier batches in the queue,

        ℓ_b = -log( exp(q̂_b·k̂_b / τ) / (exp(q̂_b·k̂_b / τ) + Σ_j exp(q̂_b·n_j / τ)) ),

    and L = mean_b ℓ_b. The gradient flows through the queries only: keys come from the momentum
    encoder (stop-gradient).
    """
    _check_pair(q, k)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"queue must be (K, {q.shape[1]}), got {tuple(queue.shape)}")
    qn = F.normalize(q, dim=1)
    kn = F.normalize(k.detach(), dim=1)
    pos = (qn * kn).sum(dim=1, keepdim=True)
    logits = torch.cat([pos, qn @ queue.detach().T], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's normalised regression loss (Grill et al. 2020, arXiv 2006.07733, Eq. 2).

    L = 1/B Σ_b ||p̄_b - z̄_b||² = 1/B Σ_b (2 - 2 cos(p_b, z_b)), with p the online prediction
    and z the target projection, which gets no gradient (stop-gradient).
    """
    _check_pair(p, z)
    cos = (F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(dim=1)
    return (2.0 - 2.0 * cos).mean()


def _batch_standardise(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(z - mean) / sqrt(var + eps) along the batch, biased variance (BatchNorm, affine=False)."""
    mean = z.mean(dim=0, keepdim=True)
    var = z.var(dim=0, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + eps)


def _barlow_terms(
    z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    _check_pair(z1, z2)
    b = z1.shape[0]
    c = _batch_standardise(z1, eps).T @ _batch_standardise(z2, eps) / b
    diag = torch.diagonal(c)
    on = (1.0 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on, off


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3, eps: float = 1e-5
) -> torch.Tensor:
    """Barlow Twins redundancy-reduction loss (Zbontar et al. 2021, arXiv 2103.03230, Eq. 1-2).

    The projections are standardised along the batch (BatchNorm without affine), the
    cross-correlation matrix is C_ij = 1/B Σ_b ẑ1_bi ẑ2_bj, and

        L = Σ_i (1 - C_ii)² + λ Σ_i Σ_{j≠i} C_ij²

    (invariance + redundancy reduction; λ = 5e-3 in the paper).
    """
    on, off = _barlow_terms(z1, z2, eps)
    return on + lambd * off


def _vicreg_terms(
    z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _check_pair(z1, z2)
    b, d = z1.shape
    invariance = F.mse_loss(z1, z2)
    variance = z1.new_zeros(())
    covariance = z1.new_zeros(())
    for z in (z1, z2):
        std = torch.sqrt(z.var(dim=0) + eps)  # unbiased variance, as in the paper
        variance = variance + F.relu(1.0 - std).mean()
        zc = z - z.mean(dim=0)
        cov = zc.T @ zc / (b - 1)
        covariance = covariance + (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d
    return invariance, variance, covariance


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """VICReg loss (Bardes et al. 2022, arXiv 2105.04906, Eq. 1-6).

    L = λ s(Z, Z') + μ [v(Z) + v(Z')] + ν [c(Z) + c(Z')] with the invariance s = mean squared
    error 1/(B d) Σ ||z_b - z'_b||², the variance hinge
    v(Z) = 1/d Σ_j max(0, 1 - sqrt(Var(z_j) + ε)) (unbiased variance) and the covariance penalty
    c(Z) = 1/d Σ_{i≠j} Cov(Z)_ij²; defaults
    λ = μ = 25, ν = 1, ε = 1e-4 (the paper's).
    """
    inv, var, cov = _vicreg_terms(z1, z2, eps)
    return sim_coeff * inv + std_coeff * var + cov_coeff * cov


def wasserstein_uniformity_loss(
    z: torch.Tensor, normalize: bool = True, eps: float = 1e-12
) -> torch.Tensor:
    """Differentiable Wasserstein uniformity W2 (Fang et al. 2024, arXiv 2403.00642, Eq. 8).

    With z L2-normalised (N, m), μ̂ the mean and Σ̂ = 1/N Σ (z - μ̂)(z - μ̂)ᵀ the biased covariance,

        W2 = sqrt( ||μ̂||² + 1 + tr Σ̂ - (2/√m) tr Σ̂^{1/2} ),

    the 2-Wasserstein distance between N(μ̂, Σ̂) and N(0, I/m) (the Gaussian stand-in for the
    uniform distribution on the sphere). tr Σ̂^{1/2} = Σ sqrt(λ_i(Σ̂)) is computed as the sum of
    the singular values of (z - μ̂)/√N: the same number as sqrt of the clamped eigenvalues, but its
    gradient U Vᵀ stays bounded when eigenvalues vanish (dimensional collapse), which the
    eigenvalue route only achieves with an ad-hoc epsilon. Computed in float64; the outer square
    root is clamped at ``eps`` so the gradient is finite at W2 = 0. The loss is W2 (lower = more
    uniform); the metric is -W2.

    Note: ``repaudit.metrics.uniformity`` computes the same quantity (non-differentiably, for
    evaluation); the two should be kept in agreement (a unit test cross-checks this one against an
    eigvalsh reference).
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"expected (N, m) projections with N >= 2, got {tuple(z.shape)}")
    x = z.to(torch.float64)
    if normalize:
        x = F.normalize(x, dim=1)
    n, m = x.shape
    mu = x.mean(dim=0)
    xc = (x - mu) / math.sqrt(n)
    tr_cov = xc.pow(2).sum()
    tr_sqrt = torch.linalg.svdvals(xc).sum()
    w2_sq = mu.pow(2).sum() + 1.0 + tr_cov - 2.0 / math.sqrt(m) * tr_sqrt
    return torch.sqrt(torch.clamp(w2_sq, min=eps)).to(z.dtype)


def w2_weight_schedule(step: int, total_steps: int, alpha_max: float, alpha_min: float) -> float:
    """Linearly decayed W2 weight α_t = α_max - t (α_max - α_min) / T (Fang et al. 2024, App. F).

    Here t is the 0-based optimiser step and T = total_steps - 1, so the first step uses α_max and
    the last step exactly α_min (a single-step run uses α_max). The reference code
    (statsle/WassersteinSSL) decays per epoch, starting one decrement below α_max; per-step
    decay is the same line sampled more finely.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps}), got {step}")
    if total_steps == 1:
        return float(alpha_max)
    return float(alpha_max - step * (alpha_max - alpha_min) / (total_steps - 1))


def momentum_schedule(step: int, total_steps: int, base: float, final: float) -> float:
    """EMA rate τ_k = final - (final - base) (cos(π k / K) + 1) / 2 at 0-based step k of K.

    Grill et al. (2020, arXiv 2006.07733, §3.2) raise BYOL's τ from τ_base = 0.996 to 1;
    ``base == final`` is MoCo's constant momentum (He et al. 2020: 0.999; 0.99 for short runs).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps}), got {step}")
    if not (0.0 <= base <= 1.0 and 0.0 <= final <= 1.0):
        raise ValueError(f"momentum must lie in [0, 1], got ({base}, {final})")
    return float(final - (final - base) * (math.cos(math.pi * step / total_steps) + 1.0) / 2.0)


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place θ_target ← m θ_target + (1 - m) θ_online for every parameter.

    Buffers (BatchNorm statistics) are not averaged: the target keeps those of its own forward
    passes, as in MoCo's Alg. 1 and BYOL, which update parameters only.
    """
    tgt, src = list(target.parameters()), list(online.parameters())
    if len(tgt) != len(src) or any(t.shape != o.shape for t, o in zip(tgt, src, strict=True)):
        raise ValueError("target and online networks must have the same parameters")
    torch._foreach_mul_(tgt, momentum)
    torch._foreach_add_(tgt, [o.detach() for o in src], alpha=1.0 - momentum)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class ProjectionHead(nn.Module):
    """MLP projector: (Linear → BatchNorm → ReLU) × (num_layers - 1) → Linear.

    Two layers is the SimCLR projector g(·) (Chen et al. 2020, §2.1, with BN as in their code);
    three layers is the Barlow Twins / VICReg expander (Zbontar et al. 2021, §3).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers += [
                nn.Linear(dim, hidden_dim, bias=False),
                nn.BatchNorm1d(hidden_dim),
                nn.ReLU(),
            ]
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class PretrainObjective(nn.Module):
    """Base: ``forward(views, labels, step, total_steps, inputs) -> {"loss": ..., parts...}``.

    ``views`` are the encoder embeddings (B, D) of the ``n_views`` augmented views of a batch;
    ``inputs`` the augmented images themselves, concatenated view after view (what the encoder
    embedded), which only the momentum objectives read. :meth:`after_step` runs after every
    optimiser step.
    """

    name: str = ""
    n_views: int = 2
    needs_labels: bool = False

    def forward(
        self,
        views: Sequence[torch.Tensor],
        labels: torch.Tensor | None = None,
        step: int = 0,
        total_steps: int = 1,
        inputs: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, encoder: nn.Module, step: int, total_steps: int) -> None:
        """Hook after optimiser step ``step`` (the momentum update of MoCo v2 and BYOL)."""


class W2Auxiliary(PretrainObjective):
    """Mixin: the base objective's loss + α_t · W2([ẑ1; ẑ2]) (Fang et al. 2024, §5).

    W2 (:func:`wasserstein_uniformity_loss`) is taken on the concatenated L2-normalised online
    projections of both views, which the base objective's ``_terms`` returns beside its loss
    parts (Fang et al.'s code: SimCLR's and BYOL's projections z, MoCo's queries q); α_t decays
    linearly from α_max to α_min over the optimiser steps (:func:`w2_weight_schedule`).
    """

    def __init__(self, *args, alpha_max: float = 1.0, alpha_min: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if alpha_max < 0 or alpha_min < 0:
            raise ValueError(f"W2 weights must be >= 0, got ({alpha_max}, {alpha_min})")
        self.alpha_max = float(alpha_max)
        self.alpha_min = float(alpha_min)

    def forward(self, views, labels=None, step=0, total_steps=1, inputs=None):
        out, z = self._terms(views, inputs)
        w2 = wasserstein_uniformity_loss(z, normalize=True)
        alpha = w2_weight_schedule(step, total_steps, self.alpha_max, self.alpha_min)
        return {
            **out,
            "loss": out["loss"] + alpha * w2,
            "w2": w2.detach(),
            "w2_weight": torch.tensor(alpha),
        }


class SupervisedObjective(PretrainObjective):
    """Supervised pretraining: softmax cross-entropy of a classifier on the embedding.

    The classifier is linear, or, with ``hidden_dim`` and ``bottleneck_dim``, a 2-layer MLP
    projector followed by a linear layer: SL-MLP (Wang et al. 2022, "Revisiting the
    transferability of supervised pretraining: an MLP projector is all you need"), which keeps
    the embedding from collapsing onto the pretraining classes and transfers better.
    """

    name = "supervised"
    n_views = 1
    needs_labels = True

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        hidden_dim: int | None = None,
        bottleneck_dim: int | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"supervised pretraining needs >= 2 classes, got {num_classes}")
        if (hidden_dim is None) != (bottleneck_dim is None):
            raise ValueError("the MLP head needs both hidden_dim and bottleneck_dim")
        if hidden_dim is None:
            self.head = nn.Linear(embed_dim, num_classes)
        else:
            self.head = nn.Sequential(
                ProjectionHead(embed_dim, hidden_dim, bottleneck_dim, num_layers=2),
                nn.Linear(bottleneck_dim, num_classes),
            )

    def forward(self, views, labels=None, step=0, total_steps=1, inputs=None):
        if labels is None:
            raise ValueError("the supervised objective needs labels")
        ce = supervised_cross_entropy(self.head(views[0]), labels)
        return {"loss": ce, "cross_entropy": ce.detach()}


class SimCLRObjective(PretrainObjective):
    """SimCLR: 2-layer MLP projector and NT-Xent at temperature τ (Chen et al. 2020)."""

    name = "simclr"

    def __init__(
        self, embed_dim: int, hidden_dim: int, out_dim: int, temperature: float = 0.2
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.projector = ProjectionHead(embed_dim, hidden_dim, out_dim, num_layers=2)
        self.temperature = float(temperature)

    def _terms(self, views, inputs=None):
        z1, z2 = self.projector(views[0]), self.projector(views[1])
        loss = nt_xent_loss(z1, z2, self.temperature)
        return {"loss": loss, "nt_xent": loss.detach()}, torch.cat([z1, z2], dim=0)

    def forward(self, views, labels=None, step=0, total_steps=1, inputs=None):
        return self._terms(views, inputs)[0]


class SimCLRW2Objective(W2Auxiliary, SimCLRObjective):
    """SimCLR + α_t · W2 on the concatenated normalised projections (Fang et al. 2024, §5).

    L_t = NT-Xent(z1, z2) + α_t W2([ẑ1; ẑ2]) with ẑ = z/||z|| and α_t linearly decayed from
    α_max to α_min over the optimiser steps (:func:`w2_weight_schedule`).
    """

    name = "simclr_w2"


class MomentumObjective(PretrainObjective):
    """Base of MoCo v2 and BYOL: an online projector and a momentum (EMA) target network.

    The target is a frozen copy of the encoder and projector at initialisation; after every
    optimiser step it moves towards the online network with rate τ_k
    (:func:`momentum_schedule`, :func:`ema_update_`). It embeds the same augmented images as the
    online encoder, in train mode (batch statistics), without gradients.
    """

    def __init__(
        self, encoder: nn.Module, projector: nn.Module, momentum: float, momentum_final: float
    ) -> None:
        super().__init__()
        momentum_schedule(0, 1, momentum, momentum_final)  # validates the rates
        self.projector = projector
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(projector).requires_grad_(False)
        self.momentum = float(momentum)
        self.momentum_final = float(momentum_final)

    @torch.no_grad()
    def target_views(self, inputs: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """Target projections of the ``n_views`` views in ``inputs`` (one forward, as online)."""
        if inputs is None:
            raise ValueError(f"{self.name} needs the augmented images (inputs) for its target")
        return self.target_projector(self.target_encoder(inputs)).chunk(self.n_views, dim=0)

    def after_step(self, encoder, step, total_steps):
        tau = momentum_schedule(step, total_steps, self.momentum, self.momentum_final)
        ema_update_(self.target_encoder, encoder, tau)
        ema_update_(self.target_projector, self.projector, tau)

    def forward(self, views, labels=None, step=0, total_steps=1, inputs=None):
        return self._terms(views, inputs)[0]


class MoCoV2Objective(MomentumObjective):
    """MoCo v2: InfoNCE of online queries against momentum keys and a queue of negatives.

    He et al. (2020, arXiv 1911.05722) with MoCo v2's 2-layer MLP projector (Chen et al. 2020,
    arXiv 2003.04297). As in Fang et al.'s code, the loss is symmetric,
    L = InfoNCE(q1, k2) + InfoNCE(q2, k1) (both against the same queue), and the keys of both
    views then replace the oldest 2B queue entries (a ring buffer of ``queue_size`` normalised
    keys, initialised with random unit vectors as in MoCo's code). Momentum τ constant (0.99:
    short runs; He et al. use 0.999 over 200 ImageNet epochs).
    """

    name = "moco_v2"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int,
        hidden_dim: int,
        out_dim: int,
        temperature: float = 0.2,
        queue_size: int = 4096,
        momentum: float = 0.99,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if queue_size < 2:
            raise ValueError(f"queue_size must be >= 2, got {queue_size}")
        projector = ProjectionHead(embed_dim, hidden_dim, out_dim, num_layers=2)
        super().__init__(encoder, projector, momentum, momentum)
        self.temperature = float(temperature)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        k = self.queue.shape[0]
        idx = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % k
        self.queue[idx] = F.normalize(keys, dim=1)
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % k)

    def _terms(self, views, inputs=None):
        if 2 * views[0].shape[0] > self.queue.shape[0]:
            raise ValueError(
                f"queue_size {self.queue.shape[0]} is smaller than the 2 x {views[0].shape[0]} "
                "keys of one batch; raise queue_size"
            )
        q1, q2 = self.projector(views[0]), self.projector(views[1])
        k1, k2 = self.target_views(inputs)
        negatives = self.queue.clone()  # enqueued below, before the backward pass
        loss = moco_infonce_loss(q1, k2, negatives, self.temperature) + moco_infonce_loss(
            q2, k1, negatives, self.temperature
        )
        if self.training:
            self._enqueue(torch.cat([k1, k2], dim=0))
        return {"loss": loss, "info_nce": loss.detach()}, torch.cat([q1, q2], dim=0)


class MoCoV2W2Objective(W2Auxiliary, MoCoV2Objective):
    """MoCo v2 + α_t · W2 of the normalised queries [q̂1; q̂2] (Fang et al. 2024, §5, Table 2)."""

    name = "moco_v2_w2"


class BYOLObjective(MomentumObjective):
    """BYOL: online projector + predictor regress the target's projection of the other view.

    Grill et al. (2020, arXiv 2006.07733): L = byol(q(z1), z'2) + byol(q(z2), z'1) (Eq. 2 and its
    symmetrised sum), with z the online projections, q the predictor (same MLP shape as the
    projector) and z' the target projections; τ rises from ``momentum`` (0.996) to 1 on a cosine.
    """

    name = "byol"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int,
        hidden_dim: int,
        out_dim: int,
        momentum: float = 0.996,
    ) -> None:
        projector = ProjectionHead(embed_dim, hidden_dim, out_dim, num_layers=2)
        super().__init__(encoder, projector, momentum, 1.0)
        self.predictor = ProjectionHead(out_dim, hidden_dim, out_dim, num_layers=2)

    def _terms(self, views, inputs=None):
        z1, z2 = self.projector(views[0]), self.projector(views[1])
        t1, t2 = self.target_views(inputs)
        loss = byol_loss(self.predictor(z1), t2) + byol_loss(self.predictor(z2), t1)
        return {"loss": loss, "byol": loss.detach()}, torch.cat([z1, z2], dim=0)


class BYOLW2Objective(W2Auxiliary, BYOLObjective):
    """BYOL + α_t · W2 of the normalised online projections [ẑ1; ẑ2] (Fang et al. 2024, §5)."""

    name = "byol_w2"


class BarlowTwinsObjective(PretrainObjective):
    """Barlow Twins: 3-layer projector and the cross-correlation loss (Zbontar et al. 2021)."""

    name = "barlow_twins"

    def __init__(self, embed_dim: int, hidden_dim: int, out_dim: int, lambd: float = 5e-3) -> None:
        super().__init__()
        if lambd < 0:
            raise ValueError(f"barlow_lambda must be >= 0, got {lambd}")
        self.projector = ProjectionHead(embed_dim, hidden_dim, out_dim, num_layers=3)
        self.lambd = float(lambd)

    def forward(self, views, labels=None, step=0, total_steps=1, inputs=None):
        on, off = _barlow_terms(self.projector(views[0]), self.projector(views[1]))
        return {
            "loss": on + self.lambd * off,
            "on_diagonal": on.detach(),
            "off_diagonal": off.detach(),
        }


class VICRegObjective(PretrainObjective):
    """VICReg: 3-layer expander and variance-invariance-covariance loss (Bardes et al. 2022)."""

    name = "vicreg"

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: int,
        out_dim: int,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
    ) -> None:
        super().__init__()
        self.projector = ProjectionHead(embed_dim, hidden_dim, out_dim, num_layers=3)
        self.coeffs = (float(sim_coeff), float(std_coeff), float(cov_coeff))

    def forward(self, views, labels=None, step=0, total_steps=1, inputs=None):
        inv, var, cov = _vicreg_terms(self.projector(views[0]), self.projector(views[1]))
        lam, mu, nu = self.coeffs
        return {
            "loss": lam * inv + mu * var + nu * cov,
            "invariance": inv.detach(),
            "variance": var.detach(),
            "covariance": cov.detach(),
        }


def build_objective(
    name: str,
    embed_dim: int,
    *,
    encoder: nn.Module | None = None,
    num_classes: int | None = None,
    temperature: float = 0.2,
    barlow_lambda: float = 5e-3,
    vicreg_coeffs: tuple[float, float, float] = (25.0, 25.0, 1.0),
    w2_alpha_max: float = 1.0,
    w2_alpha_min: float = 1.0,
    moco_queue_size: int = 4096,
    moco_momentum: float = 0.99,
    byol_momentum: float = 0.996,
    projector_dim: int = 128,
    projector_hidden_dim: int = 512,
    supervised_head: str = "linear",
) -> PretrainObjective | None:
    """Objective module by name (:data:`OBJECTIVES` or an alias); ``"random"`` gives None.

    Defaults: τ = 0.2 (Fang et al. 2024, App. F), Barlow λ = 5e-3 (Zbontar et al. 2021), VICReg
    (25, 25, 1) (Bardes et al. 2022), W2 weight (α_max, α_min) = (1, 1), Fang et al.'s setting for
    MoCo v2 (their code uses (0.2, 0.2) for BYOL), MoCo queue 4096 (Fang et al.'s CIFAR runs) and
    momentum 0.99, BYOL momentum 0.996 → 1 (Grill et al. 2020). ``encoder`` is the online encoder
    that MoCo v2 and BYOL copy into their momentum target (required for them, unused otherwise).
    ``supervised_head`` is ``"linear"`` or ``"mlp"`` (projector widths, then a linear classifier).
    """
    name = canonical_objective(name)
    if embed_dim < 1:
        raise ValueError(f"embed_dim must be >= 1, got {embed_dim}")
    if name == "random":
        return None
    if name == "supervised":
        if num_classes is None:
            raise ValueError("the supervised objective needs num_classes")
        if supervised_head not in SUPERVISED_HEADS:
            raise ValueError(
                f"supervised_head must be one of {SUPERVISED_HEADS}, got {supervised_head!r}"
            )
        if supervised_head == "linear":
            return SupervisedObjective(embed_dim, num_classes)
        return SupervisedObjective(embed_dim, num_classes, projector_hidden_dim, projector_dim)
    dims = (embed_dim, projector_hidden_dim, projector_dim)
    w2 = {"alpha_max": w2_alpha_max, "alpha_min": w2_alpha_min}
    if name == "simclr":
        return SimCLRObjective(*dims, temperature)
    if name == "simclr_w2":
        return SimCLRW2Objective(*dims, temperature, **w2)
    if name in ("moco_v2", "moco_v2_w2", "byol", "byol_w2"):
        if encoder is None:
            raise ValueError(f"objective {name!r} needs the encoder (for its momentum copy)")
        if name.startswith("moco_v2"):
            args = (encoder, *dims, temperature, moco_queue_size, moco_momentum)
            return MoCoV2Objective(*args) if name == "moco_v2" else MoCoV2W2Objective(*args, **w2)
        args = (encoder, *dims, byol_momentum)
        return BYOLObjective(*args) if name == "byol" else BYOLW2Objective(*args, **w2)
    if name == "barlow_twins":
        return BarlowTwinsObjective(*dims, barlow_lambda)
    return VICRegObjective(*dims, *vicreg_coeffs)
