"""Figures of the audit: one function per figure, tidy tables in, a matplotlib Figure out.

Every function takes pandas DataFrames (the long metrics table ``results/tables/metrics.tsv``,
the synthetic uniformity study, or the claims summary), draws with seaborn on the
object-oriented :class:`matplotlib.figure.Figure` API (no pyplot state, so nothing leaks and any
backend works) and returns the Figure; the caller saves it (SVG + PNG). No file I/O here.

Conventions shared by all figures (see :func:`_style`): seaborn "whitegrid" style, "paper"
context, colour-blind palette, constrained layout, legends outside the data area, axis labels
with units, titles that say what is shown. Missing data never raises: a panel (or the whole
figure) whose metric is absent shows an annotated empty axes naming the missing metric.

Input tables may come straight from :func:`repaudit.io.read_table`, which turns empty strings
into NaN and may parse layer names as numbers; every function canonicalises the key columns
(``layer``, ``variant``, ``class``, ...) back to strings first. Rows that share every key a
figure uses (e.g. several seeds) are averaged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import cycler  # re-exported by matplotlib: no separate dependency
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.transforms import blended_transform_factory

from repaudit import stats
from repaudit.claims.selectors import pool_replicates
from repaudit.tables import layer_index

__all__ = [
    "claims_forest",
    "collapse_curves",
    "convexity_by_layer",
    "euclidean_convexity_by_layer",
    "gri_matrices",
    "metric_vs_binding",
    "replication_forest",
    "semantic_structure",
    "similarity_heatmaps",
    "stitching_heatmap",
    "training_summary",
]

PALETTE = sns.color_palette("colorblind")
VERDICT_COLOURS = {
    "supported": PALETTE[2],
    "not supported": PALETTE[3],
    "underpowered": PALETTE[7],
    "no data": "0.6",
}
_MISSING_COLOUR = "0.35"
_MAX_ANNOTATED_CELLS = 12  # write values into heatmap cells up to a 12 x 12 matrix

# metric -> (readable name, unit shown in axis labels, factor applied to the stored value)
_METRICS: dict[str, tuple[str, str, float]] = {
    "graph_convexity": ("graph convexity", "%", 1.0),
    "euclidean_convexity": ("Euclidean convexity", "%", 1.0),
    "rankme": ("RankMe", "effective dims", 1.0),
    "effective_rank": ("effective rank", "dims", 1.0),
    "participation_ratio": ("participation ratio", "dims", 1.0),
    "participation_ratio_normalised": ("participation ratio / D", "fraction", 1.0),
    "global_isotropy": ("global isotropy", "0–1", 1.0),
    "local_isotropy": ("local isotropy", "0–1", 1.0),
    "nesum": ("NESum", "unitless", 1.0),
    "alpha_req": ("α-ReQ spectral decay", "exponent", 1.0),
    "self_cluster": ("self-cluster", "unitless", 1.0),
    "wasserstein_uniformity": ("W2 uniformity", "lower = more uniform", 1.0),
    "wang_isola_uniformity": ("Wang–Isola L_U", "lower = more uniform", 1.0),
    "jacobian_effective_rank": ("Jacobian effective rank", "dims", 1.0),
    "binding_ood_accuracy": ("OOD binding accuracy (linear probe)", "%", 100.0),
    "binding_knn_accuracy": ("OOD binding accuracy (kNN readout)", "%", 100.0),
    "probe_test_accuracy": ("linear-probe test accuracy", "%", 100.0),
    "finetune_test_accuracy": ("fine-tuned test accuracy", "%", 100.0),
    "latent_jaccard": ("kNN Jaccard", "0–1", 1.0),
    "latent_mrr": ("mean reciprocal rank", "0–1", 1.0),
    "latent_cosine": ("mean cosine", "−1–1", 1.0),
    "linear_cka": ("linear CKA", "0–1", 1.0),
    "mutual_knn": ("mutual kNN", "0–1", 1.0),
    "stitching_f1": ("stitching weighted F1", "× 100", 1.0),
    "gri_layers": ("GRI between layers", "0–1", 1.0),
    "gri_labels": ("GRI with class labels", "0–1", 1.0),
}
# Fixed colour ranges so that heatmaps of the same metric compare across figures.
_RANGES: dict[str, tuple[float, float]] = {
    "latent_jaccard": (0.0, 1.0),
    "latent_mrr": (0.0, 1.0),
    "latent_cosine": (-1.0, 1.0),
    "linear_cka": (0.0, 1.0),
    "mutual_knn": (0.0, 1.0),
    "stitching_f1": (0.0, 100.0),
    "gri_layers": (0.0, 1.0),
}
_KEY_COLUMNS = (
    "dataset",
    "model",
    "model_b",
    "stage",
    "layer",
    "layer_b",
    "class",
    "variant",
    "metric",
    "objective",
    "family",
    "architecture",
    "weights",
    "study",
)
_VARIANT_ORDER = ("relative", "absolute", "manifold", "kmeans", "pca")


# ----------------------------------------------------------------------------- style


def _style() -> mpl.rc_context:
    """The house style as an rc context: seaborn whitegrid + paper context, colour-blind cycle."""
    rc = {
        **sns.axes_style("whitegrid"),
        **sns.plotting_context("paper"),
        "axes.prop_cycle": cycler(color=PALETTE),
        "axes.titlesize": 9,
        "figure.titlesize": 10,
        "legend.frameon": False,
        "image.cmap": "viridis",
    }
    return mpl.rc_context(rc)


def _styled(func: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure inside :func:`_style`.

    Tick objects are created lazily and read rcParams when created; creating the first ones
    inside the rc context (later ticks copy their properties) keeps the saved file in the house
    style whatever rcParams the caller has when it saves.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> Figure:
        with _style():
            fig = func(*args, **kwargs)
            for ax in fig.get_axes():
                for axis in (ax.xaxis, ax.yaxis):
                    axis.get_major_ticks()
                    axis.get_minor_ticks()
        return fig

    return wrapper


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(min(width, 14.0), min(height, 14.0)), layout="constrained")


def _note(ax, text: str) -> None:
    """Turn ``ax`` into an annotated empty panel that says what is missing."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        wrap=True,
        color=_MISSING_COLOUR,
        fontsize=8,
    )
    # tick_params, not set_xticks([]): the panel may share its axes with panels that have data
    ax.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False, which="both")
    ax.grid(False)


def _missing(title: str, text: str) -> Figure:
    fig = _figure(5.0, 2.8)
    ax = fig.subplots()
    _note(ax, text)
    ax.set_title(title)
    return fig


