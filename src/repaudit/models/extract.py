"""Batched per-layer feature extraction (``torch.inference_mode``, progress to stderr) and the
provenance that goes with a feature file."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from tqdm import tqdm

from repaudit.data import ImageDataset
from repaudit.io import FeatureSet, config_hash, library_versions
from repaudit.models.device import Precision, autocast, precision_scope, runtime
from repaudit.models.factory import Encoder, ModelSpec, data_config, state_dict_sha256


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
    precision: Precision | Mapping | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Pooled features of every layer and the final embedding, float32 (N, D) each.

    One forward pass per batch feeds all layers; outputs are written into preallocated
    arrays so memory stays at one copy of the result. ``precision`` (bf16 autocast, TF32; see
    :class:`repaudit.models.device.Precision`) defaults to float32.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    encoder = encoder.to(device).eval()
    out: dict[str, np.ndarray] = {}
    starts = range(0, len(images), batch_size)
    with torch.inference_mode(), precision_scope(device, precision):
        for start in tqdm(starts, desc="extract", file=sys.stderr, disable=not progress):
            x = to_tensor(images[start : start + batch_size], device)
            with autocast(device, precision):
                feats = encoder.layer_features(x)
            for name, value in feats.items():
                if name not in out:
                    out[name] = np.empty((len(images), value.shape[1]), dtype=np.float32)
                out[name][start : start + len(value)] = value.float().cpu().numpy()
    for name, value in out.items():
        if not np.isfinite(value).all():
            raise ValueError(f"layer {name}: non-finite features; check the weights and inputs")
    return out


def feature_provenance(
    encoder: Encoder,
    spec: ModelSpec,
    *,
    stage: str,
    dataset: str,
    seed: int,
    config: Mapping,
    device: str = "cpu",
    precision: Precision | Mapping | None = None,
) -> dict:
    """What produced a feature file: model, weights hash, stage, dataset, seed, versions,
    the hash of the config sections that shape the features, the preprocessing, and where and
    in what precision it ran (``device``, ``device_name``, ``precision``). Hugging Face
    (``hf``) encoders record ``id@revision`` as the tag and their image processor's settings."""
    hf = spec.weights == "hf"
    return {
        "model_id": spec.model_id,
        "model_tag": encoder.backbone.source if hf else spec.timm_name,
        "weights": spec.weights,
        "weights_sha256": state_dict_sha256(encoder.backbone),
        "stage": stage,
        "dataset": dataset,
        "seed": seed,
        "versions": library_versions(),
        "config_hash": config_hash(config),
        "preprocessing": {
            "resize": "bilinear",
            "input_size": encoder.input_size,
            "mean": encoder.mean.flatten().tolist(),
            "std": encoder.std.flatten().tolist(),
            ("hf_preprocessing" if hf else "timm_data_config"): data_config(encoder.backbone),
            "global_pool": str(getattr(encoder.backbone, "global_pool", "")),
            "pooling": encoder.pooling,
        },
        **runtime(device, precision),
    }


def layer_attributes(encoder: Encoder, layers: Iterable[str]) -> dict[str, dict]:
    """Index, relative depth (index / number of blocks) and pooling of every extracted layer."""
    return {
        name: {
            "layer_index": i,
            "depth": i / encoder.n_layers,
            "pooling": encoder.layer_pooling(i) if name != "final" else "pre_logits",
        }
        for i, name in enumerate(layers)
    }


def extract_feature_set(
    encoder: Encoder,
    spec: ModelSpec,
    data: ImageDataset,
    *,
    features: Mapping,
    model: Mapping,
    stage: str,
    dataset: str,
    seed: int,
    device: str = "cpu",
    precision: Precision | Mapping | None = None,
) -> FeatureSet:
    """Per-layer features of ``data`` with their provenance and layer attributes.

    ``features`` is the config's features section (``batch_size`` is used here) and ``model``
    the model's row; both enter the provenance's config hash. ``device`` and ``precision``
    (see :func:`extract_layer_features`) are recorded in the provenance.
    """
    out = extract_layer_features(
        encoder, data.images, batch_size=features["batch_size"], device=device, precision=precision
    )
    provenance = feature_provenance(
        encoder,
        spec,
        stage=stage,
        dataset=dataset,
        seed=seed,
        config={"features": features, "model": model},
        device=device,
        precision=precision,
    )
    return FeatureSet(
        out, data.labels, data.ids, data.split, provenance, layer_attributes(encoder, out)
    )
