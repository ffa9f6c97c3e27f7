"""Training loops: pretraining, full fine-tuning, linear probe, embedding.

Encoder contract: ``encoder`` is an ``nn.Module`` mapping float images (B, 3, H, W) in raw [0, 1]
pixel space to pooled embeddings (B, D) (resizing and normalisation happen inside it) and has an
int attribute ``num_features`` = D. Images arrive as uint8 numpy arrays (N, H, W, 3) with int64
labels (N,).

Reproducibility: every function takes ``seed``. The training loops run inside
``torch.random.fork_rng`` (the caller's global torch, NumPy and ``random`` states are left
untouched) after seeding all three with ``seed`` (head / projector initialisation, dropout), draw
batch order and augmentations from a dedicated ``torch.Generator`` seeded with ``seed``, and on CPU
switch on ``torch.use_deterministic_algorithms(True)`` for the duration of the call (the previous
setting is restored afterwards). The same seed and thread count give a bit-identical
``state_dict`` on CPU. On CUDA, results are reproducible only up to cuDNN / atomics
non-determinism.

Resumable training: with ``resume_path``, :func:`pretrain` and :func:`finetune` write their whole
state (model, objective head with any momentum network and queue, optimiser, the step that the
LR / W2 / momentum schedules are functions of, every RNG state and the history) there every
``checkpoint_every`` epochs, atomically, and continue from it when it exists and was written by a
run with the same settings, data and initial weights (a fingerprint). A resumed run returns the
same weights and history as an uninterrupted one, bit for bit on CPU. Deleting the file once the
result is saved is the caller's job (the workflow scripts do it after writing their outputs).

Optimisation: AdamW (Loshchilov & Hutter 2019) with a per-step cosine learning-rate decay to 0
(``lr_schedule="cosine"``) or a constant rate (``"constant"``), after an optional linear warm-up
(``pretrain(warmup_fraction=...)``, as in SimCLR and Barlow Twins); incomplete last batches
are dropped (constant batch statistics for BatchNorm and the contrastive losses).

Precision: float32 by default; ``precision={"amp": True}`` runs the networks' forward passes
under bf16 autocast (the pretraining objective, with its projector and momentum network, and the
losses stay float32), ``{"tf32": True}`` lets CUDA matmuls and convolutions use TF32 (see
:mod:`repaudit.models.device`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import pickle
import random
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from repaudit.data import take_rows
from repaudit.io import save_checkpoint
from repaudit.metrics._common import as_features, same_width
from repaudit.models.augment import FINETUNE_AUGMENT, AugmentConfig, pretrain_recipe
from repaudit.models.augment import augment as augment_batch
from repaudit.models.device import Precision, autocast, precision_scope
from repaudit.models.factory import state_dict_sha256
from repaudit.models.objectives import build_objective, canonical_objective

__all__ = [
    "EncoderClassifier",
    "embed",
    "evaluate_classifier",
    "finetune",
    "linear_probe",
    "pretrain",
]

_LR_SCHEDULES = ("cosine", "constant")
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Validation and small helpers
# --------------------------------------------------------------------------------------------


def _check_images(images: np.ndarray, name: str = "images", min_n: int = 2) -> None:
    """An in-memory array, or an array kept in a file (:class:`repaudit.io.H5Images`)."""
    array_like = isinstance(images, np.ndarray) or hasattr(images, "subset")
    if not array_like or images.ndim != 4 or images.shape[-1] != 3:
        shape = getattr(images, "shape", type(images).__name__)
        raise ValueError(f"{name} must be a uint8 array of shape (N, H, W, 3), got {shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (raw pixels), got {images.dtype}")
    if images.shape[0] < min_n:
        raise ValueError(f"{name} needs at least {min_n} image(s), got {images.shape[0]}")


def _check_labels(labels: np.ndarray, n: int, name: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integer class ids, got dtype {labels.dtype}")
    if labels.min() < 0:
        raise ValueError(f"{name} must be >= 0, got min {labels.min()}")
    return labels.astype(np.int64)


def _check_num_classes(labels: np.ndarray, num_classes: int | None) -> int:
    inferred = int(labels.max()) + 1
    if num_classes is None:
        return inferred
    if num_classes < inferred:
        raise ValueError(f"labels go up to {inferred - 1} but num_classes is {num_classes}")
    return int(num_classes)


def _check_encoder(encoder: nn.Module) -> int:
    d = getattr(encoder, "num_features", None)
    if not isinstance(d, int) or d < 1:
        raise ValueError("encoder must expose a positive int attribute `num_features`")
    return d


def _check_common(epochs: int, batch_size: int, lr: float, weight_decay: float, lr_schedule: str):
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if lr_schedule not in _LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {_LR_SCHEDULES}, got {lr_schedule!r}")


#: File-backed training images up to this size are read into memory once per run: a shuffled
#: batch then costs a copy instead of one HDF5 read per image (one chunk each). Larger sets stay
#: in the file (bounded memory, :class:`repaudit.io.H5Images`).
_RESIDENT_BYTES = 512 * 2**20


def _resident(images):
    """``images`` in memory if they are kept in a file and small enough, else unchanged."""
    if isinstance(images, np.ndarray) or not hasattr(images, "subset"):
        return images
    if int(np.prod(images.shape)) * images.dtype.itemsize > _RESIDENT_BYTES:
        return images
    return np.asarray(images)


def _batch(images, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of the uint8 images, read only now when they are kept in a file."""
    return torch.from_numpy(np.ascontiguousarray(images[idx.numpy()]))


