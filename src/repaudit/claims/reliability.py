"""Reliability of the metrics the claims use: how far encoders differ beyond seed noise.

A cross-model claim can only find what its measures separate. With seed replicates of every
design cell (architecture × objective), a one-way ANOVA splits a metric's variance into
between-cell and within-cell (seed) parts: ICC(1) = between / (between + within) (Shrout &
Fleiss 1979; Bouthillier et al. 2021 for seed variance in ML benchmarks); that is ``icc``, over
all cells. Claims control architecture, so the ICC that matters is the one *within*
architecture, and there the seeds are paired: every objective of an architecture starts from
the same seeded initialisation, so a seed's effect that all objectives share cancels from the
claims' comparisons of cell means (each averages the same seeds).
``icc_within_architecture`` is therefore the seed-blocked ICC
(:func:`repaudit.stats.icc_seed_blocked`: objectives against the objective × seed noise);
``icc_within_architecture_unpaired`` is the one-way figure that counts the shared seed effect
(``shared_seed_sd``) as noise, the reliability a comparison across different seeds would have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from repaudit.claims.registry import Claim
from repaudit.stats import icc_oneway, icc_seed_blocked

KEYS = ["dataset", "stage", "layer", "metric", "variant"]
COLUMNS = [
    *KEYS,
    "n_cells",
    "n_replicates",
    "mean",
    "sd",
    "between_sd",
    "within_sd",
    "icc",
    "between_sd_within_architecture",
    "within_sd_within_architecture",
    "shared_seed_sd",
    "icc_within_architecture",
    "icc_within_architecture_unpaired",
    "reliable",
    "used_by",
]


def _metric_names(node) -> Iterable[str]:
    """Every value of a ``metric`` key anywhere in a claim's (substituted) parameters."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "metric":
                yield from [value] if isinstance(value, str) else value
            else:
                yield from _metric_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _metric_names(value)


def claim_metrics(claims: Sequence[Claim]) -> dict[str, list[str]]:
    """metric name -> ids of the claims that select it."""
    used: dict[str, list[str]] = {}
    for claim in claims:
        for name in dict.fromkeys(_metric_names(claim.params)):
            used.setdefault(name, []).append(claim.id)
    return used


def _encoder_values(rows: pd.DataFrame) -> pd.DataFrame:
    """One value per replicate: the summary row where a metric also has class rows, else the
    mean over classes (per-class recalls)."""
    if "class" in rows and rows["class"].isna().any():
        rows = rows[rows["class"].isna()]
    keys = ["model", "cell", "architecture", "seed"]
    return rows.groupby(keys, as_index=False)["value"].mean()


def reliability_table(
    metrics: pd.DataFrame,
    claims: Sequence[Claim],
    *,
    min_icc: float = 0.5,
    exclude_objectives: Sequence[str] = ("random",),
) -> pd.DataFrame:
    """Seed reliability of every per-encoder metric the claims use, at its final layer.

    One row per (dataset, stage, metric, variant): ``sd`` over all encoders, the variance
    components and ICCs over all cells (``icc``) and within architecture with seeds as blocks
    (``icc_within_architecture``; the one-way figure beside it), and ``reliable`` =
    ``icc_within_architecture >= min_icc``.
    Only replicated encoders count (a training seed, i.e. zoo and random-init rows); pairwise
    metrics (``model_b``) are not per-encoder and are left out. ``exclude_objectives``: the
    random-init controls are not in most claims' population, and their distance from every
    trained encoder would make any measure look reliable.
    """
    used = claim_metrics(claims)
    df = metrics[metrics["metric"].isin(list(used))]
    if "objective" in df:
        df = df[~df["objective"].isin(list(exclude_objectives))]
    if "model_b" in df:
        df = df[df["model_b"].isna()]
    df = df[df["model"].notna() & pd.to_numeric(df.get("seed"), errors="coerce").notna()]
    df = df.assign(
        variant=df["variant"].fillna(""), value=pd.to_numeric(df["value"], errors="coerce")
    ).dropna(subset=["value"])
    rows = []
    for (dataset, stage, metric, variant), group in df.groupby(
        ["dataset", "stage", "metric", "variant"], sort=True
    ):
        final = group["layer_index"] == group.groupby("model")["layer_index"].transform("max")
        group = group[final]
        values = _encoder_values(group)
        overall = icc_oneway(values["value"], values["cell"])
        within = icc_seed_blocked(
            values["value"], values["cell"], values["seed"], values["architecture"]
        )
        unpaired = icc_oneway(values["value"], values["cell"], values["architecture"])
        icc_w = within["icc"]
        rows.append(
            {
                "dataset": dataset,
                "stage": stage,
                "layer": ",".join(sorted(group["layer"].astype(str).unique())),
                "metric": metric,
                "variant": variant,
                "n_cells": int(overall["n_cells"]),
                "n_replicates": int(overall["n_replicates"]),
                "mean": float(values["value"].mean()),
                "sd": float(values["value"].std(ddof=1)) if len(values) > 1 else np.nan,
                "between_sd": overall["between_sd"],
                "within_sd": overall["within_sd"],
                "icc": overall["icc"],
                "between_sd_within_architecture": within["between_sd"],
                "within_sd_within_architecture": within["within_sd"],
                "shared_seed_sd": within["block_sd"],
                "icc_within_architecture": icc_w,
                "icc_within_architecture_unpaired": unpaired["icc"],
                "reliable": bool(icc_w >= min_icc) if np.isfinite(icc_w) else pd.NA,
                "used_by": ",".join(used[metric]),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def flag_unreliable(summary: pd.DataFrame, reliability: pd.DataFrame) -> pd.Series:
    """Per claim: the measures it uses whose within-architecture ICC is below the bound.

    Text such as ``binding_ood_accuracy/logreg@pretrained (ICC 0.31)``; "" when every measure
    it uses is reliable or could not be assessed (no replicates).
    """
    bad = reliability[reliability["reliable"].eq(False)]
    flags = {claim: [] for claim in summary["claim"]}
    for row in bad.itertuples(index=False):
        variant = f"/{row.variant}" if row.variant else ""
        text = f"{row.metric}{variant}@{row.stage} (ICC {row.icc_within_architecture:.2f})"
        for claim in str(row.used_by).split(","):
            if claim in flags:
                flags[claim].append(text)
    return summary["claim"].map(lambda c: "; ".join(flags[c]))
