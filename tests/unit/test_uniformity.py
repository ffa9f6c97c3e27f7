"""Tests for repaudit.metrics.uniformity (Fang et al. 2024; Wang & Isola 2020).

Reference values: the paper's closed forms (arXiv:2403.00642 §4) and a table computed once with
numpy (seeds 0/1, biased covariance, eigvalsh).
"""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.special
import torch
from scipy.spatial.distance import pdist
from scipy.stats import ortho_group

from repaudit.metrics.uniformity import (
    _lu_logsumexp,
    alignment,
    collapse_study,
    wang_isola_uniformity,
    wasserstein_uniformity,
    wasserstein_uniformity_floor,
    wasserstein_uniformity_loss,
)


def collapsed(n, m, eta, seed):
    """Gaussian data with the last round(eta*m) coordinates zeroed (the paper's collapse data)."""
    X = np.random.default_rng(seed).standard_normal((n, m))
    X[:, m - round(eta * m) :] = 0.0
    return X


def w2_theory(eta):
    return math.sqrt(2 - 2 * math.sqrt(1 - eta))


# ---------------------------------------------------------------- slow reference implementations
def w2_reference(X):
    """General Gaussian W2 with explicit matrix square roots (scipy.linalg.sqrtm)."""
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    n, m = U.shape
    mu = U.mean(0)
    S1 = (U - mu).T @ (U - mu) / n
    S2 = np.eye(m) / m
    r2 = scipy.linalg.sqrtm(S2)
    cross = scipy.linalg.sqrtm(r2 @ S1 @ r2)
    w2_sq = mu @ mu + np.trace(S1) + np.trace(S2) - 2 * np.trace(cross).real
    return math.sqrt(max(w2_sq, 0.0))


def lu_reference(X, t=2.0):
    """Pairwise double loop over i < j."""
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    terms = [
        -t * float(np.sum((U[i] - U[j]) ** 2)) for i, j in itertools.combinations(range(len(U)), 2)
    ]
    return float(scipy.special.logsumexp(terms) - math.log(len(terms)))


# ----------------------------------------------------------------------- §2.7 reference values
@pytest.fixture(scope="module")
def study32():
    """The reference m = 32 collapse setting (N = 50k for W2, 4000 for L_U); no property data."""
    return collapse_study(
        dims=(32,),
        etas=(0.0, 0.25, 0.5, 0.75),
        n_samples=50_000,
        n_samples_lu=4_000,
        property_etas=(),
        seed=1,
    )


@pytest.fixture(scope="module")
def properties():
    """ICC / FCC / FBC curves at m = 32, smaller N than the paper (directions only)."""
    return collapse_study(
        dims=(),
        n_samples=5_000,
        n_samples_lu=800,
        clones=(1, 2, 3, 5),
        n_samples_icc=200,
        seed=1,
    )


def _collapse_values(df, metric):
    sub = df[(df.study == "collapse") & (df.metric == metric)].sort_values("eta")
    return sub.eta.to_numpy(), sub.value.to_numpy()


def test_w2_matches_closed_form_under_collapse_m32(study32):
    etas, w2 = _collapse_values(study32, "wasserstein_uniformity")
    np.testing.assert_allclose(etas, [0, 0.25, 0.5, 0.75])
    for eta, v in zip(etas[1:], w2[1:], strict=True):
        assert abs(v - w2_theory(eta)) < 0.01
    # η = 0: only the finite-sample floor remains (reference: 0.0127 at N = 50k, m = 32)
    assert abs(w2[0] - 0.0127) < 0.005
    np.testing.assert_allclose(w2, [0.0127, 0.5178, 0.7654, 1.0000], atol=0.01)


def test_lu_reference_table_m32(study32):
    _, lu = _collapse_values(study32, "wang_isola_uniformity")
    np.testing.assert_allclose(lu, [-3.752, -3.670, -3.514, -3.083], atol=0.01)


