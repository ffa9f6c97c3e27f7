"""Relative representations and cross-encoder latent-space similarity: the table functions.

Moschella, Maiorca, Fumero, Norelli, Locatello & Rodolà, "Relative representations enable
zero-shot latent space communication", ICLR 2023, arXiv:2209.15430 (Sec. 3, Eq. 1; Sec. 4.1
latent similarity; Sec. 5.2 zero-shot image-classification stitching).

A relative representation describes a sample by its cosine similarity to a fixed, ordered set of
*anchor* samples, r(x) = [cos(e_x, e_a1), ..., cos(e_x, e_aK)]. The same anchor *items* are
embedded by every encoder, so relative spaces of encoders with different widths share one
K-dimensional coordinate system and are invariant to rotations, reflections and isotropic
rescaling of each latent space.

The pieces live in one module each: :mod:`repaudit.metrics.anchors` (select_anchors),
:mod:`repaudit.metrics.projection` (relative_projection), :mod:`repaudit.metrics.similarity`
(linear_cka, mutual_knn, latent_similarity) and :mod:`repaudit.metrics.stitching`
(weighted_f1_score, train_decoder, decoder_predict, stitching_scores). This module holds the two
table functions relative_table (all-pairs similarity) and stitching_table (zero-shot stitching)
and re-exports the pieces, so ``from repaudit.metrics.relative import X`` keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from repaudit.metrics._common import as_features, as_labels, to_numpy, unit_rows
from repaudit.metrics.anchors import ANCHOR_METHODS, select_anchors
from repaudit.metrics.projection import _relative_factors, relative_projection
from repaudit.metrics.similarity import (
    _centered_gram_norm,
    _check_k,
    _cka_from_centered,
    _jaccard_mrr,
    _overlap,
    _relative_pair_operands,
    _topk_both_ways,
    _topk_neighbours,
    latent_similarity,
    linear_cka,
    mutual_knn,
)
from repaudit.metrics.stitching import (
    STITCHING_VARIANTS,
    StitchingDecoder,
    decoder_predict,
    stitching_scores,
    train_decoder,
    weighted_f1_score,
)

__all__ = [
    "ANCHOR_METHODS",
    "STITCHING_VARIANTS",
    "StitchingDecoder",
    "decoder_predict",
    "latent_similarity",
    "linear_cka",
    "mutual_knn",
    "relative_projection",
    "relative_table",
    "select_anchors",
    "stitching_scores",
    "stitching_table",
    "train_decoder",
    "weighted_f1_score",
]


def _prepare_tables(features_by_model, labels, split, layers):
    """Check the table inputs; the features come back as numpy arrays (any array-like in)."""
    if not isinstance(features_by_model, Mapping) or not features_by_model:
        raise ValueError("features_by_model must be a non-empty dict model -> {layer: array}.")
    models = list(features_by_model)
    split_arr = to_numpy(split, "split").astype(str)
    if split_arr.ndim != 1:
        raise ValueError(f"split must be 1-D (n_samples,); got shape {split_arr.shape}.")
    n = split_arr.shape[0]
    lab = as_labels(labels, n, "labels", expected="one per entry of split")
    if layers is None:
        first = list(features_by_model[models[0]])
        layers = [ly for ly in first if all(ly in features_by_model[m] for m in models)]
    layers = [str(ly) for ly in layers]
    if not layers:
        raise ValueError("no layer is shared by all models; pass layers= explicitly.")
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for m in models:
        missing = [ly for ly in layers if ly not in features_by_model[m]]
        if missing:
            raise ValueError(f"model {m!r} lacks layers {missing}; extract them or drop them.")
        arrays[m] = {}
        for ly in layers:
            name = f"features[{m!r}][{ly!r}]"
            arr = as_features(features_by_model[m][ly], name, min_rows=1, dtype=None)
            if arr.shape[0] != n:
                raise ValueError(
                    f"{name} has shape {arr.shape}; expected ({n}, d) to match labels and split."
                )
            arrays[m][ly] = arr
    train_idx = np.flatnonzero(split_arr == "train")
    test_idx = np.flatnonzero(split_arr == "test")
    if train_idx.size == 0 or test_idx.size < 2:
        raise ValueError(
            f"need a 'train' split (anchors, decoders) and >= 2 'test' items; got "
            f"{train_idx.size} train and {test_idx.size} test rows."
        )
    return models, layers, lab, train_idx, test_idx, arrays


def _features(arrays, model, layer, rows) -> np.ndarray:
    return as_features(arrays[model][layer][rows], f"features[{model!r}][{layer!r}]")


def _table_anchors(
    features_by_model, models, layer, lab, train_idx, n_anchors, method, seed, anchor_X
) -> np.ndarray:
    """Anchor positions within the train split, shared by every model."""
    if method in ("uniform", "stratified"):
        return select_anchors(n_anchors, labels=lab[train_idx], method=method, seed=seed)
    if anchor_X is not None:
        ref = as_features(anchor_X, "anchor_X", min_rows=1)
        if ref.shape[0] != lab.shape[0]:
            raise ValueError(
                f"anchor_X has {ref.shape[0]} rows; expected one per sample ({lab.shape[0]})."
            )
        ref = ref[train_idx]
    else:
        # reference shared by all encoders: their unit-norm train features side by side, so no
        # single encoder decides where the anchors go
        ref = np.concatenate(
            [unit_rows(_features(features_by_model, m, layer, train_idx), m) for m in models],
            axis=1,
        )
    return select_anchors(n_anchors, X=ref, method=method, seed=seed)


def _check_anchor_args(method: str, n_anchors: int, n_train: int) -> None:
    if method not in ANCHOR_METHODS:
        raise ValueError(f"anchor_method must be one of {ANCHOR_METHODS}; got {method!r}.")
    if not 1 <= n_anchors <= n_train:
        raise ValueError(
            f"n_anchors={n_anchors} but the train split has {n_train} rows; lower n_anchors."
        )


def _layer_anchors(
    features_by_model, models, layers, lab, train_idx, n_anchors, method, seed, anchor_X
) -> dict[str, np.ndarray]:
    """Anchor positions per layer: one choice for all layers unless fps/kmeans pick them in
    each layer's features (no ``anchor_X``)."""
    per_layer = method in ("fps", "kmeans") and anchor_X is None
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        if per_layer or not out:
            anchors = _table_anchors(
                features_by_model, models, layer, lab, train_idx, n_anchors, method, seed, anchor_X
            )
        out[layer] = anchors
    return out


