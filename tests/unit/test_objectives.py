"""Tests for repaudit.models.objectives: loss values, references, schedules, trainability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repaudit.models import objectives as obj

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- NT-Xent


def _nt_xent_reference(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """Chen et al. (2020) Eq. 1 with explicit loops over anchors and negatives."""
    u = np.concatenate([z1, z2]).astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    n = u.shape[0]
    b = n // 2
    total = 0.0
    for i in range(n):
        j = (i + b) % n
        denom = sum(math.exp(u[i] @ u[k] / tau) for k in range(n) if k != i)
        total += -math.log(math.exp(u[i] @ u[j] / tau) / denom)
    return total / n


def test_nt_xent_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    got = obj.nt_xent_loss(z1, z2, 0.2).item()
    assert got == pytest.approx(_nt_xent_reference(z1.numpy(), z2.numpy(), 0.2), rel=1e-5)


def test_nt_xent_hand_value_orthonormal_views():
    # Views identical and orthonormal: each anchor has s_pos = 1/τ and two negatives with s = 0,
    # so L = log(1 + 2 exp(-1/τ)).
    z = torch.eye(2)
    tau = 0.5
    assert obj.nt_xent_loss(z, z, tau).item() == pytest.approx(math.log(1 + 2 * math.exp(-2.0)))


def test_nt_xent_scale_invariant_and_validates():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    assert obj.nt_xent_loss(3 * z1, 0.5 * z2).item() == pytest.approx(
        obj.nt_xent_loss(z1, z2).item(), rel=1e-5
    )
    with pytest.raises(ValueError, match="temperature"):
        obj.nt_xent_loss(z1, z2, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        obj.nt_xent_loss(z1, z2[:3])
    with pytest.raises(ValueError, match="at least 2"):
        obj.nt_xent_loss(z1[:1], z2[:1])


# ----------------------------------------------------------------------------- Barlow Twins


def _barlow_reference(z1: np.ndarray, z2: np.ndarray, lambd: float, eps: float = 1e-5) -> float:
    def std(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + eps)

    a, b = std(z1.astype(np.float64)), std(z2.astype(np.float64))
    n, d = a.shape
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            total += (1 - c) ** 2 if i == j else lambd * c**2
    return total


def test_barlow_twins_matches_loop_reference():
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    got = obj.barlow_twins_loss(z1, z2, 0.3).item()
    assert got == pytest.approx(_barlow_reference(z1.numpy(), z2.numpy(), 0.3), rel=1e-5)


def test_barlow_twins_zero_for_identical_decorrelated_views():
    # Columns of a Hadamard-like design: zero mean, unit variance, orthogonal, so C = I/(1+eps).
    z = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    assert obj.barlow_twins_loss(z, z, 5e-3).item() == pytest.approx(0.0, abs=1e-8)
    # Per-feature affine rescaling is removed by the batch standardisation.
    scale, shift = torch.tensor([2.0, 0.5, 7.0]), torch.tensor([1.0, -3.0, 0.0])
    assert obj.barlow_twins_loss(z * scale + shift, z, 5e-3).item() == pytest.approx(0.0, abs=1e-6)


# ----------------------------------------------------------------------------- VICReg


def _vicreg_reference(z1, z2, lam=25.0, mu=25.0, nu=1.0, eps=1e-4) -> float:
    z1, z2 = z1.astype(np.float64), z2.astype(np.float64)
    d = z1.shape[1]
    inv = np.mean((z1 - z2) ** 2)
    var = sum(np.mean(np.maximum(0, 1 - np.sqrt(z.var(0, ddof=1) + eps))) for z in (z1, z2))
    cov = 0.0
    for z in (z1, z2):
        c = np.cov(z, rowvar=False)
        cov += (np.sum(c**2) - np.sum(np.diag(c) ** 2)) / d
    return lam * inv + mu * var + nu * cov


def test_vicreg_matches_numpy_reference():
    g = torch.Generator().manual_seed(3)
    z1, z2 = 0.5 * torch.randn(9, 4, generator=g), torch.randn(9, 4, generator=g)
    got = obj.vicreg_loss(z1, z2).item()
    assert got == pytest.approx(_vicreg_reference(z1.numpy(), z2.numpy()), rel=1e-5)


def test_vicreg_hand_value_constant_embeddings():
    # Collapsed, identical views: invariance 0, covariance 0, variance hinge 1 - sqrt(eps) per view.
    z = torch.ones(5, 3)
    expected = 25.0 * 2 * (1 - math.sqrt(1e-4))
    assert obj.vicreg_loss(z, z).item() == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------- W2


def _w2_reference(z: np.ndarray) -> float:
    """Fang et al. (2024) Eq. 8 via eigvalsh of the biased covariance (as their code), float64."""
    z = z.astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n, m = z.shape
    mu = z.mean(0)
    cov = (z - mu).T @ (z - mu) / n
    lam = np.clip(np.linalg.eigvalsh(cov), 0, None)
    return math.sqrt(max(mu @ mu + 1 + np.trace(cov) - 2 / math.sqrt(m) * np.sqrt(lam).sum(), 0))


def test_w2_matches_eigvalsh_reference():
    rng = np.random.default_rng(0)
    for n, m in [(200, 16), (50, 64), (300, 8)]:
        z = rng.normal(size=(n, m)) + rng.normal(size=m)
        got = obj.wasserstein_uniformity_loss(torch.from_numpy(z)).item()
        # The eigvalsh route carries ~sqrt(1e-17) noise from zero eigenvalues when n < m.
        assert got == pytest.approx(_w2_reference(z), abs=1e-8)


@pytest.mark.parametrize("eta", [0.0, 0.25, 0.5, 0.75])
def test_w2_isotropic_collapse_hand_value(eta):
    # Rows ±e_i over the first k = (1-η)m coordinates: μ = 0, Σ = diag(1/k on k coords), so
    # W2 = sqrt(2 - 2 sqrt(1 - η)) exactly (arXiv:2403.00642 §4).
    m = 16
    k = round((1 - eta) * m)
    rows = torch.cat([torch.eye(m)[:k], -torch.eye(m)[:k]]).double()
    got = obj.wasserstein_uniformity_loss(rows).item()
    assert got == pytest.approx(math.sqrt(2 - 2 * math.sqrt(1 - eta)), abs=1e-5)


def test_w2_constant_collapse_is_sqrt2_with_finite_gradient():
    z = torch.ones(10, 8, dtype=torch.float64, requires_grad=True)
    w2 = obj.wasserstein_uniformity_loss(z)
    assert w2.item() == pytest.approx(math.sqrt(2), abs=1e-12)
    w2.backward()
    assert torch.isfinite(z.grad).all()


def test_w2_properties_icc_and_normalisation():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(40, 6, generator=g, dtype=torch.float64)
    w = obj.wasserstein_uniformity_loss(z).item()
    # Instance cloning (ICC) and scaling of rows leave W2 unchanged.
    assert obj.wasserstein_uniformity_loss(torch.cat([z, z])).item() == pytest.approx(w, abs=1e-12)
    assert obj.wasserstein_uniformity_loss(5 * z).item() == pytest.approx(w, abs=1e-12)
    # Its gradient matches finite differences.
    zz = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(obj.wasserstein_uniformity_loss, (zz,))


def test_w2_weight_schedule_is_linear():
    total = 11
    vals = np.array([obj.w2_weight_schedule(t, total, 30.0, 0.0) for t in range(total)])
    np.testing.assert_allclose(vals, np.linspace(30.0, 0.0, total), atol=1e-12)
    assert vals[0] == 30.0 and vals[-1] == 0.0
    assert obj.w2_weight_schedule(0, 1, 2.0, 1.0) == 2.0
    assert all(obj.w2_weight_schedule(t, 5, 1.0, 1.0) == 1.0 for t in range(5))
    with pytest.raises(ValueError, match="step"):
        obj.w2_weight_schedule(5, 5, 1.0, 0.0)


def test_simclr_w2_objective_uses_schedule():
    torch.manual_seed(0)
    head = obj.build_objective("simclr_w2", 5, w2_alpha_max=3.0, w2_alpha_min=1.0)
    h1, h2 = torch.randn(8, 5), torch.randn(8, 5)
    first = head([h1, h2], step=0, total_steps=3)
    last = head([h1, h2], step=2, total_steps=3)
    assert first["w2_weight"].item() == 3.0 and last["w2_weight"].item() == 1.0
    for out, alpha in [(first, 3.0), (last, 1.0)]:
        expected = out["nt_xent"] + alpha * out["w2"]
        assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


# ----------------------------------------------------------------------------- MoCo v2, BYOL


def _moco_reference(q, k, queue, tau) -> float:
    """He et al. (2020) Eq. 1 with explicit loops over queries and negatives."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    k = k / np.linalg.norm(k, axis=1, keepdims=True)
    total = 0.0
    for b in range(q.shape[0]):
        pos = math.exp(q[b] @ k[b] / tau)
        neg = sum(math.exp(q[b] @ n / tau) for n in queue)
        total += -math.log(pos / (pos + neg))
    return total / q.shape[0]


