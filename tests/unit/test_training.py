"""Tests for repaudit.models.augment and repaudit.models.training (tiny images, test_resnet)."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from torch import nn

from repaudit.models import augment as aug
from repaudit.models import training as tr

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyEncoder(nn.Module):
    """Module contract: raw [0, 1] images → pooled (B, D), normalisation inside, num_features."""

    def __init__(self, name: str = "test_resnet", seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = timm.create_model(name, pretrained=False, num_classes=0)
        self.num_features = int(self.body.num_features)
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)


def _random_images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _colour_dataset(n_per_class: int, size: int = 16, seed: int = 0):
    """Class 0: reddish noise images, class 1: bluish noise images (linearly separable)."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 120, (2 * n_per_class, size, size, 3)).astype(np.int64)
    imgs[:n_per_class, :, :, 0] += 130
    imgs[n_per_class:, :, :, 2] += 130
    labels = np.repeat(np.arange(2), n_per_class).astype(np.int64)
    perm = rng.permutation(labels.size)
    return imgs[perm].astype(np.uint8), labels[perm]


def _state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ============================================================================ augmentations


def _batch(seed: int = 0, b: int = 6, h: int = 12, w: int = 10) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_augment_is_seeded_and_in_range():
    x = _batch()
    v1 = aug.augment(x, torch.Generator().manual_seed(3))
    v2 = aug.augment(x, torch.Generator().manual_seed(3))
    v3 = aug.augment(x, torch.Generator().manual_seed(4))
    assert torch.equal(v1, v2)
    assert not torch.equal(v1, v3)
    assert v1.shape == x.shape
    assert v1.min() >= 0.0 and v1.max() <= 1.0
    a, b = aug.two_views(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, v1) and not torch.equal(a, b)


def test_augment_output_size_and_extreme_inputs_stay_in_range():
    x = torch.cat([torch.zeros(2, 3, 9, 9), torch.ones(2, 3, 9, 9), _batch(1, 4, 9, 9)])
    cfg = aug.AugmentConfig(output_size=5, brightness=0.9, contrast=0.9, saturation=0.9, hue=0.5)
    out = aug.augment(x, torch.Generator().manual_seed(0), cfg)
    assert out.shape == (8, 3, 5, 5)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_identity_config_returns_input():
    cfg = aug.AugmentConfig(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0, jitter_p=0, grayscale_p=0
    )
    x = _batch(h=8, w=8)
    out = aug.augment(x, torch.Generator().manual_seed(0), cfg)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_flip_and_grayscale_with_probability_one():
    x = _batch()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(aug.horizontal_flip(x, g, p=1.0), x.flip(-1))
    assert torch.equal(aug.horizontal_flip(x, g, p=0.0), x)
    gray = aug.random_grayscale(x, g, p=1.0)
    expected = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        torch.testing.assert_close(gray[:, c], expected)


def test_random_resized_crop_geometry_on_a_ramp():
    # A horizontal ramp x_j = (j + 0.5) / W is reproduced linearly by bilinear sampling, so a crop
    # of area 1/4 and ratio 1 (half the width) spans half the ramp: last - first = 0.5 (W-1)/W.
    w = 16
    ramp = ((torch.arange(w) + 0.5) / w).view(1, 1, 1, w).expand(5, 3, w, w).contiguous()
    out = aug.random_resized_crop(
        ramp, torch.Generator().manual_seed(0), scale=(0.25, 0.25), ratio=(1.0, 1.0)
    )
    span = out[:, 0, 0, -1] - out[:, 0, 0, 0]
    torch.testing.assert_close(span, torch.full((5,), 0.5 * (w - 1) / w), atol=1e-5, rtol=0)
    # Every crop lies inside the image.
    assert out.min() >= ramp.min() - 1e-6 and out.max() <= ramp.max() + 1e-6