def _label(metric: str, variant: str = "") -> str:
    name, unit, _ = _METRICS.get(metric, (metric.replace("_", " "), "", 1.0))
    if variant:
        name = f"{name} [{variant}]"
    return f"{name} ({unit})" if unit else name


def _name(metric: str) -> str:
    return _METRICS.get(metric, (metric.replace("_", " "), "", 1.0))[0]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _scale(metric: str) -> float:
    return _METRICS.get(metric, ("", "", 1.0))[2]


def _stage_label(stage: str) -> str:
    return "fine-tuned" if stage.startswith("finetuned") else stage


# ----------------------------------------------------------------------------- table helpers


def _canon_value(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with key columns as canonical strings ("" for missing) and ``value`` as float."""
    out = df.copy()
    if "variant" not in out.columns:  # "" is the house value for "no variant"
        out["variant"] = ""
    for col in _KEY_COLUMNS:
        if col in out.columns:
            out[col] = out[col].map(_canon_value).astype(str)
    if "value" in out.columns:
        out["value"] = pd.to_numeric(out["value"], errors="coerce").astype(float)
    return out


def _rows(metrics: pd.DataFrame, metric: str | Iterable[str], **equal) -> pd.DataFrame:
    """Rows of ``metrics`` whose metric is in ``metric`` and whose columns equal ``equal``.

    A filter on a column the table lacks keeps nothing, so missing data reads as "no rows".
    """
    wanted = [metric] if isinstance(metric, str) else list(metric)
    if "metric" not in metrics.columns or "value" not in metrics.columns:
        keys = ["dataset", "model", "stage", "layer", "metric", "variant", "value"]
        return pd.DataFrame(columns=list(dict.fromkeys([*keys, *equal])))
    sub = _prepare(metrics[metrics["metric"].astype(str).isin(wanted)])
    for col, val in equal.items():
        if val is None:
            continue
        if col not in sub.columns:
            return sub.iloc[0:0]
        vals = [val] if isinstance(val, str) else list(val)
        sub = sub[sub[col].isin([_canon_value(v) for v in vals])]
    return sub


def _mean_by(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Average ``value`` over rows sharing ``keys`` (missing key columns count as "")."""
    df = df.copy()
    for k in keys:
        if k not in df.columns:
            df[k] = ""
    return df.groupby(list(keys), as_index=False, sort=False)["value"].mean()


def _layer_key(name: str) -> tuple:
    """Order layer names shallow to deep: integers by value, then others, "final" last."""
    if name.lstrip("-").isdigit():
        return (0, int(name), "")
    return (2, 0, "") if name == "final" else (1, 0, name)


def _layer_order(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=_layer_key)


def _variant_order(names: Iterable[str]) -> list[str]:
    rank = {v: i for i, v in enumerate(_VARIANT_ORDER)}
    return sorted(set(names), key=lambda v: (rank.get(v, len(rank)), v))


def _stage_order(stages: Iterable[str]) -> list[str]:
    return sorted(set(stages), key=lambda s: (s != "pretrained", s))


def _objectives(df: pd.DataFrame, column: str = "objective") -> dict[str, str]:
    """model -> objective (or another model column; first non-empty value, else "unknown")."""
    if column not in df.columns:
        return {m: "unknown" for m in df["model"].unique()}
    out = {}
    for model, grp in df.groupby("model", sort=False):
        vals = [v for v in grp[column] if v]
        out[model] = vals[0] if vals else "unknown"
    return out


def _pick_dataset(df: pd.DataFrame, dataset: str | None) -> tuple[pd.DataFrame, str]:
    """Rows of one dataset: the given one, else the first in sorted order (named in titles)."""
    if "dataset" not in df.columns:
        return df, "" if dataset is None else str(dataset)
    if dataset is not None:
        return df[df["dataset"] == str(dataset)], str(dataset)
    names = sorted(df["dataset"].unique())
    if not names:
        return df, ""
    return df[df["dataset"] == names[0]], names[0]


def _with_position(df: pd.DataFrame, x: str) -> pd.DataFrame:
    """Add ``layer_index``/``depth`` as :func:`repaudit.tables.collect_metrics` defines them."""
    df = df.copy()
    idx = df.groupby("model")["layer"].transform(layer_index)
    top = idx.groupby(df["model"]).transform("max").clip(lower=1)
    df[x] = idx if x == "layer_index" else idx / top
    return df


def _grid(n: int, col_wrap: int) -> tuple[int, int]:
    ncol = max(1, min(col_wrap, n))
    return math.ceil(n / ncol), ncol


def _hide_unused(axes: np.ndarray, used: int, ncol: int) -> None:
    """Hide empty grid cells; panels above a hidden cell get their own x tick labels back."""
    for ax in axes[used:]:
        ax.set_visible(False)
    for ax in axes[max(0, used - ncol) : used]:
        ax.xaxis.set_tick_params(labelbottom=True)


# ----------------------------------------------------------------------------- convexity


@_styled
def convexity_by_layer(
    metrics: pd.DataFrame,
    dataset: str,
    *,
    metric: str = "graph_convexity",
    x: str = "depth",
    col_wrap: int = 3,
) -> Figure:
    """Convexity of class regions per layer, one panel per model (Tětková et al., Nat. Commun.).

    Lines: pretrained and each fine-tuned stage (``class == "all"`` rows, the layer score in %).
    The permutation chance level ``{metric}_chance`` is drawn dashed with a band of
    ± 2 × ``{metric}_chance_std`` when those rows exist (graph convexity).

    Parameters
    ----------
    metrics : tidy metrics table
    dataset : str
        Dataset whose features were scored.
    metric : str
        ``"graph_convexity"`` (default) or ``"euclidean_convexity"``.
    x : {"depth", "layer_index"}
        Relative depth (0 = first tapped layer, 1 = final embedding) or layer position.
    col_wrap : int
        Panels per row.
    """
    if x not in ("depth", "layer_index"):
        raise ValueError(f"x must be 'depth' or 'layer_index', got {x!r}.")
    title = f"{_cap(_name(metric))} of class regions per layer ({dataset})"
    wanted = [metric, f"{metric}_chance", f"{metric}_chance_std"]
    d = _rows(metrics, wanted, dataset=dataset)
    if "class" in d.columns:
        d = d[d["class"].isin(["all", ""])]
    main = d[d["metric"] == metric]
    if main.empty or main["value"].notna().sum() == 0:
        return _missing(title, f"no '{metric}' rows (class 'all') for dataset '{dataset}'")
    if x not in d.columns:
        d = _with_position(d, x)
        main = d[d["metric"] == metric]

    keys = ["model", "stage", "layer", x]
    objectives = _objectives(main)
    models = sorted(main["model"].unique())
    stages = _stage_order(main["stage"].unique())
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(stages)}
    nrow, ncol = _grid(len(models), col_wrap)
    fig = _figure(max(2.9 * ncol + 1.6, 5.6), 2.3 * nrow + 0.8)
    # layer positions are per model (depths differ), so only relative depth shares its x axis
    axes = fig.subplots(nrow, ncol, sharex=x == "depth", sharey=True, squeeze=False).ravel()
    _hide_unused(axes, len(models), ncol)
    has_chance = False
    for ax, model in zip(axes, models, strict=False):
        drawn = False
        for stage in stages:
            sel = d[(d["model"] == model) & (d["stage"] == stage)]
            series = _mean_by(sel[sel["metric"] == metric], keys).sort_values(x)
            series = series[series["value"].notna()]
            if series.empty:
                continue
            drawn = True
            colour = colours[stage]
            ax.plot(series[x], series["value"], marker="o", ms=3, lw=1.4, color=colour)
            chance = _mean_by(sel[sel["metric"] == f"{metric}_chance"], keys)
            if chance["value"].notna().any():
                has_chance = True
                std = _mean_by(sel[sel["metric"] == f"{metric}_chance_std"], keys)
                ch = chance.merge(std, on=keys, how="left", suffixes=("", "_std")).sort_values(x)
                ax.plot(ch[x], ch["value"], ls="--", lw=0.8, color=colour)
                if "value_std" in ch and ch["value_std"].notna().any():
                    half = 2.0 * ch["value_std"].fillna(0.0)
                    ax.fill_between(
                        ch[x],
                        ch["value"] - half,
                        ch["value"] + half,
                        color=colour,
                        alpha=0.18,
                        lw=0,
                    )
        if not drawn:
            _note(ax, f"'{metric}' is NaN at every layer")
        ax.set_title(f"{model} ({objectives.get(model, 'unknown')})")
        if x == "layer_index":
            ticks = _mean_by(main[main["model"] == model], ["layer", x])
            ax.set_xticks(ticks[x], ticks["layer"])
    fig.supxlabel(
        "relative depth (0 = first layer, 1 = final embedding)" if x == "depth" else "layer"
    )
    fig.supylabel(_label(metric))
    handles = [
        Line2D([], [], color=colours[s], marker="o", ms=3, label=_stage_label(s)) for s in stages
    ]
    if has_chance:
        handles.append(Line2D([], [], color="0.4", ls="--", lw=0.8, label="permutation chance"))
        handles.append(Patch(color="0.4", alpha=0.18, lw=0, label="chance ± 2 s.d."))
    fig.legend(handles=handles, loc="outside right center", title="stage")
    fig.suptitle(title)
    return fig


