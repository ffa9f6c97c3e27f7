"""Figures: every function returns a Figure with data, saves, and survives missing data / NaN."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import Collection, PathCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from repaudit import plots

MODELS = {"cnn_sup": "supervised", "cnn_simclr": "simclr", "vit_mae": "mae", "vit_dino": "dino"}
LAYERS = ["0", "1", "2", "final"]


def _base(model: str, layer: str, **extra) -> dict:
    idx = LAYERS.index(layer)
    row = {
        "dataset": "digits",
        "model": model,
        "stage": "pretrained",
        "architecture": model.split("_")[0],
        "family": model.split("_")[0],
        "objective": MODELS[model],
        "weights": "zoo",
        "layer": layer,
        "layer_index": idx,
        "depth": idx / (len(LAYERS) - 1),
        "variant": "",
        "class": "",
    }
    row.update(extra)
    return row


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for m, model in enumerate(MODELS):
        for layer in LAYERS:
            depth = LAYERS.index(layer) / 3
            for stage, bump in (("pretrained", 0.0), ("finetuned_digits", 15.0 * depth)):
                rows.append(
                    _base(
                        model,
                        layer,
                        stage=stage,
                        metric="graph_convexity",
                        value=40 + 30 * depth + bump + rng.normal(),
                        **{"class": "all"},
                    )
                )
                rows.append(  # a per-class row that the layer plot must ignore
                    _base(
                        model,
                        layer,
                        stage=stage,
                        metric="graph_convexity",
                        value=-500.0,
                        **{"class": "3"},
                    )
                )
                rows.append(
                    _base(
                        model,
                        layer,
                        stage=stage,
                        metric="graph_convexity_chance",
                        value=12.0,
                        **{"class": "all"},
                    )
                )
                rows.append(
                    _base(
                        model,
                        layer,
                        stage=stage,
                        metric="graph_convexity_chance_std",
                        value=1.5,
                        **{"class": "all"},
                    )
                )
                rows.append(
                    _base(
                        model,
                        layer,
                        stage=stage,
                        metric="euclidean_convexity",
                        value=60 + 10 * depth,
                    )
                )
            for method in ("manifold", "kmeans", "pca"):
                rows.append(
                    _base(
                        model,
                        layer,
                        metric="gri_labels",
                        variant=method,
                        value=0.3 + 0.4 * depth + 0.02 * m,
                    )
                )
                for layer_b in LAYERS:
                    gap = abs(LAYERS.index(layer) - LAYERS.index(layer_b))
                    value = (
                        np.nan
                        if (method == "pca" and "final" in (layer, layer_b))
                        else 1 - 0.2 * gap
                    )
                    rows.append(
                        _base(
                            model,
                            layer,
                            metric="gri_layers",
                            variant=method,
                            layer_b=layer_b,
                            value=value,
                        )
                    )
        # final-layer geometry on the natural dataset, binding on the binding dataset
        for metric, value in (
            ("rankme", 10.0 + 3 * m),
            ("effective_rank", 8.0 + 2 * m + rng.normal()),
            ("jacobian_effective_rank", 5.0 + m),
        ):
            variants = ["uncentred", "centred"] if metric == "rankme" else [""]
            if metric == "jacobian_effective_rank":
                variants = ["images", "noise"]
            for var in variants:
                rows.append(_base(model, "final", metric=metric, variant=var, value=value))
        rows.append(
            _base(
                model,
                "final",
                dataset="binding",
                metric="binding_knn_accuracy",
                variant="cosine_ood",
                value=0.2 + 0.1 * m + 0.01 * rng.normal(),
            )
        )
        rows.append(_base(model, "final", metric="probe_test_accuracy", value=0.7 + 0.05 * m))
        rows.append(
            _base(
                model,
                "final",
                stage="finetuned_digits",
                metric="finetune_test_accuracy",
                value=0.9 + 0.02 * m,
            )
        )
        for other in MODELS:
            for var in ("relative", "absolute"):
                undefined = var == "absolute" and model[:3] != other[:3]
                for metric in ("latent_jaccard", "linear_cka", "stitching_f1"):
                    value = 1.0 if model == other else 0.5 + 0.1 * rng.random()
                    if metric == "stitching_f1":
                        value *= 90
                    rows.append(
                        _base(
                            model,
                            "final",
                            metric=metric,
                            variant=var,
                            model_b=other,
                            value=np.nan if undefined else value,
                        )
                    )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    rows = []
    for dim in (32, 256):
        for eta in np.arange(0.0, 1.0, 0.25):
            w2 = np.sqrt(2 - 2 * np.sqrt(1 - eta))
            rows.append(("collapse", dim, eta, 1, "wasserstein_uniformity", w2))
            rows.append(("collapse", dim, eta, 1, "wang_isola_uniformity", -3.5 + 2 * eta))
    for prop in ("ICC", "FCC", "FBC"):
        for eta in (0.25, 0.5, 0.75):
            for n in (1, 2, 3):
                rows.append((prop, 32 * n, eta, n, "wasserstein_uniformity", eta + 0.1 * n))
                rows.append((prop, 32 * n, eta, n, "wang_isola_uniformity", -3 + eta - 0.1 * n))
    return pd.DataFrame(rows, columns=["study", "dim", "eta", "n_clones", "metric", "value"])


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "claim": ["convexity_a", "convexity_b", "binding_r", "uniformity_w2"],
            "paper": ["convexity", "convexity", "binding", "uniformity"],
            "statement": ["above chance", "rises", "geometry predicts binding", "W2 ok"],
            "estimate": [25.0, 0.6, np.nan, -0.1],
            "ci_low": [20.0, 0.2, np.nan, np.nan],
            "ci_high": [30.0, 0.9, np.nan, np.nan],
            "p": [1e-4, 0.01, np.nan, 0.3],
            "n_units": [4, 4, 0, 3],
            "mde": [5.0, 0.9, np.nan, 0.2],
            "fragile": [False, True, False, False],
            "verdict": ["supported", "supported", "no data", "not supported"],
            "note": ["", "", "no data", ""],
        }
    )


# ----------------------------------------------------------------------------- helpers


def _data_artists(ax) -> list:
    return [
        a
        for a in (*ax.lines, *ax.collections, *ax.images)
        if isinstance(a, Line2D | Collection | AxesImage)
    ]


def _visible_axes(fig: Figure) -> list:
    axes = list(fig.axes)
    for sub in fig.subfigs:
        axes += [ax for ax in sub.axes if ax not in axes]
    return [ax for ax in axes if ax.get_visible()]


def _texts(fig: Figure) -> str:
    parts = [t.get_text() for t in fig.findobj(mpl.text.Text)]
    return "\n".join(parts)


def _check_saves(fig: Figure, tmp_path, name: str) -> None:
    for ext in ("svg", "png"):
        path = tmp_path / f"{name}.{ext}"
        fig.savefig(path, dpi=60)
        assert path.stat().st_size > 0
    assert fig.get_figwidth() <= 14 and fig.get_figheight() <= 14


def _check_data(fig: Figure, tmp_path, name: str, save: bool = True) -> None:
    """Data artists on a visible axes; saving (slow: a layout pass per format) once per function."""
    assert isinstance(fig, Figure)
    assert any(_data_artists(ax) for ax in _visible_axes(fig)), "no data artists drawn"
    if save:
        _check_saves(fig, tmp_path, name)


def _check_missing(fig: Figure, tmp_path, name: str, needle: str) -> None:
    assert isinstance(fig, Figure)
    assert needle in _texts(fig), f"missing-data note does not name {needle!r}"
    _check_saves(fig, tmp_path, name)


# ----------------------------------------------------------------------------- convexity


def test_convexity_by_layer_panels_lines_and_chance_band(metrics, tmp_path):
    fig = plots.convexity_by_layer(metrics, "digits")
    _check_data(fig, tmp_path, "convexity")
    axes = _visible_axes(fig)
    assert len(axes) == len(MODELS)
    ax = axes[0]
    # two stages -> two score lines + two dashed chance lines; two chance bands
    solid = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    assert len(solid) == 2
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    # the band is chance ± 2 std = 12 ± 3
    verts = bands[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(verts.min(), 9.0) and np.isclose(verts.max(), 15.0)
    # per-class rows (value -500) are ignored: every plotted score is positive
    assert all(np.all(np.asarray(ln.get_ydata()) > 0) for ln in solid)
    assert "graph convexity (%)" in _texts(fig)


def test_convexity_by_layer_layer_index_axis_without_position_columns(metrics, tmp_path):
    bare = metrics.drop(columns=["depth", "layer_index"])
    fig = plots.convexity_by_layer(bare, "digits", x="layer_index")
    _check_data(fig, tmp_path, "convexity_idx", save=False)
    axes = _visible_axes(fig)
    # 4 panels on a 2 x 3 grid: the bottom panel and the one above an empty cell show the layers
    for ax in (axes[1], axes[3]):
        assert [t.get_text() for t in ax.get_xticklabels()] == LAYERS


def test_euclidean_convexity_by_layer(metrics, tmp_path):
    fig = plots.euclidean_convexity_by_layer(metrics, "digits")
    _check_data(fig, tmp_path, "euclid")
    assert "Euclidean convexity (%)" in _texts(fig)


def test_convexity_missing_metric_and_bad_x(metrics, tmp_path):
    fig = plots.convexity_by_layer(metrics, "imagenet")
    _check_missing(fig, tmp_path, "convexity_missing", "graph_convexity")
    no_euclid = metrics[metrics["metric"] != "euclidean_convexity"]
    _check_missing(
        plots.euclidean_convexity_by_layer(no_euclid, "digits"),
        tmp_path,
        "euclid_missing",
        "euclidean_convexity",
    )
    with pytest.raises(ValueError, match="x must be"):
        plots.convexity_by_layer(metrics, "digits", x="block")


def test_convexity_reads_table_as_io_does(metrics, tmp_path):
    """read_table turns "" into NaN and may parse layers as numbers; the figure must not care."""
    path = tmp_path / "metrics.tsv"
    metrics.to_csv(path, sep="\t", index=False)
    reread = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["NaN", "nan", ""])
    reread = reread[reread["layer"] != "final"]
    fig = plots.convexity_by_layer(reread, "digits", x="layer_index")
    _check_data(fig, tmp_path, "reread", save=False)


# ----------------------------------------------------------------------------- binding


def test_metric_vs_binding_scatter_fit_and_r(metrics, tmp_path):
    fig = plots.metric_vs_binding(
        metrics, ["rankme:uncentred", "effective_rank", "jacobian_effective_rank"]
    )
    _check_data(fig, tmp_path, "binding")
    axes = _visible_axes(fig)
    assert len(axes) == 4  # jacobian_effective_rank contributes two variants
    text = _texts(fig)
    # rankme and binding are both exactly linear in the model index up to tiny noise
    assert "Pearson r = 1.00" in text
    assert "OOD binding accuracy (kNN readout) (%)" in text
    # points are plotted in % (binding 0.2..0.5 -> 20..50)
    points = [c for c in axes[0].collections if isinstance(c, PathCollection)]
    offsets = np.concatenate([c.get_offsets()[:, 1] for c in points])
    assert offsets.size == len(MODELS)
    assert 15 < offsets.min() and offsets.max() < 55
    # one colour per objective
    assert len(points) == len(set(MODELS.values()))


def test_metric_vs_binding_averages_seed_replicates(metrics):
    """Two seeds of every model: still one point per design cell, at the replicates' mean."""
    two = pd.concat(
        [
            metrics.assign(cell=metrics["model"], model=metrics["model"] + "_s0"),
            metrics.assign(
                cell=metrics["model"], model=metrics["model"] + "_s1", value=metrics["value"] + 0.1
            ),
        ]
    )
    fig = plots.metric_vs_binding(two, ["rankme:uncentred"])
    points = [c for c in _visible_axes(fig)[0].collections if isinstance(c, PathCollection)]
    y = np.sort(np.concatenate([c.get_offsets()[:, 1] for c in points]))
    one = plots.metric_vs_binding(metrics, ["rankme:uncentred"])
    points = [c for c in _visible_axes(one)[0].collections if isinstance(c, PathCollection)]
    y_one = np.sort(np.concatenate([c.get_offsets()[:, 1] for c in points]))
    np.testing.assert_allclose(y, y_one + 5.0)  # +0.1 on one of two seeds, in %