def test_color_jitter_matches_torchvision_functional(monkeypatch):
    tvf = pytest.importorskip("torchvision.transforms.functional")
    # torchvision's grayscale uses a red weight of 0.2989, PIL (and we) 0.299: align them here so
    # the comparison is exact up to rounding (torchvision's adjust_hue works in float32).
    monkeypatch.setattr(aug, "_LUMA", (0.2989, 0.587, 0.114))
    x = _batch(5, b=4).double()
    fb = torch.tensor([0.7, 1.3, 1.0, 0.9], dtype=torch.float64)
    fc = torch.tensor([1.2, 0.6, 1.0, 1.4], dtype=torch.float64)
    fs = torch.tensor([0.5, 1.5, 0.0, 1.1], dtype=torch.float64)
    fh = torch.tensor([0.1, -0.05, 0.3, -0.5], dtype=torch.float64)
    got = aug._jitter_with_factors(x, fb, fc, fs, fh)
    for i in range(4):
        ref = tvf.adjust_brightness(x[i], float(fb[i]))
        ref = tvf.adjust_contrast(ref, float(fc[i]))
        ref = tvf.adjust_saturation(ref, float(fs[i]))
        ref = tvf.adjust_hue(ref, float(fh[i]))
        torch.testing.assert_close(got[i], ref, atol=2e-6, rtol=0)


def _reference_jitter(x, fb, fc, fs, fh):
    """The out-of-place jitter formulas, HSV round trip always taken (the pre-fast-path code)."""

    def col(f):
        return f.to(x.dtype).view(-1, 1, 1, 1)

    out = (x * col(fb)).clamp(0.0, 1.0)
    mean = aug._grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
    out = (col(fc) * out + (1.0 - col(fc)) * mean).clamp(0.0, 1.0)
    out = (col(fs) * out + (1.0 - col(fs)) * aug._grayscale(out)).clamp(0.0, 1.0)
    hsv = aug._rgb_to_hsv(out)
    hsv = torch.stack([(hsv[:, 0] + col(fh).squeeze(1)) % 1.0, hsv[:, 1], hsv[:, 2]], dim=1)
    return aug._hsv_to_rgb(hsv).clamp(0.0, 1.0)


def test_color_jitter_fast_paths_are_bit_identical():
    g = torch.Generator().manual_seed(2)
    colour = _batch(7, b=5)
    gray = _batch(8, b=5)[:, :1].expand(-1, 3, -1, -1).contiguous()
    fb, fc, fs = (aug._uniform(5, 0.6, 1.4, g) for _ in range(3))
    fh = aug._uniform(5, -0.1, 0.1, g)
    for x in (colour, gray):  # in-place updates; gray images skip the HSV round trip
        got = aug._jitter_with_factors(x, fb, fc, fs, fh)
        assert torch.equal(got, _reference_jitter(x, fb, fc, fs, fh))
    # no image selected: the input itself (the old round trip only added rounding)
    one, zero = torch.ones(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    assert torch.equal(aug.color_jitter(colour, g, p=0.0), colour)
    old = _reference_jitter(colour, one, one, one, zero)
    torch.testing.assert_close(old, colour, atol=1e-6, rtol=0)
    assert torch.equal(aug.random_grayscale(colour, g, p=0.0), colour)


def test_augment_input_validation():
    g = torch.Generator()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        aug.augment(torch.rand(3, 8, 8), g)
    with pytest.raises(ValueError, match="float"):
        aug.augment(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), g)
    with pytest.raises(ValueError, match="crop_scale"):
        aug.AugmentConfig(crop_scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="flip_p"):
        aug.AugmentConfig(flip_p=2.0)


def test_pretrain_recipe_overrides_the_objectives_default():
    assert aug.pretrain_recipe("supervised") == aug.SUPERVISED_AUGMENT
    assert aug.pretrain_recipe("simclr") == aug.AugmentConfig()
    glyph = aug.pretrain_recipe("barlow_twins", crop_scale=[0.2, 1.0], flip_p=0.0)
    assert glyph.crop_scale == (0.2, 1.0) and glyph.flip_p == 0.0
    assert glyph.jitter_p == aug.AugmentConfig().jitter_p  # the rest of the SimCLR recipe stays
    sup = aug.pretrain_recipe("supervised", flip_p=0.0)
    assert sup.jitter_p == 0.0 and sup.crop_scale == aug.SUPERVISED_AUGMENT.crop_scale
    with pytest.raises(ValueError, match="unknown augmentation"):
        aug.pretrain_recipe("simclr", blur=1.0)
    with pytest.raises(ValueError, match="crop_scale"):
        aug.pretrain_recipe("simclr", crop_scale=[0.0, 1.0])