def test_moco_infonce_matches_loop_reference_and_stops_key_gradients():
    g = torch.Generator().manual_seed(5)
    q = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    queue = F.normalize(torch.randn(7, 4, generator=g, dtype=torch.float64), dim=1)
    loss = obj.moco_infonce_loss(q, k, queue, 0.2)
    ref = _moco_reference(q.detach().numpy(), k.detach().numpy(), queue.numpy(), 0.2)
    assert loss.item() == pytest.approx(ref, rel=1e-10)
    loss.backward()
    assert q.grad is not None and k.grad is None
    with pytest.raises(ValueError, match="queue"):
        obj.moco_infonce_loss(q, k, queue[:, :3])


def test_byol_loss_hand_values():
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert obj.byol_loss(z, z).item() == pytest.approx(0.0, abs=1e-7)
    assert obj.byol_loss(3 * z, z).item() == pytest.approx(0.0, abs=1e-7)  # scale-invariant
    assert obj.byol_loss(-z, z).item() == pytest.approx(4.0)  # opposite: 2 - 2(-1)
    assert obj.byol_loss(z.flip(1), z).item() == pytest.approx(2.0)  # orthogonal: 2 - 0
    p = z.clone().requires_grad_(True)
    t = z.flip(1).clone().requires_grad_(True)
    obj.byol_loss(p, t).backward()
    assert p.grad is not None and t.grad is None  # stop-gradient on the target