def test_metric_vs_binding_missing(metrics, tmp_path):
    no_binding = metrics[metrics["metric"] != "binding_knn_accuracy"]
    fig = plots.metric_vs_binding(no_binding, ["rankme"])
    _check_missing(fig, tmp_path, "binding_missing", "binding_knn_accuracy")
    fig = plots.metric_vs_binding(metrics, ["rankme:uncentred", "nesum"])
    _check_data(fig, tmp_path, "binding_partial", save=False)
    assert "'nesum' missing" in _texts(fig)


def test_metric_vs_binding_few_models(metrics, tmp_path):
    two = metrics[metrics["model"].isin(["cnn_sup", "vit_mae"])]
    fig = plots.metric_vs_binding(two, ["effective_rank"])
    _check_data(fig, tmp_path, "binding_two", save=False)
    assert "r undefined" in _texts(fig)


# ----------------------------------------------------------------------------- uniformity


def test_collapse_curves(study, tmp_path):
    fig = plots.collapse_curves(study)
    _check_data(fig, tmp_path, "collapse")
    axes = _visible_axes(fig)
    assert len(axes) == 8
    w2_ax = next(ax for ax in axes if ax.get_title().startswith("W2"))
    # 2 dims + the theory curve; the data follow the theory exactly here
    assert len(w2_ax.lines) == 3
    theory = w2_ax.lines[-1]
    x, y = theory.get_data()
    assert np.allclose(y, np.sqrt(2 - 2 * np.sqrt(1 - np.asarray(x))))
    lu_ax = next(ax for ax in axes if ax.get_title().startswith("Wang"))
    assert np.all(np.asarray(lu_ax.lines[0].get_ydata()) > 0)  # plotted as −L_U