# ============================================================================ pretraining


def _pretrain(seed: int, objective: str = "simclr_w2", **kw):
    enc = TinyEncoder()
    images, labels = _colour_dataset(8)
    kw = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "log_every": 1, "progress": False} | kw
    return tr.pretrain(
        enc,
        images,
        labels,
        objective,
        projector_dim=16,
        projector_hidden_dim=32,
        w2_alpha_max=2.0,
        w2_alpha_min=0.0,
        seed=seed,
        **kw,
    )


def test_pretrain_is_bit_reproducible_and_seed_sensitive():
    enc_a, hist_a = _pretrain(seed=7)
    enc_b, hist_b = _pretrain(seed=7)
    enc_c, _ = _pretrain(seed=8)
    assert _state_equal(enc_a, enc_b)
    pd.testing.assert_frame_equal(hist_a, hist_b)
    assert not _state_equal(enc_a, enc_c)
    assert not _state_equal(enc_a, TinyEncoder())  # it did train


def test_pretrain_history_and_w2_schedule():
    _, hist = _pretrain(seed=0)
    assert list(hist.columns[:4]) == ["epoch", "step", "loss", "lr"]
    assert {"nt_xent", "w2", "w2_weight"} <= set(hist.columns)
    assert hist["step"].tolist() == [0, 1]
    # Two steps: α goes from α_max = 2 to α_min = 0; loss = NT-Xent + α W2.
    assert hist["w2_weight"].tolist() == [2.0, 0.0]
    np.testing.assert_allclose(hist["loss"], hist["nt_xent"] + hist["w2_weight"] * hist["w2"])
    # Cosine LR: full rate at step 0, half at the midpoint of 2 steps.
    np.testing.assert_allclose(hist["lr"], [1e-3, 0.5e-3])


def test_pretrain_leaves_global_state_alone():
    enc = TinyEncoder()
    images = _random_images(8)
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 - checked, not drawn from
    states = torch.get_rng_state(), np_state, random.getstate()
    was_det = torch.are_deterministic_algorithms_enabled()
    was_fill = torch.utils.deterministic.fill_uninitialized_memory
    tr.pretrain(enc, images, None, "barlow_twins", epochs=1, batch_size=8, progress=False)
    assert torch.are_deterministic_algorithms_enabled() == was_det
    assert torch.utils.deterministic.fill_uninitialized_memory == was_fill
    # trained in channels-last on CPU, handed back in the default layout
    assert all(p.is_contiguous() for p in enc.parameters())
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1])  # noqa: NPY002
    assert random.getstate() == states[2]


def test_pretrain_random_is_a_no_op():
    enc = TinyEncoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    out, hist = tr.pretrain(enc, _random_images(4), None, "random", epochs=3)
    assert out is enc and hist.empty
    assert list(hist.columns) == ["epoch", "step", "loss", "lr"]
    assert all(torch.equal(before[k], v) for k, v in out.state_dict().items())


@pytest.mark.parametrize("objective", ["supervised", "vicreg"])
def test_pretrain_runs_other_objectives(objective):
    enc, hist = _pretrain(seed=0, objective=objective, lr_schedule="constant")
    assert np.isfinite(hist["loss"]).all() and len(hist) == 2
    assert (hist["lr"] == 1e-3).all()
    assert not enc.training


# ============================================================================ resumable training


class _Crash(Exception):
    pass


def _crash_after(monkeypatch, calls: int) -> None:
    """Make the training loop's augmentation raise on call ``calls`` + 1: a run killed mid-epoch."""
    real, count = tr.augment_batch, [0]

    def augment(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise _Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "augment_batch", augment)


# 16 images, batch 8: 2 steps (4 two-view augmentations) per epoch over 3 epochs; the crash comes
# in the first step of the last epoch, after the checkpoint written at the end of epoch 1.
_RESUME_KW = {"epochs": 3, "batch_size": 8, "moco_queue_size": 16, "checkpoint_every": 1}