def relative_table(
    features_by_model: Mapping[str, Mapping[str, np.ndarray]],
    labels,
    split,
    *,
    layers: Sequence[str] | None = None,
    n_anchors: int = 768,
    anchor_method: str = "uniform",
    center: bool = False,
    k: int = 5,
    mutual_k: int = 10,
    seed: int = 0,
    anchor_X=None,
    device: str = "cpu",
) -> pd.DataFrame:
    """All-pairs similarity of encoders in relative and absolute space (arXiv:2209.15430).

    Anchors: ``n_anchors`` items of the ``train`` split chosen once by ``anchor_method`` and
    ``seed`` (:func:`select_anchors`) and shared by every model (and layer for uniform /
    stratified; fps / kmeans choose per layer in the concatenated unit-norm train features of
    all models, or once in ``anchor_X`` (n, p) if given, e.g. pixels). Compared items: the
    ``test`` split. For every ordered pair (model = source A, model_b = target B, A == B
    included) and layer:

    - ``latent_jaccard`` / ``latent_mrr`` / ``latent_cosine`` (:func:`latent_similarity`, k),
      variant ``relative`` (relative projections, ``center``) and ``absolute`` (raw features;
      NaN with a ``reason`` unless the widths match);
    - ``linear_cka`` (:func:`linear_cka`, absolute, symmetric);
    - ``mutual_knn`` (:func:`mutual_knn`, absolute, symmetric, k = ``mutual_k``; platonic-rep's
      default is 10 while the paper's retrieval uses 5).

    Returns
    -------
    Tidy DataFrame: ``model``, ``model_b``, ``layer``, ``metric``, ``variant``, ``value``,
    ``reason`` ("" if defined), and parameters ``n_anchors``, ``anchor_method``, ``center``,
    ``seed`` (relative rows only; NA otherwise), ``k`` (neighbourhood size; NA for CKA) and
    ``n_samples`` (test items compared).
    """
    models, layers, lab, train_idx, test_idx, features_by_model = _prepare_tables(
        features_by_model, labels, split, layers
    )
    n_test = test_idx.size
    k = _check_k(k, n_test, "relative_table (k)", self_excluded=False)
    mutual_k = _check_k(mutual_k, n_test, "relative_table (mutual_k)", self_excluded=True)
    _check_anchor_args(anchor_method, n_anchors, train_idx.size)
    rel_params = {
        "n_anchors": n_anchors,
        "anchor_method": anchor_method,
        "center": center,
        "seed": seed,
    }
    na_params = dict.fromkeys(rel_params)
    rows: list[dict] = []

    def add(a, b, layer, metric, variant, value, kk, params, reason=""):
        rows.append(
            {
                "model": a,
                "model_b": b,
                "layer": layer,
                "metric": metric,
                "variant": variant,
                "value": float(value),
                "reason": reason,
                **params,
                "k": kk,
                "n_samples": n_test,
            }
        )

    anchors_by_layer = _layer_anchors(
        features_by_model, models, layers, lab, train_idx, n_anchors, anchor_method, seed, anchor_X
    )
    for layer in layers:
        anchors = anchors_by_layer[layer]
        width, centered, gram_norm, factors, abs_t, knn_self = {}, {}, {}, {}, {}, {}
        unit, T = {}, {}  # keyed by (variant, model)
        for m in models:
            X = _features(features_by_model, m, layer, test_idx)
            A = _features(features_by_model, m, layer, train_idx[anchors])
            width[m] = X.shape[1]
            centered[m] = X - X.mean(axis=0)
            gram_norm[m] = _centered_gram_norm(centered[m])
            Xu, Au = _relative_factors(X, A, center)
            rel = Xu @ Au.T  # = relative_projection(X, A, center)
            unit["relative", m] = unit_rows(rel, f"relative features[{m!r}][{layer!r}]")
            unit["absolute", m] = Xu if not center else unit_rows(X, f"features[{m!r}]")
            # unit relative rows = diag(1/|r|) Xu Auᵀ, kept factored for the kNN searches
            factors[m] = (Xu / np.linalg.norm(rel, axis=1, keepdims=True), Au)
            T["relative", m] = _topk_neighbours(
                *_relative_pair_operands(factors[m], factors[m], device), k
            )
            abs_t[m] = torch.from_numpy(unit["absolute", m].astype(np.float32)).to(device)
            T["absolute", m] = _topk_neighbours(abs_t[m], abs_t[m], k)
            knn_self[m] = _topk_neighbours(abs_t[m], abs_t[m], mutual_k, exclude_self=True)
        # S(w) for src a, tgt b; one similarity pass serves (a, b) and (b, a), and for a == b
        # the search is exactly the one that gave T
        S: dict[tuple[str, str, str], np.ndarray] = {}
        for variant in ("relative", "absolute"):
            for i, a in enumerate(models):
                for b in models[i:]:
                    if a == b:
                        S[variant, a, a] = T[variant, a]
                    elif variant == "relative":
                        S[variant, a, b], S[variant, b, a] = _topk_both_ways(
                            *_relative_pair_operands(factors[a], factors[b], device), k
                        )
                    elif width[a] == width[b]:
                        S[variant, a, b], S[variant, b, a] = _topk_both_ways(abs_t[a], abs_t[b], k)
        symmetric: dict[tuple[str, str], tuple[float, float]] = {}
        for a in models:
            for b in models:
                for variant in ("relative", "absolute"):
                    if (variant, a, b) in S:
                        jac, mrr = _jaccard_mrr(T[variant, b], S[variant, a, b])
                        cos = float(np.mean(np.sum(unit[variant, a] * unit[variant, b], axis=1)))
                        reason = ""
                    else:
                        jac = mrr = cos = float("nan")
                        reason = (
                            f"width mismatch ({width[a]} vs {width[b]}): absolute spaces are "
                            "not comparable"
                        )
                    params = rel_params if variant == "relative" else na_params
                    for metric, val in (
                        ("latent_jaccard", jac),
                        ("latent_mrr", mrr),
                        ("latent_cosine", cos),
                    ):
                        add(a, b, layer, metric, variant, val, k, params, reason)
                if (b, a) in symmetric:
                    cka, mknn = symmetric[b, a]
                else:
                    cka = _cka_from_centered(centered[a], centered[b], gram_norm[a], gram_norm[b])
                    mknn = float(np.mean(_overlap(knn_self[a], knn_self[b])) / mutual_k)
                    symmetric[a, b] = (cka, mknn)
                add(a, b, layer, "linear_cka", "absolute", cka, pd.NA, na_params)
                add(a, b, layer, "mutual_knn", "absolute", mknn, mutual_k, na_params)
    df = pd.DataFrame(rows)
    df["n_anchors"] = df["n_anchors"].astype("Int64")
    df["seed"] = df["seed"].astype("Int64")
    df["k"] = df["k"].astype("Int64")
    df["center"] = df["center"].astype("boolean")
    return df


