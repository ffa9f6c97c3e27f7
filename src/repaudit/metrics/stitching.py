"""Zero-shot stitching: a decoder trained on one encoder's space, fed another encoder's.

Moschella et al., arXiv:2209.15430, Sec. 5.2 (Table 5 protocol; the CIFAR-100 stitching
classifier of the paper's ``vision_stitching_cifar100.ipynb``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn

from repaudit.metrics._common import as_features, as_labels

__all__ = [
    "STITCHING_VARIANTS",
    "StitchingDecoder",
    "decoder_predict",
    "stitching_scores",
    "train_decoder",
    "weighted_f1_score",
]

STITCHING_VARIANTS = ("relative", "relative_whitened", "absolute")


def weighted_f1_score(y_true, y_pred) -> float:
    """Support-weighted F1 over classes: sklearn ``f1_score(average="weighted")``.

    Classes that occur only among the predictions have weight 0; a class never predicted
    correctly scores 0 (``zero_division=0``). Returned in [0, 1].
    """
    yt = as_labels(y_true, None, "y_true")
    yp = as_labels(y_pred, yt.shape[0], "y_pred", expected="one per entry of y_true")
    return float(f1_score(yt, yp, average="weighted", zero_division=0))


class StitchingDecoder(nn.Module):
    """The paper's CIFAR-100 stitching classifier (``vision_stitching_cifar100.ipynb``).

    x -> L2-normalise -> LayerNorm(in) -> Linear(in, hidden) -> Tanh
      -> InstanceNorm1d over the batch -> Linear(hidden, n_classes).

    The paper applies ``nn.InstanceNorm1d(hidden)`` to the transposed (hidden, batch) tensor:
    every hidden unit is standardised over the samples of the batch (biased variance, eps 1e-5,
    no affine parameters, no running statistics). It is written out here so that a trailing
    batch of one sample gives zeros instead of an error. Because no statistics are stored,
    predictions depend on the whole batch that is evaluated (see :func:`decoder_predict`).
    """

    def __init__(self, in_features: int, hidden: int, n_classes: int, eps: float = 1e-5):
        super().__init__()
        self.input_norm = nn.LayerNorm(in_features)
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, n_classes)
        self.eps = eps
        self.classes_: np.ndarray = np.arange(n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.hidden(self.input_norm(F.normalize(x, p=2, dim=-1))))
        mean = h.mean(dim=0, keepdim=True)
        var = h.var(dim=0, unbiased=False, keepdim=True)
        return self.out((h - mean) / torch.sqrt(var + self.eps))


def train_decoder(
    X_train,
    y_train,
    *,
    epochs: int = 10,
    lr: float = 1e-4,
    batch_size: int = 32,
    hidden: int = 768,
    seed: int = 0,
    device: str = "cpu",
) -> StitchingDecoder:
    """Train the stitching decoder on one encoder's (relative or absolute) space.

    arXiv:2209.15430, Sec. 5.2: Adam (lr 1e-4), batch 32, shuffled every epoch, cross-entropy;
    10 epochs for CIFAR-100 coarse, 20 for fine. ``seed`` fixes the initial weights and the
    batch order (bit-identical on CPU). Returns the decoder in eval mode on ``device``; its
    ``classes_`` maps output units to the original label values (sorted unique ``y_train``).
    """
    X = as_features(X_train, "X_train")
    y = as_labels(y_train, X.shape[0], "y_train")
    for name, val in (("epochs", epochs), ("batch_size", batch_size), ("hidden", hidden)):
        if isinstance(val, bool) or int(val) != val or val < 1:
            raise ValueError(f"{name} must be a positive integer; got {val!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr!r}.")
    classes, y_idx = np.unique(y, return_inverse=True)
    if classes.shape[0] < 2:
        raise ValueError("train_decoder needs at least 2 classes in y_train.")
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(seed)
        decoder = StitchingDecoder(X.shape[1], int(hidden), classes.shape[0])
    decoder.classes_ = classes
    decoder.to(device).train()
    Xt = torch.from_numpy(X.astype(np.float32)).to(device)
    yt = torch.from_numpy(y_idx.astype(np.int64)).to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(decoder.parameters(), lr=lr)
    for _ in range(int(epochs)):
        order = torch.randperm(X.shape[0], generator=gen).to(device)
        for s in range(0, X.shape[0], int(batch_size)):
            idx = order[s : s + int(batch_size)]
            loss = F.cross_entropy(decoder(Xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return decoder.eval()


@torch.no_grad()
def decoder_predict(decoder: StitchingDecoder, X) -> np.ndarray:
    """Predicted labels for all rows of X, evaluated as ONE batch (transductive).

    The decoder's batch-wise InstanceNorm has no running statistics, so, as in the paper's
    notebooks, the whole evaluation set goes through in a single forward pass and the hidden
    units are standardised over that set; smaller evaluation batches would give different
    predictions.
    """
    Xa = as_features(X, "X")
    if Xa.shape[1] != decoder.input_norm.normalized_shape[0]:
        raise ValueError(
            f"X has {Xa.shape[1]} features but the decoder expects "
            f"{decoder.input_norm.normalized_shape[0]}; pass the space it was trained on."
        )
    device = next(decoder.parameters()).device
    logits = decoder.eval()(torch.from_numpy(Xa.astype(np.float32)).to(device))
    return decoder.classes_[logits.argmax(dim=1).cpu().numpy()]


def stitching_scores(
    train_spaces: Mapping[str, np.ndarray],
    test_spaces: Mapping[str, np.ndarray],
    y_train,
    y_test,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 10,
    lr: float = 1e-4,
    batch_size: int = 32,
    hidden: int = 768,
    device: str = "cpu",
) -> pd.DataFrame:
    """Zero-shot stitching: decoder trained on model A, fed the test embeddings of model B.

    arXiv:2209.15430, Sec. 5.2 / Table 5: for every seed and every (A, B), train
    :func:`train_decoder` on ``train_spaces[A]`` and score ``decoder_predict`` on
    ``test_spaces[B]`` with 100 x weighted F1. A == A is the non-stitched reference. When the
    widths differ (absolute spaces of different encoders) stitching is undefined: NaN with a
    ``reason``.

    Returns
    -------
    DataFrame with columns ``model`` (decoder A), ``model_b`` (encoder B), ``value`` (mean F1
    x 100 over seeds), ``value_std`` (sample std, ddof=1; NaN for one seed), ``n_seeds``,
    ``reason`` ("" when defined).
    """
    if set(train_spaces) != set(test_spaces) or not train_spaces:
        raise ValueError(
            "train_spaces and test_spaces must name the same, non-empty set of models; got "
            f"{sorted(train_spaces)} and {sorted(test_spaces)}."
        )
    if not seeds:
        raise ValueError("seeds must list at least one seed.")
    models = list(train_spaces)
    train = {m: as_features(train_spaces[m], f"train_spaces[{m!r}]") for m in models}
    test = {m: as_features(test_spaces[m], f"test_spaces[{m!r}]") for m in models}
    ytr = as_labels(y_train, None, "y_train")
    yte = as_labels(y_test, None, "y_test")
    for m in models:
        as_labels(ytr, train[m].shape[0], "y_train", expected=f"one per row of train_spaces[{m!r}]")
        as_labels(yte, test[m].shape[0], "y_test", expected=f"one per row of test_spaces[{m!r}]")
        if train[m].shape[1] != test[m].shape[1]:
            raise ValueError(
                f"model {m!r}: train width {train[m].shape[1]} != test width "
                f"{test[m].shape[1]}; both must come from the same encoder and layer."
            )
    scores: dict[tuple[str, str], list[float]] = {(a, b): [] for a in models for b in models}
    for seed in seeds:
        for a in models:
            decoder = train_decoder(
                train[a],
                ytr,
                epochs=epochs,
                lr=lr,
                batch_size=batch_size,
                hidden=hidden,
                seed=int(seed),
                device=device,
            )
            for b in models:
                if test[b].shape[1] == train[a].shape[1]:
                    pred = decoder_predict(decoder, test[b])
                    scores[a, b].append(100.0 * weighted_f1_score(yte, pred))
    rows = []
    for (a, b), vals in scores.items():
        if vals:
            arr = np.asarray(vals)
            std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
            rows.append((a, b, float(arr.mean()), std, arr.size, ""))
        else:
            reason = (
                f"width mismatch: decoder input {train[a].shape[1]} vs encoder output "
                f"{test[b].shape[1]}"
            )
            rows.append((a, b, float("nan"), float("nan"), 0, reason))
    return pd.DataFrame(
        rows, columns=["model", "model_b", "value", "value_std", "n_seeds", "reason"]
    )