@pytest.mark.parametrize("objective", ["simclr_w2", "moco_v2_w2", "byol"])
def test_pretrain_resumes_bit_identically_after_a_crash(objective, tmp_path, monkeypatch):
    resume = tmp_path / "pretrained.pt.resume.pt"
    enc_ref, hist_ref = _pretrain(seed=3, objective=objective, **_RESUME_KW)
    _crash_after(monkeypatch, 4 * 2 + 1)
    with pytest.raises(_Crash):
        _pretrain(seed=3, objective=objective, resume_path=resume, **_RESUME_KW)
    monkeypatch.undo()
    saved = torch.load(resume, weights_only=True)
    assert (saved["epoch"], saved["step"], len(saved["history"])) == (2, 4, 4)
    enc, hist = _pretrain(seed=3, objective=objective, resume_path=resume, **_RESUME_KW)
    assert _state_equal(enc, enc_ref)
    pd.testing.assert_frame_equal(hist, hist_ref)
    assert hist["step"].tolist() == list(range(6))


def test_pretrain_ignores_another_runs_resume_file(tmp_path, monkeypatch):
    resume = tmp_path / "state.pt"
    kw = {**_RESUME_KW, "epochs": 2}
    _crash_after(monkeypatch, 5)
    with pytest.raises(_Crash):
        _pretrain(seed=3, resume_path=resume, **kw)
    monkeypatch.undo()
    assert resume.is_file()
    # Another seed (or lr, data, initial weights): the stale state is not resumed from.
    enc_ref, hist_ref = _pretrain(seed=4, **kw)
    enc, hist = _pretrain(seed=4, resume_path=resume, **kw)
    assert _state_equal(enc, enc_ref)
    pd.testing.assert_frame_equal(hist, hist_ref)
    resume.write_bytes(b"not a checkpoint")  # unreadable: start afresh too
    enc, _ = _pretrain(seed=4, resume_path=resume, **kw)
    assert _state_equal(enc, enc_ref)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _pretrain(seed=4, resume_path=resume, checkpoint_every=-1)


def test_zoo_resolves_per_objective_w2_weights():
    from repaudit.models.zoo import objective_params

    params = {"lr": 1.0, "w2_alpha_max": {"byol_w2": 0.2, "moco_v2_w2": 1.0}, "w2_alpha_min": 0.5}
    assert objective_params("byol_w2", params) == {**params, "w2_alpha_max": 0.2}
    assert objective_params("byol", params) == {"lr": 1.0, "w2_alpha_min": 0.5}  # no W2: dropped
    with pytest.raises(ValueError, match="no value for objective 'simclr_w2'"):
        objective_params("simclr_w2", params)


def test_checkpoint_schedule():
    due = [e for e in range(10) if tr._checkpoint_due(e, 10, 3)]
    assert due == [2, 5, 8]
    assert [e for e in range(3) if tr._checkpoint_due(e, 3, 1)] == [0, 1]  # not after the last
    assert not any(tr._checkpoint_due(e, 10, 0) for e in range(10))


def test_finetune_resumes_bit_identically_after_a_crash(tmp_path, monkeypatch):
    images, labels = _colour_dataset(10, seed=1)  # 16 training images after the 20 % split
    kw = {"epochs": 3, "batch_size": 8, "lr": 1e-3, "val_fraction": 0.2, "progress": False}
    ref, hist_ref = tr.finetune(TinyEncoder(), images, labels, 2, seed=2, **kw)
    resume = tmp_path / "finetuned.pt.resume.pt"
    _crash_after(monkeypatch, 3)  # one augmentation per step: dies in epoch 1's second step
    with pytest.raises(_Crash):
        tr.finetune(TinyEncoder(), images, labels, 2, seed=2, resume_path=resume, **kw)
    monkeypatch.undo()
    assert torch.load(resume, weights_only=True)["epoch"] == 1
    model, hist = tr.finetune(TinyEncoder(), images, labels, 2, seed=2, resume_path=resume, **kw)
    assert _state_equal(model, ref)
    pd.testing.assert_frame_equal(hist, hist_ref)