def _to_float(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) → float (B, 3, H, W) in [0, 1] on ``device``."""
    return batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)


#: Train in channels-last on CPU; False reproduces bit for bit the ResNet weights trained before
#: this layout was used (ConvNeXt and ViT weights are the same either way).
_CHANNELS_LAST = True


def _train_format(dev: torch.device) -> torch.memory_format:
    """Memory format of the weights and images while training on ``dev``.

    On CPU, channels-last (NHWC) is oneDNN's native layout: NCHW convolutions reorder their
    inputs and outputs at every call, so CNNs train ~15-30 % faster in NHWC (1 thread). The
    values are the same up to float rounding (convolutions and BatchNorm accumulate in another
    order); runs stay deterministic. Trained modules are handed back in the default layout.
    """
    return torch.channels_last if dev.type == "cpu" and _CHANNELS_LAST else torch.contiguous_format


@contextlib.contextmanager
def _reproducible(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch, NumPy and ``random`` inside forked RNGs; deterministic algorithms on CPU.

    Everything is restored on exit. NumPy and ``random`` are unused by the loops today; seeding
    (and checkpointing) them keeps a resumed run exact should a library start drawing from them.
    """
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    was_det = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    was_fill = torch.utils.deterministic.fill_uninitialized_memory
    # The legacy global NumPy RNG is managed (forked, seeded, saved), never drawn from here.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002
        random.seed(seed)
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True)
            # Deterministic mode also NaN-fills every new tensor (a debugging aid against reads
            # of uninitialised memory, which no op here does): ~5 % of a training step.
            torch.utils.deterministic.fill_uninitialized_memory = False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_det, warn_only=was_warn)
            torch.utils.deterministic.fill_uninitialized_memory = was_fill
            np.random.set_state(np_state)  # noqa: NPY002
            random.setstate(py_state)


def _lr_factor(step: int, total: int, schedule: str, warmup: int = 0) -> float:
    """Multiplier of the base LR at 0-based ``step`` of ``total``.

    Linear from 1/warmup to 1 over the first ``warmup`` steps, then 1 (constant) or cosine from 1
    to 0 over the remaining steps.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def _set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        file=sys.stderr,
        disable=not enabled,
        mininterval=1.0,
    )


def _check_finite(loss: torch.Tensor, step: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"loss became {loss.item()} at step {step}; lower lr or check the inputs"
        )


@torch.inference_mode()
def _forward_batched(
    module: nn.Module,
    images: np.ndarray,
    batch_size: int,
    device: torch.device,
    precision: Precision | Mapping | None = None,
) -> torch.Tensor:
    """Eval-mode outputs of ``module`` on uint8 images, concatenated on the CPU (float32)."""
    was_training = module.training
    module.eval()
    try:
        outs = []
        with precision_scope(device, precision):
            for i in range(0, images.shape[0], batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size]))
                x = _to_float(batch, device)
                with autocast(device, precision):
                    outs.append(module(x).float().cpu())
    finally:
        module.train(was_training)
    return torch.cat(outs, dim=0)


def _per_class_recall(y_true: np.ndarray, y_pred: np.ndarray) -> dict[int, float]:
    """Recall of every class present in ``y_true`` (fraction of its samples predicted as it)."""
    return {int(c): float(np.mean(y_pred[y_true == c] == c)) for c in np.unique(y_true)}


def _stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a stratified held-out subset: round(fraction · n_c) per class, at least 1,
    and at least 1 sample of every class left for training."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if idx.size < 2:
            raise ValueError(
                f"class {int(c)} has {idx.size} sample(s); a validation split needs >= 2 per "
                "class (drop the class or set val_fraction=0)"
            )
        k = min(max(1, round(fraction * idx.size)), idx.size - 1)
        mask[rng.permutation(idx)[:k]] = True
    return mask


# --------------------------------------------------------------------------------------------
# Resumable training
# --------------------------------------------------------------------------------------------


def _fingerprint(**parts) -> str:
    """sha256 of what determines a run: its settings, data arrays and initial module weights."""
    digest = hashlib.sha256()
    for key in sorted(parts):
        value = parts[key]
        digest.update(key.encode())
        if isinstance(value, np.ndarray):
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif hasattr(value, "batches"):  # images kept in a file: the same bytes, batch by batch
            digest.update(f"{value.dtype}{value.shape}".encode())
            for block in value.batches(1024):
                digest.update(np.ascontiguousarray(block).tobytes())
        elif isinstance(value, nn.Module):
            digest.update(state_dict_sha256(value).encode())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def _precision_part(precision: Precision) -> dict:
    """The fingerprint's precision entry, absent at the float32 default (so resume files written
    before precision was configurable still match)."""
    return {} if precision == Precision() else {"precision": precision}


def _rng_state(gen: torch.Generator, dev: torch.device) -> dict:
    """Every RNG a step may draw from: the batch/augmentation generator, torch (CPU, CUDA),
    NumPy and ``random``, in types ``torch.load(weights_only=True)`` reads back."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    state = {
        "generator": gen.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if dev.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dev)
    return state


