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
from torch import nn
from torch.optim.adam import adam

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
    """Support-weighted F1 over classes, as sklearn's ``f1_score(average="weighted")``.

    Classes that occur only among the predictions have weight 0; a class never predicted
    correctly scores 0 (``zero_division=0``). Returned in [0, 1].
    """
    yt = as_labels(y_true, None, "y_true")
    yp = as_labels(y_pred, yt.shape[0], "y_pred", expected="one per entry of y_true")
    labels = np.union1d(yt, yp)
    true, pred = np.searchsorted(labels, yt), np.searchsorted(labels, yp)
    return float(_weighted_f1_rows(true, pred[None, :], labels.shape[0])[0])


def _weighted_f1_rows(y_true: np.ndarray, preds: np.ndarray, n_labels: int) -> np.ndarray:
    """:func:`weighted_f1_score` of every row of ``preds`` (R, n) against ``y_true`` (n,).

    Labels are indices in [0, n_labels). Per class F1 = 2 tp / (support + n_predicted), which
    is sklearn's 2PR / (P + R) with 0 for an empty denominator, weighted by the support.
    """
    R = preds.shape[0]
    cells = (np.arange(R)[:, None] * n_labels + y_true[None, :]) * n_labels + preds
    conf = np.bincount(cells.ravel(), minlength=R * n_labels * n_labels)
    conf = conf.reshape(R, n_labels, n_labels)
    tp = np.diagonal(conf, axis1=1, axis2=2)
    support, predicted = conf.sum(axis=2), conf.sum(axis=1)
    denom = support + predicted
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
    return (f1 * support).sum(axis=1) / support.sum(axis=1)


# eps of the decoder's LayerNorm (PyTorch's default) and of its batch standardisation
_EPS = 1e-5


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

    def __init__(self, in_features: int, hidden: int, n_classes: int, eps: float = _EPS):
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


# ---------------------------------------------------------------------------- batched training
# The decoders of one stitching table differ only in their data (encoder) and seed, and all see
# batches of the same sizes: they are trained together as stacked parameters (one bmm per layer
# per step for every head) with the forward and backward passes written out. Per head this is
# the computation of StitchingDecoder + F.cross_entropy + autograd + Adam, in another float
# order; a Python-level step (~20 small ops) served one head before, it serves H heads now.
_PARAM_NAMES = ("gamma", "beta", "W1", "b1", "W2", "b2")


def _module_params(dec: StitchingDecoder) -> list[torch.Tensor]:
    """The decoder's parameters in the order of ``_PARAM_NAMES``."""
    return [dec.input_norm.weight, dec.input_norm.bias, dec.hidden.weight, dec.hidden.bias,
            dec.out.weight, dec.out.bias]  # fmt: skip


def _prenorm(X: torch.Tensor, eps: float) -> torch.Tensor:
    """The parameter-free part of the decoder's input: LayerNorm(L2-normalise(x)) w/o affine."""
    return F.layer_norm(F.normalize(X, p=2, dim=-1), (X.shape[-1],), eps=eps)


def _init_heads(in_features, hidden, n_classes, seeds, reps, device) -> list[torch.Tensor]:
    """Stacked initial parameters, head order (seed, rep): each seed's StitchingDecoder init."""
    per_seed = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(int(seed))
            dec = StitchingDecoder(in_features, hidden, n_classes)
        per_seed.append(_module_params(dec))
    return [
        torch.stack([ps[i].detach() for ps in per_seed])
        .repeat_interleave(reps, dim=0)
        .to(device)
        .contiguous()
        for i in range(len(_PARAM_NAMES))
    ]