def test_pretrain_input_errors():
    enc = TinyEncoder()
    imgs = _random_images(4)
    with pytest.raises(ValueError, match="unknown objective"):
        tr.pretrain(enc, imgs, None, "moco")
    with pytest.raises(ValueError, match="uint8"):
        tr.pretrain(enc, imgs.astype(np.float32), None, "simclr")
    with pytest.raises(ValueError, match="needs labels"):
        tr.pretrain(enc, imgs, None, "supervised")
    with pytest.raises(ValueError, match="labels must have shape"):
        tr.pretrain(enc, imgs, np.zeros(3, dtype=np.int64), "supervised")
    with pytest.raises(ValueError, match="num_features"):
        tr.pretrain(nn.Identity(), imgs, None, "simclr")
    with pytest.raises(ValueError, match="moco_queue_size"):
        tr.pretrain(enc, imgs, None, "moco_v2", batch_size=4, moco_queue_size=6)


# ============================================================================ fine-tuning


def _finetune(seed: int, epochs: int = 3, **kw):
    images, labels = _colour_dataset(24, seed=1)
    kw = {"batch_size": 16, "lr": 2e-3, "val_fraction": 0.25, "progress": False} | kw
    return tr.finetune(TinyEncoder(), images, labels, 2, epochs=epochs, seed=seed, **kw)


def test_finetune_beats_chance_on_separable_colours():
    model, hist = _finetune(seed=0)
    test_images, test_labels = _colour_dataset(20, seed=99)
    acc, recall, pred = tr.evaluate_classifier(model, test_images, test_labels, batch_size=16)
    assert acc >= 0.9, hist
    assert set(recall) == {0, 1} and min(recall.values()) >= 0.8
    assert pred.shape == (40,) and pred.dtype == np.int64
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 2
    assert isinstance(model.encoder, TinyEncoder)
    cols = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "selected"]
    assert list(hist.columns) == cols
    assert hist["selected"].sum() == 1
    best = hist.loc[hist["selected"]].iloc[0]
    assert best["val_accuracy"] == hist["val_accuracy"].max()


def test_finetune_is_reproducible_and_leaves_the_encoder_untouched():
    images, labels = _colour_dataset(12, seed=1)
    enc = TinyEncoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    kw = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "progress": False, "val_fraction": 0.25}
    m1, h1 = tr.finetune(enc, images, labels, 2, seed=5, **kw)
    m2, h2 = tr.finetune(enc, images, labels, 2, seed=5, **kw)
    m3, _ = tr.finetune(enc, images, labels, 2, seed=6, **kw)
    assert _state_equal(m1, m2)
    pd.testing.assert_frame_equal(h1, h2)
    assert not _state_equal(m1, m3)
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())


def test_small_file_backed_images_are_read_once(tmp_path, monkeypatch):
    from repaudit.data import ImageDataset, take_rows
    from repaudit.io import read_dataset, write_dataset

    images, labels = _colour_dataset(6)
    split = np.where(np.arange(12) % 3 == 0, "test", "train")
    ids = np.asarray([f"i{k}" for k in range(12)])
    write_dataset(tmp_path / "d.h5", ImageDataset(images, labels, split, ids, ["r", "b"]))
    lazy = read_dataset(tmp_path / "d.h5", lazy=True)
    view = take_rows(lazy.images, split == "train")
    resident = tr._resident(view)
    assert isinstance(resident, np.ndarray) and np.array_equal(resident, images[split == "train"])
    monkeypatch.setattr(tr, "_RESIDENT_BYTES", images.nbytes // 4)  # too big: stays in the file
    assert tr._resident(view) is view
    assert tr._resident(images) is images
    lazy.images.close()


def test_finetune_without_validation_selects_last_and_accepts_head_init():
    images, labels = _colour_dataset(8, seed=2)
    head = nn.Linear(TinyEncoder().num_features, 2)
    model, hist = tr.finetune(
        TinyEncoder(),
        images,
        labels,
        epochs=2,
        batch_size=8,
        val_fraction=0.0,
        augment=False,
        head_init=head,
        lr=1e-12,  # effectively frozen: the head must start from head_init
        lr_schedule="constant",
        progress=False,
    )
    assert hist["val_accuracy"].isna().all()
    assert hist["selected"].tolist() == [False, True]
    torch.testing.assert_close(model.head.weight, head.weight, atol=1e-8, rtol=0)


def test_finetune_errors():
    images, labels = _colour_dataset(4)
    with pytest.raises(ValueError, match="val_fraction"):
        tr.finetune(TinyEncoder(), images, labels, val_fraction=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        tr.finetune(TinyEncoder(), images, labels, num_classes=1)
    one = labels.copy()
    one[0] = 2  # class 2 has a single sample
    with pytest.raises(ValueError, match="class 2 has 1 sample"):
        tr.finetune(TinyEncoder(), images, one, progress=False)


class _RedVsBlue(nn.Module):
    def forward(self, x):
        return torch.stack([x[:, 0].mean((1, 2)), x[:, 2].mean((1, 2))], dim=1)


def test_evaluate_classifier_hand_values():
    images = np.zeros((5, 4, 4, 3), dtype=np.uint8)
    images[:3, ..., 0] = 200  # red → predicted 0
    images[3:, ..., 2] = 200  # blue → predicted 1
    labels = np.array([0, 0, 1, 1, 1])
    acc, recall, pred = tr.evaluate_classifier(_RedVsBlue(), images, labels, batch_size=2)
    assert pred.tolist() == [0, 0, 0, 1, 1]
    assert acc == pytest.approx(0.8)
    assert recall == {0: 1.0, 1: pytest.approx(2 / 3)}


# ============================================================================ probe and embed


def _blobs(n_per_class: int, seed: int, scale=(1.0, 1000.0, 0.01, 5.0)):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0]], dtype=float)
    x = np.concatenate([c + rng.normal(size=(n_per_class, 4)) for c in centres])
    y = np.repeat(np.arange(3), n_per_class)
    return (x * np.array(scale) + 50.0).astype(np.float32), y


