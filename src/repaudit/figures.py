"""The report's figures by name: which plot, on which slice of the results.

``FIGURES`` maps a figure name to the config section it needs and a function of
``(metrics, claims, config)``; the workflow makes one job per available figure.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from matplotlib.figure import Figure

from repaudit import plots

GEOMETRY_X = [
    "participation_ratio_normalised",
    "global_isotropy",
    "local_isotropy",
    "effective_rank",
    "rankme",
    "wang_isola_uniformity",
    "wasserstein_uniformity",
    "jacobian_effective_rank",
]


def _first(config: dict, section: str) -> str:
    return config[section]["datasets"][0]


def _first_model(metrics: pd.DataFrame, metric: str) -> str:
    models = metrics.loc[metrics["metric"] == metric, "model"]
    return models.iloc[0] if len(models) else "none"  # the plot explains missing data


FIGURES: dict[str, tuple[str | None, Callable[[pd.DataFrame, pd.DataFrame, dict], Figure]]] = {
    "training_summary": ("finetune", lambda m, c, cfg: plots.training_summary(m)),
    "graph_convexity": (
        "convexity",
        lambda m, c, cfg: plots.convexity_by_layer(m, _first(cfg, "convexity")),
    ),
    "euclidean_convexity": (
        "euclidean_convexity",
        lambda m, c, cfg: plots.euclidean_convexity_by_layer(m, _first(cfg, "euclidean_convexity")),
    ),
    "geometry_vs_binding": (
        "binding",
        lambda m, c, cfg: plots.metric_vs_binding(
            m, GEOMETRY_X, binding_dataset=_first(cfg, "binding")
        ),
    ),
    "uniformity_collapse": (
        "uniformity_study",
        lambda m, c, cfg: plots.collapse_curves(m[m["dataset"] == "synthetic"]),
    ),
    "relative_similarity": (
        "relative",
        lambda m, c, cfg: plots.similarity_heatmaps(
            m, "latent_mrr", cfg["relative"]["layers"][-1], dataset=_first(cfg, "relative")
        ),
    ),
    "stitching": (
        "stitching",
        lambda m, c, cfg: plots.stitching_heatmap(
            m, cfg["relative"]["layers"][-1], dataset=_first(cfg, "stitching")
        ),
    ),
    "concept_layers": (
        "concepts",
        lambda m, c, cfg: plots.gri_matrices(
            m, _first_model(m, "gri_layers"), dataset=_first(cfg, "concepts")
        ),
    ),
    "semantic_structure": (
        "concepts",
        lambda m, c, cfg: plots.semantic_structure(m, dataset=_first(cfg, "concepts")),
    ),
    "claims_forest": (None, lambda m, c, cfg: plots.claims_forest(c)),
}


def available(config: dict) -> list[str]:
    """Figures whose analysis is configured."""
    return [name for name, (section, _) in FIGURES.items() if section is None or section in config]


def make_figure(name: str, metrics: pd.DataFrame, claims: pd.DataFrame, config: dict) -> Figure:
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    return FIGURES[name][1](metrics, claims, config)