def _head_forward(params, Xn: torch.Tensor, eps: float):
    """Logits (H, B, C) of H heads on their prenormalised inputs Xn (H, B, I), with the hidden
    activations t = tanh(.), the standardised z, 1/sqrt(var + eps) and the LayerNorm output u."""
    gamma, beta, W1, b1, W2, b2 = params
    u = torch.addcmul(beta[:, None, :], Xn, gamma[:, None, :])
    # tanh(a) = 2 sigmoid(2a) - 1 (equal up to float rounding): torch.tanh is ~3x slower on CPU
    t = (
        torch.baddbmm(b1[:, None, :], u, W1.transpose(1, 2))
        .mul_(2.0)
        .sigmoid_()
        .mul_(2.0)
        .sub_(1.0)
    )
    # two-pass biased variance; torch.var_mean over the middle dim is ~30x slower on CPU
    c = t - t.mean(dim=1, keepdim=True)
    rstd = (c * c).mean(dim=1, keepdim=True).add_(eps).rsqrt_()
    z = c.mul_(rstd)
    return torch.baddbmm(b2[:, None, :], z, W2.transpose(1, 2)), t, z, rstd, u


def _train_heads(
    Xn: torch.Tensor,
    y_idx: torch.Tensor,
    n_classes: int,
    seeds: Sequence[int],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    hidden: int,
    eps: float = _EPS,
) -> list[torch.Tensor]:
    """Train one decoder per (seed, model): Xn (M, n, I) prenormalised train inputs of M models.

    Returns the 6 stacked parameters (gamma, beta, W1, b1, W2, b2), head h = seed_index * M + m.
    Each head sees exactly the run of :func:`train_decoder` with its seed: the seed's init and
    batch orders (``torch.randperm`` per epoch from ``Generator().manual_seed(seed)``), mean
    cross-entropy per batch, Adam (betas 0.9/0.999, eps 1e-8).
    """
    M, n, n_in = Xn.shape
    S, device = len(seeds), Xn.device
    H = S * M
    init = _init_heads(n_in, hidden, n_classes, seeds, M, device)
    # all parameters in one flat buffer, so that one fused Adam call updates every head; the
    # functional adam() skips Optimizer.step's bookkeeping (~0.25 ms a step)
    sizes = [p.numel() for p in init]
    flat = torch.cat([p.reshape(-1) for p in init])
    grad, exp_avg, exp_avg_sq = (torch.zeros_like(flat) for _ in range(3))
    step = torch.zeros((), dtype=torch.float32, device=device)
    params = [v.view(p.shape) for v, p in zip(flat.split(sizes), init, strict=True)]
    grads = [v.view(p.shape) for v, p in zip(grad.split(sizes), init, strict=True)]
    gG, gB, gW1, gb1, gW2, gb2 = grads
    adam_kw = dict(
        fused=True, amsgrad=False, beta1=0.9, beta2=0.999, lr=lr, weight_decay=0.0,
        eps=1e-8, maximize=False,
    )  # fmt: skip
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    onehot = F.one_hot(y_idx, n_classes).to(Xn.dtype)
    model_idx = torch.arange(M, device=device)
    with torch.no_grad():
        for _ in range(int(epochs)):
            order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
            # this epoch's batches of every head, in its seed's order: (S, M, n, .) -> (H, n, .)
            Xe = Xn[model_idx[None, :, None], order[:, None, :]].reshape(H, n, n_in)
            Ye = onehot[order].repeat_interleave(M, dim=0)
            for s in range(0, n, int(batch_size)):
                xb, yb = Xe[:, s : s + batch_size], Ye[:, s : s + batch_size]
                logits, t, z, rstd, u = _head_forward(params, xb, eps)
                # mean cross-entropy over the batch: d/dlogits = (softmax - onehot) / B
                dl = logits.softmax(dim=2).sub_(yb).div_(xb.shape[1])
                torch.sum(dl, dim=1, out=gb2)
                torch.bmm(dl.transpose(1, 2), z, out=gW2)
                dz = torch.bmm(dl, params[4])
                # standardisation over the batch (biased variance): the batch-norm backward
                dzz = (dz * z).mean(dim=1, keepdim=True)
                dz -= dz.mean(dim=1, keepdim=True)
                da = dz.sub_(z * dzz).mul_(rstd).mul_(1.0 - t * t)  # tanh' = 1 - tanh^2
                torch.sum(da, dim=1, out=gb1)
                torch.bmm(da.transpose(1, 2), u, out=gW1)
                du = torch.bmm(da, params[2])
                torch.sum(du * xb, dim=1, out=gG)
                torch.sum(du, dim=1, out=gB)
                adam([flat], [grad], [exp_avg], [exp_avg_sq], [], [step], **adam_kw)
    return [p.clone() for p in params]