def test_linear_probe_separable_and_folded_on_raw_features():
    xtr, ytr = _blobs(30, 0)
    xte, yte = _blobs(20, 1)
    probe, m = tr.linear_probe(xtr, ytr, xte, yte, num_classes=3, seed=0)
    assert m["accuracy"] == 1.0 and m["train_accuracy"] == 1.0
    assert m["per_class_recall"] == {0: 1.0, 1: 1.0, 2: 1.0}
    assert m["weight_decay"] in m["val_accuracy"] and len(m["val_accuracy"]) == 6
    assert isinstance(probe, nn.Linear) and probe.weight.dtype == torch.float32
    raw_pred = probe(torch.from_numpy(xte)).argmax(1).numpy()
    assert (raw_pred == yte).all()


def test_linear_probe_matches_sklearn_logistic_regression():
    lm = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 5)) * [1, 10, 0.1, 3, 1] + 2.0
    y = (x[:, 0] + 0.1 * x[:, 1] + rng.normal(size=120) > 2.0).astype(np.int64)
    y[:40] = 2 * (x[:40, 3] > 2.0)  # a third, noisy class
    lam = 1e-2
    probe, _ = tr.linear_probe(x, y, x, y, weight_decay=lam, max_iter=1000)
    xs = (x - x.mean(0)) / x.std(0)
    # sklearn minimises C Σ CE + ||W||²/2, i.e. mean CE + ||W||²/(2 C N): C = 1/(λ N).
    ref = lm.LogisticRegression(C=1 / (lam * x.shape[0]), tol=1e-10, max_iter=10_000).fit(xs, y)
    ours = torch.softmax(probe(torch.from_numpy(x).float()), 1).detach().numpy()
    np.testing.assert_allclose(ours, ref.predict_proba(xs), atol=1e-4)


def test_softmax_regression_fit_is_bitwise_the_autograd_fit():
    """The closed-form closure gives the iterates of the autograd one it replaced, bit for bit:
    at small λ the fit ends unconverged, where any round-off change moves W (~1e-3)."""
    import torch.nn.functional as F

    def autograd_fit(x, y, num_classes, weight_decay, max_iter):
        w = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, requires_grad=True)
        b = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
        opt = torch.optim.LBFGS(
            [w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
            history_size=20, line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * weight_decay * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return w.detach(), b.detach()

    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(150, 7)) + np.repeat(np.eye(3, 7), 50, axis=0))
    y = torch.as_tensor(np.repeat(np.arange(3), 50))
    for lam in (1e-6, 1e-2):
        got, ref = tr._fit_softmax_regression(x, y, 3, lam, 60), autograd_fit(x, y, 3, lam, 60)
        for a, b in zip(got, ref, strict=True):
            assert torch.equal(a, b), lam


