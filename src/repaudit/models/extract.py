"""Batched per-layer feature extraction (``torch.inference_mode``, progress to stderr)."""

from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm import tqdm

from repaudit.models.factory import Encoder


def to_tensor(images: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def extract_layer_features(
    encoder: Encoder,
    images: np.ndarray,
    *,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Pooled features of every layer and the final embedding, float32 (N, D) each.

    One forward pass per batch feeds all layers; outputs are written into preallocated
    arrays so memory stays at one copy of the result.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    encoder = encoder.to(device).eval()
    out: dict[str, np.ndarray] = {}
    starts = range(0, len(images), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="extract", file=sys.stderr, disable=not progress):
            feats = encoder.layer_features(to_tensor(images[start : start + batch_size], device))
            for name, value in feats.items():
                if name not in out:
                    out[name] = np.empty((len(images), value.shape[1]), dtype=np.float32)
                out[name][start : start + len(value)] = value.float().cpu().numpy()
    for name, value in out.items():
        if not np.isfinite(value).all():
            raise ValueError(f"layer {name}: non-finite features; check the weights and inputs")
    return out
