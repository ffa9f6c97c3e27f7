"""All-pairs relative/absolute similarity of twelve encoders on 2,000 items."""

from __future__ import annotations

import numpy as np

from repaudit.metrics.relative import relative_table

N_TEST, N_TRAIN, LATENT = 2_000, 1_000, 48
WIDTHS = (64, 128, 192, 256, 256, 384, 384, 512, 512, 768, 768, 768)


def _encoders(rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Twelve feature sets that share a latent structure, each a noisy random lift of it."""
    z = rng.standard_normal((N_TRAIN + N_TEST, LATENT))
    out = {}
    for i, width in enumerate(WIDTHS):
        lift = rng.standard_normal((LATENT, width)) / np.sqrt(LATENT)
        noise = 0.5 * rng.standard_normal((N_TRAIN + N_TEST, width))
        out[f"enc{i:02d}_{width}"] = {"final": (np.tanh(z @ lift) + noise).astype(np.float32)}
    return out


def test_relative_table_twelve_encoders(benchmark, timed):
    """Measures ``relative_table`` (what compare_relative.py runs) for 12 encoders of widths
    64-768 compared on N = 2,000 test items, with 768 uniform anchors from 1,000 train items,
    k = 5 and mutual_k = 10: latent Jaccard/MRR/cosine (relative and, for equal widths,
    absolute), linear CKA and mutual kNN for all 144 ordered pairs.

    Goal: < 30 s.
    """
    rng = np.random.default_rng(0)
    features = _encoders(rng)
    labels = rng.integers(0, 10, size=N_TRAIN + N_TEST)
    split = np.array(["train"] * N_TRAIN + ["test"] * N_TEST)

    table, _ = timed(
        lambda: relative_table(
            features,
            labels,
            split,
            layers=["final"],
            n_anchors=768,
            anchor_method="uniform",
            k=5,
            mutual_k=10,
            seed=0,
        )
    )

    n_models = len(WIDTHS)
    assert len(table) == n_models * n_models * 8
    rel = table[table["variant"] == "relative"]
    assert np.isfinite(rel["value"]).all()
    self_jaccard = rel[(rel["model"] == rel["model_b"]) & (rel["metric"] == "latent_jaccard")]
    np.testing.assert_allclose(self_jaccard["value"], 1.0)
    benchmark.extra_info.update(
        n_models=n_models,
        n_test=N_TEST,
        n_anchors=768,
        rows=len(table),
        goal_seconds="< 30",
    )
