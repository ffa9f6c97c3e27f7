"""Jacobian Effective Rank of a ~5 M-parameter CNN at the paper's estimator settings."""

from __future__ import annotations

import numpy as np

from repaudit.metrics.sensitivity import jacobian_effective_rank
from repaudit.models.extract import to_tensor
from repaudit.models.factory import ModelSpec, load_encoder

N_IMAGES, K, POWER_ITERS = 100, 32, 5

# Built as compute_sensitivity.py builds any model: a models.tsv row through load_encoder, so
# resizing and normalisation sit inside the differentiated map (raw [0, 1] pixels in).
SPEC = ModelSpec(
    model_id="resnet10t_random",
    architecture="resnet10t",
    weights="random",
    input_size=32,
    family="cnn",
)


def test_jacobian_effective_rank_resnet10t(benchmark, timed):
    """Measures ``jacobian_effective_rank`` (randomized range finder, batched JVP/VJP) for timm
    resnet10t (4.9 M parameters, random init) on 100 seeded 32 x 32 images with k = 32 probe
    directions and 5 power iterations, on CPU.

    Goal: < 60 s.
    """
    encoder, _ = load_encoder(SPEC, None, pooling="auto", seed=0)
    n_params = sum(p.numel() for p in encoder.parameters())
    rng = np.random.default_rng(0)
    images = to_tensor(rng.integers(0, 256, size=(N_IMAGES, 32, 32, 3), dtype=np.uint8))

    jer, _ = timed(
        lambda: jacobian_effective_rank(encoder, images, k=K, power_iters=POWER_ITERS, seed=0)
    )

    assert 1.0 <= jer <= K
    benchmark.extra_info.update(
        n_params_m=round(n_params / 1e6, 2),
        n_images=N_IMAGES,
        k=K,
        power_iters=POWER_ITERS,
        jer=round(jer, 3),
        goal_seconds="< 60",
    )