def test_momentum_schedule_cosine_from_base_to_final():
    assert obj.momentum_schedule(0, 10, 0.996, 1.0) == pytest.approx(0.996)
    assert obj.momentum_schedule(5, 10, 0.996, 1.0) == pytest.approx(0.998)
    vals = [obj.momentum_schedule(t, 10, 0.996, 1.0) for t in range(10)]
    assert all(np.diff(vals) > 0) and vals[-1] < 1.0
    assert all(obj.momentum_schedule(t, 7, 0.99, 0.99) == pytest.approx(0.99) for t in range(7))
    with pytest.raises(ValueError, match="momentum"):
        obj.momentum_schedule(0, 10, 1.5, 1.0)
    with pytest.raises(ValueError, match="step"):
        obj.momentum_schedule(10, 10, 0.99, 1.0)


def test_ema_update_moves_parameters_only():
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    online[1].running_mean.fill_(5.0)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    obj.ema_update_(target, online, 0.9)
    for (name, t), o in zip(target.named_parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * before[name] + 0.1 * o.detach())
    assert torch.equal(target[1].running_mean, before["1.running_mean"])  # buffers untouched
    obj.ema_update_(target, online, 0.0)
    assert all(
        torch.equal(t, o) for t, o in zip(target.parameters(), online.parameters(), strict=True)
    )
    with pytest.raises(ValueError, match="same parameters"):
        obj.ema_update_(target, nn.Linear(3, 4), 0.5)