def euclidean_convexity_by_layer(
    metrics: pd.DataFrame, dataset: str, *, x: str = "depth", col_wrap: int = 3
) -> Figure:
    """:func:`convexity_by_layer` for ``euclidean_convexity`` (segment-sampling convexity, %)."""
    return convexity_by_layer(
        metrics, dataset, metric="euclidean_convexity", x=x, col_wrap=col_wrap
    )


# ----------------------------------------------------------------------------- binding


def _parse_metric(spec: str) -> tuple[str, str | None]:
    name, sep, variant = spec.partition(":")
    return name, (variant if sep else None)


def _correlation_text(x: np.ndarray, y: np.ndarray, architecture: np.ndarray) -> str:
    """Raw Pearson r, and r within architecture (what the claims decide on) when it exists."""
    n = x.size
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return f"n = {n}: r undefined"
    if n < 4:  # repaudit.stats.pearson needs 4 points for its interval and test
        r = float(np.corrcoef(x, y)[0, 1])
        return f"Pearson r = {r:.2f}, n = {n}"
    res = stats.pearson(x, y)
    text = f"Pearson r = {res.estimate:.2f}, p = {res.p:.2g}, n = {n}"
    if len(set(architecture)) > 1:
        try:
            within = stats.stratified_correlation(
                x, y, pd.DataFrame({"architecture": architecture}), n_perm=999, seed=0
            )
        except ValueError:
            return text + "\nwithin architecture: undefined"
        text += f"\nwithin architecture r = {within.estimate:.2f}, p = {within.p:.2g}"
    return text


