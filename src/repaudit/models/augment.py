"""Seeded, vectorised image augmentations for self-supervised pretraining and fine-tuning.

Every function takes a batch ``x`` of shape (B, 3, H, W), float in [0, 1], and an explicit CPU
``torch.Generator``. All random parameters are drawn on the CPU from that generator (a fixed number
of draws per call, whatever the probabilities are) and only then moved to ``x.device``, so the
augmentation of a batch depends only on the generator state: the same state gives the same views on
CPU, and the same parameters on a GPU. Every output stays in [0, 1].

The default :class:`AugmentConfig` is the SimCLR augmentation family of Chen et al. (2020,
arXiv 2002.05709, App. A) at the CIFAR colour strength s = 0.5: random resized crop (scale
0.08-1, ratio 3/4-4/3), horizontal flip (p = 0.5), colour jitter (brightness, contrast, saturation
0.8 s = 0.4, hue 0.2 s = 0.1; applied with p = 0.8) and random grayscale (p = 0.2). Gaussian blur
is left out, as Chen et al. do for CIFAR. Fang et al. (2024, arXiv 2403.00642, App. F) use the
solo-learn CIFAR recipe, which is the same family.

Deviations from torchvision, stated so that they are not mistaken for bugs:

- the crop box is sampled once per image (no 10-try rejection loop); a box wider or taller than the
  image is clamped to the image side, which slightly changes the scale/ratio distribution at the
  extremes;
- the crop is resampled bilinearly with ``grid_sample`` (no antialiasing when shrinking);
- the colour-jitter operations run in a fixed order (brightness, contrast, saturation, hue), not
  in a random order per image.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "FINETUNE_AUGMENT",
    "SUPERVISED_AUGMENT",
    "AugmentConfig",
    "augment",
    "color_jitter",
    "horizontal_flip",
    "pretrain_recipe",
    "random_grayscale",
    "random_resized_crop",
    "two_views",
]

# ITU-R 601-2 luma weights, as used by PIL and torchvision for grayscale conversion.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of :func:`augment` (defaults: SimCLR CIFAR recipe, Chen et al. 2020, App. A).

    Attributes
    ----------
    crop_scale : (float, float)
        Range of the crop area as a fraction of the image area; (1, 1) with ratio (1, 1) disables
        the crop.
    crop_ratio : (float, float)
        Range of the crop aspect ratio (width / height), sampled log-uniformly.
    output_size : int or None
        Side of the square output; None keeps the input size.
    flip_p : float
        Probability of a horizontal flip.
    jitter_p : float
        Probability that colour jitter is applied to an image.
    brightness, contrast, saturation : float
        Jitter strengths s: the factor is drawn uniformly from [max(0, 1 - s), 1 + s].
    hue : float
        Hue shift drawn uniformly from [-hue, hue] (fraction of the hue circle, at most 0.5).
    grayscale_p : float
        Probability of converting an image to (3-channel) grayscale.
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    output_size: int | None = None
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        rlo, rhi = self.crop_ratio
        if not 0.0 < rlo <= rhi:
            raise ValueError(f"crop_ratio must satisfy 0 < lo <= hi, got {self.crop_ratio}")
        for name in ("flip_p", "jitter_p", "grayscale_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        if self.output_size is not None and self.output_size < 1:
            raise ValueError(f"output_size must be a positive int or None, got {self.output_size}")


#: Supervised pretraining: the standard ImageNet recipe, crop (scale 0.08-1) and flip, no colour.
SUPERVISED_AUGMENT = AugmentConfig(jitter_p=0.0, grayscale_p=0.0)


def pretrain_recipe(objective: str, **overrides) -> AugmentConfig:
    """The pretraining augmentation of ``objective`` with some fields replaced.

    The base is :data:`SUPERVISED_AUGMENT` for ``"supervised"`` and the SimCLR recipe
    (:class:`AugmentConfig` defaults) for every self-supervised objective; ``overrides`` are
    :class:`AugmentConfig` field names (lists become tuples, as YAML gives lists).
    """
    base = SUPERVISED_AUGMENT if objective == "supervised" else AugmentConfig()
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(AugmentConfig)})
    if unknown:
        raise ValueError(f"unknown augmentation settings {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(base, **values)


#: Light augmentation for supervised fine-tuning: crop (scale 0.5-1) and flip, no colour changes.
FINETUNE_AUGMENT = AugmentConfig(crop_scale=(0.5, 1.0), jitter_p=0.0, grayscale_p=0.0)


def _check_batch(x: torch.Tensor, generator: torch.Generator) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a float tensor of shape (B, 3, H, W), got {shape}")
    if not x.is_floating_point():
        raise ValueError(
            f"expected float images in [0, 1], got dtype {x.dtype}; divide uint8 by 255"
        )
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(
            "generator must be a CPU torch.Generator (parameters are drawn on the CPU)"
        )


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    """n draws from U(lo, hi) in float64 on the CPU."""
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    output_size: int | None = None,
) -> torch.Tensor:
    """Crop a random box per image and resize it back (bilinear), all images in one ``grid_sample``.

    The box area is a fraction a ~ U(scale) of the image area and its aspect ratio r (width/height)
    is log-uniform in ``ratio``; the box side fractions are w = sqrt(a r H / W) and
    h = sqrt(a W / (r H)), clamped to 1, and its centre is uniform over the positions that keep it
    inside the image.
    Bilinear interpolation is a convex combination of pixels, so the output stays in [0, 1].
    """
    _check_batch(x, generator)
    b, _, height, width = x.shape
    out_h, out_w = (output_size, output_size) if output_size is not None else (height, width)
    area = _uniform(b, scale[0], scale[1], generator)
    log_r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), generator)
    aspect = torch.exp(log_r)
    fw = torch.sqrt(area * aspect * height / width).clamp(max=1.0)
    fh = torch.sqrt(area / aspect * width / height).clamp(max=1.0)
    # Centre in normalised [-1, 1] coordinates; the box half-width is fw in these units.
    cx = (1.0 - fw) * (2.0 * torch.rand(b, generator=generator, dtype=torch.float64) - 1.0)
    cy = (1.0 - fh) * (2.0 * torch.rand(b, generator=generator, dtype=torch.float64) - 1.0)
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = fw
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = fh
    theta[:, 1, 2] = cy
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, [b, 3, out_h, out_w], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.clamp_(0.0, 1.0)  # guards against float rounding only


def horizontal_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image left-right with probability ``p``."""
    _check_batch(x, generator)
    flip = torch.rand(x.shape[0], generator=generator) < p
    if not flip.any():  # e.g. p = 0: skip the flipped copy of the whole batch
        return x
    flip = flip.to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W) of RGB images."""
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _is_gray(x: torch.Tensor) -> bool:
    """Whether every pixel of the batch has r = g = b."""
    return torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB → HSV with h, s, v in [0, 1] (h = 0 and s = 0 for gray pixels)."""
    r, g, b = x.unbind(1)
    maxc = x.amax(dim=1)
    delta = maxc - x.amin(dim=1)
    chroma = delta > 0
    # 6h = (g - b)/Δ if r is the max, (b - r)/Δ + 2 if g is, (r - g)/Δ + 4 if b is (mod 6).
    num = torch.where(
        maxc == r, g - b, torch.where(maxc == g, b - r + 2 * delta, r - g + 4 * delta)
    )
    hue = torch.where(chroma, (num / torch.where(chroma, delta, 1.0) / 6.0) % 1.0, 0.0)
    sat = delta / torch.where(maxc > 0, maxc, 1.0)
    return torch.stack([hue, sat, maxc], dim=1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Closed form of the six-sector HSV → RGB map: channel n ∈ (5, 3, 1) for (R, G, B) is
    v - v s clamp(min(k, 4 - k), 0, 1) with k = (n + 6 h) mod 6."""
    h, s, v = x.unbind(1)
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = (n + 6.0 * h.unsqueeze(1)) % 6.0
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


def color_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
) -> torch.Tensor:
    """Colour jitter (torchvision ``ColorJitter`` semantics), applied per image with probability p.

    Factors are drawn per image: brightness b, contrast c, saturation s ~ U(max(0, 1 - v), 1 + v)
    and a hue shift ~ U(-hue, hue). In order: x <- b x; x <- c x + (1 - c) mean(gray(x));
    x <- s x + (1 - s) gray(x); hue rotated in HSV; each step is clipped to [0, 1]. An image not
    selected (probability 1 - p) gets the identity factors.
    """
    _check_batch(x, generator)
    n = x.shape[0]
    apply = torch.rand(n, generator=generator, dtype=torch.float64) < p

    def factor(v: float) -> torch.Tensor:
        f = _uniform(n, max(0.0, 1.0 - v), 1.0 + v, generator)
        return torch.where(apply, f, torch.ones_like(f))

    fb, fc, fs = factor(brightness), factor(contrast), factor(saturation)
    fh = torch.where(apply, _uniform(n, -hue, hue, generator), torch.zeros(n, dtype=torch.float64))
    return _jitter_with_factors(x, fb, fc, fs, fh if hue > 0 else None)


def _jitter_with_factors(
    x: torch.Tensor,
    fb: torch.Tensor,
    fc: torch.Tensor,
    fs: torch.Tensor,
    fh: torch.Tensor | None,
) -> torch.Tensor:
    """Brightness, contrast, saturation and hue adjustment with given per-image factors (B,)."""

    def as_col(f: torch.Tensor) -> torch.Tensor:
        return f.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)

    # In-place updates of one buffer: the same operations in the same order as the
    # out-of-place formulas in the docstring of color_jitter, so the same bits, fewer passes.
    # Factors of exactly 1 (no image selected, e.g. p = 0) leave every pixel as it is.
    if not (bool((fb == 1).all()) and bool((fc == 1).all()) and bool((fs == 1).all())):
        out = (x * as_col(fb)).clamp_(0.0, 1.0)
        mean = _grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
        fc = as_col(fc)
        out.mul_(fc).add_((1.0 - fc) * mean).clamp_(0.0, 1.0)
        fs = as_col(fs)
        gray = _grayscale(out).mul_(1.0 - fs)
        out.mul_(fs).add_(gray).clamp_(0.0, 1.0)
    else:
        out = x
    # A hue rotation leaves gray pixels (r = g = b: zero saturation) exactly unchanged, and a
    # rotation by 0 is the identity; skipping the HSV round trip then saves its cost (and its
    # float rounding, for a zero shift of coloured pixels).
    if fh is not None and bool((fh != 0).any()) and not _is_gray(out):
        hsv = _rgb_to_hsv(out)
        shift = as_col(fh).squeeze(1)  # (B, 1, 1)
        hsv = torch.stack([(hsv[:, 0] + shift) % 1.0, hsv[:, 1], hsv[:, 2]], dim=1)
        out = _hsv_to_rgb(hsv).clamp(0.0, 1.0)
    return out


def random_grayscale(x: torch.Tensor, generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    """Replace each image by its 3-channel luma with probability p."""
    _check_batch(x, generator)
    gray = torch.rand(x.shape[0], generator=generator) < p
    if not gray.any():
        return x
    gray = gray.to(x.device).view(-1, 1, 1, 1)
    return torch.where(gray, _grayscale(x).expand_as(x), x)


def augment(
    x: torch.Tensor, generator: torch.Generator, cfg: AugmentConfig | None = None
) -> torch.Tensor:
    """One augmented view of a batch: crop, flip, colour jitter, grayscale (in that order).

    Parameters
    ----------
    x : torch.Tensor
        (B, 3, H, W) float images in [0, 1], on any device.
    generator : torch.Generator
        CPU generator; its state alone decides the view.
    cfg : AugmentConfig, optional
        Augmentation parameters; default SimCLR CIFAR recipe (Chen et al. 2020, arXiv 2002.05709).

    Returns
    -------
    torch.Tensor
        (B, 3, S, S) (or (B, 3, H, W) if ``cfg.output_size`` is None), values in [0, 1].
    """
    cfg = cfg if cfg is not None else AugmentConfig()
    _check_batch(x, generator)
    out = random_resized_crop(x, generator, cfg.crop_scale, cfg.crop_ratio, cfg.output_size)
    out = horizontal_flip(out, generator, cfg.flip_p)
    out = color_jitter(
        out, generator, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue, cfg.jitter_p
    )
    return random_grayscale(out, generator, cfg.grayscale_p)


def two_views(
    x: torch.Tensor, generator: torch.Generator, cfg: AugmentConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented views of the same batch (Chen et al. 2020, Alg. 1)."""
    return augment(x, generator, cfg), augment(x, generator, cfg)
