"""Compositional (shape–position) binding read out from frozen features.

Chung & Kim, "Global Geometry Is Not Enough for Vision Representations", ICML 2026
(arXiv:2602.03282) test whether shape–position bindings survive a change to a **disjoint colour
set**, with a same/different structural probe alongside and a kNN readout control [S]. The
benchmark's generator and probe are not public, so this module implements our design (all [D]):

- Scenes hold two distinct shapes out of 6 in a left and a right slot; the label is the ordered
  pair (left, right): 6·5 = 30 classes, chance 1/30. The probe trains on scenes painted with one
  colour set (``split == "train"``) and is tested on scenes painted with a disjoint colour set
  (``split == "test"``): out-of-distribution (OOD) colour generalisation.
- A position-blind "bag of shapes" representation sees only the unordered pair {A, B}; both
  orders occur, so it can reach at most 50 % accuracy. Accuracy above 0.5 needs binding.
- Probe: standardised multinomial logistic regression (L2), C chosen by stratified k-fold CV on
  the training split. Control: cosine kNN. Structural probe: ROC-AUC of the cosine similarity
  separating same-structure pairs from swapped pairs (A, B) vs (B, A).

All accuracies are fractions in [0, 1]. scikit-learn is the implementation of the linear probe.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from repaudit.metrics._common import as_features, as_labels, same_width, to_numpy, unit_rows

__all__ = [
    "BAG_OF_SHAPES_CEILING",
    "binding_probe",
    "binding_table",
    "knn_readout",
    "swap_auc",
]

#: Highest accuracy a position-blind (unordered pair) representation can reach on the
#: ordered-pair labels: each unordered pair {A, B} occurs as (A, B) and (B, A) [D].
BAG_OF_SHAPES_CEILING = 0.5

DEFAULT_C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)

# Cosine similarities closer than this count as ties in the swap AUC (floating-point rounding
# must not decide the order of pairs whose similarity is mathematically equal).
_COSINE_DECIMALS = 12


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _labels(y, n: int, name: str) -> np.ndarray:
    return as_labels(y, n, name, integer=True).astype(np.int64, copy=False)


def _check_pair(train_X, train_y, test_X, test_y):
    train_X = as_features(train_X, "train_X", min_rows=1)
    test_X = as_features(test_X, "test_X", min_rows=1)
    same_width(train_X, test_X, "train_X", "test_X", "both must come from the same layer")
    train_y = _labels(train_y, train_X.shape[0], "train_y")
    test_y = _labels(test_y, test_X.shape[0], "test_y")
    unseen = np.setdiff1d(np.unique(test_y), np.unique(train_y))
    if unseen.size:
        raise ValueError(f"test classes {unseen.tolist()} never occur in training; fix the split")
    return train_X, train_y, test_X, test_y


# --------------------------------------------------------------------------------------------
# Linear probe
# --------------------------------------------------------------------------------------------


def _fit_predict(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_eval_list: Sequence[np.ndarray],
    c_values: Sequence[float],
    max_iter: int,
    warm: bool,
) -> tuple[list[list[np.ndarray]], bool]:
    """Standardise on x_fit, fit L2 multinomial LR per C (ascending), predict every eval set."""
    scaler = StandardScaler().fit(x_fit)
    z_fit = scaler.transform(x_fit)
    z_evals = [scaler.transform(x) for x in x_eval_list]
    clf = LogisticRegression(max_iter=max_iter, warm_start=warm)
    preds, converged = [], True
    for c in c_values:
        clf.set_params(C=float(c))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(z_fit, y_fit)
        converged &= not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        preds.append([clf.predict(z) for z in z_evals])
    return preds, converged


def binding_probe(
    train_X,
    train_y,
    test_X,
    test_y,
    *,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    cv: int = 5,
    seed: int = 0,
    max_iter: int = 5000,
) -> dict:
    """OOD-colour binding accuracy of a standardised multinomial logistic-regression probe [D].

    The binding score of arXiv:2602.03282 in our design: a linear probe trained on the
    training colours and evaluated on scenes with a disjoint colour set. Each fit standardises
    with a ``StandardScaler`` fitted on its own training rows, then minimises the L2-penalised
    multinomial cross-entropy (sklearn ``LogisticRegression``, lbfgs)::

        min_W,b  C · Σ_i −log softmax(W z_i + b)[y_i] + ½‖W‖²_F

    C is chosen from ``c_grid`` by stratified ``cv``-fold cross-validation on the training split
    (shuffled with ``seed``): the C with the highest out-of-fold accuracy, ties going to the
    smallest C [D]. Within a fold the grid is fitted in ascending C with warm starts [D; same
    optimum, faster]. The final probe is refitted on the whole training split with that C.

    Parameters
    ----------
    train_X, test_X : (n, D) arrays
        Features of the training-colour and the held-out-colour scenes.
    train_y, test_y : (n,) int arrays
        Class labels (ordered shape pairs). Every test class must occur in training, and every
        training class needs at least ``cv`` samples.
    c_grid : sequence of float
        Candidate inverse regularisation strengths.
    cv : int
        Number of stratified folds (>= 2).
    seed : int
        Fold shuffling seed.
    max_iter : int
        lbfgs iteration cap per fit.

    Returns
    -------
    dict with keys
        ``ood_accuracy`` : float in [0, 1], accuracy on ``test`` (disjoint colours);
        ``id_accuracy`` : float in [0, 1], **in-distribution accuracy = pooled out-of-fold CV
        accuracy on the training split at the chosen C** (every training sample predicted once by
        a probe that did not see it; slightly optimistic, as C was picked on it);
        ``train_accuracy`` : float, accuracy of the final probe on its own training data;
        ``C`` : float, the chosen C; ``cv_accuracy`` : dict C -> out-of-fold accuracy;
        ``converged`` : bool, whether every lbfgs fit converged within ``max_iter``;
        ``n_train``, ``n_test``, ``n_classes`` : int.
    """
    train_X, train_y, test_X, test_y = _check_pair(train_X, train_y, test_X, test_y)
    c_values = sorted(float(c) for c in c_grid)
    if not c_values or any(not np.isfinite(c) or c <= 0 for c in c_values):
        raise ValueError(f"c_grid must hold positive finite values, got {list(c_grid)}")
    if not isinstance(cv, int | np.integer) or cv < 2:
        raise ValueError(f"cv must be an int >= 2, got {cv!r}")
    if not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    classes, counts = np.unique(train_y, return_counts=True)
    if classes.size < 2:
        raise ValueError("the training split holds a single class; a probe needs at least 2")
    if counts.min() < cv:
        small = classes[counts < cv].tolist()
        raise ValueError(
            f"training classes {small} have fewer than cv={cv} samples; add samples or lower cv"
        )

    folds = StratifiedKFold(n_splits=int(cv), shuffle=True, random_state=int(seed))
    correct = np.zeros(len(c_values))
    converged = True
    for fit_idx, val_idx in folds.split(train_X, train_y):
        preds, ok = _fit_predict(
            train_X[fit_idx], train_y[fit_idx], [train_X[val_idx]], c_values, max_iter, True
        )
        converged &= ok
        correct += [np.sum(p[0] == train_y[val_idx]) for p in preds]
    cv_acc = correct / train_X.shape[0]
    best = int(np.flatnonzero(cv_acc == cv_acc.max())[0])  # ascending grid: ties -> smallest C
    c_best = c_values[best]

    (final,), ok = _fit_predict(train_X, train_y, [test_X, train_X], [c_best], max_iter, False)
    converged &= ok
    return {
        "ood_accuracy": float(np.mean(final[0] == test_y)),
        "id_accuracy": float(cv_acc[best]),
        "train_accuracy": float(np.mean(final[1] == train_y)),
        "C": float(c_best),
        "cv_accuracy": {c: float(a) for c, a in zip(c_values, cv_acc, strict=True)},
        "converged": bool(converged),
        "n_train": int(train_X.shape[0]),
        "n_test": int(test_X.shape[0]),
        "n_classes": int(classes.size),
    }


# --------------------------------------------------------------------------------------------
# kNN control and swap AUC
# --------------------------------------------------------------------------------------------


def knn_readout(train_X, train_y, test_X, test_y, k: int = 10, *, chunk_size: int = 1024) -> float:
    """Accuracy of a cosine k-nearest-neighbour classifier (readout control) [D].

    Each test row gets the majority label of its k training rows with the highest cosine
    similarity (uniform votes; ties between classes go to the smallest label, as in sklearn's
    ``KNeighborsClassifier``). The paper reports a kNN readout that does not recover binding
    absent from the representation [S]; k = 10 is our default [D].

    Returns
    -------
    float in [0, 1]
    """
    train_X, train_y, test_X, test_y = _check_pair(train_X, train_y, test_X, test_y)
    if not isinstance(k, int | np.integer) or not 1 <= k <= train_X.shape[0]:
        raise ValueError(f"k must be an int in [1, n_train={train_X.shape[0]}], got {k!r}")
    classes, y_idx = np.unique(train_y, return_inverse=True)
    a = unit_rows(train_X, "train_X")
    b = unit_rows(test_X, "test_X")
    pred = np.empty(b.shape[0], dtype=np.int64)
    for s in range(0, b.shape[0], chunk_size):
        sim = b[s : s + chunk_size] @ a.T
        nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        votes = np.zeros((sim.shape[0], classes.size))
        np.add.at(votes, (np.arange(sim.shape[0])[:, None], y_idx[nn]), 1.0)
        pred[s : s + chunk_size] = classes[np.argmax(votes, axis=1)]
    return float(np.mean(pred == test_y))


def swap_auc(za, zb, same) -> float:
    """ROC-AUC of cosine similarity separating same-structure pairs from swapped pairs [D].

    For each pair p, s_p = cos(za_p, zb_p). With n₊ same-structure pairs (``same`` True: (A, B)
    rendered twice, different colours) and n₋ swapped pairs (``same`` False: (A, B) and (B, A),
    same colours), the Mann–Whitney statistic

        AUC = (R₊ − n₊(n₊+1)/2) / (n₊ n₋) = P(s₊ > s₋) + ½ P(s₊ = s₋),

    where R₊ is the sum of the (tie-averaged) ranks of the same-structure similarities. 1 means
    every swap moves the embedding more than a recolouring; 0.5 means the similarity does not
    tell them apart (binding-blind, e.g. a symmetric colour-free feature). Note: a binding-blind
    feature that is colour-sensitive scores *below* 0.5 under this pair design, because its
    swapped pairs (same colours) look more alike than its recoloured pairs. Similarities are
    rounded to 12 decimals so that floating-point noise does not break mathematical ties.

    Parameters
    ----------
    za, zb : (P, D) arrays
        Features of the first and second member of each pair.
    same : (P,) bool array
        True for same-structure pairs, False for swapped pairs; both must occur.

    Returns
    -------
    float in [0, 1]
    """
    za = as_features(za, "za", min_rows=1)
    zb = as_features(zb, "zb", min_rows=1)
    if za.shape != zb.shape:
        raise ValueError(f"za and zb must have the same shape, got {za.shape} and {zb.shape}")
    same = as_labels(same, za.shape[0], "same", expected="one per row of za")
    if same.dtype != np.bool_:
        raise ValueError(
            f"same must be a bool array, got dtype {same.dtype}; pass a mask, e.g. labels == 1"
        )
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("same must contain both same-structure (True) and swapped (False) pairs")
    sim = np.sum(unit_rows(za, "za") * unit_rows(zb, "zb"), axis=1)
    ranks = rankdata(np.round(sim, _COSINE_DECIMALS))
    u = ranks[same].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# --------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------


def binding_table(
    features: dict[str, np.ndarray],
    labels,
    split,
    *,
    layers: Sequence[str] | None = ("final",),
    swap_pairs=None,
    swap_same=None,
    probe_mask=None,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    cv: int = 5,
    knn_k: int = 10,
    seed: int = 0,
    max_iter: int = 5000,
) -> pd.DataFrame:
    """Binding metrics per layer (arXiv:2602.03282 binding benchmark, our design) [D].

    Parameters
    ----------
    features : dict layer name -> (N, D) array
        Per-layer features of the binding scenes (all layers share the N rows).
    labels : (N,) int
        Ordered-pair class of each scene.
    split : (N,) str
        ``"train"`` (training colours) or ``"test"`` (the disjoint colour set).
    layers : sequence of str or None
        Layers to evaluate, default ``("final",)``; None evaluates every layer in ``features``.
    swap_pairs : (P, 2) int array, optional
        Row indices into the features: the two scenes of each structural pair.
    swap_same : (P,) bool array, optional
        True for same-structure pairs ((A, B) twice, different colours), False for swapped pairs
        ((A, B) vs (B, A), same colours). Required with ``swap_pairs``.
    probe_mask : (N,) bool array, optional
        Rows used by the linear probe and the kNN control (default: all). Use it to keep scenes
        rendered only for the swap pairs out of the probe.
    c_grid, cv, seed, max_iter
        As in :func:`binding_probe`.
    knn_k : int
        Neighbours of the kNN control.

    Returns
    -------
    pandas.DataFrame, one row per (layer, metric), columns ``layer, metric, variant, value, C,
    cv, k, n_train, n_test, n_pairs, seed``. Accuracies are fractions in [0, 1]. Metrics:

    - ``binding_ood_accuracy`` (variant ``"logreg"``): probe accuracy on the disjoint colours;
    - ``binding_id_accuracy`` (variant ``"logreg_cv"``): out-of-fold CV accuracy on training;
    - ``binding_knn_accuracy`` (variant ``"cosine_ood"``): cosine kNN accuracy on the test split;
    - ``swap_auc`` (variant ``"cosine"``): only when ``swap_pairs`` is given;
    - reference lines ``binding_chance`` (1 / number of training classes, 1/30 for the default
      design) and ``binding_bag_of_shapes_ceiling`` (0.5).

    ``C`` is the CV-chosen C (probe rows), ``k`` the kNN neighbours, ``n_pairs`` the number of
    swap pairs; columns that do not apply to a row are missing (NA).
    """
    if not isinstance(features, dict) or not features:
        raise ValueError("features must be a non-empty dict: layer name -> (N, D) array")
    if layers is None:
        layers = list(features)
    missing = [layer for layer in layers if layer not in features]
    if missing:
        raise ValueError(f"layers {missing} are not in features (available: {list(features)})")
    if not layers:
        raise ValueError("layers is empty; name at least one layer (None evaluates every layer)")
    # every layer is checked before the (slow) probes; float64 copies are made one at a time
    arrays = {
        layer: as_features(features[layer], f"features[{layer!r}]", min_rows=1, dtype=None)
        for layer in layers
    }
    n = arrays[layers[0]].shape[0]
    for layer, x in arrays.items():
        if x.shape[0] != n:
            raise ValueError(
                f"features[{layer!r}] has shape {x.shape}, expected ({n}, D): every layer "
                "describes the same scenes"
            )
    labels = _labels(labels, n, "labels")
    split = to_numpy(split, "split").astype(str)
    if split.shape != (n,):
        raise ValueError(f"split must have shape ({n},) to match the features, got {split.shape}")
    bad = sorted(set(np.unique(split).tolist()) - {"train", "test"})
    if bad:
        raise ValueError(f"split values must be 'train' or 'test', got {bad}")
    if probe_mask is None:
        probe_mask = np.ones(n, dtype=bool)
    probe_mask = to_numpy(probe_mask, "probe_mask")
    if probe_mask.shape != (n,) or probe_mask.dtype != np.bool_:
        raise ValueError(f"probe_mask must be a bool array of shape ({n},)")
    tr = probe_mask & (split == "train")
    te = probe_mask & (split == "test")
    if not tr.any() or not te.any():
        raise ValueError("the probe needs rows with split 'train' and rows with split 'test'")
    if (swap_pairs is None) != (swap_same is None):
        raise ValueError("give swap_pairs and swap_same together (or neither)")
    if swap_pairs is not None:
        swap_pairs = to_numpy(swap_pairs, "swap_pairs")
        if (
            swap_pairs.ndim != 2
            or swap_pairs.shape[1] != 2
            or not np.issubdtype(swap_pairs.dtype, np.integer)
        ):
            raise ValueError(f"swap_pairs must be an int array (P, 2), got {swap_pairs.shape}")
        if swap_pairs.size and (swap_pairs.min() < 0 or swap_pairs.max() >= n):
            raise ValueError(f"swap_pairs indices must lie in [0, {n})")

    n_classes = np.unique(labels[tr]).size
    rows = []
    for layer in layers:
        x = arrays[layer].astype(np.float64, copy=False)
        res = binding_probe(
            x[tr],
            labels[tr],
            x[te],
            labels[te],
            c_grid=c_grid,
            cv=cv,
            seed=seed,
            max_iter=max_iter,
        )
        base = {"n_train": res["n_train"], "n_test": res["n_test"], "seed": seed}
        probe = {**base, "C": res["C"], "cv": cv}
        rows += [
            {
                "layer": layer,
                "metric": "binding_ood_accuracy",
                "variant": "logreg",
                "value": res["ood_accuracy"],
                **probe,
            },
            {
                "layer": layer,
                "metric": "binding_id_accuracy",
                "variant": "logreg_cv",
                "value": res["id_accuracy"],
                **probe,
            },
            {
                "layer": layer,
                "metric": "binding_knn_accuracy",
                "variant": "cosine_ood",
                "value": knn_readout(x[tr], labels[tr], x[te], labels[te], knn_k),
                **base,
                "k": knn_k,
            },
        ]
        if swap_pairs is not None:
            auc = swap_auc(x[swap_pairs[:, 0]], x[swap_pairs[:, 1]], swap_same)
            rows.append(
                {
                    "layer": layer,
                    "metric": "swap_auc",
                    "variant": "cosine",
                    "value": auc,
                    "n_pairs": int(swap_pairs.shape[0]),
                    "seed": seed,
                }
            )
        rows += [
            {
                "layer": layer,
                "metric": "binding_chance",
                "variant": "",
                "value": 1.0 / n_classes,
                **base,
            },
            {
                "layer": layer,
                "metric": "binding_bag_of_shapes_ceiling",
                "variant": "",
                "value": BAG_OF_SHAPES_CEILING,
                **base,
            },
        ]
    cols = ["layer", "metric", "variant", "value", "C", "cv", "k"]
    cols += ["n_train", "n_test", "n_pairs", "seed"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    df["value"] = df["value"].astype(float)
    df["C"] = df["C"].astype(float)
    for col in ("cv", "k", "n_train", "n_test", "n_pairs", "seed"):
        df[col] = df[col].astype("Int64")
    return df