@_styled
def metric_vs_binding(
    metrics: pd.DataFrame,
    metrics_x: Sequence[str],
    binding_metric: str = "binding_knn_accuracy:cosine_ood",
    *,
    dataset: str | None = None,
    binding_dataset: str = "binding",
    layer: str = "final",
    stage: str = "pretrained",
    col_wrap: int = 3,
) -> Figure:
    """Geometry metrics and Jacobian effective rank against compositional binding, across models.

    One panel per x metric (and variant): x = the metric of each model at ``layer`` / ``stage``,
    y = ``binding_metric`` on ``binding_dataset`` (same layer and stage), one point per model
    (seed replicates of a design cell averaged, as in the claims) coloured by objective with
    its architecture as the marker shape, an OLS fit with its 95 % bootstrap band (seaborn
    ``regplot``, ``seed=0``), Pearson r with its two-sided p
    (:func:`repaudit.stats.pearson`), and the r within architecture that the claims decide on
    (:func:`repaudit.stats.stratified_correlation`): a cloud of architectures can make a raw r.

    Parameters
    ----------
    metrics : tidy metrics table
    metrics_x : sequence of str
        Metric names; ``"name:variant"`` pins one variant (e.g. ``"rankme:uncentred"``,
        ``"jacobian_effective_rank:images"``), otherwise every variant found gets a panel.
    binding_metric : str
        y metric, read from ``binding_dataset``; ``"name:variant"`` pins a variant (the default
        is the claims' binding measure, the kNN readout on disjoint colours).
    dataset : str or None
        Where x metrics come from (the natural-image dataset). None: the first other dataset,
        in sorted order, that has the metric, else ``binding_dataset`` itself.
    layer, stage : str
        Which representation is compared.
    """
    metrics = pool_replicates(metrics)  # one point per design cell, as the claims count them
    binding_metric, binding_variant = _parse_metric(binding_metric)
    title = f"{_name(binding_metric)} vs representation metrics (layer {layer}, {stage})"
    binding = _rows(metrics, binding_metric, dataset=binding_dataset, layer=str(layer), stage=stage)
    if binding_variant is not None:
        binding = binding[binding["variant"] == binding_variant]
    y_by_model = _mean_by(binding, ["model"]).dropna(subset=["value"])
    if y_by_model.empty:
        return _missing(
            title, f"no '{binding_metric}' rows for dataset '{binding_dataset}', layer {layer}"
        )
    y_by_model["value"] *= _scale(binding_metric)
    y_by_model = y_by_model.rename(columns={"value": "y"})

    panels: list[tuple[str, str, pd.DataFrame | None, str]] = []
    for spec in metrics_x:
        name, variant = _parse_metric(spec)
        rows = _rows(metrics, name, layer=str(layer), stage=stage)
        if variant is not None:
            rows = rows[rows["variant"] == variant]
        sets = sorted(rows["dataset"].unique()) if "dataset" in rows else []
        if dataset is not None:
            chosen = str(dataset) if str(dataset) in sets else None
        else:
            natural = [s for s in sets if s != binding_dataset]
            chosen = natural[0] if natural else (binding_dataset if sets else None)
        if chosen is None:
            panels.append((name, variant or "", None, ""))
            continue
        rows = rows[rows["dataset"] == chosen]
        for var in [variant] if variant is not None else _variant_order(rows["variant"]):
            panels.append((name, var, rows[rows["variant"] == var], chosen))
    if not panels:
        return _missing(title, "no x metrics were requested")

    binding_rows = _rows(metrics, binding_metric, dataset=binding_dataset)
    objectives = _objectives(binding_rows)
    architectures = _objectives(binding_rows, "architecture")
    hue_order = sorted(set(objectives.values()))
    colours = {o: PALETTE[i % len(PALETTE)] for i, o in enumerate(hue_order)}
    shapes = ["o", "s", "^", "D", "v", "P", "X"]
    arch_order = sorted(set(architectures.values()))
    markers = {a: shapes[i % len(shapes)] for i, a in enumerate(arch_order)}
    nrow, ncol = _grid(len(panels), col_wrap)
    fig = _figure(max(2.9 * ncol + 1.6, 5.6), 2.6 * nrow + 0.6)
    axes = fig.subplots(nrow, ncol, sharey=True, squeeze=False).ravel()
    _hide_unused(axes, len(panels), ncol)
    for ax, (name, _, rows, source) in zip(axes, panels, strict=False):
        if rows is None:
            _note(ax, f"'{name}' missing at layer {layer} ({stage})")
            continue
        x_by_model = _mean_by(rows, ["model"]).rename(columns={"value": "x"})
        x_by_model["x"] *= _scale(name)
        data = x_by_model.merge(y_by_model, on="model").dropna(subset=["x", "y"])
        if data.empty:
            _note(ax, f"no model has both '{name}' ({source}) and '{binding_metric}'")
            continue
        data["objective"] = data["model"].map(objectives).fillna("unknown")
        data["architecture"] = data["model"].map(architectures).fillna("unknown")
        if len(data) >= 3 and np.ptp(data["x"]) > 0:
            sns.regplot(
                data=data,
                x="x",
                y="y",
                ax=ax,
                scatter=False,
                ci=95,
                seed=0,
                color="0.35",
                line_kws={"lw": 1.0},
            )
        for (obj, arch), grp in data.groupby(["objective", "architecture"]):
            ax.scatter(
                grp["x"], grp["y"], s=22, color=colours.get(obj, "0.2"), marker=markers[arch],
                zorder=3,
            )  # fmt: skip
        ax.text(
            0.03,
            0.97,
            _correlation_text(
                data["x"].to_numpy(float),
                data["y"].to_numpy(float),
                data["architecture"].to_numpy(str),
            ),
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=7,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
        )
        ax.set_title(f"x from {source}", fontsize=7, color="0.35")
    for ax, (name, var, _, _) in zip(axes, panels, strict=False):
        ax.set_xlabel(_label(name, var))  # after regplot, which labels axes by column name
        ax.set_ylabel("")
    fig.supylabel(f"{_label(binding_metric)}, {binding_dataset}")
    handles = [
        Line2D([], [], ls="", marker="o", ms=5, color=colours[o], label=o) for o in hue_order
    ]
    if len(arch_order) > 1:
        handles += [
            Line2D([], [], ls="", marker=markers[a], ms=5, color="0.3", label=a) for a in arch_order
        ]
    handles.append(Line2D([], [], color="0.35", label="OLS fit, 95 % CI"))
    fig.legend(handles=handles, loc="outside right center", title="objective / architecture")
    fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- uniformity


def _theory_w2(eta: np.ndarray) -> np.ndarray:
    """W2 of a collapse onto (1 − η)·m coordinates: √(2 − 2√(1 − η)) (Fang et al., §4)."""
    return np.sqrt(2.0 - 2.0 * np.sqrt(1.0 - eta))