def test_reference_table_m256():
    # L_U at the reference table's N = 4000; W2 at N = 20k (theory for η > 0, the floor at η = 0).
    df = collapse_study(
        dims=(256,), etas=(0.0, 0.25, 0.5, 0.75), n_samples=20_000, n_samples_lu=4_000,
        property_etas=(), seed=2,
    )  # fmt: skip
    etas, w2 = _collapse_values(df, "wasserstein_uniformity")
    _, lu = _collapse_values(df, "wang_isola_uniformity")
    np.testing.assert_allclose(lu, [-3.969, -3.958, -3.938, -3.876], atol=0.01)
    np.testing.assert_allclose(w2[1:], [w2_theory(e) for e in etas[1:]], atol=0.01)
    assert w2[0] == pytest.approx(wasserstein_uniformity_floor(20_000, 256), abs=0.01)


def test_lu_reference_table_m2048():
    # L_U on the reference N = 4000 (η = .5, .75 keep 1024 and 512 coordinates); W2 unchecked.
    df = collapse_study(
        dims=(2048,), etas=(0.5, 0.75), n_samples=16, n_samples_lu=4_000, property_etas=(),
        seed=3,
    )  # fmt: skip
    _, lu = _collapse_values(df, "wang_isola_uniformity")
    np.testing.assert_allclose(lu, [-3.992, -3.984], atol=0.01)


def test_w2_is_sqrt2_under_constant_collapse():
    v = np.random.default_rng(0).standard_normal(17)
    X = np.tile(v, (50, 1))
    assert wasserstein_uniformity(X) == pytest.approx(math.sqrt(2), abs=1e-12)
    loss = wasserstein_uniformity_loss(torch.from_numpy(X), eps=0.0)
    assert loss.item() == pytest.approx(math.sqrt(2), abs=1e-12)


def test_w2_is_zero_for_exact_isotropic_design():
    # ±e_i for every axis: μ = 0, Σ = I/m exactly.
    m = 8
    X = np.vstack([np.eye(m), -np.eye(m)])
    assert wasserstein_uniformity(X) == pytest.approx(0.0, abs=1e-7)


def test_w2_independent_of_m_at_fixed_eta():
    vals = [wasserstein_uniformity(collapsed(40_000, m, 0.5, seed=m)) for m in (16, 64)]
    np.testing.assert_allclose(vals, w2_theory(0.5), atol=0.01)


# ------------------------------------------------------------------------------- properties
def test_icc_leaves_w2_exactly_unchanged():
    X = collapsed(500, 32, 0.5, seed=4)
    w = wasserstein_uniformity(X)
    for n in (2, 3, 7):
        assert wasserstein_uniformity(np.tile(X, (n, 1))) == pytest.approx(w, abs=1e-12)
        assert wasserstein_uniformity(np.repeat(X, n, axis=0)) == pytest.approx(w, abs=1e-12)


def test_fbc_equals_renormalised_fcc():
    X = collapsed(2_000, 32, 0.25, seed=5)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    fbc = wasserstein_uniformity(np.hstack([U, np.zeros_like(U)]))
    fcc_renorm = wasserstein_uniformity(np.hstack([U, U]) / math.sqrt(2))
    assert fbc == pytest.approx(fcc_renorm, abs=1e-10)


def test_fbc_and_fcc_reference_values_m256():
    # reference table: FBC with k = 256 gives 0.7660; FCC without renormalisation 1.0007 (N = 50k);
    # At N = 20k the floors shift both by < 0.002.
    df = collapse_study(
        dims=(), property_dim=256, property_etas=(0.0,), n_samples=20_000, n_samples_lu=2,
        clones=(2,), n_samples_icc=2, seed=6,
    )  # fmt: skip
    w2 = df[df.metric == "wasserstein_uniformity"].set_index("study").value
    assert w2["FBC"] == pytest.approx(0.7660, abs=0.01)
    assert w2["FCC"] == pytest.approx(1.0007, abs=0.01)


def _curve(df, study, metric, eta):
    sub = df[(df.study == study) & (df.metric == metric) & np.isclose(df.eta, eta)]
    return sub.sort_values("n_clones").value.to_numpy()


