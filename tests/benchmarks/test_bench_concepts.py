"""Exact generalised Rand index of two soft concept partitions at N = 10,000."""

from __future__ import annotations

import numpy as np

from repaudit.metrics.concepts import generalized_rand_index, generalized_rand_index_estimate

N, C_P, C_Q = 10_000, 50, 50


def _soft_concepts(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    """Dirichlet memberships scaled by a per-sample total <= 1 (HDBSCAN-style proximities)."""
    return rng.dirichlet(np.full(c, 0.2), size=n) * rng.uniform(0.5, 1.0, size=(n, 1))


def _gri_bruteforce(P: np.ndarray, Q: np.ndarray) -> float:
    """GRI from its definition, all pairs i < j, float64 numpy."""
    e_p = 1.0 - 0.5 * np.abs(P[:, None, :] - P[None, :, :]).sum(-1)
    e_q = 1.0 - 0.5 * np.abs(Q[:, None, :] - Q[None, :, :]).sum(-1)
    iu = np.triu_indices(len(P), k=1)
    return 1.0 - float(np.abs(e_p - e_q)[iu].mean())


def test_generalized_rand_index_exact(benchmark, timed):
    """Measures the exact ``generalized_rand_index`` (all N(N-1)/2 = 5·10⁷ pairs, L1 variant of
    the paper) for N = 10,000 samples with 50 x 50 soft concepts.

    Goal: < 20 s.
    """
    rng = np.random.default_rng(0)
    P = _soft_concepts(rng, N, C_P)
    Q = _soft_concepts(rng, N, C_Q)

    gri, _ = timed(lambda: generalized_rand_index(P, Q))

    assert 0.0 <= gri <= 1.0
    small = generalized_rand_index_estimate(P[:400], Q[:400])
    assert small.exact
    np.testing.assert_allclose(small.value, _gri_bruteforce(P[:400], Q[:400]), atol=1e-5)
    benchmark.extra_info.update(
        n=N,
        concepts=f"{C_P} x {C_Q}",
        n_pairs=N * (N - 1) // 2,
        gri=round(gri, 5),
        goal_seconds="< 20",
    )
