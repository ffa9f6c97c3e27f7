"""The one long metrics table: concatenation of per-job tidy tables plus model metadata."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

KEYS = ["dataset", "model", "stage", "layer", "metric", "variant", "value"]
# The design of each encoder: its cell (sheet row), factors and training seed (replicate).
MODEL_META = [
    "model",
    "cell",
    "architecture",
    "input_size",
    "family",
    "objective",
    "weights",
    "seed",
]


def layer_index(layers: pd.Series) -> pd.Series:
    """Integer depth of a layer name: "0", "1", ... as numbers, "final" one past the deepest."""
    numeric = pd.to_numeric(layers, errors="coerce")
    return numeric.fillna(numeric.max() + 1 if numeric.notna().any() else 0).astype(int)


def collect_metrics(tables: Iterable[pd.DataFrame], models: pd.DataFrame) -> pd.DataFrame:
    """Concatenate tidy metric tables and attach each model's design (``MODEL_META``).

    Every input must carry the key columns; parameter columns are unioned (NaN where a
    metric has no such parameter). ``layer_index``/``depth`` are added per (model, stage).
    ``seed`` is the encoder's training seed (empty for fixed weights and rows without a
    model); a job's own seed (sampling, decoders, a simulation replicate) is ``analysis_seed``.
    """
    frames = []
    for df in tables:
        missing = [c for c in KEYS if c not in df.columns]
        if missing:
            raise ValueError(f"metric table lacks columns {missing}; has {list(df.columns)}")
        frames.append(df)
    long = pd.concat(frames, ignore_index=True, sort=False)
    long["layer"] = long["layer"].astype(str)
    long["variant"] = long["variant"].fillna("").astype(str)
    long = long.rename(columns={"seed": "analysis_seed"})
    meta = models.rename(columns={"model_id": "model"}).reindex(columns=MODEL_META)
    meta["cell"] = meta["cell"].fillna(meta["model"])
    long = long.merge(meta, on="model", how="left")
    if "model_b" in long.columns:  # the partner's cell, for pairs of encoders
        long["cell_b"] = long["model_b"].map(meta.set_index("model")["cell"])
    long["layer_index"] = long.groupby("model")["layer"].transform(layer_index)
    top = long.groupby("model")["layer_index"].transform("max").clip(lower=1)
    long["depth"] = long["layer_index"] / top
    first = [*KEYS[:3], *MODEL_META[1:], "layer", "layer_index"]
    first += ["depth", "metric", "variant", "value"]
    rest = [c for c in long.columns if c not in first]
    return long[first + rest].sort_values(KEYS[:6], kind="stable").reset_index(drop=True)


def select_samples(
    labels: np.ndarray,
    split: np.ndarray,
    which: str = "all",
    max_samples: int | None = None,
    seed: int = 0,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted row indices of one split (``train``/``test``/``all``), optionally capped.

    The cap keeps every class's share (stratified, seeded), so all encoders of a dataset are
    compared on the same images.
    """
    if which not in ("all", "train", "test"):
        raise ValueError(f"split must be all, train or test, got {which!r}")
    keep = np.ones(len(labels), bool) if which == "all" else split == which
    if mask is not None:
        keep &= mask
    idx = np.flatnonzero(keep)
    if max_samples is None or len(idx) <= max_samples:
        return idx
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels[idx]):
        members = idx[labels[idx] == c]
        share = max(2, round(max_samples * len(members) / len(idx)))
        chosen.append(rng.choice(members, size=min(share, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def subset(features: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {name: x[idx] for name, x in features.items()}


def with_keys(df: pd.DataFrame, **keys) -> pd.DataFrame:
    """Prepend the key columns (dataset, model, stage, ...) to a library table."""
    return df.assign(**keys)[[*keys, *[c for c in df.columns if c not in keys]]]


def paired_correct(predictions: Mapping[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Per-model boolean ``correct`` vectors of prediction tables over the same test images.

    A paired test compares models image by image, so every table must list the same ``id``
    values in the same order; a ValueError names the first model that does not.
    """
    correct, ids, first = {}, None, None
    for model, table in predictions.items():
        if ids is None:
            ids, first = table["id"].tolist(), model
        elif table["id"].tolist() != ids:
            raise ValueError(f"{model}: test images differ from those of {first}")
        correct[model] = table["correct"].to_numpy(dtype=bool)
    return correct