@_styled
def collapse_curves(study: pd.DataFrame) -> Figure:
    """Fang et al.'s synthetic study (arXiv:2403.00642, Fig. 4-6) from :func:`collapse_study`.

    Top: W2 (with the theory curve √(2 − 2√(1 − η))) and −L_U against the collapse degree η,
    one line per dimension m. Bottom: the properties instance cloning (ICC), feature cloning
    (FCC) and feature baby (FBC) as −W2 and −L_U (higher = more uniform, the paper's sign)
    against the number of clones n, one line per η.
    """
    title = "Uniformity metrics under dimensional collapse (synthetic)"
    needed = {"study", "eta", "metric", "value"}
    if not needed <= set(study.columns):
        lacking = sorted(needed - set(study.columns))
        return _missing(title, f"no collapse-study rows: the table lacks columns {lacking}")
    s = _prepare(study)
    s["study"] = s["study"].str.lower()
    for col in ("dim", "eta", "n_clones"):
        if col in s.columns:
            s[col] = pd.to_numeric(s[col], errors="coerce")
    w2, lu = "wasserstein_uniformity", "wang_isola_uniformity"

    fig = _figure(10.0, 7.4)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.55])
    ax_w2, ax_lu = top.subplots(1, 2)
    collapse = s[s["study"] == "collapse"]
    dims = sorted(collapse["dim"].dropna().unique()) if "dim" in s.columns else []
    dim_colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(dims)}
    for ax, metric, sign in ((ax_w2, w2, 1.0), (ax_lu, lu, -1.0)):
        rows = collapse[collapse["metric"] == metric]
        if rows.empty or not dims:
            _note(ax, f"no '{metric}' rows in the collapse study")
            continue
        for m in dims:
            curve = _mean_by(rows[rows["dim"] == m], ["eta"]).sort_values("eta")
            ax.plot(curve["eta"], sign * curve["value"], marker="o", ms=2.5, color=dim_colours[m])
        ax.set_xlabel("collapse degree η (fraction of zeroed coordinates)")
    if collapse[collapse["metric"] == w2].shape[0]:
        grid = np.linspace(0.0, float(collapse["eta"].max()), 200)
        ax_w2.plot(grid, _theory_w2(grid), color="black", ls="--", lw=0.9)
    ax_w2.set_ylabel("W2 (lower = more uniform)")
    ax_w2.set_title("W2 distance to N(0, I/m)")
    ax_lu.set_ylabel("−L_U (higher = more uniform)")
    ax_lu.set_title("Wang–Isola uniformity −L_U (t = 2)")
    handles = [
        Line2D([], [], color=c, marker="o", ms=2.5, label=f"m = {int(m)}")
        for m, c in dim_colours.items()
    ]
    handles.append(Line2D([], [], color="black", ls="--", label="theory √(2−2√(1−η))"))
    top.legend(handles=handles, loc="outside right upper", title="dimension")

    axes = bottom.subplots(2, 3, sharex=True)
    props = s[s["study"].isin(["icc", "fcc", "fbc"])]
    etas = sorted(props["eta"].dropna().unique())
    # η is ordered: a sequential, colour-blind-safe ramp (viridis without its pale end)
    ramp = sns.color_palette("viridis", len(etas) + 1)
    eta_colours = {e: ramp[i] for i, e in enumerate(etas)}
    names = {
        "icc": "instance cloning (ICC)",
        "fcc": "feature cloning (FCC)",
        "fbc": "feature baby (FBC)",
    }
    for row, (metric, ylabel) in enumerate(((w2, "uniformity −W2"), (lu, "uniformity −L_U"))):
        for col, prop in enumerate(("icc", "fcc", "fbc")):
            ax = axes[row, col]
            rows = props[(props["study"] == prop) & (props["metric"] == metric)]
            if row == 0:
                ax.set_title(names[prop])
            if rows.empty or "n_clones" not in rows.columns:
                _note(ax, f"no '{metric}' rows for {prop.upper()}")
                continue
            for eta in etas:
                curve = _mean_by(rows[rows["eta"] == eta], ["n_clones"]).sort_values("n_clones")
                if curve.empty:
                    continue
                ax.plot(
                    curve["n_clones"], -curve["value"], marker="o", ms=2.5, color=eta_colours[eta]
                )
            ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
            if col == 0:
                ax.set_ylabel(ylabel)
            if row == 1:
                ax.set_xlabel("number of clones n")
    handles = [
        Line2D([], [], color=c, marker="o", ms=2.5, label=f"η = {e:.2f}")
        for e, c in eta_colours.items()
    ]
    if handles:
        bottom.legend(handles=handles, loc="outside right upper", title="collapse")
    bottom.suptitle("Properties under cloning (higher = more uniform)", fontsize=9)
    fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- heatmaps


def _heatmap(
    ax, mat: pd.DataFrame, norm: Normalize, cmap: str, fmt: str, xlabel: str, ylabel: str
) -> None:
    """One matrix panel; NaN cells are hatched and, when values are written, marked "n/a"."""
    values = mat.to_numpy(dtype=float)
    annotate = max(values.shape) <= _MAX_ANNOTATED_CELLS
    ax.set_facecolor("white")
    sns.heatmap(
        mat.astype(float),
        ax=ax,
        cmap=cmap,
        vmin=norm.vmin,
        vmax=norm.vmax,
        mask=np.isnan(values),
        cbar=False,
        annot=bool(annotate and np.isfinite(values).any()),
        fmt=fmt,
        annot_kws={"fontsize": 6},
        square=True,
        linewidths=0.5,
        linecolor="white",
    )
    for i, j in zip(*np.nonzero(np.isnan(values)), strict=True):
        ax.add_patch(Rectangle((j, i), 1, 1, fill=False, hatch="////", ec="0.7", lw=0.0, zorder=2))
        if annotate:
            ax.text(
                j + 0.5,
                i + 0.5,
                "n/a",
                ha="center",
                va="center",
                fontsize=6,
                color="0.25",
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"},
            )
    ax.grid(False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    # 45° labels of more than a few columns overlap their neighbours; upright ones do not
    ax.tick_params(axis="x", labelrotation=45 if values.shape[1] <= 8 else 90)
    ax.tick_params(axis="y", labelrotation=0)


def _norm_for(metric: str, values: np.ndarray) -> Normalize:
    finite = values[np.isfinite(values)]
    lo, hi = _RANGES.get(metric, (np.nan, np.nan))
    if finite.size:
        lo = float(np.nanmin([lo, finite.min()])) if np.isfinite(lo) else float(finite.min())
        hi = float(np.nanmax([hi, finite.max()])) if np.isfinite(hi) else float(finite.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return Normalize(lo, hi)


def _matrix_panels(
    panels: list[tuple[str, pd.DataFrame]],
    metric: str,
    title: str,
    xlabel: str,
    ylabel: str,
    fmt: str,
) -> Figure:
    """Side-by-side heatmaps with one shared colour scale and one colour bar."""
    values = np.concatenate([m.to_numpy(float).ravel() for _, m in panels])
    norm = _norm_for(metric, values)
    cmap = "viridis"
    size = max(max(m.shape) for _, m in panels)
    side = float(np.clip(0.35 * size + 1.4, 2.6, 5.5))
    fig = _figure(side * len(panels) + 1.2, side + 0.9)
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False).ravel())
    for ax, (name, mat) in zip(axes, panels, strict=True):
        _heatmap(ax, mat, norm, cmap, fmt, xlabel, ylabel if ax is axes[0] else "")
        ax.set_title(name)
    bar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), shrink=0.8)
    bar.set_label(_label(metric))
    if np.isnan(values).any():
        fig.legend(
            handles=[Patch(fc="white", ec="0.7", hatch="////", label="n/a (undefined)")],
            loc="outside lower right",
        )
    fig.suptitle(title)
    return fig


def _pair_matrices(
    metrics: pd.DataFrame,
    metric: str,
    layer: str,
    dataset: str | None,
    stage: str,
    rows_col: str,
    cols_col: str,
) -> tuple[list[tuple[str, pd.DataFrame]], str]:
    d = _rows(metrics, metric, layer=str(layer), stage=stage)
    d, chosen = _pick_dataset(d, dataset)
    if d.empty or "model_b" not in d.columns:
        return [], chosen
    models = sorted(set(d["model"]) | set(d["model_b"]))
    panels = []
    for variant in _variant_order(d["variant"]):
        agg = _mean_by(d[d["variant"] == variant], [rows_col, cols_col])
        mat = agg.pivot(index=rows_col, columns=cols_col, values="value")
        mat = mat.reindex(index=models, columns=models).astype(float)
        panels.append((variant or _name(metric), mat))
    return panels, chosen