@pytest.mark.parametrize("eta", [0.25, 0.5, 0.75])
def test_property_directions(properties, eta):
    W2, LU = "wasserstein_uniformity", "wang_isola_uniformity"
    # ICC: −L_U down (L_U up), W2 constant
    assert np.all(np.diff(_curve(properties, "ICC", LU, eta)) > 0)
    np.testing.assert_allclose(np.diff(_curve(properties, "ICC", W2, eta)), 0, atol=1e-12)
    # FCC: −L_U up (L_U down), −W2 down (W2 up)
    assert np.all(np.diff(_curve(properties, "FCC", LU, eta)) < 0)
    assert np.all(np.diff(_curve(properties, "FCC", W2, eta)) > 0)
    # FBC: −L_U constant, −W2 down
    np.testing.assert_allclose(np.diff(_curve(properties, "FBC", LU, eta)), 0, atol=1e-12)
    assert np.all(np.diff(_curve(properties, "FBC", W2, eta)) > 0)


def test_collapse_study_format_and_determinism():
    kw = dict(dims=(8, 16), etas=(0.0, 0.5), n_samples=300, n_samples_lu=100, clones=(1, 2),
              property_dim=8, n_samples_icc=50)  # fmt: skip
    a, b = collapse_study(seed=0, **kw), collapse_study(seed=0, **kw)
    pd.testing.assert_frame_equal(a, b)  # bit-identical
    assert not np.allclose(a.value, collapse_study(seed=1, **kw).value)
    assert list(a.columns) == ["study", "dim", "eta", "n_clones", "metric", "value", "n_samples"]
    assert set(a.study) == {"collapse", "ICC", "FCC", "FBC"}
    assert set(a.metric) == {"wasserstein_uniformity", "wang_isola_uniformity"}
    # 2 dims × 2 etas × 2 metrics + 3 studies × 3 etas × 2 clones × 2 metrics
    assert len(a) == 8 + 36
    icc = a[(a.study == "ICC") & (a.n_clones == 2)]
    assert set(icc.n_samples) == {100}
    fcc = a[(a.study == "FCC") & (a.n_clones == 2)]
    assert set(fcc.dim) == {16}
    # realised η: round(η·m)/m
    d = collapse_study(dims=(10,), etas=(0.25,), n_samples=50, n_samples_lu=20, clones=(1,),
                       property_dim=10, n_samples_icc=5)  # fmt: skip
    assert set(d[d.study == "collapse"].eta) == {0.2}


def test_collapse_study_rejects_bad_arguments():
    with pytest.raises(ValueError, match="eta"):
        collapse_study(dims=(8,), etas=(1.0,), n_samples=10, n_samples_lu=10, clones=(1,))
    with pytest.raises(ValueError, match="eta"):
        collapse_study(dims=(4,), etas=(0.9,), n_samples=10, n_samples_lu=10, clones=(1,))
    with pytest.raises(ValueError, match="clones"):
        collapse_study(dims=(8,), etas=(0.0,), n_samples=10, n_samples_lu=10, clones=(0,))
    with pytest.raises(ValueError, match="n_samples"):
        collapse_study(dims=(8,), etas=(0.0,), n_samples=1, n_samples_lu=10, clones=(1,))


# ------------------------------------------------------------------ slow-reference agreement
@pytest.mark.parametrize("seed", [0, 1])
def test_w2_matches_sqrtm_reference(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, 12)) * np.linspace(2, 0.2, 12) + 0.7  # anisotropic, shifted
    assert wasserstein_uniformity(X) == pytest.approx(w2_reference(X), abs=1e-8)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # sqrtm of a singular Σ
def test_w2_rank_deficient_matches_reference():
    X = collapsed(40, 16, 0.5, seed=3)[:10]  # N < m and 8 zero coordinates
    assert wasserstein_uniformity(X) == pytest.approx(w2_reference(X), abs=1e-6)


@pytest.mark.parametrize("t", [0.5, 2.0])
def test_lu_matches_pairwise_loop(t):
    X = np.random.default_rng(7).standard_normal((60, 5)) + 0.3
    assert wang_isola_uniformity(X, t=t) == pytest.approx(lu_reference(X, t), abs=1e-12)