def test_linear_probe_errors():
    x, y = _blobs(5, 0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        bad = x.copy()
        bad[0, 0] = np.nan
        tr.linear_probe(bad, y, x, y)
    with pytest.raises(ValueError, match="features"):
        tr.linear_probe(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match="class 2 has 1 sample"):
        tr.linear_probe(x[:11], y[:11], x, y)
    with pytest.raises(ValueError, match="weight_decay"):
        tr.linear_probe(x, y, x, y, weight_decay=-1.0)


def test_embed_matches_eval_forward_and_restores_mode():
    enc = TinyEncoder().train()
    images = _random_images(5)
    emb = tr.embed(enc, images, batch_size=2)
    assert emb.shape == (5, enc.num_features) and emb.dtype == np.float32
    assert enc.training
    enc.eval()
    with torch.no_grad():
        ref = enc(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0).numpy()
    np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        tr.embed(enc, images.astype(np.float64))


def test_cosine_lr_factor():
    assert tr._lr_factor(0, 10, "cosine") == 1.0
    assert tr._lr_factor(5, 10, "cosine") == pytest.approx(0.5)
    assert tr._lr_factor(9, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(0.9 * math.pi)))
    assert tr._lr_factor(7, 10, "constant") == 1.0


def test_warmup_lr_factor_is_linear_then_cosine_over_the_rest():
    # 4 warm-up steps of 12: 1/4, 2/4, 3/4, 1, then cosine over the remaining 8 steps.
    factors = [tr._lr_factor(s, 12, "cosine", warmup=4) for s in range(12)]
    np.testing.assert_allclose(factors[:4], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(
        factors[4:], [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    )
    assert tr._lr_factor(2, 12, "constant", warmup=4) == 0.75
    assert tr._lr_factor(9, 12, "constant", warmup=4) == 1.0


def test_pretrain_warmup_shows_in_the_history():
    _, hist = _pretrain(seed=0, objective="supervised", lr_schedule="constant", warmup_fraction=0.5)
    np.testing.assert_allclose(hist["lr"], [1e-3, 1e-3])  # int(0.5 * 2) = 1 step: 1/1
    enc = TinyEncoder()
    imgs = _random_images(8)
    _, hist = tr.pretrain(
        enc,
        imgs,
        None,
        "simclr",
        epochs=4,
        batch_size=8,
        lr=1e-3,
        lr_schedule="constant",
        warmup_fraction=0.5,
        progress=False,
        log_every=1,
    )
    np.testing.assert_allclose(hist["lr"], [0.5e-3, 1e-3, 1e-3, 1e-3])
    with pytest.raises(ValueError, match="warmup_fraction"):
        tr.pretrain(enc, imgs, None, "simclr", warmup_fraction=1.0)


class _NaNEncoder(nn.Module):
    num_features = 4

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4)

    def forward(self, x):
        return self.lin(x.mean((2, 3))) * float("nan")


def test_non_finite_loss_raises():
    images, labels = _colour_dataset(4)
    with pytest.raises(FloatingPointError, match="lower lr"):
        tr.pretrain(_NaNEncoder(), images, None, "simclr", epochs=1, batch_size=8, progress=False)
    with pytest.raises(FloatingPointError, match="lower lr"):
        tr.finetune(_NaNEncoder(), images, labels, epochs=1, batch_size=4, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pretrain_and_finetune_run_on_cuda():
    images, labels = _colour_dataset(8)
    enc, hist = tr.pretrain(
        TinyEncoder(),
        images,
        labels,
        "simclr_w2",
        epochs=1,
        batch_size=8,
        progress=False,
        device="cuda",
    )
    assert np.isfinite(hist["loss"]).all()
    kw = {"epochs": 1, "batch_size": 4, "device": "cuda", "progress": False}
    model, _ = tr.finetune(enc, images, labels, **kw)
    acc, _, _ = tr.evaluate_classifier(model, images, labels, device="cuda")
    assert 0.0 <= acc <= 1.0
    assert tr.embed(enc, images, device="cuda").shape == (16, enc.num_features)