@_styled
def similarity_heatmaps(
    metrics: pd.DataFrame,
    metric: str,
    layer: str,
    *,
    dataset: str | None = None,
    stage: str = "pretrained",
) -> Figure:
    """Model × model similarity at one layer, relative vs absolute space side by side.

    Rows are the source model A (``model``), columns the target B (``model_b``); one panel per
    variant (``relative``, ``absolute``, ...) on a shared colour scale. Undefined cells (e.g.
    absolute comparisons of different widths) are hatched and marked "n/a".

    Parameters
    ----------
    metrics : tidy metrics table
    metric : str
        ``latent_jaccard``, ``latent_mrr``, ``latent_cosine``, ``linear_cka`` or ``mutual_knn``.
    layer, stage : str
        Which representation is compared.
    dataset : str or None
        None: the first dataset in sorted order (named in the title).
    """
    panels, chosen = _pair_matrices(metrics, metric, layer, dataset, stage, "model", "model_b")
    title = f"{_cap(_name(metric))} between models, layer {layer} ({stage}"
    title += f", {chosen})" if chosen else ")"
    if not panels:
        return _missing(title, f"no '{metric}' rows with model_b at layer {layer} ({stage})")
    return _matrix_panels(
        panels, metric, title, "target model B (model_b)", "source model A (model)", ".2f"
    )


@_styled
def stitching_heatmap(
    metrics: pd.DataFrame,
    layer: str = "final",
    *,
    dataset: str | None = None,
    stage: str = "pretrained",
) -> Figure:
    """Zero-shot stitching: weighted F1 × 100 of encoder (rows) + decoder (columns) pairs.

    ``stitching_f1`` rows carry model = decoder and model_b = encoder; the diagonal is the
    unstitched model. Relative and absolute stitching side by side; undefined pairs (NaN, e.g.
    absolute stitching across widths) are hatched and marked "n/a".
    """
    metric = "stitching_f1"
    panels, chosen = _pair_matrices(metrics, metric, layer, dataset, stage, "model_b", "model")
    title = f"Zero-shot stitching F1, layer {layer} ({stage}"
    title += f", {chosen})" if chosen else ")"
    if not panels:
        return _missing(title, f"no '{metric}' rows at layer {layer} ({stage})")
    return _matrix_panels(panels, metric, title, "decoder (model)", "encoder (model_b)", ".0f")


# ----------------------------------------------------------------------------- concepts


@_styled
def gri_matrices(
    metrics: pd.DataFrame,
    model: str,
    *,
    dataset: str | None = None,
    stage: str = "pretrained",
) -> Figure:
    """Layer × layer generalised Rand index of the concepts of one model, one panel per method.

    Methods (``variant``): ``manifold`` (NLMCD), ``kmeans``, ``pca`` (Vielhaben et al.,
    arXiv:2412.06639, Eq. 3). Layers where concept discovery failed are hatched "n/a".
    """
    metric = "gri_layers"
    d = _rows(metrics, metric, model=model, stage=stage)
    d, chosen = _pick_dataset(d, dataset)
    title = f"Concept alignment between layers of {model} (GRI, {stage}"
    title += f", {chosen})" if chosen else ")"
    if d.empty or "layer_b" not in d.columns:
        return _missing(title, f"no '{metric}' rows for model '{model}' ({stage})")
    layers = _layer_order(set(d["layer"]) | set(d["layer_b"]) - {""})
    panels = []
    for method in _variant_order(d["variant"]):
        agg = _mean_by(d[d["variant"] == method], ["layer", "layer_b"])
        mat = agg.pivot(index="layer", columns="layer_b", values="value")
        panels.append((method or "GRI", mat.reindex(index=layers, columns=layers).astype(float)))
    return _matrix_panels(panels, metric, title, "layer", "layer", ".2f")


@_styled
def semantic_structure(
    metrics: pd.DataFrame,
    *,
    method: str = "manifold",
    dataset: str | None = None,
    stage: str = "pretrained",
    x: str = "depth",
) -> Figure:
    """GRI between each layer's concepts and the class labels against depth, per objective.

    One line per model (``gri_labels`` rows of the given concept ``method``), coloured by
    training objective: the "semantic structure" curves of Vielhaben et al. (arXiv:2412.06639).
    """
    if x not in ("depth", "layer_index"):
        raise ValueError(f"x must be 'depth' or 'layer_index', got {x!r}.")
    metric = "gri_labels"
    d = _rows(metrics, metric, variant=method, stage=stage)
    d, chosen = _pick_dataset(d, dataset)
    title = f"Semantic structure: {method} concepts vs class labels ({stage}"
    title += f", {chosen})" if chosen else ")"
    d = d.dropna(subset=["value"])
    if not d.empty and x not in d.columns:
        d = _with_position(d, x)
    if d.empty:
        return _missing(title, f"no '{metric}' rows for method '{method}' ({stage})")
    objectives = _objectives(d)
    hue_order = sorted(set(objectives.values()))
    colours = {o: PALETTE[i % len(PALETTE)] for i, o in enumerate(hue_order)}
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    fig = _figure(6.4, 3.6)
    ax = fig.subplots()
    for i, model in enumerate(sorted(d["model"].unique())):
        curve = _mean_by(d[d["model"] == model], ["layer", x]).sort_values(x)
        ax.plot(
            curve[x],
            curve["value"],
            marker=markers[i % len(markers)],
            ms=3,
            lw=1.2,
            color=colours[objectives[model]],
            label=f"{model} ({objectives[model]})",
        )
    ax.set_xlabel(
        "relative depth (0 = first layer, 1 = final embedding)" if x == "depth" else "layer"
    )
    ax.set_ylabel(_label(metric))
    fig.legend(loc="outside right center", title="model (objective, colour)")
    ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------- claims


def _fmt(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.3g}"