def test_collapse_curves_missing(study, tmp_path):
    fig = plots.collapse_curves(study[study["study"] != "FBC"])
    _check_data(fig, tmp_path, "collapse_partial", save=False)
    assert "FBC" in _texts(fig)
    _check_missing(plots.collapse_curves(pd.DataFrame()), tmp_path, "collapse_none", "study")


# ----------------------------------------------------------------------------- heatmaps


def test_similarity_heatmaps_nan_cells_marked(metrics, tmp_path):
    fig = plots.similarity_heatmaps(metrics, "latent_jaccard", "final")
    _check_data(fig, tmp_path, "jaccard")
    panels = [ax for ax in _visible_axes(fig) if ax.get_title() in ("relative", "absolute")]
    assert [ax.get_title() for ax in panels] == ["relative", "absolute"]
    absolute = panels[1]
    n_na = sum(t.get_text() == "n/a" for t in absolute.texts)
    assert n_na == 8  # cnn x vit pairs in both directions
    assert not any(t.get_text() == "n/a" for t in panels[0].texts)
    # rows = source model, sorted
    labels = [t.get_text() for t in panels[0].get_yticklabels()]
    assert labels == sorted(MODELS)


def test_heatmaps_all_nan_and_missing(metrics, tmp_path):
    nan = metrics.copy()
    nan.loc[nan["metric"] == "linear_cka", "value"] = np.nan
    fig = plots.similarity_heatmaps(nan, "linear_cka", "final")
    _check_saves(fig, tmp_path, "cka_nan")
    assert "n/a" in _texts(fig)
    _check_missing(
        plots.similarity_heatmaps(metrics, "mutual_knn", "final"), tmp_path, "mknn", "mutual_knn"
    )