def test_lu_matches_torch_pdist_reference_code():
    X = np.random.default_rng(8).standard_normal((200, 16))
    U = torch.nn.functional.normalize(torch.from_numpy(X), dim=1)
    ref = torch.pdist(U).pow(2).mul(-2.0).exp().mean().log().item()
    assert wang_isola_uniformity(X) == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_lu_independent_of_chunk_size(chunk):
    X = np.random.default_rng(9).standard_normal((150, 6))
    assert wang_isola_uniformity(X, chunk_size=chunk) == pytest.approx(lu_reference(X), abs=1e-12)


def test_lu_large_t_uses_stable_path():
    # t(2·max‖u‖)² = 1200 > 700: per-tile shifted logsumexp; exp() alone would underflow.
    X = np.random.default_rng(10).standard_normal((80, 3))
    v = wang_isola_uniformity(X, t=300.0, chunk_size=16)
    assert math.isfinite(v)
    assert v == pytest.approx(lu_reference(X, 300.0), abs=1e-9)


def test_lu_torch_backend_matches_numpy():
    X = np.random.default_rng(11).standard_normal((130, 9))
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    for t in (2.0, 300.0):
        a = _lu_logsumexp(U, t, 32, "cpu", backend="numpy")
        b = _lu_logsumexp(U, t, 32, "cpu", backend="torch")
        assert a == pytest.approx(b, abs=1e-10)


def test_lu_hand_values():
    # two antipodal points: ‖u1 − u2‖² = 4, L_U = −4t; identical points: 0
    assert wang_isola_uniformity(np.array([[1.0, 0.0], [-3.0, 0.0]])) == pytest.approx(-8.0)
    assert wang_isola_uniformity(np.array([[1.0, 2.0], [2.0, 4.0]])) == pytest.approx(0.0)
    # orthogonal pair: ‖u1 − u2‖² = 2
    assert wang_isola_uniformity(np.eye(2), t=1.5) == pytest.approx(-3.0)


def test_lu_icc_matches_theory():
    # Cloning each point n times: sum over pairs gains n²·S_D + N·n(n−1)/2 zero-distance pairs.
    X = np.random.default_rng(12).standard_normal((40, 4))
    n_pairs = 40 * 39 / 2
    s_d = math.exp(wang_isola_uniformity(X)) * n_pairs
    n = 3
    N2 = 40 * n
    expected = math.log((n * n * s_d + 40 * n * (n - 1) / 2) / (N2 * (N2 - 1) / 2))
    assert wang_isola_uniformity(np.tile(X, (n, 1))) == pytest.approx(expected, abs=1e-12)


def test_alignment_hand_values_and_reference():
    assert alignment(np.eye(3), np.eye(3)[[1, 2, 0]]) == pytest.approx(2.0)
    assert alignment(np.eye(3), np.eye(3)[[1, 2, 0]], alpha=1) == pytest.approx(math.sqrt(2))
    assert alignment(np.array([[2.0, 0.0]]), np.array([[5.0, 0.0]])) == pytest.approx(0.0)
    rng = np.random.default_rng(13)
    A, B = rng.standard_normal((50, 7)), rng.standard_normal((50, 7))
    ref = np.mean(
        [
            np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b)) ** 3
            for a, b in zip(A, B, strict=True)
        ]
    )
    assert alignment(A, B, alpha=3) == pytest.approx(ref, rel=1e-12)


# ----------------------------------------------------------------------------- the floor
def test_floor_matches_reference_table():
    assert wasserstein_uniformity_floor(10_000, 256) == pytest.approx(0.080, abs=0.004)
    assert wasserstein_uniformity_floor(5_000, 256, seed=1) == pytest.approx(0.114, abs=0.005)
    v = wasserstein_uniformity_floor(20_000, 64, seed=3)
    assert v == pytest.approx(0.5 * math.sqrt(64 / 20_000), rel=0.1)


def test_floor_is_seeded_and_matches_w2_of_uniform_data():
    a, b = wasserstein_uniformity_floor(3000, 32, seed=5), wasserstein_uniformity_floor(3000, 32, 5)
    assert a == b
    assert a != wasserstein_uniformity_floor(3000, 32, seed=6)
    # Same estimator as W2 on the same draw (one chunk).
    G = np.random.default_rng(5).standard_normal((3000, 32))
    assert a == pytest.approx(wasserstein_uniformity(G), abs=1e-12)