def _row_panels(df: pd.DataFrame, group: str, width: float, heights: tuple):
    """A figure with one panel per value of ``group`` (in order of appearance), each as tall as
    its rows: ``heights`` = (per row, per panel, fixed) inches. Yields (axis, value, rows)."""
    groups = list(dict.fromkeys(df[group]))
    counts = [int((df[group] == g).sum()) for g in groups]
    per_row, per_panel, fixed = heights
    fig = _figure(width, per_row * len(df) + per_panel * len(groups) + fixed)
    axes = np.atleast_1d(
        fig.subplots(len(groups), 1, squeeze=False, gridspec_kw={"height_ratios": counts}).ravel()
    )
    panels = [
        (ax, g, df[df[group] == g].reset_index(drop=True))
        for ax, g in zip(axes, groups, strict=True)
    ]
    return fig, panels


@_styled
def claims_forest(summary: pd.DataFrame, *, group: str = "paper") -> Figure:
    """Forest plot of the claims summary: estimate and confidence interval per claim.

    One row per claim (id on the y axis), the point and its CI coloured by verdict, a dashed
    line at 0 and the estimate, CI, p, the number of independent units, the minimum
    detectable effect and a fragility mark written to the right, because estimates of
    different claims live on different scales. Claims are grouped into panels by ``group``
    (the paper) when that column exists, each panel with its own x scale. Rows whose estimate
    is NaN show "n/a"; claims without data are named under the title.
    """
    title = "Paper claims: effect sizes with confidence intervals"
    needed = {"claim", "estimate"}
    if summary is None or not needed <= set(summary.columns) or summary.empty:
        return _missing(title, "no claims summary rows (columns 'claim' and 'estimate' needed)")
    s = summary.copy()
    if "n_units" not in s and "n" in s:  # a summary from before units were named
        s["n_units"] = s["n"]
    for col in ("estimate", "ci_low", "ci_high", "p", "n_units", "mde"):
        s[col] = pd.to_numeric(s[col], errors="coerce") if col in s else np.nan
    s["fragile"] = s["fragile"].astype(str).str.lower().eq("true") if "fragile" in s else False
    s["verdict"] = s["verdict"].fillna("").astype(str) if "verdict" in s else ""
    s["claim"] = s["claim"].astype(str)
    if group in s.columns:
        s["_group"] = s[group].fillna("").astype(str)
    else:
        s["_group"] = ""
    fig, panels = _row_panels(s, "_group", 7.5, (0.28, 0.75, 1.0))
    for ax, name, rows in panels:
        y = np.arange(len(rows))
        text_tf = blended_transform_factory(ax.transAxes, ax.transData)
        for i, r in rows.iterrows():
            colour = VERDICT_COLOURS.get(r["verdict"], "black")
            est, lo, hi = r["estimate"], r["ci_low"], r["ci_high"]
            if np.isfinite(est):
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.hlines(i, lo, hi, color=colour, lw=1.6)
                ax.plot(est, i, "o", ms=5, color=colour)
                label = _fmt(est)
                label += f" [{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite([lo, hi]).all() else " (no CI)"
                if np.isfinite(r["p"]):
                    label += f"  p = {r['p']:.2g}"
                if np.isfinite(r["n_units"]):
                    label += f"  n = {int(r['n_units'])}"
                if np.isfinite(r["mde"]):
                    label += f"  mde = {_fmt(r['mde'])}"
                if r["fragile"]:
                    label += "  fragile"
            else:
                ax.text(0.5, i, "n/a", transform=text_tf, ha="center", va="center", color="0.4")
                label = "n/a"
            ax.text(1.02, i, label, transform=text_tf, ha="left", va="center", fontsize=6.5)
        ax.axvline(0.0, color="0.2", lw=0.9, ls="--", zorder=1.5)
        ax.margins(x=0.08)
        ax.set_yticks(y, rows["claim"])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="y", visible=False)
        if name:
            ax.set_title(name, loc="left")
    panels[-1][0].set_xlabel("effect size (units of each claim's test: r, ρ, difference in %, ...)")
    handles = [
        Line2D([], [], color=c, marker="o", ms=5, label=v) for v, c in VERDICT_COLOURS.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, title="verdict")
    empty = s.loc[s["verdict"] == "no data", "claim"].tolist()
    if empty:
        title += f"\nno data in this config: {', '.join(empty)}"
    fig.suptitle(title)
    return fig


REPLICATION_COLOURS = {
    "consistent": PALETTE[2],
    "inconsistent": PALETTE[3],
    "smaller than d33": PALETTE[1],
    "cannot tell": "0.6",
}
_STATISTIC_LABELS = {
    "pearson_r": "Pearson r",
    "spearman_rho": "Spearman ρ",
    "r2": "R²",
    "mean_difference": "mean difference",
    "proportion": "proportion",
    "exact_value": "exact value",
    "other": "other",
}


@_styled
def replication_forest(table: pd.DataFrame) -> Figure:
    """Paper vs ours per claim: two markers per row and the replication's prediction interval.

    One row per claim with a published number (claims without one are listed under the
    title), one panel per statistic (their scales differ): the paper's value as an open
    diamond, ours as a dot coloured by the replication verdict, and the 95 % prediction
    interval for a replication at our n as a bar (for exact values: the tolerance).
    """
    title = "Replication: the papers' numbers and ours"
    needed = {"claim", "paper_value", "our_value", "verdict"}
    if table is None or not needed <= set(table.columns) or table.empty:
        return _missing(title, "no replication rows (columns claim, paper_value, our_value)")
    t = table.copy()
    for col in ("paper_value", "our_value", "pi_low", "pi_high"):
        t[col] = pd.to_numeric(t[col], errors="coerce") if col in t else np.nan
    without = t.loc[t["paper_value"].isna(), "claim"].astype(str).tolist()
    t = t[t["paper_value"].notna()].reset_index(drop=True)
    if t.empty:
        return _missing(title, "no claim has a published number")
    t["statistic"] = t.get("statistic", pd.Series("other", index=t.index)).fillna("other")
    fig, panels = _row_panels(t, "statistic", 7.0, (0.3, 0.8, 1.2))
    for ax, name, rows in panels:
        text_tf = blended_transform_factory(ax.transAxes, ax.transData)
        for i, r in rows.iterrows():
            colour = REPLICATION_COLOURS.get(r["verdict"], "black")
            if np.isfinite([r["pi_low"], r["pi_high"]]).all():
                ax.hlines(i, r["pi_low"], r["pi_high"], color="0.7", lw=3, zorder=1)
            ax.plot(r["paper_value"], i, "D", ms=6, mfc="none", mec="0.15", zorder=3)
            if np.isfinite(r["our_value"]):
                ax.plot(r["our_value"], i, "o", ms=5, color=colour, zorder=4)
            ax.text(1.02, i, r["verdict"], transform=text_tf, ha="left", va="center",
                    fontsize=6.5, color=colour)  # fmt: skip
        ax.set_yticks(np.arange(len(rows)), rows["claim"].astype(str))
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.margins(x=0.1)
        ax.grid(axis="y", visible=False)
        ax.set_title(_STATISTIC_LABELS.get(name, name), loc="left")
    handles = [
        Line2D([], [], ls="", marker="D", ms=6, mfc="none", mec="0.15", label="paper"),
        Line2D([], [], ls="", marker="o", ms=5, color="0.3", label="ours"),
        Line2D([], [], color="0.7", lw=3, label="95 % prediction interval"),
    ] + [
        Line2D([], [], ls="", marker="o", ms=5, color=c, label=v)
        for v, c in REPLICATION_COLOURS.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4)
    if without:
        title += f"\nno published number: {', '.join(without)}"
    fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- reliability


