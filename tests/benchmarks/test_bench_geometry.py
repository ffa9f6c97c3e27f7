"""Cost of the global-geometry metrics: L_U at N = 50,000 and one model's full geometry table."""

from __future__ import annotations

import resource
import tracemalloc

import numpy as np

from repaudit.metrics.geometry import geometry_table
from repaudit.metrics.uniformity import wang_isola_uniformity

GB = 1e9


def _layer(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """float32 features with a decaying (power-law) spectrum, as pooled network features have."""
    scales = np.arange(1, d + 1, dtype=np.float64) ** -0.5
    return (rng.standard_normal((n, d)) * scales + 0.1).astype(np.float32)


def test_wang_isola_uniformity_memory(benchmark, timed):
    """Measures time and peak memory of ``wang_isola_uniformity`` at N = 50,000, m = 256.

    Goal: memory bounded by the tiling, far below the 20 GB an N x N float64 distance matrix
    would need; asserted as a traced peak < 2 GB.
    """
    n, m = 50_000, 256
    X = _layer(np.random.default_rng(0), n, m)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    def run():
        tracemalloc.start()
        try:
            value = wang_isola_uniformity(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return value, peak

    (lu, peak), _ = timed(run)
    rss_delta = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before

    assert -4.0 * 2.0 <= lu <= 0.0
    assert peak < 2 * GB
    benchmark.extra_info.update(
        n=n,
        m=m,
        lu=round(lu, 4),
        peak_traced_mb=round(peak / 1e6, 1),
        maxrss_delta_mb=round(rss_delta * 1024 / 1e6, 1),
        dense_nxn_float64_gb=round(8 * n * n / GB, 1),
        goal="peak << 20 GB (asserted < 2 GB)",
    )


def test_geometry_table_one_model_stage(benchmark, timed):
    """Measures ``geometry_table`` (the table compute_geometry.py builds from per-layer features,
    alignment excluded) on 8 layers of (10,000, 512) float32 features, with the workflow's
    settings (local_k = 20, alpha_range = 5-50, t = 2).

    Goal: < 30 s for all metrics of one (model, stage) on 2 cores.
    """
    n, d, n_layers = 10_000, 512, 8
    rng = np.random.default_rng(1)
    features = {str(i): _layer(rng, n, d) for i in range(n_layers)}

    table, seconds = timed(
        lambda: geometry_table(features, local_k=20, alpha_range=(5, 50), t=2.0, seed=0)
    )

    per_layer = table.groupby("layer").size()
    assert len(per_layer) == n_layers
    assert (per_layer == per_layer.iloc[0]).all()
    assert np.isfinite(table["value"]).all()
    benchmark.extra_info.update(
        n=n,
        d=d,
        n_layers=n_layers,
        rows=len(table),
        seconds_per_layer=round(seconds / n_layers, 2),
        goal_seconds="< 30",
    )