def test_floor_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_samples"):
        wasserstein_uniformity_floor(1, 8)
    with pytest.raises(ValueError, match="dim"):
        wasserstein_uniformity_floor(10, 0)


# ------------------------------------------------------------------------------ invariances
def test_invariances():
    rng = np.random.default_rng(14)
    X = rng.standard_normal((120, 10)) * np.linspace(2, 0.3, 10) + 0.2
    Q = ortho_group.rvs(10, random_state=1)
    perm = rng.permutation(120)
    row_scale = rng.uniform(0.1, 10, size=(120, 1))
    for f in (wasserstein_uniformity, wang_isola_uniformity):
        v = f(X)
        assert f(X[perm]) == pytest.approx(v, abs=1e-12)  # IPC
        assert f(X @ Q) == pytest.approx(v, abs=1e-10)  # rotation
        assert f(3.7 * X) == pytest.approx(v, abs=1e-12)  # isotropic scale
        assert f(row_scale * X) == pytest.approx(v, abs=1e-12)  # per-row scale (normalised)
    Y = rng.standard_normal((120, 10))
    a = alignment(X, Y)
    assert alignment(X[perm], Y[perm]) == pytest.approx(a, abs=1e-12)
    assert alignment(X @ Q, Y @ Q) == pytest.approx(a, abs=1e-12)


# ---------------------------------------------------------------------------- torch loss
def test_loss_agrees_with_numpy_metric():
    X = np.random.default_rng(15).standard_normal((256, 32)) * np.linspace(1, 0.1, 32)
    ref = wasserstein_uniformity(X)
    z = torch.from_numpy(X)
    assert wasserstein_uniformity_loss(z, eps=0.0).item() == pytest.approx(ref, abs=1e-10)
    assert wasserstein_uniformity_loss(z).item() == pytest.approx(ref, abs=1e-4)
    z32 = z.float()
    out = wasserstein_uniformity_loss(z32)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(ref, abs=1e-4)


def test_loss_gradient_is_correct():
    torch.manual_seed(0)
    z = torch.randn(12, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: wasserstein_uniformity_loss(x, eps=0.0), (z,))


@pytest.mark.parametrize(
    "make",
    [
        lambda g: torch.randn(64, 16, generator=g),  # full rank
        lambda g: torch.randn(8, 64, generator=g),  # rank-deficient (n < m)
        lambda g: torch.cat([torch.randn(64, 4, generator=g), torch.zeros(64, 12)], 1),  # FBC
        lambda g: torch.randn(1, 16, generator=g).repeat(32, 1),  # constant collapse
    ],
)
def test_loss_gradients_are_finite(make):
    z = make(torch.Generator().manual_seed(0)).requires_grad_(True)
    loss = wasserstein_uniformity_loss(z)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z.grad).all()


def test_loss_descends_towards_uniformity():
    torch.manual_seed(1)
    z = torch.randn(128, 8) * torch.tensor([5.0, 1, 1, 1, 0.1, 0.1, 0.1, 0.1]) + 2.0
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    start = wasserstein_uniformity_loss(z).item()
    for _ in range(40):
        opt.zero_grad()
        wasserstein_uniformity_loss(z).backward()
        opt.step()
    assert wasserstein_uniformity_loss(z).item() < 0.5 * start


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "f",
    [wasserstein_uniformity, wang_isola_uniformity, lambda X: alignment(X, X)],
    ids=["w2", "lu", "alignment"],
)
def test_bad_input_raises(f):
    good = np.random.default_rng(0).standard_normal((10, 3))
    nan = good.copy()
    nan[2, 1] = np.nan
    inf = good.copy()
    inf[0, 0] = np.inf
    zero_row = good.copy()
    zero_row[4] = 0.0
    with pytest.raises(ValueError, match="NaN or Inf"):
        f(nan)
    with pytest.raises(ValueError, match="NaN or Inf"):
        f(inf)
    with pytest.raises(ValueError, match="2-D"):
        f(good[:, 0])
    with pytest.raises(ValueError, match=r"zero row|all-zero"):
        f(zero_row)