def test_stitching_heatmap_orientation(metrics, tmp_path):
    fig = plots.stitching_heatmap(metrics, "final")
    _check_data(fig, tmp_path, "stitching")
    ax = _visible_axes(fig)[0]
    assert ax.get_ylabel() == "encoder (model_b)" and ax.get_xlabel() == "decoder (model)"
    no = metrics[metrics["metric"] != "stitching_f1"]
    _check_missing(plots.stitching_heatmap(no, "final"), tmp_path, "stitch_none", "stitching_f1")


# ----------------------------------------------------------------------------- concepts


def test_gri_matrices(metrics, tmp_path):
    fig = plots.gri_matrices(metrics, "vit_mae")
    _check_data(fig, tmp_path, "gri")
    titles = [ax.get_title() for ax in _visible_axes(fig) if ax.get_title()]
    assert titles[:3] == ["manifold", "kmeans", "pca"]
    pca = next(ax for ax in _visible_axes(fig) if ax.get_title() == "pca")
    assert sum(t.get_text() == "n/a" for t in pca.texts) == 2 * len(LAYERS) - 1
    labels = [t.get_text() for t in pca.get_xticklabels()]
    assert labels == LAYERS
    _check_missing(plots.gri_matrices(metrics, "nope"), tmp_path, "gri_none", "gri_layers")


def test_semantic_structure(metrics, tmp_path):
    fig = plots.semantic_structure(metrics)
    _check_data(fig, tmp_path, "semantic")
    ax = _visible_axes(fig)[0]
    assert len(ax.lines) == len(MODELS)
    colours = {mpl.colors.to_hex(ln.get_color()) for ln in ax.lines}
    assert len(colours) == len(set(MODELS.values()))
    _check_missing(
        plots.semantic_structure(metrics, method="umap"), tmp_path, "semantic_none", "gri_labels"
    )


# ----------------------------------------------------------------------------- claims, training


