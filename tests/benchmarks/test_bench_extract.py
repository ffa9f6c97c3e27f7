"""Throughput of per-layer feature extraction against a bare forward pass of the same encoder."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from repaudit.config import read_models
from repaudit.models.extract import extract_layer_features, to_tensor
from repaudit.models.factory import ModelSpec, load_encoder

N_IMAGES = 4096
BATCH_SIZE = 256
ROUNDS = 3

ROOT = Path(__file__).resolve().parents[2]
# The pipeline's ViT row of config/models.tsv, with random weights.
SPEC = dataclasses.replace(
    ModelSpec.from_row(
        read_models(ROOT / "config/models.tsv", ROOT / "workflow/schemas/models.schema.yaml")
        .loc["vit_random_s0"]
        .to_dict()
    ),
    weights="random",
)


def _bare_forward(encoder, images: np.ndarray) -> list[torch.Tensor]:
    """``encoder(x)`` batch by batch from the same uint8 array, nothing else."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH_SIZE):
            out.append(encoder(to_tensor(images[start : start + BATCH_SIZE])))
    return out


def test_extract_vs_bare_forward(benchmark, timed):
    """Measures images/s of ``extract_layer_features`` (what extract_features.py runs: one
    forward feeding every layer tap, pooling, copies into preallocated arrays, finiteness check)
    and of a bare ``encoder(x)`` loop over the same 4,096 32-px images in batches of 256 on CPU.

    Goal: extraction throughput >= 0.9 x the bare forward (``ratio_extract_bare``).
    """
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N_IMAGES, 32, 32, 3), dtype=np.uint8)
    encoder, _ = load_encoder(SPEC, None, pooling="auto", seed=0)

    _bare_forward(encoder, images[:BATCH_SIZE])  # warm-up
    bare_times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        bare = _bare_forward(encoder, images)
        bare_times.append(time.perf_counter() - t0)
    t_bare = min(bare_times)

    features, t_extract = timed(
        lambda: extract_layer_features(encoder, images, batch_size=BATCH_SIZE),
        rounds=ROUNDS,
        warmup_rounds=1,
    )

    assert list(features) == encoder.layer_names()
    np.testing.assert_allclose(features["final"], torch.cat(bare).numpy(), rtol=1e-5, atol=1e-5)

    benchmark.extra_info.update(
        n_images=N_IMAGES,
        batch_size=BATCH_SIZE,
        bare_images_per_s=round(N_IMAGES / t_bare, 1),
        extract_images_per_s=round(N_IMAGES / t_extract, 1),
        ratio_extract_bare=round(t_bare / t_extract, 3),
        goal_ratio=">= 0.9",
    )
