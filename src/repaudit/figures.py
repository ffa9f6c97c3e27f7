"""The report's figures by name: which plot, on which slice of the results.

``FIGURES`` maps a figure name to the config section it needs, the config values it shows
(:func:`figure_config`, its job's only params) and a plot of ``(metrics, claims, **values)``;
the workflow makes one job per available figure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

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


def _first_model(metrics: pd.DataFrame, metric: str) -> str:
    models = metrics.loc[metrics["metric"] == metric, "model"]
    return models.iloc[0] if len(models) else "none"  # the plot explains missing data


def _shown_dataset(section: str) -> Callable[[dict], dict]:
    """The figure shows the first of ``section``'s datasets."""
    return lambda cfg: {"dataset": cfg[section]["datasets"][0]}


def _shown_dataset_and_layer(section: str) -> Callable[[dict], dict]:
    """The figure shows the first of ``section``'s datasets at the last relative layer."""
    return lambda cfg: {**_shown_dataset(section)(cfg), "layer": cfg["relative"]["layers"][-1]}


class FigureSpec(NamedTuple):
    section: str | None  # the figure is made when this config section is present (None: always)
    plot: Callable[..., Figure]  # of (metrics, claims, **shown config values)
    shows: Callable[[dict], dict] = lambda cfg: {}  # config -> the config values it shows


FIGURES: dict[str, FigureSpec] = {
    "training_summary": FigureSpec("finetune", lambda m, c: plots.training_summary(m)),
    "graph_convexity": FigureSpec(
        "convexity",
        lambda m, c, dataset: plots.convexity_by_layer(m, dataset),
        _shown_dataset("convexity"),
    ),
    "euclidean_convexity": FigureSpec(
        "euclidean_convexity",
        lambda m, c, dataset: plots.euclidean_convexity_by_layer(m, dataset),
        _shown_dataset("euclidean_convexity"),
    ),
    "geometry_vs_binding": FigureSpec(
        "binding",
        lambda m, c, dataset: plots.metric_vs_binding(m, GEOMETRY_X, binding_dataset=dataset),
        _shown_dataset("binding"),
    ),
    "uniformity_collapse": FigureSpec(
        "uniformity_study",
        lambda m, c: plots.collapse_curves(m[m["dataset"] == "synthetic"]),
    ),
    "relative_similarity": FigureSpec(
        "relative",
        lambda m, c, dataset, layer: plots.similarity_heatmaps(
            m, "latent_mrr", layer, dataset=dataset
        ),
        _shown_dataset_and_layer("relative"),
    ),
    "stitching": FigureSpec(
        "stitching",
        lambda m, c, dataset, layer: plots.stitching_heatmap(m, layer, dataset=dataset),
        _shown_dataset_and_layer("stitching"),
    ),
    "concept_layers": FigureSpec(
        "concepts",
        lambda m, c, dataset: plots.gri_matrices(m, _first_model(m, "gri_layers"), dataset=dataset),
        _shown_dataset("concepts"),
    ),
    "semantic_structure": FigureSpec(
        "concepts",
        lambda m, c, dataset: plots.semantic_structure(m, dataset=dataset),
        _shown_dataset("concepts"),
    ),
    "claims_forest": FigureSpec(None, lambda m, c: plots.claims_forest(c)),
}


def available(config: dict) -> list[str]:
    """Figures whose analysis is configured."""
    return [
        name for name, spec in FIGURES.items() if spec.section is None or spec.section in config
    ]


def _spec(name: str) -> FigureSpec:
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    return FIGURES[name]


def figure_config(name: str, config: dict) -> dict:
    """The config values figure ``name`` shows: its job reruns when these change, not others."""
    return _spec(name).shows(config)


def make_figure(name: str, metrics: pd.DataFrame, claims: pd.DataFrame, shown: dict) -> Figure:
    """Figure ``name`` of ``metrics``/``claims``, with ``shown`` from :func:`figure_config`."""
    return _spec(name).plot(metrics, claims, **shown)
