"""Tests for repaudit.metrics.sensitivity (Jacobian Effective Rank, arXiv:2602.03282)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from repaudit.metrics import sensitivity as S

torch.set_num_threads(1)


class Linear(torch.nn.Module):
    """f(x) = A · flatten(x): its Jacobian is A everywhere."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = torch.nn.Parameter(a.clone())

    def forward(self, x):
        return x.flatten(1) @ self.a.T


class Normalised(torch.nn.Module):
    """Normalisation inside f, as the module expects; optional output scale."""

    def __init__(self, model: torch.nn.Module, scale: float = 1.0):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.scale * self.model((x - 0.5) / 0.5)


def _matrix(n_out: int, n_in: int, s: np.ndarray, seed: int = 0) -> torch.Tensor:
    """A = U diag(s) Vᵀ with known singular values s (len(s) <= min(n_out, n_in))."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((n_out, len(s))))[0]
    v = np.linalg.qr(rng.standard_normal((n_in, len(s))))[0]
    return torch.from_numpy((u * s) @ v.T).float()


def _pr(s) -> float:
    s = np.asarray(s, dtype=np.float64)
    return float(s.sum() ** 2 / (s**2).sum())


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    m = timm.create_model("test_vit", pretrained=False, num_classes=0, img_size=32)
    return Normalised(m)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(1)
    return Normalised(timm.create_model("test_resnet", pretrained=False, num_classes=0))


@pytest.fixture(scope="module")
def images():
    return torch.from_numpy(np.random.default_rng(3).uniform(0, 1, (2, 3, 32, 32))).float()


# ---------------------------------------------------------------- participation ratio


def test_participation_ratio_hand_values():
    assert S.singular_value_participation_ratio([1, 1, 1, 1]) == pytest.approx(4.0)
    assert S.singular_value_participation_ratio([5, 0, 0]) == pytest.approx(1.0)
    assert S.singular_value_participation_ratio([1, 3]) == pytest.approx(16 / 10)
    # top-k truncation keeps the largest values whatever the order
    assert S.singular_value_participation_ratio([1, 3, 2], k=2) == pytest.approx(25 / 13)
    assert S.singular_value_participation_ratio(np.array([2.0, 2.0]) * 1e6) == pytest.approx(2.0)


def test_participation_ratio_errors():
    with pytest.raises(ValueError, match="non-negative"):
        S.singular_value_participation_ratio([1, -1])
    with pytest.raises(ValueError, match="1-D"):
        S.singular_value_participation_ratio(np.ones((2, 2)))


# ---------------------------------------------------------------- linear maps (exact)


def test_exact_singular_values_of_linear_map():
    s_true = np.array([5.0, 4.0, 3.0, 2.5, 1.0, 0.5, 0.25, 0.1])
    f = Linear(_matrix(10, 3 * 4 * 4, s_true))
    s = S.exact_jacobian_singular_values(f, torch.rand(3, 4, 4))
    assert s.shape == (10,)
    np.testing.assert_allclose(s[:8].numpy(), s_true, rtol=1e-5)
    np.testing.assert_allclose(s[8:].numpy(), 0.0, atol=1e-5)


def test_jer_of_linear_map_is_participation_ratio_of_top_k():
    torch.manual_seed(0)
    a = torch.randn(20, 48)
    f = Linear(a)
    sv = np.linalg.svd(a.double().numpy(), compute_uv=False)
    x = torch.rand(3, 3, 4, 4)
    assert S.exact_jacobian_effective_rank(f, x, k=6) == pytest.approx(_pr(sv[:6]), rel=1e-6)
    assert S.exact_jacobian_effective_rank(f, x, k=None) == pytest.approx(_pr(sv), rel=1e-6)


def test_range_finder_exact_for_rank_k_linear_map():
    s_true = np.array([9.0, 7.0, 4.0, 2.0, 1.0, 0.3])
    f = Linear(_matrix(20, 48, s_true, seed=1))
    x = torch.rand(2, 3, 4, 4)
    s = S.jacobian_singular_values(f, x, k=6, power_iters=1)
    assert s.shape == (2, 6)
    np.testing.assert_allclose(s.numpy(), np.tile(s_true, (2, 1)), rtol=1e-5)
    jer = S.jacobian_effective_rank(f, x, k=6, power_iters=1)
    assert jer == pytest.approx(_pr(s_true), rel=1e-5)


def test_range_finder_converges_with_power_iterations():
    # Geometric spectrum (ratio 0.7): the error of the k-th value shrinks like 0.7^(2q+1).
    s_true = 0.7 ** np.arange(20)
    f = Linear(_matrix(24, 48, s_true, seed=2))
    x = torch.rand(1, 3, 4, 4)
    target = _pr(s_true[:8])
    errors = [
        abs(S.jacobian_effective_rank(f, x, k=8, power_iters=q) - target) / target for q in (0, 5)
    ]
    assert errors[1] < 2e-3
    assert errors[1] < errors[0]


def test_hutchinson_linear_map_within_three_standard_errors():
    torch.manual_seed(4)
    a = torch.randn(16, 48)
    est, se = S.jacobian_frobenius_sq(Linear(a), torch.rand(3, 3, 4, 4), n_probes=64)
    exact = float((a.double() ** 2).sum())
    assert est.shape == se.shape == (3,)
    assert np.all(np.abs(est - exact) < 3 * se)
    assert np.all(se > 0)


def test_relative_frobenius_linear_map():
    torch.manual_seed(5)
    a = torch.randn(16, 48)
    x = torch.rand(2, 3, 4, 4)
    est, _ = S.jacobian_frobenius_sq(Linear(a), x, n_probes=8, seed=3)
    rel = S.relative_jacobian_frobenius_per_image(Linear(a), x, n_probes=8, seed=3)
    xf = x.flatten(1).double()
    expected = np.sqrt(est) * xf.norm(dim=1).numpy() / (xf @ a.double().T).norm(dim=1).numpy()
    np.testing.assert_allclose(rel, expected, rtol=1e-6)
    assert S.relative_jacobian_frobenius(Linear(a), x, n_probes=8, seed=3) == pytest.approx(
        expected.mean(), rel=1e-6
    )


# ---------------------------------------------------------------- real architectures


@pytest.mark.parametrize("name", ["vit", "cnn"])
def test_range_finder_matches_exact_jer(name, request, images):
    f = request.getfixturevalue(name)
    s_ex = S.exact_jacobian_singular_values(f, images)
    s_rf = S.jacobian_singular_values(f, images, k=32, power_iters=5, seed=0)
    exact = np.mean([_pr(s[:32]) for s in s_ex.numpy()])
    approx = np.mean([_pr(s) for s in s_rf.numpy()])
    assert 1.0 <= approx <= 32.0
    assert abs(approx - exact) / exact < 0.02
    assert S.exact_jacobian_effective_rank(f, images, k=32) == pytest.approx(exact, rel=1e-9)
    # the leading singular values themselves agree closely
    np.testing.assert_allclose(s_rf[:, :8].numpy(), s_ex[:, :8].numpy(), rtol=1e-2)


def test_hutchinson_within_three_standard_errors_of_exact(cnn, images):
    s = S.exact_jacobian_singular_values(cnn, images)
    exact = (s**2).sum(dim=1).numpy()
    est, se = S.jacobian_frobenius_sq(cnn, images, n_probes=32, seed=1)
    assert np.all(np.abs(est - exact) < 3 * se), (est, exact, se)


def test_fused_attention_is_disabled_and_restored(vit, images):
    attn = [m for m in vit.modules() if hasattr(m, "fused_attn")]
    assert attn
    for m in attn:
        m.fused_attn = True
    vit.train()
    try:
        s = S.jacobian_singular_values(vit, images[0], k=4, power_iters=0)
        assert torch.isfinite(s).all()
        assert all(m.fused_attn is True for m in attn)
        assert all(m.training for m in vit.modules())
    finally:
        for m in attn:
            m.fused_attn = False
        vit.eval()


def test_model_dtype_untouched_and_float64_model_supported():
    torch.manual_seed(6)
    f = Linear(torch.randn(8, 12)).double()
    s = S.jacobian_singular_values(f, torch.rand(3, 2, 2), k=8, power_iters=1)
    assert f.a.dtype == torch.float64
    sv = np.linalg.svd(f.a.detach().numpy(), compute_uv=False)
    np.testing.assert_allclose(s.numpy(), sv, rtol=1e-5)


@pytest.mark.parametrize("name", ["vit", "cnn"])
def test_explicit_jacobian_path_matches_matrix_free(name, request, images, monkeypatch):
    # Narrow embeddings build J once (D_out VJPs); the products J·W, Jᵀ·Q and J·v are the same
    # as the matrix-free JVPs/VJPs up to float32 rounding.
    f = request.getfixturevalue(name)
    with torch.no_grad():
        n_out = f.eval()(images[:1]).shape[1]
    assert S._explicit_is_cheaper(2, images[0].numel(), n_out, 32, 5)
    s_explicit = S.jacobian_singular_values(f, images, k=8, power_iters=2, seed=1)
    table = S.sensitivity_table(f, images, k=8, power_iters=2, n_probes=4, seed=1)
    monkeypatch.setattr(S, "_EXPLICIT_JACOBIAN_BYTES", 0)
    assert not S._explicit_is_cheaper(2, images[0].numel(), n_out, 32, 5)
    s_free = S.jacobian_singular_values(f, images, k=8, power_iters=2, seed=1)
    np.testing.assert_allclose(s_explicit.numpy(), s_free.numpy(), rtol=1e-4)
    free = S.sensitivity_table(f, images, k=8, power_iters=2, n_probes=4, seed=1)
    np.testing.assert_allclose(table.value, free.value, rtol=1e-5)
    rel = S.relative_jacobian_frobenius(f, images, n_probes=4, seed=1)
    assert table.value[1] == pytest.approx(rel, rel=1e-5)


# ---------------------------------------------------------------- invariances, determinism


def test_jer_invariant_to_output_scale(cnn, images):
    scaled = Normalised(cnn.model, scale=7.5)
    a = S.jacobian_effective_rank(cnn, images[:1], k=8, power_iters=2)
    b = S.jacobian_effective_rank(scaled, images[:1], k=8, power_iters=2)
    assert a == pytest.approx(b, rel=1e-5)
    ra = S.relative_jacobian_frobenius(cnn, images[:1], n_probes=4)
    rb = S.relative_jacobian_frobenius(scaled, images[:1], n_probes=4)
    assert ra == pytest.approx(rb, rel=1e-5)


def test_determinism_and_batch_independence(cnn, images):
    a = S.jacobian_singular_values(cnn, images, k=8, power_iters=1, seed=3)
    b = S.jacobian_singular_values(cnn, images, k=8, power_iters=1, seed=3)
    c = S.jacobian_singular_values(cnn, images, k=8, power_iters=1, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # image n uses probe stream (seed, n) whatever the batching
    per_image = S.jacobian_effective_rank_per_image(
        cnn, images, k=8, power_iters=1, seed=3, batch_size=1
    )
    np.testing.assert_allclose(per_image, S._pr_rows(a), rtol=1e-5)
    e1, se1 = S.jacobian_frobenius_sq(cnn, images, n_probes=4, seed=2)
    e2, se2 = S.jacobian_frobenius_sq(cnn, images, n_probes=4, seed=2)
    assert np.array_equal(e1, e2) and np.array_equal(se1, se2)


# ---------------------------------------------------------------- noise control and table


def test_noise_images():
    x = S.noise_images(50, (3, 16, 16), seed=0)
    assert x.shape == (50, 3, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(x.mean()) == pytest.approx(0.5, abs=0.01)
    # clipping at 2 sd leaves ~2.3 % of pixels on each bound
    assert float((x == 0).float().mean()) == pytest.approx(0.0228, abs=0.005)
    assert torch.equal(x, S.noise_images(50, (3, 16, 16), seed=0))
    assert not torch.equal(x, S.noise_images(50, (3, 16, 16), seed=1))
    with pytest.raises(ValueError, match="shape"):
        S.noise_images(2, (16, 16))


def test_sensitivity_table(cnn, images):
    images = images[:1]
    df = S.sensitivity_table(cnn, images, k=8, power_iters=1, n_probes=4, seed=0)
    assert list(df.columns) == [
        "layer", "metric", "variant", "value", "k", "power_iters",
        "n_images", "n_probes", "seed", "input_space",
    ]  # fmt: skip
    assert set(zip(df.metric, df.variant, strict=True)) == {
        ("jacobian_effective_rank", "images"),
        ("jacobian_effective_rank", "noise"),
        ("relative_jacobian_frobenius", "images"),
        ("relative_jacobian_frobenius", "noise"),
    }
    assert (df.layer == "final").all() and (df.input_space == "raw [0,1] pixels").all()
    assert (df.n_images == 1).all()
    jer = df[(df.metric == "jacobian_effective_rank") & (df.variant == "images")].iloc[0]
    assert jer.value == pytest.approx(S.jacobian_effective_rank(cnn, images, 8, 1, 0))
    assert jer.k == 8 and jer.power_iters == 1 and pd.isna(jer.n_probes)
    noise = df[(df.metric == "jacobian_effective_rank") & (df.variant == "noise")].iloc[0]
    ref = S.jacobian_effective_rank(cnn, S.noise_images(1, (3, 32, 32), 0), 8, 1, 0)
    assert noise.value == pytest.approx(ref)
    no_noise = S.sensitivity_table(cnn, images, k=8, power_iters=1, n_probes=4, noise_control=False)
    assert set(no_noise.variant) == {"images"} and len(no_noise) == 2
    l2 = S.sensitivity_table(
        cnn, images, k=8, power_iters=1, n_probes=4, noise_control=False, l2_normalized=True
    )
    assert list(l2.variant) == ["images", "images", "images_l2norm", "images_l2norm"]
    # f/‖f‖ has Jacobian (I − ûûᵀ)J/‖f‖: compare against that matrix built explicitly
    x = images[0]
    cnn.eval()  # timm creates models in training mode; the module under test runs eval mode
    with torch.no_grad():
        y = cnn(x[None])[0].double()
    u = y / y.norm()
    jac = torch.autograd.functional.jacobian(lambda z: cnn(z[None])[0], x).reshape(y.numel(), -1)
    jn = (torch.eye(y.numel(), dtype=torch.float64) - torch.outer(u, u)) @ jac.double() / y.norm()
    sv = torch.linalg.svdvals(jn)
    got = S.jacobian_singular_values(S._L2Normalised(cnn), x, k=8, power_iters=5)
    np.testing.assert_allclose(got[:3].numpy(), sv[:3].numpy(), rtol=1e-3)


# ---------------------------------------------------------------- errors


def test_errors():
    f = Linear(torch.randn(8, 12))
    good = torch.rand(2, 3, 2, 2)
    with pytest.raises(ValueError, match="NaN"):
        bad = good.clone()
        bad[0, 0, 0, 0] = float("nan")
        S.jacobian_effective_rank(f, bad, k=4)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        S.jacobian_effective_rank(f, torch.rand(3, 2, 2), k=4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.jacobian_effective_rank(f, good * 255, k=4)
    with pytest.raises(ValueError, match="float"):
        S.jacobian_effective_rank(f, (good * 255).to(torch.uint8), k=4)
    with pytest.raises(ValueError, match="k=9 exceeds"):
        S.jacobian_effective_rank(f, good, k=9)
    with pytest.raises(ValueError, match="k=9 exceeds"):
        S.exact_jacobian_effective_rank(f, good, k=9)
    with pytest.raises(ValueError, match="seed"):
        S.jacobian_effective_rank(f, good, k=4, seed=-1)
    with pytest.raises(ValueError, match="power_iters"):
        S.jacobian_effective_rank(f, good, k=4, power_iters=-1)
    with pytest.raises(ValueError, match=r"torch\.nn\.Module"):
        S.jacobian_effective_rank(lambda x: x, good, k=4)

    class Map(torch.nn.Module):
        def forward(self, x):
            return x * 2

    with pytest.raises(ValueError, match=r"\(B, D\) embeddings"):
        S.jacobian_effective_rank(Map(), good, k=2)
