"""Stage-level jobs of the encoder zoo: pretrain, fine-tune, probe; checkpoints and tables.

The workflow scripts call one function each; these glue the factory, the training loops and
the tidy tables together so the scripts stay plumbing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from repaudit.data import ImageDataset, take_rows
from repaudit.io import library_versions
from repaudit.models import training
from repaudit.models.augment import pretrain_recipe
from repaudit.models.device import Precision, runtime
from repaudit.models.factory import ModelSpec, build_encoder, load_encoder, state_dict_sha256
from repaudit.models.objectives import canonical_objective


def _as_random(spec: ModelSpec) -> ModelSpec:
    return ModelSpec(**{**spec.as_dict(), "weights": "random"})


def _payload(encoder, spec: ModelSpec, head=None, **provenance) -> dict:
    return {
        "state_dict": encoder.backbone.state_dict(),
        "head": None if head is None else {k: v.detach() for k, v in head.state_dict().items()},
        "spec": spec.as_dict(),
        "provenance": {
            "weights_sha256": state_dict_sha256(encoder.backbone),
            "versions": library_versions(),
            **provenance,
        },
    }


def classification_table(
    prefix: str, accuracy: float, recall: dict[int, float], class_names: list[str]
) -> pd.DataFrame:
    """Tidy rows ``{prefix}_test_accuracy`` and one ``{prefix}_class_recall`` per class."""
    rows = [{"metric": f"{prefix}_test_accuracy", "class": "all", "value": accuracy}]
    rows += [
        {"metric": f"{prefix}_class_recall", "class": class_names[c], "value": r}
        for c, r in sorted(recall.items())
    ]
    return pd.DataFrame(rows).assign(layer="final", variant="")


def objective_params(objective: str, params: dict) -> dict:
    """``params`` with the W2 weights resolved for ``objective``.

    ``w2_alpha_max`` / ``w2_alpha_min`` are one number for every ``*_w2`` objective or a mapping
    objective -> number (Fang et al. 2024 weight MoCo v2 by 1 and BYOL by 0.2); objectives
    without W2 ignore them.
    """
    objective = canonical_objective(objective)
    out = dict(params)
    for key in ("w2_alpha_max", "w2_alpha_min"):
        value = out.get(key)
        if not isinstance(value, dict):
            continue
        if objective.endswith("_w2"):
            if objective not in value:
                raise ValueError(f"{key} has no value for objective {objective!r}: {value}")
            out[key] = value[objective]
        else:
            del out[key]
    return out


def pretrain_zoo(
    spec: ModelSpec,
    data: ImageDataset,
    params: dict,
    *,
    seed: int,
    device: str,
    precision: Precision | Mapping | None = None,
    resume_path: str | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Pretrain a zoo encoder on the train split of ``data`` with ``spec.objective``.

    Every architecture starts from the same seeded initialisation, so encoders of one
    architecture differ only by their objective (``random`` is that initialisation untouched).
    ``params["augment"]`` replaces fields of the objective's augmentation recipe
    (:func:`repaudit.models.augment.pretrain_recipe`); W2 weights may be per objective
    (:func:`objective_params`). ``resume_path`` and ``precision``: see
    :func:`repaudit.models.training.pretrain`; the payload's provenance records the device, its
    name and the precision.
    """
    encoder = build_encoder(_as_random(spec), seed=seed)
    train = data.split == "train"
    params = objective_params(spec.objective, params)
    overrides = params.pop("augment", None) or {}
    recipe = pretrain_recipe(canonical_objective(spec.objective), **overrides)
    encoder, history = training.pretrain(
        encoder, take_rows(data.images, train), data.labels[train], spec.objective,
        num_classes=len(data.class_names), seed=seed, device=device, augment_cfg=recipe,
        precision=precision, resume_path=resume_path, **params,
    )  # fmt: skip
    train_params = {**params, "augment": dataclasses.asdict(recipe)}
    payload = _payload(
        encoder.cpu(), spec, objective=spec.objective, seed=seed, train=train_params,
        **runtime(device, precision),
    )  # fmt: skip
    return payload, history


def finetune_stage(
    spec: ModelSpec,
    weights: str | None,
    data: ImageDataset,
    params: dict,
    *,
    seed,
    device,
    precision: Precision | Mapping | None = None,
    resume_path: str | None = None,
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Fully fine-tune an encoder with a new head on the train split; test on the test split.

    Training and the test evaluation run on ``device`` in ``precision``, both recorded in the
    payload's provenance. ``resume_path``: see :func:`repaudit.models.training.finetune`.
    """
    encoder, _ = load_encoder(spec, weights, seed=seed)
    train, test = data.split == "train", data.split == "test"
    model, history = training.finetune(
        encoder, take_rows(data.images, train), data.labels[train], len(data.class_names),
        seed=seed, device=device, precision=precision, resume_path=resume_path, **params,
    )  # fmt: skip
    # evaluated where it was trained (it was moved to the CPU first, so a GPU run tested on CPU)
    accuracy, recall, _ = training.evaluate_classifier(
        model, take_rows(data.images, test), data.labels[test], device=device, precision=precision
    )
    model = model.cpu().eval()
    table = classification_table("finetune", accuracy, recall, data.class_names)
    payload = _payload(
        model.encoder, spec, model.head, seed=seed, train=params, base=weights,
        **runtime(device, precision),
    )  # fmt: skip
    return payload, history, table


def probe_stage(
    features: dict[str, np.ndarray],
    labels: np.ndarray,
    ids: np.ndarray,
    split: np.ndarray,
    class_names: list[str],
    params: dict,
    *,
    seed: int,
    device: str = "cpu",
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Linear probe on the frozen final embedding (the papers' "pretrained" classifier).

    Fitted on ``device`` in float64. Returns the checkpoint payload (head, scalar metrics and
    provenance: device, device name, precision), the tidy accuracy table and the probe's
    prediction for each test image (``id``, ``label``, ``prediction``, ``correct``), for paired
    comparisons.
    """
    x = features["final"]
    train, test = split == "train", split == "test"
    probe, metrics = training.linear_probe(
        x[train], labels[train], x[test], labels[test],
        num_classes=len(class_names), seed=seed, device=device, **params,
    )  # fmt: skip
    table = classification_table(
        "probe", metrics["accuracy"], metrics["per_class_recall"], class_names
    )
    head = {k: v.detach().float() for k, v in probe.state_dict().items()}
    predicted = metrics["test_predictions"]
    predictions = pd.DataFrame(
        {"id": ids[test], "label": labels[test], "prediction": predicted,
         "correct": predicted == labels[test]}
    )  # fmt: skip
    payload = {
        "head": head,
        "metrics": {k: v for k, v in metrics.items() if np.isscalar(v)},
        "provenance": {**runtime(device), "precision": "float64"},  # L-BFGS in float64
    }
    return payload, table, predictions