@_styled
def reliability_dumbbell(table: pd.DataFrame, min_icc: float = 0.5) -> Figure:
    """Within-architecture ICC of every measure the claims use, unpaired and seed-blocked.

    One row per measure of ``results/stats/reliability.tsv`` with an ICC, one panel per stage:
    the one-way figure (``icc_within_architecture_unpaired``) as an open circle, the
    seed-blocked one that decides (``icc_within_architecture``) as a dot, coloured by whether it
    reaches ``min_icc`` (dashed line), joined by a line: its length is the seed effect the
    architecture's objectives share.
    """
    title = "Reliability: do measures separate objectives beyond seed noise?"
    needed = {"metric", "stage", "icc_within_architecture", "icc_within_architecture_unpaired"}
    if table is None or not needed <= set(table.columns):
        return _missing(title, f"no reliability table (columns {sorted(needed)})")
    t = table.copy()
    for col in ("icc_within_architecture", "icc_within_architecture_unpaired"):
        t[col] = pd.to_numeric(t[col], errors="coerce")
    t = t[t["icc_within_architecture"].notna()].reset_index(drop=True)
    if t.empty:
        return _missing(title, "no replicated measure (train_seeds has one seed)")
    variant = t["variant"].fillna("").astype(str) if "variant" in t else ""
    t["label"] = [_label(m, v) for m, v in zip(t["metric"], variant, strict=True)]
    order = {stage: i for i, stage in enumerate(_stage_order(t["stage"]))}
    t["rank"] = t["stage"].map(order)
    t["stage"] = t["stage"].map(_stage_label)
    t = t.sort_values(["rank", "icc_within_architecture"], ascending=[True, False])
    good, bad = PALETTE[2], PALETTE[3]
    fig, panels = _row_panels(t.reset_index(drop=True), "stage", 6.0, (0.22, 0.7, 1.1))
    for ax, name, rows in panels:
        for i, r in rows.iterrows():
            blocked, unpaired = r["icc_within_architecture"], r["icc_within_architecture_unpaired"]
            colour = good if blocked >= min_icc else bad
            if np.isfinite(unpaired):
                ax.plot([unpaired, blocked], [i, i], color="0.75", lw=1.5, zorder=1)
                ax.plot(unpaired, i, "o", ms=5, mfc="none", mec="0.3", zorder=2)
            ax.plot(blocked, i, "o", ms=5, color=colour, zorder=3)
        ax.axvline(min_icc, color="0.3", ls="--", lw=0.8)
        ax.set_yticks(rows.index, rows["label"])
        ax.set_ylim(rows.index.max() + 0.5, rows.index.min() - 0.5)
        ax.set_xlim(min(-0.3, float(t["icc_within_architecture_unpaired"].min()) - 0.05), 1.02)
        ax.grid(axis="y", visible=False)
        ax.set_title(name, loc="left")
        ax.set_xlabel("ICC within architecture")
    handles = [
        Line2D([], [], ls="", marker="o", ms=5, mfc="none", mec="0.3", label="one-way (unpaired)"),
        Line2D([], [], ls="", marker="o", ms=5, color=good, label=f"seed-blocked >= {min_icc}"),
        Line2D([], [], ls="", marker="o", ms=5, color=bad, label=f"seed-blocked < {min_icc}"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3)
    fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- training


@_styled
def training_summary(metrics: pd.DataFrame) -> Figure:
    """Linear-probe vs fine-tuned test accuracy per model, grouped by objective, per dataset.

    ``probe_test_accuracy`` (stage pretrained, frozen features) and ``finetune_test_accuracy``
    (stage finetuned_<dataset>) as a dot plot in %, joined per model.
    """
    title = "Test accuracy: linear probe (frozen) vs fine-tuned"
    probe, tuned = "probe_test_accuracy", "finetune_test_accuracy"
    d = _rows(metrics, [probe, tuned]).dropna(subset=["value"])
    if d.empty:
        return _missing(title, f"no '{probe}' or '{tuned}' rows")
    if "dataset" not in d.columns:
        d["dataset"] = ""
    datasets = sorted(d["dataset"].unique())
    objectives = _objectives(d)
    order = sorted(d["model"].unique(), key=lambda m: (objectives[m], m))
    kinds = {probe: ("linear probe", PALETTE[0], "o"), tuned: ("fine-tuned", PALETTE[1], "D")}
    fig = _figure(3.6 * len(datasets) + 1.8, 0.3 * len(order) + 2.0)
    axes = fig.subplots(1, len(datasets), sharey=True, squeeze=False).ravel()
    for ax, name in zip(axes, datasets, strict=True):
        sub = d[d["dataset"] == name]
        wide = _mean_by(sub, ["model", "metric"]).pivot(
            index="model", columns="metric", values="value"
        )
        wide = wide.reindex(index=order, columns=[probe, tuned]) * 100.0
        y = np.arange(len(order))
        ax.hlines(y, wide.min(axis=1), wide.max(axis=1), color="0.75", lw=1.2, zorder=1)
        for metric, (_, colour, marker) in kinds.items():
            ax.plot(wide[metric], y, ls="", marker=marker, ms=5, color=colour, zorder=3)
        previous = None
        for i, model in enumerate(order):
            if previous is not None and objectives[model] != previous:
                ax.axhline(i - 0.5, color="0.6", lw=0.6)
            previous = objectives[model]
        ax.set_yticks(y, [f"{m} ({objectives[m]})" for m in order])
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_xlim(-2, 102)
        ax.set_xlabel("test accuracy (%)")
        ax.set_title(name or "dataset")
        ax.grid(axis="y", visible=False)
    handles = [
        Line2D([], [], ls="", marker=m, ms=5, color=c, label=lab) for lab, c, m in kinds.values()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, title="readout")
    fig.suptitle(title)
    return fig