def test_momentum_target_starts_as_copy_and_follows_the_online_network():
    torch.manual_seed(0)
    encoder = nn.Linear(6, 5)
    head = obj.build_objective(
        "byol", 5, encoder=encoder, projector_dim=4, projector_hidden_dim=8, byol_momentum=0.9
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(head.target_encoder.parameters(), encoder.parameters(), strict=True)
    )
    assert not any(p.requires_grad for p in head.target_encoder.parameters())
    assert not any(p.requires_grad for p in head.target_projector.parameters())
    old_target = [p.clone() for p in head.target_encoder.parameters()]
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(1.0)  # as if an optimiser step moved the online encoder
    head.after_step(encoder, step=0, total_steps=4)  # τ_0 = 0.9
    for t, t0, o in zip(
        head.target_encoder.parameters(), old_target, encoder.parameters(), strict=True
    ):
        torch.testing.assert_close(t, 0.9 * t0 + 0.1 * o)


def test_moco_queue_is_a_ring_buffer_of_normalised_keys():
    torch.manual_seed(0)
    encoder = nn.Linear(6, 5)
    head = obj.build_objective(
        "moco_v2", 5, encoder=encoder, projector_dim=4, projector_hidden_dim=8, moco_queue_size=8
    )
    assert head.queue.shape == (8, 4)
    torch.testing.assert_close(head.queue.norm(dim=1), torch.ones(8))
    x = torch.randn(6, 6)  # two views of a batch of 3
    keys = F.normalize(head.target_projector(head.target_encoder(x)), dim=1).detach()
    first = head.queue.clone()
    head(list(encoder(x).chunk(2)), inputs=x)
    torch.testing.assert_close(head.queue[:6], keys)  # k1 then k2 replace the oldest entries
    assert torch.equal(head.queue[6:], first[6:]) and int(head.queue_ptr) == 6
    out = head(list(encoder(x).chunk(2)), inputs=x)
    torch.testing.assert_close(head.queue[[6, 7, 0, 1, 2, 3]], keys)  # wraps around
    assert int(head.queue_ptr) == 4
    assert set(out) == {"loss", "info_nce"}
    head.eval()
    frozen = head.queue.clone()
    head(list(encoder(x).chunk(2)), inputs=x)
    assert torch.equal(head.queue, frozen)  # evaluation does not enqueue
    head.train()
    with pytest.raises(ValueError, match="raise queue_size"):
        head(list(encoder(torch.randn(10, 6)).chunk(2)), inputs=torch.randn(10, 6))
    with pytest.raises(ValueError, match="inputs"):
        head(list(encoder(x).chunk(2)))


@pytest.mark.parametrize("name", ["moco_v2_w2", "byol_w2"])
def test_w2_variants_add_the_scheduled_w2_of_the_online_projections(name):
    torch.manual_seed(0)
    encoder = nn.Linear(6, 5)
    kw = {"projector_dim": 4, "projector_hidden_dim": 8, "w2_alpha_max": 3.0, "w2_alpha_min": 1.0}
    head = obj.build_objective(name, 5, encoder=encoder, **kw)
    head.eval()  # the queue stays put, so both calls see the same loss
    x = torch.randn(8, 6)
    views = list(encoder(x).chunk(2))
    first, last = (
        head(views, step=0, total_steps=3, inputs=x),
        head(views, step=2, total_steps=3, inputs=x),
    )
    base = "info_nce" if name.startswith("moco") else "byol"
    z = torch.cat([head.projector(v) for v in views])
    for out, alpha in [(first, 3.0), (last, 1.0)]:
        assert out["w2_weight"].item() == alpha
        assert out["w2"].item() == pytest.approx(
            obj.wasserstein_uniformity_loss(z).item(), rel=1e-6
        )
        assert out["loss"].item() == pytest.approx((out[base] + alpha * out["w2"]).item(), rel=1e-6)


# ----------------------------------------------------------------------------- modules