def _check_training(y, epochs, lr, batch_size, hidden) -> tuple[np.ndarray, np.ndarray]:
    """Validate the training settings; the sorted classes of y and y as class indices."""
    for name, val in (("epochs", epochs), ("batch_size", batch_size), ("hidden", hidden)):
        if isinstance(val, bool) or int(val) != val or val < 1:
            raise ValueError(f"{name} must be a positive integer; got {val!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr!r}.")
    classes, y_idx = np.unique(y, return_inverse=True)
    if classes.shape[0] < 2:
        raise ValueError("train_decoder needs at least 2 classes in y_train.")
    return classes, y_idx


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
    batch order (bit-identical on CPU). Trained by the batched trainer of
    :func:`stitching_scores` with one head (forward and backward written out, fused Adam).
    Returns the decoder in eval mode on ``device``; its ``classes_`` maps output units to the
    original label values (sorted unique ``y_train``).
    """
    X = as_features(X_train, "X_train")
    y = as_labels(y_train, X.shape[0], "y_train")
    classes, y_idx = _check_training(y, epochs, lr, batch_size, hidden)
    with torch.random.fork_rng(devices=[]):  # its init is overwritten; keep the global RNG
        decoder = StitchingDecoder(X.shape[1], int(hidden), classes.shape[0])
    decoder.classes_ = classes
    Xn = _prenorm(torch.from_numpy(X.astype(np.float32)).to(device), decoder.eps)
    trained = _train_heads(
        Xn[None],
        torch.from_numpy(y_idx.astype(np.int64)).to(device),
        classes.shape[0],
        [seed],
        epochs=int(epochs),
        lr=lr,
        batch_size=int(batch_size),
        hidden=int(hidden),
        eps=decoder.eps,
    )
    decoder.to(device)
    with torch.no_grad():
        for q, value in zip(_module_params(decoder), trained, strict=True):
            q.copy_(value[0])
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
    ``reason``. The decoders of all seeds and models of one input width are trained together
    (:func:`_train_heads`); each is the run of :func:`train_decoder` with its seed, up to float
    rounding.

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
    classes, y_idx = _check_training(ytr, epochs, lr, batch_size, hidden)
    # F1 over the union of train and test labels, as sklearn's over y_test and the predictions
    labels = np.union1d(classes, yte)
    pred_label, true_label = np.searchsorted(labels, classes), np.searchsorted(labels, yte)
    y_idx_t = torch.from_numpy(y_idx.astype(np.int64)).to(device)

    def prenorm(X):
        return _prenorm(torch.from_numpy(X.astype(np.float32)).to(device), _EPS)

    scores: dict[tuple[str, str], list[float]] = {(a, b): [] for a in models for b in models}
    # decoders of equal input width train together: all seeds x models of the group
    widths = sorted({train[m].shape[1] for m in models})
    for width in widths:
        group = [m for m in models if train[m].shape[1] == width]
        params = _train_heads(
            torch.stack([prenorm(train[m]) for m in group]),
            y_idx_t,
            classes.shape[0],
            [int(s) for s in seeds],
            epochs=int(epochs),
            lr=lr,
            batch_size=int(batch_size),
            hidden=int(hidden),
        )
        with torch.no_grad():
            for b in (m for m in models if test[m].shape[1] == width):
                # each decoder sees encoder b's whole test set as one batch (decoder_predict)
                logits = _head_forward(params, prenorm(test[b])[None], _EPS)[0]
                pred = pred_label[logits.argmax(dim=2).cpu().numpy()]  # (seed x group, n_test)
                f1 = 100.0 * _weighted_f1_rows(true_label, pred, labels.shape[0])
                for h, f in enumerate(f1):  # head h = seed index * len(group) + model
                    scores[group[h % len(group)], b].append(float(f))
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
