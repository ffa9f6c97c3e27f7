"""Synthetic handwriting-style letters made the way UCI optdigits made sklearn's digits.

Why: encoders pretrained on coloured filled shapes learn nothing that a randomly initialised
network does not already give handwritten digits (measured: linear-probe margins of -17 to +1
points). Letters drawn in the optdigits format share the digits' pixel statistics (8 x 8 block
counts of a size-normalised binary glyph) while their classes do not overlap, so pretraining on
them is a genuine transfer task.

Each image follows Alpaydin & Kaynak's optdigits preprocessing (UCI, 1998):

1. a letter is drawn with Pillow's built-in scalable font (no font file is needed) at a random
   size and stroke width, then rotated and sheared at random, and binarised;
2. the binary glyph is cropped to its bounding box and scaled (nearest neighbour, aspect kept)
   to fit a 32 x 32 bitmap, centred;
3. the on-pixels are counted in non-overlapping 4 x 4 blocks, giving 8 x 8 values in 0..16;
4. from here on exactly as :func:`repaudit.data.loaders.load_digits`: 0..16 -> 0..255,
   antialiased bilinear resize to ``image_size``, grey -> RGB.
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from repaudit.data import ImageDataset
from repaudit.data.loaders import optdigits_to_images, stratified_split

__all__ = ["make_glyphs", "optdigits_blocks"]

_CANVAS = 64  # drawing canvas: room for the largest glyph at any rotation and shear


def optdigits_blocks(glyph: np.ndarray) -> np.ndarray:
    """Size-normalise a binary glyph to 32 x 32 and count on-pixels per 4 x 4 block.

    Parameters
    ----------
    glyph : bool array (H, W); the glyph's on-pixels

    Returns
    -------
    uint8 array (8, 8) with values 0..16 (all zeros for an empty glyph).
    """
    glyph = np.asarray(glyph, dtype=bool)
    rows, cols = np.nonzero(glyph)
    bitmap = np.zeros((32, 32), dtype=bool)
    if rows.size:
        box = glyph[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        h, w = box.shape
        scale = 32.0 / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        img = Image.fromarray(box.astype(np.uint8) * 255).resize((new_w, new_h), Image.NEAREST)
        top, left = (32 - new_h) // 2, (32 - new_w) // 2
        bitmap[top : top + new_h, left : left + new_w] = np.asarray(img) > 127
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.uint8)


def _check_font_support() -> None:
    if not features.check("freetype2"):
        raise RuntimeError(
            "glyphs needs Pillow built with FreeType (its built-in scalable font); "
            "install the pinned pillow wheel from requirements.txt"
        )


def make_glyphs(
    *,
    image_size: int = 32,
    n_per_class: int = 200,
    letters: str = string.ascii_uppercase,
    test_fraction: float = 0.2,
    seed: int = 0,
    font_size_range: tuple[int, int] = (18, 30),
    max_stroke_width: int = 2,
    max_rotation: float = 15.0,
    max_shear: float = 0.3,
) -> ImageDataset:
    """Letters in the optdigits format (see the module docstring), one class per letter.

    Per image, independently: font size uniform in ``font_size_range`` (pixels, inclusive),
    extra stroke width uniform in ``0..max_stroke_width``, rotation uniform in
    ``±max_rotation`` degrees, horizontal shear uniform in ``±max_shear``. Classes are balanced
    and shuffled; the split is stratified. Everything derives from ``seed``.

    Parameters
    ----------
    image_size : output side in pixels (the 8 x 8 counts are resized to it)
    n_per_class : images per letter (>= 2)
    letters : the classes, distinct printable characters (>= 2)
    test_fraction : share of each class put in split ``"test"``
    seed : generator seed
    font_size_range, max_stroke_width, max_rotation, max_shear : the random pose (above)

    Returns
    -------
    ImageDataset with ids ``"glyphs-000000"``..., ``class_names = list(letters)``, the
    parameters in ``attrs`` and the per-image draws in ``extras`` (``font_size``,
    ``stroke_width``, ``rotation`` in degrees, ``shear``).
    """
    classes = list(letters)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"letters must hold at least 2 distinct characters, got {letters!r}")
    if not all(c.isprintable() and not c.isspace() for c in classes):
        raise ValueError(f"letters must be printable, non-blank characters, got {letters!r}")
    if n_per_class < 2:
        raise ValueError(f"n_per_class must be at least 2 (one train, one test), got {n_per_class}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    lo, hi = (int(v) for v in font_size_range)
    if not 8 <= lo <= hi <= 40:
        raise ValueError(f"font_size_range must satisfy 8 <= min <= max <= 40: {font_size_range}")
    if max_stroke_width < 0 or max_rotation < 0 or max_shear < 0:
        raise ValueError("max_stroke_width, max_rotation and max_shear must be >= 0")
    _check_font_support()

    rng = np.random.default_rng(seed)
    n = n_per_class * len(classes)
    labels = rng.permutation(np.repeat(np.arange(len(classes), dtype=np.int64), n_per_class))
    font_size = rng.integers(lo, hi + 1, n)
    stroke = rng.integers(0, int(max_stroke_width) + 1, n)
    rotation = rng.uniform(-max_rotation, max_rotation, n)
    shear = rng.uniform(-max_shear, max_shear, n)
    split = stratified_split(labels, test_fraction, seed=int(rng.integers(2**63)))

    fonts = {s: ImageFont.load_default(size=int(s)) for s in np.unique(font_size)}
    mid = _CANVAS / 2
    counts = np.empty((n, 8, 8), dtype=np.uint8)
    for i in range(n):
        img = Image.new("L", (_CANVAS, _CANVAS), 0)
        ImageDraw.Draw(img).text(
            (mid, mid), classes[labels[i]], font=fonts[font_size[i]], fill=255, anchor="mm",
            stroke_width=int(stroke[i]), stroke_fill=255,
        )  # fmt: skip
        img = img.rotate(float(rotation[i]), resample=Image.BILINEAR, center=(mid, mid))
        # x' = x + shear (y - mid): shear about the canvas centre
        affine = (1.0, float(shear[i]), -float(shear[i]) * mid, 0.0, 1.0, 0.0)
        img = img.transform(img.size, Image.AFFINE, affine, resample=Image.BILINEAR)
        counts[i] = optdigits_blocks(np.asarray(img) > 127)

    return ImageDataset(
        images=optdigits_to_images(counts, image_size),
        labels=labels,
        split=split,
        ids=np.asarray([f"glyphs-{i:06d}" for i in range(n)]),
        class_names=classes,
        attrs={
            "generator": "repaudit.data.glyphs.make_glyphs",
            "image_size": int(image_size),
            "n_per_class": int(n_per_class),
            "letters": "".join(classes),
            "test_fraction": float(test_fraction),
            "seed": int(seed),
            "font": "Pillow built-in (ImageFont.load_default(size))",
            "font_size_range": [lo, hi],
            "max_stroke_width": int(max_stroke_width),
            "max_rotation": float(max_rotation),
            "max_shear": float(max_shear),
            "preprocessing": "optdigits: binarise, fit 32x32, 4x4 block counts 0..16 -> 0..255; "
            "bilinear antialiased resize; grey -> RGB",
        },
        extras={
            "font_size": font_size.astype(np.float32),
            "stroke_width": stroke.astype(np.float32),
            "rotation": rotation.astype(np.float32),
            "shear": shear.astype(np.float32),
        },
    )