def stitching_table(
    features_by_model: Mapping[str, Mapping[str, np.ndarray]],
    labels,
    split,
    *,
    layers: Sequence[str] | None = None,
    n_anchors: int = 768,
    anchor_method: str = "uniform",
    center: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 10,
    lr: float = 1e-4,
    batch_size: int = 32,
    hidden: int = 768,
    seed: int = 0,
    anchor_X=None,
    variants: Sequence[str] = ("relative", "absolute"),
    device: str = "cpu",
) -> pd.DataFrame:
    """Zero-shot stitching table (arXiv:2209.15430, Sec. 5.2, Table 5 protocol).

    Anchors are drawn from the ``train`` split as in :func:`relative_table` (``seed``); for
    every layer, each model gets a decoder per seed in ``seeds`` trained on its train split
    in each of ``variants`` (:data:`STITCHING_VARIANTS`: ``relative``, projections onto its own
    embeddings of the shared anchors, as the paper; ``relative_whitened``, the same after anchor
    whitening, see :func:`relative_projection`; ``absolute``, raw features), which is scored on
    the ``test`` split of every model (:func:`stitching_scores`).

    Returns
    -------
    Tidy DataFrame: ``model`` (decoder), ``model_b`` (encoder at test time), ``layer``,
    ``metric`` = ``stitching_f1`` (100 x weighted F1), ``variant`` (one of ``variants``),
    ``value`` (mean over seeds), ``value_std``, ``n_seeds``, ``reason``, and
    parameters ``n_anchors``, ``anchor_method``, ``center``, ``seed`` (relative rows only; NA
    otherwise), ``epochs``, ``lr``, ``hidden``, ``n_samples`` (test items).
    """
    models, layers, lab, train_idx, test_idx, features_by_model = _prepare_tables(
        features_by_model, labels, split, layers
    )
    _check_anchor_args(anchor_method, n_anchors, train_idx.size)
    unknown = [v for v in variants if v not in STITCHING_VARIANTS]
    if unknown or not variants or len(set(variants)) != len(variants):
        raise ValueError(
            f"variants must be distinct names from {STITCHING_VARIANTS}; got {list(variants)}."
        )
    y_train, y_test = lab[train_idx], lab[test_idx]
    rows, n_train = np.concatenate([train_idx, test_idx]), train_idx.size
    kwargs = dict(
        seeds=seeds, epochs=epochs, lr=lr, batch_size=batch_size, hidden=hidden, device=device
    )
    frames = []
    anchors_by_layer = _layer_anchors(
        features_by_model, models, layers, lab, train_idx, n_anchors, anchor_method, seed, anchor_X
    )
    for layer in layers:
        anchors = anchors_by_layer[layer]
        # train rows first, then test: one projection per model serves both splits (the anchor
        # statistics are computed once), and anchor positions index the train rows
        feats = {m: _features(features_by_model, m, layer, rows) for m in models}
        for variant in variants:
            rel = variant != "absolute"
            spaces = feats
            if rel:
                whiten = variant == "relative_whitened"
                spaces = {
                    m: relative_projection(f, f[anchors], center, whiten) for m, f in feats.items()
                }
            tr = {m: s[:n_train] for m, s in spaces.items()}
            te = {m: s[n_train:] for m, s in spaces.items()}
            df = stitching_scores(tr, te, y_train, y_test, **kwargs)
            df.insert(2, "layer", layer)
            df.insert(3, "metric", "stitching_f1")
            df.insert(4, "variant", variant)
            df["n_anchors"] = pd.array([n_anchors if rel else pd.NA] * len(df), dtype="Int64")
            df["anchor_method"] = anchor_method if rel else None
            df["center"] = pd.array([center if rel else pd.NA] * len(df), dtype="boolean")
            df["seed"] = pd.array([seed if rel else pd.NA] * len(df), dtype="Int64")
            df["epochs"] = epochs
            df["lr"] = lr
            df["hidden"] = hidden
            df["n_samples"] = test_idx.size
            frames.append(df)
    return pd.concat(frames, ignore_index=True)