def test_claims_forest(summary, tmp_path):
    fig = plots.claims_forest(summary)
    _check_data(fig, tmp_path, "claims")
    axes = _visible_axes(fig)
    assert len(axes) == 3  # one panel per paper
    ticks = [t.get_text() for ax in axes for t in ax.get_yticklabels()]
    assert ticks == list(summary["claim"])
    text = _texts(fig)
    assert "n/a" in text and "25 [20, 30]" in text and "mde = 5" in text
    assert "fragile" in text and "no data in this config: binding_r" in text
    supported = mpl.colors.to_hex(plots.VERDICT_COLOURS["supported"])
    first = axes[0]
    point_colours = {
        mpl.colors.to_hex(ln.get_color()) for ln in first.lines if ln.get_marker() == "o"
    }
    assert point_colours == {supported}
    # the zero line is drawn in every panel
    assert all(any(np.allclose(ln.get_xdata(), 0) for ln in ax.lines) for ax in axes)


def test_claims_forest_empty_and_ungrouped(summary, tmp_path):
    _check_missing(plots.claims_forest(summary.iloc[0:0]), tmp_path, "claims_none", "claim")
    fig = plots.claims_forest(summary.drop(columns=["paper"]))
    _check_data(fig, tmp_path, "claims_flat", save=False)
    assert len(_visible_axes(fig)) == 1


def test_training_summary(metrics, tmp_path):
    fig = plots.training_summary(metrics)
    _check_data(fig, tmp_path, "training")
    ax = _visible_axes(fig)[0]
    xs = np.concatenate(
        [np.asarray(ln.get_xdata(), float) for ln in ax.lines if ln.get_marker() in "oD"]
    )
    assert np.all((xs >= 70) & (xs <= 100))  # fractions shown in %
    labels = [t.get_text() for t in ax.get_yticklabels()]
    objectives = [lab.split("(")[1].rstrip(")") for lab in labels]
    assert objectives == sorted(objectives)  # grouped by objective
    only_probe = metrics[metrics["metric"] != "finetune_test_accuracy"]
    _check_data(plots.training_summary(only_probe), tmp_path, "training_probe", save=False)
    none = metrics[~metrics["metric"].str.endswith("test_accuracy")]
    _check_missing(plots.training_summary(none), tmp_path, "training_none", "probe_test_accuracy")


@pytest.mark.parametrize(
    "draw",
    [
        lambda t: plots.convexity_by_layer(t, "digits"),
        lambda t: plots.euclidean_convexity_by_layer(t, "digits"),
        lambda t: plots.metric_vs_binding(t, ["rankme"]),
        lambda t: plots.collapse_curves(t),
        lambda t: plots.similarity_heatmaps(t, "linear_cka", "final"),
        lambda t: plots.stitching_heatmap(t, "final"),
        lambda t: plots.gri_matrices(t, "vit_mae"),
        lambda t: plots.semantic_structure(t),
        lambda t: plots.claims_forest(t),
        lambda t: plots.training_summary(t),
    ],
)
@pytest.mark.parametrize("table", ["empty", "unrelated"])
def test_every_figure_survives_tables_without_its_rows(draw, table, tmp_path):
    if table == "empty":
        df = pd.DataFrame()
    else:  # a tidy table with none of the wanted metrics, and no variant/dataset columns
        df = pd.DataFrame({"model": ["a"], "stage": ["pretrained"], "layer": ["0"]})
        df["metric"], df["value"] = "nesum", 1.0
    fig = draw(df)
    assert isinstance(fig, Figure)
    assert not any(_data_artists(ax) for ax in _visible_axes(fig))
    assert "no " in _texts(fig)
    fig.savefig(tmp_path / "empty.png", dpi=30)


def test_metric_vs_binding_marks_architecture_and_the_within_architecture_r(metrics, tmp_path):
    table = metrics.copy()
    arch = {m: ("cnn_a" if i % 2 else "vit_b") for i, m in enumerate(sorted(MODELS))}
    table["architecture"] = table["model"].map(arch)
    fig = plots.metric_vs_binding(table, ["rankme:uncentred"])
    _check_data(fig, tmp_path, "binding_arch", save=False)
    text = _texts(fig)
    # 4 encoders in 2 architectures: too few for a within-architecture r (needs 5), and said so.
    assert "within architecture: undefined" in text and "cnn_a" in text and "vit_b" in text
    points = [c for c in _visible_axes(fig)[0].collections if isinstance(c, PathCollection)]
    shapes = {tuple(map(tuple, c.get_paths()[0].vertices.round(3))) for c in points}
    assert len(shapes) == 2  # one marker shape per architecture
