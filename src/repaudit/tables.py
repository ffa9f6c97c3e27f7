"""The one long metrics table: concatenation of per-job tidy tables plus model metadata."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

KEYS = ["dataset", "model", "stage", "layer", "metric", "variant", "value"]
MODEL_META = ["model", "architecture", "family", "objective", "weights"]


def layer_index(layers: pd.Series) -> pd.Series:
    """Integer depth of a layer name: "0", "1", ... as numbers, "final" one past the deepest."""
    numeric = pd.to_numeric(layers, errors="coerce")
    return numeric.fillna(numeric.max() + 1 if numeric.notna().any() else 0).astype(int)


def collect_metrics(tables: Iterable[pd.DataFrame], models: pd.DataFrame) -> pd.DataFrame:
    """Concatenate tidy metric tables and attach each model's architecture/family/objective.

    Every input must carry the key columns; parameter columns are unioned (NaN where a
    metric has no such parameter). ``layer_index``/``depth`` are added per (model, stage).
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
    meta = models.rename(columns={"model_id": "model"})[MODEL_META]
    long = long.merge(meta, on="model", how="left")
    long["layer_index"] = long.groupby("model")["layer"].transform(layer_index)
    top = long.groupby("model")["layer_index"].transform("max").clip(lower=1)
    long["depth"] = long["layer_index"] / top
    first = [*KEYS[:3], "architecture", "family", "objective", "weights", "layer", "layer_index"]
    first += ["depth", "metric", "variant", "value"]
    rest = [c for c in long.columns if c not in first]
    return long[first + rest].sort_values(KEYS[:6], kind="stable").reset_index(drop=True)