def test_build_objective_names_and_errors():
    assert obj.build_objective("random", 4) is None
    assert isinstance(obj.build_objective("simclr", 4), obj.SimCLRObjective)
    assert isinstance(obj.build_objective("barlow_twins", 4), obj.BarlowTwinsObjective)
    assert isinstance(obj.build_objective("barlow", 4), obj.BarlowTwinsObjective)
    assert isinstance(obj.build_objective("vicreg", 4), obj.VICRegObjective)
    assert obj.build_objective("supervised", 4, num_classes=3).n_views == 1
    with pytest.raises(ValueError, match="unknown objective"):
        obj.build_objective("swav", 4)
    enc = nn.Linear(3, 4)
    assert type(obj.build_objective("moco_v2", 4, encoder=enc)) is obj.MoCoV2Objective
    assert type(obj.build_objective("moco_v2_w2", 4, encoder=enc)) is obj.MoCoV2W2Objective
    assert type(obj.build_objective("byol", 4, encoder=enc)) is obj.BYOLObjective
    assert type(obj.build_objective("byol_w2", 4, encoder=enc)) is obj.BYOLW2Objective
    with pytest.raises(ValueError, match="needs the encoder"):
        obj.build_objective("byol", 4)
    with pytest.raises(ValueError, match="num_classes"):
        obj.build_objective("supervised", 4)
    with pytest.raises(ValueError, match="supervised_head"):
        obj.build_objective("supervised", 4, num_classes=3, supervised_head="deep")


def test_supervised_mlp_head_is_projector_then_linear_classifier():
    linear = obj.build_objective("supervised", 8, num_classes=3)
    assert isinstance(linear.head, nn.Linear) and linear.head.in_features == 8
    mlp = obj.build_objective(
        "supervised",
        8,
        num_classes=3,
        projector_dim=4,
        projector_hidden_dim=16,
        supervised_head="mlp",
    )
    projector, classifier = mlp.head
    assert isinstance(projector, obj.ProjectionHead)
    assert [m.weight.shape for m in projector.net if isinstance(m, nn.Linear)] == [(16, 8), (4, 16)]
    assert classifier.weight.shape == (3, 4)
    emb, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    expected = F.cross_entropy(classifier(projector(emb)), y)
    assert mlp([emb], y)["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="both"):
        obj.SupervisedObjective(8, 3, hidden_dim=16)


def test_projection_head_layout():
    head = obj.ProjectionHead(8, 16, 4, num_layers=3)
    kinds = [type(m).__name__ for m in head.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head(torch.randn(5, 8)).shape == (5, 4)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("supervised", {}),
        ("supervised", {"supervised_head": "mlp"}),
        ("simclr", {}),
        ("simclr_w2", {}),
        ("barlow_twins", {}),
        ("vicreg", {}),
        ("moco_v2", {"moco_queue_size": 64}),
        ("moco_v2_w2", {"moco_queue_size": 64}),
        ("byol", {}),
        ("byol_w2", {}),
    ],
)
def test_each_objective_loss_decreases_on_fixed_batch(name, kw):
    torch.manual_seed(0)
    x1, x2 = torch.randn(32, 12), torch.randn(32, 12)
    x2 = x1 + 0.3 * x2  # two "views" of the same samples
    y = (x1[:, 0] > 0).long()
    encoder = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8))
    head = obj.build_objective(
        name, 8, encoder=encoder, num_classes=2, projector_dim=8, projector_hidden_dim=16, **kw
    )
    trainable = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.Adam([*encoder.parameters(), *trainable], lr=1e-2)
    losses = []
    for step in range(15):
        inputs = x1 if head.n_views == 1 else torch.cat([x1, x2])
        views = list(encoder(inputs).chunk(head.n_views))
        loss = head(views, y, step=step, total_steps=15, inputs=inputs)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        head.after_step(encoder, step, 15)
        losses.append(loss.item())
    # MoCo's first step contrasts against the random initial queue (easy negatives): the loss
    # jumps once the queue holds real keys, so it is compared from the second step on.
    first = 1 if name.startswith("moco") else 0
    assert losses[-1] < 0.9 * losses[first], losses