def _set_rng_state(state: dict, gen: torch.Generator, dev: torch.device) -> None:
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if dev.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], dev)


def _save_resume(path, fingerprint, epoch, step, optimizer, gen, dev, history, **state) -> None:
    """The training state after ``epoch`` epochs: what a rerun resumes from (``_load_resume``)."""
    save_checkpoint(
        path,
        {
            "fingerprint": fingerprint,
            "epoch": epoch,
            "step": step,
            **state,
            "optimizer": optimizer.state_dict(),
            "rng": _rng_state(gen, dev),
            "history": history,
        },
    )


def _load_resume(path: str | Path | None, fingerprint: str) -> dict | None:
    """The state saved at ``path`` if it belongs to this run, else None (start afresh)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        log.warning("ignoring unreadable resume file %s (%s); starting afresh", path, err)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        log.warning(
            "ignoring resume file %s: another run's (settings, data or initial weights differ); "
            "starting afresh",
            path,
        )
        return None
    log.info("resuming from %s after epoch %d", path, state["epoch"])
    return state


def _checkpoint_due(epoch: int, epochs: int, every: int) -> bool:
    """After epoch ``epoch`` (0-based)? Never after the last: the caller saves the result."""
    return every > 0 and (epoch + 1) % every == 0 and epoch + 1 < epochs


def _check_checkpoint_every(checkpoint_every: int) -> None:
    if not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be an int >= 0, got {checkpoint_every!r}")


# --------------------------------------------------------------------------------------------
# Pretraining
# --------------------------------------------------------------------------------------------


def pretrain(
    encoder: nn.Module,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    objective: str = "simclr",
    *,
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    lr_schedule: str = "cosine",
    warmup_fraction: float = 0.0,
    temperature: float = 0.2,
    barlow_lambda: float = 5e-3,
    vicreg_coeffs: tuple[float, float, float] = (25.0, 25.0, 1.0),
    w2_alpha_max: float = 1.0,
    w2_alpha_min: float = 1.0,
    moco_queue_size: int = 4096,
    moco_momentum: float = 0.99,
    byol_momentum: float = 0.996,
    projector_dim: int = 128,
    projector_hidden_dim: int = 512,
    supervised_head: str = "linear",
    augment_cfg: AugmentConfig | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    precision: Precision | Mapping | None = None,
    log_every: int = 10,
    progress: bool = True,
    checkpoint_every: int = 1,
    resume_path: str | Path | None = None,
) -> tuple[nn.Module, pd.DataFrame]:
    """Pretrain ``encoder`` in place with one objective of ``objectives.OBJECTIVES``.

    Each step draws a batch (reshuffled every epoch, last incomplete batch dropped), makes
    ``n_views`` augmented views (two for the self-supervised objectives, one for supervised; by
    default the SimCLR CIFAR augmentations for the self-supervised objectives and crop + flip for
    supervised, see :mod:`repaudit.models.augment`), embeds them with the encoder, and minimises
    the objective's loss over the encoder and the objective's head (projector, predictor or linear
    classifier) with AdamW and a per-step cosine (or constant) LR; MoCo v2 and BYOL then move
    their momentum network towards the online one. The head is discarded afterwards.
    ``"random"`` is the random-initialisation control: the encoder is returned unchanged with an
    empty history.

    Parameters
    ----------
    encoder : nn.Module
        Encoder following the module contract (raw [0, 1] images → (B, num_features)).
    images : np.ndarray
        (N, H, W, 3) uint8 training images.
    labels : np.ndarray, optional
        (N,) int class ids; required by ``"supervised"``, ignored by the self-supervised objectives.
    objective : str
        ``"random"``, ``"supervised"``, ``"simclr"``, ``"simclr_w2"``, ``"moco_v2"``,
        ``"moco_v2_w2"``, ``"byol"``, ``"byol_w2"``, ``"barlow_twins"`` (alias ``"barlow"``) or
        ``"vicreg"``.
    epochs, batch_size, lr, weight_decay, lr_schedule
        Optimisation; ``batch_size`` is clamped to N.
    warmup_fraction : float
        Fraction of the steps with a linear LR warm-up, in [0, 1) (default 0; SimCLR and Barlow
        Twins warm up for 10 epochs).
    temperature : float
        NT-Xent temperature τ (default 0.2, Fang et al. 2024, App. F).
    barlow_lambda : float
        Barlow Twins off-diagonal weight λ (default 5e-3, Zbontar et al. 2021).
    vicreg_coeffs : (float, float, float)
        VICReg (invariance, variance, covariance) weights (default (25, 25, 1)).
    w2_alpha_max, w2_alpha_min : float
        W2 weight, linearly decayed per step from α_max to α_min (the ``*_w2`` objectives only).
    moco_queue_size, moco_momentum : int, float
        MoCo v2's queue of negative keys (>= 2 x batch_size; default 4096, Fang et al.'s CIFAR
        runs) and constant momentum (default 0.99).
    byol_momentum : float
        BYOL's initial momentum τ_base, raised to 1 on a cosine (default 0.996, Grill et al.).
    projector_dim, projector_hidden_dim : int
        Projector output and hidden widths.
    supervised_head : str
        ``"linear"`` (a linear classifier on the embedding) or ``"mlp"`` (the SimCLR projector,
        then a linear classifier; Wang et al. 2022, "SL-MLP"), see
        :class:`repaudit.models.objectives.SupervisedObjective`.
    augment_cfg : AugmentConfig, optional
        Augmentations (default: ``AugmentConfig()``, the SimCLR CIFAR recipe, for the
        self-supervised objectives; ``SUPERVISED_AUGMENT``, crop 0.08-1 + flip, for supervised).
    num_classes : int, optional
        Classes of the supervised head (default max(label) + 1).
    seed : int
        Seeds the head initialisation, the batch order and the augmentations.
    device : str or torch.device
        Where to train; the encoder is left on this device.
    precision : Precision or mapping, optional
        ``{"amp": bool, "tf32": bool}``: bf16 autocast of the encoder's forward pass (the
        objective stays float32), TF32 on CUDA (:class:`repaudit.models.device.Precision`);
        default float32.
    log_every : int
        Log the loss every ``log_every`` steps (and at the last step).
    progress : bool
        Show a tqdm bar on stderr.
    checkpoint_every : int
        With ``resume_path``: save the training state every this many epochs (0: never).
    resume_path : str or Path, optional
        Where the training state is saved, and resumed from when it exists (see the module
        docstring); None (default) writes nothing.

    Returns
    -------
    encoder : nn.Module
        The same module, trained, in eval mode.
    history : pd.DataFrame
        One row per logged step: ``epoch`` (0-based), ``step`` (0-based global), ``loss``, ``lr``
        and the objective's loss parts (e.g. ``nt_xent``, ``w2``, ``w2_weight``). Empty (with
        these base columns) for ``"random"``.
    """
    objective = canonical_objective(objective)
    embed_dim = _check_encoder(encoder)
    _check_images(images)
    _check_common(epochs, batch_size, lr, weight_decay, lr_schedule)
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    _check_checkpoint_every(checkpoint_every)
    images = _resident(images)
    n = images.shape[0]
    if labels is not None:
        labels = _check_labels(labels, n)
    if objective == "random":
        return encoder, pd.DataFrame(columns=["epoch", "step", "loss", "lr"])
    if objective == "supervised":
        if labels is None:
            raise ValueError("objective 'supervised' needs labels")
        num_classes = _check_num_classes(labels, num_classes)

    dev = torch.device(device)
    precision = Precision.of(precision)
    batch_size = min(batch_size, n)
    if objective.startswith("moco_v2") and moco_queue_size < 2 * batch_size:
        raise ValueError(
            f"moco_queue_size {moco_queue_size} must hold the 2 x {batch_size} keys of a batch"
        )
    steps_per_epoch = n // batch_size
    total_steps = epochs * steps_per_epoch
    warmup_steps = int(warmup_fraction * total_steps)
    targets = torch.from_numpy(labels) if labels is not None else None
    rows: list[dict[str, float]] = []
    if augment_cfg is None:
        augment_cfg = pretrain_recipe(objective)
    head_kw = {
        "num_classes": num_classes,
        "temperature": temperature,
        "barlow_lambda": barlow_lambda,
        "vicreg_coeffs": tuple(vicreg_coeffs),
        "w2_alpha_max": w2_alpha_max,
        "w2_alpha_min": w2_alpha_min,
        "moco_queue_size": moco_queue_size,
        "moco_momentum": moco_momentum,
        "byol_momentum": byol_momentum,
        "projector_dim": projector_dim,
        "projector_hidden_dim": projector_hidden_dim,
        "supervised_head": supervised_head,
    }
    fingerprint = ""
    if resume_path is not None:
        fingerprint = _fingerprint(
            run="pretrain", objective=objective, encoder=encoder, images=images, labels=labels,
            epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            lr_schedule=lr_schedule, warmup_fraction=warmup_fraction, augment=augment_cfg,
            seed=seed, log_every=log_every, **head_kw, **_precision_part(precision),
        )  # fmt: skip

    with _reproducible(seed, dev), precision_scope(dev, precision):
        head = build_objective(objective, embed_dim, encoder=encoder, **head_kw)
        assert head is not None  # "random" returned above
        fmt = _train_format(dev)
        encoder.to(dev, memory_format=fmt).train()
        head.to(dev, memory_format=fmt).train()
        # a momentum target network is not trained by the optimiser
        params = list(encoder.parameters()) + [p for p in head.parameters() if p.requires_grad]
        # foreach: one kernel per op over all tensors (the same arithmetic, so the same bits);
        # ~1 ms less per step on these small models than PyTorch's per-tensor CPU default
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)
        for group in optimizer.param_groups:
            group["base_lr"] = lr
        gen = torch.Generator().manual_seed(seed)
        start_epoch = step = 0
        if (state := _load_resume(resume_path, fingerprint)) is not None:
            encoder.load_state_dict(state["encoder"])
            head.load_state_dict(state["head"])
            optimizer.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"], gen, dev)
            start_epoch, step, rows = state["epoch"], state["step"], state["history"]
        bar = _progress(total_steps, f"pretrain[{objective}]", progress, initial=step)
        for epoch in range(start_epoch, epochs):
            order = torch.randperm(n, generator=gen)
            for b in range(steps_per_epoch):
                idx = order[b * batch_size : (b + 1) * batch_size]
                x = _to_float(_batch(images, idx), dev)
                y = targets[idx].to(dev) if targets is not None else None
                with torch.no_grad():
                    views = [augment_batch(x, gen, augment_cfg) for _ in range(head.n_views)]
                    inputs = torch.cat(views, dim=0).contiguous(memory_format=fmt)
                _set_lr(optimizer, _lr_factor(step, total_steps, lr_schedule, warmup_steps))
                # One forward over the concatenated views: same BatchNorm statistics as the
                # SimCLR reference implementation's shared batch.
                with autocast(dev, precision):
                    emb = encoder(inputs).float().chunk(head.n_views, dim=0)
                # the objective (projector, any momentum network, loss) runs in float32
                out = head(emb, y, step=step, total_steps=total_steps, inputs=inputs)
                loss = out["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                head.after_step(encoder, step, total_steps)
                # Checked at logged steps only (a host sync): a NaN persists once it appears.
                if step % log_every == 0 or step == total_steps - 1:
                    _check_finite(loss, step)
                    row = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"]}
                    row.update({k: float(v.detach()) for k, v in out.items()})
                    rows.append(row)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
                bar.update(1)
                step += 1
            if resume_path is not None and _checkpoint_due(epoch, epochs, checkpoint_every):
                _save_resume(
                    resume_path, fingerprint, epoch + 1, step, optimizer, gen, dev, rows,
                    encoder=encoder.state_dict(), head=head.state_dict(),
                )  # fmt: skip
        bar.close()
    encoder.to(memory_format=torch.contiguous_format).eval()
    head.to(memory_format=torch.contiguous_format)
    history = pd.DataFrame(rows)
    first = ["epoch", "step", "loss", "lr"]
    return encoder, history[first + [c for c in history.columns if c not in first]]


# --------------------------------------------------------------------------------------------
# Fine-tuning and evaluation
# --------------------------------------------------------------------------------------------


class EncoderClassifier(nn.Module):
    """Encoder followed by a linear head: raw [0, 1] images (B, 3, H, W) → logits (B, C)."""

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_features = _check_encoder(encoder)
        self.num_classes = int(num_classes)
        self.head = nn.Linear(self.num_features, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def evaluate_classifier(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    precision: Precision | Mapping | None = None,
) -> tuple[float, dict[int, float], np.ndarray]:
    """Top-1 accuracy, per-class recall and predictions of an image classifier (eval mode).

    The model runs on ``device`` (moved there; left there) in ``precision`` (default float32).

    Returns
    -------
    accuracy : float
        Fraction of correctly classified images.
    per_class_recall : dict[int, float]
        For each class present in ``labels``: the fraction of its images predicted as it.
    predictions : np.ndarray
        (N,) int64 argmax predictions.
    """
    _check_images(images, min_n=1)
    labels = _check_labels(labels, images.shape[0])
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device)
    logits = _forward_batched(model.to(dev), images, batch_size, dev, precision)
    pred = logits.argmax(dim=1).numpy().astype(np.int64)
    return float(np.mean(pred == labels)), _per_class_recall(labels, pred), pred


def _val_metrics(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    dev: torch.device,
    precision: Precision,
) -> tuple[float, float]:
    logits = _forward_batched(model, images, batch_size, dev, precision)
    y = torch.from_numpy(labels)
    loss = float(F.cross_entropy(logits, y))
    return loss, float((logits.argmax(1) == y).float().mean())


def finetune(
    encoder: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-4,
    head_lr: float | None = None,
    weight_decay: float = 0.05,
    lr_schedule: str = "cosine",
    val_fraction: float = 0.1,
    select: str = "best",
    augment: bool = True,
    augment_cfg: AugmentConfig | None = None,
    label_smoothing: float = 0.0,
    head_init: nn.Linear | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    precision: Precision | Mapping | None = None,
    progress: bool = True,
    checkpoint_every: int = 1,
    resume_path: str | Path | None = None,
) -> tuple[EncoderClassifier, pd.DataFrame]:
    """Full fine-tuning of a copy of ``encoder`` with a new linear head (every parameter trained).

    A stratified validation split (``val_fraction`` of each class, seeded) is carved out of the
    given training images; the rest is trained on with softmax cross-entropy, AdamW (encoder
    ``lr``, head ``head_lr``) and a per-step cosine or constant LR. With ``select="best"`` the
    returned weights are those of the epoch with the highest validation accuracy (ties: lower
    validation loss, then the earlier epoch); with ``select="last"`` (or ``val_fraction=0``)
    those of the last epoch.

    Parameters
    ----------
    encoder : nn.Module
        Pretrained encoder (module contract); it is deep-copied, the argument is not modified.
    images, labels : np.ndarray
        (N, H, W, 3) uint8 training images and (N,) int labels (the caller's train split).
    num_classes : int, optional
        Number of classes (default max(label) + 1).
    epochs, batch_size, lr, weight_decay, lr_schedule
        Optimisation (``batch_size`` clamped to the training-set size).
    head_lr : float, optional
        LR of the new head (default ``lr``).
    val_fraction : float
        Fraction of each class held out for validation, in [0, 1).
    select : str
        ``"best"`` (best validation accuracy) or ``"last"``.
    augment : bool
        Augment training batches (default crop scale 0.5-1 + flip, ``FINETUNE_AUGMENT``).
    augment_cfg : AugmentConfig, optional
        Overrides the fine-tuning augmentation.
    label_smoothing : float
        Cross-entropy label smoothing.
    head_init : nn.Linear, optional
        Initial head weights (e.g. a linear probe, for LP-FT); default a fresh seeded Linear.
    seed : int
        Seeds the split, head initialisation, batch order and augmentations.
    device : str or torch.device
        Where to train; the classifier is left on this device.
    precision : Precision or mapping, optional
        Training and validation precision, as in :func:`pretrain`.
    progress : bool
        Show a tqdm bar on stderr.
    checkpoint_every, resume_path
        Resumable training, as in :func:`pretrain` (the state includes the best epoch's weights).

    Returns
    -------
    classifier : EncoderClassifier
        ``.encoder`` (fine-tuned copy) and ``.head`` (nn.Linear), in eval mode.
    history : pd.DataFrame
        One row per epoch: ``epoch``, ``train_loss``, ``train_accuracy`` (running, augmented, train
        mode), ``val_loss``, ``val_accuracy`` (NaN without a validation split), ``lr`` (at the
        epoch's last step), ``selected`` (True for the returned epoch).
    """
    _check_encoder(encoder)
    _check_images(images)
    labels = _check_labels(labels, images.shape[0])
    num_classes = _check_num_classes(labels, num_classes)
    _check_common(epochs, batch_size, lr, weight_decay, lr_schedule)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if select not in ("best", "last"):
        raise ValueError(f"select must be 'best' or 'last', got {select!r}")
    if head_lr is not None and not head_lr > 0:
        raise ValueError(f"head_lr must be > 0, got {head_lr}")
    if head_init is not None and (
        head_init.in_features != encoder.num_features or head_init.out_features != num_classes
    ):
        raise ValueError(
            f"head_init must be Linear({encoder.num_features}, {num_classes}), got "
            f"Linear({head_init.in_features}, {head_init.out_features})"
        )
    _check_checkpoint_every(checkpoint_every)
    dev = torch.device(device)
    precision = Precision.of(precision)
    cfg = (augment_cfg or FINETUNE_AUGMENT) if augment else None

    images = _resident(images)
    if val_fraction > 0:
        val_mask = _stratified_holdout(labels, val_fraction, seed)
    else:
        val_mask = np.zeros(labels.shape[0], dtype=bool)
    tr_images, tr_labels = take_rows(images, ~val_mask), labels[~val_mask]
    va_images, va_labels = take_rows(images, val_mask), labels[val_mask]
    has_val = va_labels.size > 0
    n = tr_labels.size
    if n < 2:
        raise ValueError(f"only {n} training image(s) left after the validation split")
    batch_size = min(batch_size, n)
    steps_per_epoch = n // batch_size
    total_steps = epochs * steps_per_epoch
    targets = torch.from_numpy(tr_labels)
    fingerprint = ""
    if resume_path is not None:
        fingerprint = _fingerprint(
            run="finetune", encoder=encoder, images=images, labels=labels,
            num_classes=num_classes, epochs=epochs, batch_size=batch_size, lr=lr,
            head_lr=head_lr, weight_decay=weight_decay, lr_schedule=lr_schedule,
            val_fraction=val_fraction, select=select, augment=cfg,
            label_smoothing=label_smoothing, head_init=head_init, seed=seed,
            **_precision_part(precision),
        )  # fmt: skip

    rows = []
    with _reproducible(seed, dev), precision_scope(dev, precision):
        model = EncoderClassifier(copy.deepcopy(encoder), num_classes)
        if head_init is not None:
            model.head.load_state_dict(head_init.state_dict())
        fmt = _train_format(dev)
        model.to(dev, memory_format=fmt)
        optimizer = torch.optim.AdamW(
            [
                {"params": list(model.encoder.parameters()), "base_lr": lr},
                {"params": list(model.head.parameters()), "base_lr": head_lr or lr},
            ],
            lr=lr,
            weight_decay=weight_decay,
            foreach=True,  # as in pretrain
        )
        gen = torch.Generator().manual_seed(seed)
        best_key: tuple[float, float] | None = None
        best_state: dict[str, torch.Tensor] | None = None
        best_epoch = epochs - 1
        start_epoch = step = 0
        if (state := _load_resume(resume_path, fingerprint)) is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"], gen, dev)
            start_epoch, step, rows = state["epoch"], state["step"], state["history"]
            best_key = None if state["best_key"] is None else tuple(state["best_key"])
            best_state, best_epoch = state["best_state"], state["best_epoch"]
        bar = _progress(total_steps, "finetune", progress, initial=step)
        for epoch in range(start_epoch, epochs):
            model.train()
            order = torch.randperm(n, generator=gen)
            loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
            correct = torch.zeros((), dtype=torch.int64, device=dev)
            for b in range(steps_per_epoch):
                idx = order[b * batch_size : (b + 1) * batch_size]
                x = _to_float(_batch(tr_images, idx), dev)
                y = targets[idx].to(dev)
                if cfg is not None:
                    with torch.no_grad():
                        x = augment_batch(x, gen, cfg)
                x = x.contiguous(memory_format=fmt)
                _set_lr(optimizer, _lr_factor(step, total_steps, lr_schedule))
                with autocast(dev, precision):
                    logits = model(x).float()
                loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach().double() * y.shape[0]
                correct += (logits.detach().argmax(1) == y).sum()
                bar.update(1)
                step += 1
            seen = steps_per_epoch * batch_size
            _check_finite(loss_sum, step - 1)
            row = {
                "epoch": epoch,
                "train_loss": float(loss_sum) / seen,
                "train_accuracy": float(correct) / seen,
                "val_loss": math.nan,
                "val_accuracy": math.nan,
                "lr": optimizer.param_groups[0]["lr"],
            }
            if has_val:
                row["val_loss"], row["val_accuracy"] = _val_metrics(
                    model, va_images, va_labels, max(batch_size, 256), dev, precision
                )
                key = (row["val_accuracy"], -row["val_loss"])
                if select == "best" and (best_key is None or key > best_key):
                    best_key, best_epoch = key, epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            rows.append(row)
            bar.set_postfix(
                loss=f"{row['train_loss']:.3f}", val_acc=f"{row['val_accuracy']:.3f}", refresh=False
            )
            if resume_path is not None and _checkpoint_due(epoch, epochs, checkpoint_every):
                _save_resume(
                    resume_path, fingerprint, epoch + 1, step, optimizer, gen, dev, rows,
                    model=model.state_dict(), best_key=best_key, best_state=best_state,
                    best_epoch=best_epoch,
                )  # fmt: skip
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format).eval()
    history = pd.DataFrame(rows)
    history["selected"] = history["epoch"] == best_epoch
    return model, history


# --------------------------------------------------------------------------------------------
# Linear probe and embedding
# --------------------------------------------------------------------------------------------


def _fit_softmax_regression(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean CE + (λ/2)||W||²_F (bias unpenalised) by full-batch L-BFGS from zero.

    The closure runs the kernels autograd would run for ``F.cross_entropy(x @ W.T + b, y)``
    (log-softmax, NLL, their backward, the same matmul orientation) without the autograd engine:
    bit-identical loss, gradients and iterates in ~70 % of the time. Exactness matters: at small
    λ the 500 iterations end unconverged on flat directions, where a round-off change moves W
    by ~1e-3 and can flip a test prediction.
    """
    w = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device)
    b = torch.zeros(num_classes, dtype=x.dtype, device=x.device)
    # d(mean NLL)/d(log-probabilities): -1/N at each sample's class
    grad_logp = torch.zeros(x.shape[0], num_classes, dtype=x.dtype, device=x.device)
    grad_logp[torch.arange(x.shape[0], device=x.device), y] = -1.0 / x.shape[0]
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        logp = torch.log_softmax(x @ w.T + b, dim=1)
        loss = F.nll_loss(logp, y) + 0.5 * weight_decay * w.pow(2).sum()
        grad_z = torch._log_softmax_backward_data(grad_logp, logp, 1, logp.dtype)
        w.grad = grad_z.T.mm(x) + weight_decay * w  # (λ/2)·2W rounds as λW
        b.grad = grad_z.sum(dim=0)
        return loss

    opt.step(closure)
    return w, b


def linear_probe(
    train_X: np.ndarray,
    train_y: np.ndarray,
    test_X: np.ndarray,
    test_y: np.ndarray,
    *,
    num_classes: int | None = None,
    weight_decay: float | Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
    standardize: bool = True,
    max_iter: int = 500,
    val_fraction: float = 0.2,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[nn.Linear, dict]:
    """Linear probe on frozen embeddings: multinomial logistic regression by full-batch L-BFGS.

    Features are standardised with the training mean and standard deviation (if ``standardize``;
    zero-variance features get σ = 1), then W, b minimise

        1/N Σ_i -log softmax(W x̃_i + b)[y_i] + (λ/2) ||W||²_F

    in float64 by L-BFGS (strong-Wolfe line search, ``max_iter`` iterations, zero start: no
    randomness in the fit). With a grid of λ, each value is fitted on a stratified
    (1 - val_fraction) part of the training set (seeded) and scored on the rest (accuracy, ties
    broken by lower log-loss, then larger λ); the chosen λ is refitted on the whole training set.
    The scaler is folded into the returned layer, W' = W / σ and b' = b - W' μ, so the probe acts
    on raw embeddings: it is the "pretrained" classification head of Tětková et al.'s Euclidean
    convexity (arXiv:2305.17154; a linear probe on last-layer embeddings).

    Parameters
    ----------
    train_X, test_X : np.ndarray
        (n, D) embeddings.
    train_y, test_y : np.ndarray
        (n,) int labels.
    num_classes : int, optional
        Output classes (default max label + 1 over train and test).
    weight_decay : float or sequence of float
        λ, or a grid to select from on a validation split.
    standardize : bool
        Standardise features before fitting (folded back afterwards).
    max_iter : int
        L-BFGS iterations.
    val_fraction : float
        Held-out fraction per class for grid selection.
    seed : int
        Seeds the validation split (the only random choice).
    device : str or torch.device
        Where to fit.

    Returns
    -------
    probe : nn.Linear
        float32 Linear(D, num_classes) on raw embeddings, on the CPU.
    metrics : dict
        ``accuracy``, ``per_class_recall`` (dict class → recall) and ``test_predictions``
        ((n,) int array) on the test set, ``train_accuracy``, ``weight_decay`` (chosen λ) and
        ``val_accuracy`` (dict λ → validation accuracy; empty for a fixed λ).
    """
    train_X = as_features(train_X, "train_X", dtype=None)
    test_X = as_features(test_X, "test_X", dtype=None)
    same_width(train_X, test_X, "train_X", "test_X", "both must come from the same layer")
    train_y = _check_labels(train_y, train_X.shape[0], "train_y")
    test_y = _check_labels(test_y, test_X.shape[0], "test_y")
    num_classes = _check_num_classes(np.concatenate([train_y, test_y]), num_classes)
    grid = [float(weight_decay)] if np.isscalar(weight_decay) else [float(v) for v in weight_decay]
    if not grid or min(grid) < 0:
        raise ValueError(f"weight_decay must be >= 0 (or a non-empty grid of such), got {grid}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if len(grid) > 1 and not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"val_fraction must be in (0, 1) to select from a grid, got {val_fraction}"
        )
    dev = torch.device(device)

    x_all = torch.as_tensor(train_X, dtype=torch.float64, device=dev)
    y_all = torch.as_tensor(train_y, device=dev)
    if standardize:
        mu = x_all.mean(dim=0)
        sd = x_all.std(dim=0, unbiased=False)
        sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    else:
        mu = torch.zeros(x_all.shape[1], dtype=torch.float64, device=dev)
        sd = torch.ones_like(mu)
    xs = (x_all - mu) / sd

    val_acc: dict[float, float] = {}
    chosen = grid[0]
    if len(grid) > 1:
        val_mask = torch.as_tensor(_stratified_holdout(train_y, val_fraction, seed), device=dev)
        best = None
        for lam in grid:
            w, b = _fit_softmax_regression(
                xs[~val_mask], y_all[~val_mask], num_classes, lam, max_iter
            )
            logits = xs[val_mask] @ w.T + b
            acc = float((logits.argmax(1) == y_all[val_mask]).double().mean())
            nll = float(F.cross_entropy(logits, y_all[val_mask]))
            val_acc[lam] = acc
            key = (acc, -nll, lam)
            if best is None or key > best:
                best, chosen = key, lam
    w, b = _fit_softmax_regression(xs, y_all, num_classes, chosen, max_iter)

    # Fold the scaler: W x̃ + b = (W/σ) x + (b - (W/σ) μ).
    w_raw = w / sd
    b_raw = b - w_raw @ mu
    probe = nn.Linear(train_X.shape[1], num_classes)
    with torch.no_grad():
        probe.weight.copy_(w_raw.float().cpu())
        probe.bias.copy_(b_raw.float().cpu())

    with torch.no_grad():
        train_pred = (xs @ w.T + b).argmax(1).cpu().numpy()
        x_test = (torch.as_tensor(test_X, dtype=torch.float64, device=dev) - mu) / sd
        test_pred = (x_test @ w.T + b).argmax(1).cpu().numpy()
    metrics = {
        "accuracy": float(np.mean(test_pred == test_y)),
        "per_class_recall": _per_class_recall(test_y, test_pred),
        "test_predictions": test_pred,
        "train_accuracy": float(np.mean(train_pred == train_y)),
        "weight_decay": chosen,
        "val_accuracy": val_acc,
    }
    return probe, metrics


def embed(
    encoder: nn.Module,
    images: np.ndarray,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    precision: Precision | Mapping | None = None,
) -> np.ndarray:
    """Pooled embeddings (N, num_features) float32 of uint8 images, in eval / inference mode.

    The encoder's train/eval mode is restored afterwards; ``precision`` defaults to float32.
    """
    _check_encoder(encoder)
    _check_images(images, min_n=1)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return _forward_batched(encoder, images, batch_size, torch.device(device), precision).numpy()
