"""Analyses that need the network itself, not only its stored features.

Euclidean convexity interpolates hidden states and runs the rest of the network plus the head
(Tětková et al. 2025); functional sensitivity differentiates the encoder (Chung & Kim 2026).
Both, and alignment, run in float32 on ``device`` (TF32 off on CUDA:
:func:`repaudit.models.device.precision_scope`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from repaudit.data import take_rows
from repaudit.metrics.convexity import euclidean_convexity, euclidean_convexity_rows
from repaudit.metrics.geometry import geometry_table
from repaudit.models.device import precision_scope
from repaudit.models.extract import to_tensor
from repaudit.models.factory import Classifier, build_classifier
from repaudit.tables import select_samples, subset


def euclidean_convexity_table(
    classifier: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    layers: list[str] | str = "all",
    n_points: int = 10,
    max_pairs: int = 5000,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """Euclidean convexity of every requested layer through the network's own remainder.

    Hidden states are the full token sequences (ViT) or feature maps (CNN) at layer l; each
    interpolant goes through blocks l+1.., the final norm, pooling and the classifier head
    (the fine-tuned head, or the linear probe for the pretrained stage). ``images`` may be kept
    in a file (:class:`repaudit.io.H5Images`): only each pair batch's endpoint images are read.
    """
    encoder = classifier.encoder
    names = [str(i) for i in range(encoder.n_layers)] if layers == "all" else list(layers)
    if "final" in names:
        raise ValueError(
            "Euclidean convexity of 'final' is vacuous: a linear head's regions are convex"
        )
    classifier = classifier.to(device).eval()
    frames = []
    with torch.inference_mode(), precision_scope(device):
        # Layer by layer and pair batch by pair batch: the hidden states of one batch's endpoints
        # are computed when needed (the encoder's prefix is rerun per batch, about a fifth more
        # work at 10 interpolants), so memory does not grow with the number of images.
        for name in names:
            layer = int(name)

            def states(rows, layer=layer):
                x = to_tensor(images[rows], device)
                return encoder.hidden_states(x, upto=layer)[layer]

            def predict(points, layer=layer):
                return classifier.logits_from(layer, points.to(device)).argmax(1).cpu()

            result = euclidean_convexity(
                states, labels, predict, n_points=n_points, max_pairs=max_pairs,
                seed=seed, batch_size=batch_size,
            )  # fmt: skip
            frames.append(
                euclidean_convexity_rows(
                    result, name, n_points=n_points, max_pairs=max_pairs, seed=seed
                )
            )
    return pd.concat(frames, ignore_index=True)


def alignment_table(
    encoder: torch.nn.Module,
    images: np.ndarray,
    *,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "cpu",
) -> pd.DataFrame:
    """Wang & Isola alignment of the final embedding over two augmented views of each image.

    Views use the SimCLR augmentation recipe (:data:`repaudit.models.augment.AugmentConfig`
    defaults) from a seeded generator, as Fang et al. measure L_A on augmented test pairs.
    """
    from repaudit.metrics.uniformity import alignment
    from repaudit.models.augment import two_views

    generator = torch.Generator().manual_seed(seed)
    encoder = encoder.to(device).eval()
    za, zb = [], []
    with torch.inference_mode(), precision_scope(device):
        for start in range(0, len(images), batch_size):
            # the views are drawn from the CPU generator and applied on the device
            a, b = two_views(to_tensor(images[start : start + batch_size], device), generator)
            za.append(encoder(a).float().cpu())
            zb.append(encoder(b).float().cpu())
    value = alignment(torch.cat(za).numpy(), torch.cat(zb).numpy())
    row = {"layer": "final", "metric": "alignment", "variant": "simclr_views", "value": value}
    return pd.DataFrame([{**row, "n_samples": len(images), "seed": seed}])


def stage_classifier(
    encoder, head: Mapping | None, probe_head: Mapping | None = None
) -> Classifier:
    """The classifier whose decisions Euclidean convexity follows.

    A fine-tuned encoder comes with its own head; a pretrained one is read out by its linear
    probe (``probe_head``, which then takes precedence). Heads are ``{"weight", "bias"}``.
    """
    chosen = probe_head if probe_head is not None else head
    if chosen is None:
        raise ValueError(
            "no classifier head: a pretrained encoder needs its linear probe (probe_head), a "
            "fine-tuned one the head stored with its weights"
        )
    return build_classifier(encoder, chosen)


def euclidean_convexity_on_split(
    classifier: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    *,
    params: Mapping,
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """:func:`euclidean_convexity_table` on the config's sample of one split.

    ``params`` is the euclidean_convexity config section: ``split`` and ``max_samples`` choose
    the images (:func:`repaudit.tables.select_samples`, stratified and seeded); ``layers``,
    ``n_points``, ``max_pairs`` and ``batch_size`` go to the table function.
    """
    idx = select_samples(labels, split, params["split"], params["max_samples"], seed)
    return euclidean_convexity_table(
        classifier,
        take_rows(images, idx),
        labels[idx],
        layers=params["layers"],
        n_points=params["n_points"],
        max_pairs=params["max_pairs"],
        batch_size=params["batch_size"],
        seed=seed,
        device=device,
    )


def geometry_alignment_table(
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    split: np.ndarray,
    encoder: torch.nn.Module | None,
    images: np.ndarray | None,
    *,
    params: Mapping,
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """Feature geometry (:func:`repaudit.metrics.geometry.geometry_table`) plus alignment.

    ``params`` is the geometry config section: ``split`` and ``max_samples`` choose the images
    (stratified, seeded); the other keys go to ``geometry_table``. Alignment needs positive
    pairs, i.e. the encoder on two augmented views of the same images
    (:func:`alignment_table`), so it runs on ``images`` (the dataset, rows = feature rows);
    without an encoder (embeddings computed elsewhere) the table has geometry only.
    Both run on ``device`` (geometry: its kNN search and L_U).
    """
    p = dict(params)
    idx = select_samples(labels, split, p.pop("split"), p.pop("max_samples"), seed)
    with precision_scope(device):
        geometry = geometry_table(subset(features, idx), seed=seed, device=device, **p)
    if encoder is None:
        return geometry
    aligned = alignment_table(encoder, take_rows(images, idx), seed=seed, device=device)
    return pd.concat([geometry, aligned], ignore_index=True)