def test_too_few_samples_raise():
    with pytest.raises(ValueError, match="at least 2"):
        wasserstein_uniformity(np.ones((1, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        wang_isola_uniformity(np.ones((1, 4)))
    with pytest.raises(ValueError, match="same shape"):
        alignment(np.ones((3, 4)), np.ones((4, 4)))
    with pytest.raises(ValueError, match="t must be"):
        wang_isola_uniformity(np.eye(3), t=0)
    with pytest.raises(ValueError, match="alpha"):
        alignment(np.eye(3), np.eye(3), alpha=0)
    with pytest.raises(ValueError, match="shape"):
        wasserstein_uniformity_loss(torch.ones(1, 4))
    with pytest.raises(ValueError, match="NaN"):
        wasserstein_uniformity_loss(torch.tensor([[1.0, float("nan")], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="zero rows"):
        wasserstein_uniformity_loss(torch.tensor([[0.0, 0.0], [1.0, 2.0]]))


def test_pdist_cross_check_of_distances():
    # L_U only depends on squared chord distances; recompute from scipy.pdist.
    X = np.random.default_rng(16).standard_normal((90, 4))
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    d2 = pdist(U, "sqeuclidean")
    ref = float(scipy.special.logsumexp(-2 * d2) - math.log(len(d2)))
    assert wang_isola_uniformity(X) == pytest.approx(ref, abs=1e-12)


# ------------------------------------------------------------ shared-work paths of the study
@pytest.mark.parametrize(
    ("n", "widths", "ts"),
    [
        (1100, [48, 30, 3, 1, 30], [2.0, 7.0]),  # > 2 tiles of 512, repeated width
        (300, [20], [2.0, 400.0]),  # t = 400: exp underflows, per-tile shifted logsumexp
        (3, [5, 2], [2.0]),
        (2, [5], [1.0]),
    ],
)
def test_lu_prefix_sums_match_lu_of_each_prefix(n, widths, ts):
    from repaudit.metrics.uniformity import _collapsed_unit, _lu_prefix_sums

    G = np.random.default_rng(n).standard_normal((n, max(widths)), dtype=np.float32)
    got = _lu_prefix_sums(G, widths, ts)
    want = [[_lu_logsumexp(_collapsed_unit(G, r), t, 2048) for t in ts] for r in widths]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    if 3 <= n <= 300:  # and the brute force on the first prefix
        ref = lu_reference(G[:, : widths[0]].astype(np.float64), ts[0])
        assert got[0, 0] == pytest.approx(ref, abs=1e-10)


def test_unit_moments_match_two_pass_moments():
    from repaudit.metrics.uniformity import _moments, _unit_moments

    U = collapsed(3000, 16, 0.25, seed=11)
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    for a, b in zip(_unit_moments(U), _moments(U), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)


def test_property_study_lu_equals_lu_of_the_constructed_data():
    # ICC / FCC / FBC L_U come from D's pairs; check them against L_U on the built matrices.
    n_lu, n_icc, m, eta = 300, 120, 8, 0.25
    df = collapse_study(
        dims=(), n_samples=50, n_samples_lu=n_lu, n_samples_icc=n_icc, clones=(1, 2, 3),
        property_dim=m, property_etas=(eta,), seed=12,
    )  # fmt: skip
    streams = np.random.SeedSequence(12).spawn(1)
    G = np.random.default_rng(streams[-1]).standard_normal((n_lu, m), dtype=np.float32)
    D = np.zeros((n_lu, m))
    r = m - round(eta * m)
    D[:, :r] = G[:, :r] / np.linalg.norm(G[:, :r].astype(np.float64), axis=1, keepdims=True)
    lu = df[df.metric == "wang_isola_uniformity"].set_index(["study", "n_clones"]).value
    for n in (1, 2, 3):
        icc = _lu_logsumexp(np.tile(D[:n_icc], (n, 1)), 2.0, 2048)
        fcc = _lu_logsumexp(np.hstack([D] * n), 2.0, 2048)
        fbc = _lu_logsumexp(np.hstack([D] + [np.zeros_like(D)] * (n - 1)), 2.0, 2048)
        assert lu["ICC", n] == pytest.approx(icc, abs=1e-12)
        assert lu["FCC", n] == pytest.approx(fcc, abs=1e-12)
        assert lu["FBC", n] == pytest.approx(fbc, abs=1e-12)
