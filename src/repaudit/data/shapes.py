r"""Procedurally generated shape images and the vectorised shape rasteriser they share.

Every shape is defined in a local frame by a signed distance function (SDF) scaled so that its
circumscribed circle has radius 1. A shape with radius ``r`` pixels, centre ``c`` and rotation
``θ`` covers pixel centre ``p`` with

.. math::

    \alpha(p) = \operatorname{clip}\left(\tfrac12 - r\,\mathrm{sdf}(R_{-θ}(p - c)/r),\ 0,\ 1\right),

the area a 1-pixel box filter sees of a straight edge at signed distance ``r·sdf`` from the pixel
centre. This anti-aliases without supersampling, so cost is one SDF evaluation per pixel of a
small window around each object, vectorised over many images at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from repaudit.data import ImageDataset

__all__ = ["SHAPE_KINDS", "make_shapes", "render_shapes", "shape_sdf"]


def _regular(n: int, start_deg: float, radius: float = 1.0) -> np.ndarray:
    angles = np.deg2rad(start_deg + 360.0 * np.arange(n) / n)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    outer = _regular(points, -90.0)
    inner_v = _regular(points, -90.0 + 180.0 / points, inner)
    return np.stack([outer, inner_v], axis=1).reshape(-1, 2)


def _cross(half_width: float = 0.33) -> np.ndarray:
    # Arm tips sit on the unit circle: a² + w² = 1.
    w, a = half_width, float(np.sqrt(1.0 - half_width**2))
    return np.array(
        [[w, -a], [w, -w], [a, -w], [a, w], [w, w], [w, a],
         [-w, a], [-w, w], [-a, w], [-a, -w], [-w, -w], [-w, -a]]
    )  # fmt: skip


# Polygons in the local frame (x right, y down, circumradius 1). The diamond is a rhombus with
# aspect 0.55 so that it stays distinct from a rotated square.
_POLYGONS: dict[str, np.ndarray] = {
    "square": _regular(4, 45.0),
    "triangle": _regular(3, -90.0),
    "star": _star(),
    "cross": _cross(),
    "hexagon": _regular(6, 0.0),
    "pentagon": _regular(5, -90.0),
    "diamond": np.array([[0.0, -1.0], [0.55, 0.0], [0.0, 1.0], [-0.55, 0.0]]),
    "arrow": np.array(
        [[1.0, 0.0], [0.1, -0.7], [0.1, -0.3], [-0.95, -0.3], [-0.95, 0.3], [0.1, 0.3], [0.1, 0.7]]
    ),
}

SHAPE_KINDS: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross", "hexagon",
    "pentagon", "diamond", "ring", "arrow",
)  # fmt: skip
"""Shape names :func:`render_shapes` knows; the first six are the binding benchmark's set."""


def _polygon_sdf(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Exact signed distance to a simple polygon: negative inside (even-odd rule)."""
    d2 = np.full(x.shape, np.inf, dtype=x.dtype)
    inside = np.zeros(x.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        ex, ey = bx - ax, by - ay
        wx, wy = x - ax, y - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        dx, dy = wx - ex * t, wy - ey * t
        np.minimum(d2, dx * dx + dy * dy, out=d2)
        if ay != by:  # horizontal edges never cross a horizontal ray
            crosses = (ay > y) != (by > y)
            x_hit = ax + (y - ay) * (ex / ey)
            inside ^= crosses & (x < x_hit)
    d = np.sqrt(d2)
    return np.where(inside, -d, d)


def shape_sdf(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance to a unit shape (circumradius 1) at local coordinates ``(x, y)``.

    Parameters
    ----------
    kind : one of :data:`SHAPE_KINDS`
    x, y : float arrays of the same shape, local coordinates (y points down, as in images)

    Returns
    -------
    ndarray of the same shape: negative inside, positive outside, in local units.
    """
    if kind == "circle":
        return np.hypot(x, y) - 1.0
    if kind == "ring":  # annulus between radii 0.55 and 1
        return np.abs(np.hypot(x, y) - 0.775) - 0.225
    if kind in _POLYGONS:
        return _polygon_sdf(x, y, _POLYGONS[kind].astype(x.dtype))
    raise ValueError(f"unknown shape {kind!r}; choose from {list(SHAPE_KINDS)}")


def render_shapes(
    canvas: np.ndarray,
    kinds: str | Sequence[str] | np.ndarray,
    centers: np.ndarray,
    radii: np.ndarray,
    angles: np.ndarray | None,
    colors: np.ndarray,
    *,
    max_elements: int = 1 << 21,
    inplace: bool = False,
) -> np.ndarray:
    """Composite one anti-aliased filled shape onto each image of a batch.

    Only a square window around each object is evaluated (side ``2·max(radii) + 3`` pixels),
    so the cost does not grow with the canvas: 224-pixel scenes cost as much per object as
    32-pixel ones of the same object size. Call it once per object slot to draw several
    objects (later calls paint over earlier ones).

    Parameters
    ----------
    canvas : float array (N, H, W, 3), values 0..255; not modified unless ``inplace``
    kinds : a shape name or (N,) names from :data:`SHAPE_KINDS`
    centers : (N, 2) float, ``(x, y)`` in pixels; pixel ``(i, j)`` has its centre at
        ``(j + 0.5, i + 0.5)``
    radii : (N,) float, circumradius in pixels (> 0)
    angles : (N,) float rotation in radians (clockwise on screen), or None for upright shapes
    colors : (N, 3) float RGB, 0..255
    max_elements : pixels evaluated per vectorised chunk (bounds memory)
    inplace : composite into ``canvas`` itself (it must then be a float32 array) instead of a
        copy, which saves a full-canvas copy per call on large canvases

    Returns
    -------
    float32 array (N, H, W, 3): the composited canvas (``canvas`` itself when ``inplace``).
    """
    if inplace and not (isinstance(canvas, np.ndarray) and canvas.dtype == np.float32):
        raise ValueError("inplace=True needs a float32 numpy canvas")
    canvas = np.asarray(canvas)
    if canvas.ndim != 4 or canvas.shape[-1] != 3:
        raise ValueError(f"canvas must be (N, H, W, 3), got {canvas.shape}")
    n, height, width, _ = canvas.shape
    kinds_arr = np.full(n, kinds) if isinstance(kinds, str) else np.asarray(kinds)
    centers = np.asarray(centers, dtype=np.float64).reshape(n, 2)
    radii = np.asarray(radii, dtype=np.float64).reshape(n)
    angles = np.zeros(n) if angles is None else np.asarray(angles, dtype=np.float64).reshape(n)
    colors = np.asarray(colors, dtype=np.float32).reshape(n, 3)
    if kinds_arr.shape != (n,):
        raise ValueError(f"kinds must be a name or have {n} entries, got {kinds_arr.shape}")
    if n and not np.all(radii > 0):
        raise ValueError("radii must be positive")
    out = canvas if inplace else canvas.astype(np.float32, copy=True)
    if n == 0:
        return out

    side = int(np.ceil(2.0 * radii.max())) + 3
    win_y, win_x = min(side, height), min(side, width)
    # Windows are shifted (never cut) to stay inside the canvas, so no two pixels of one
    # window alias and the scatter below is exact; the SDF is still evaluated at true positions.
    y0 = np.clip(np.floor(centers[:, 1] - win_y / 2.0), 0, height - win_y).astype(np.int64)
    x0 = np.clip(np.floor(centers[:, 0] - win_x / 2.0), 0, width - win_x).astype(np.int64)
    chunk = max(1, max_elements // (win_y * win_x))
    offs_y, offs_x = np.arange(win_y), np.arange(win_x)

    for kind in np.unique(kinds_arr):
        members = np.flatnonzero(kinds_arr == kind)
        for start in range(0, len(members), chunk):
            idx = members[start : start + chunk]
            ys = y0[idx, None] + offs_y  # (n, wy) pixel rows
            xs = x0[idx, None] + offs_x  # (n, wx) pixel columns
            py = (ys + 0.5 - centers[idx, 1:2]).astype(np.float32)[:, :, None]
            px = (xs + 0.5 - centers[idx, 0:1]).astype(np.float32)[:, None, :]
            cos = np.cos(angles[idx]).astype(np.float32)[:, None, None]
            sin = np.sin(angles[idx]).astype(np.float32)[:, None, None]
            inv_r = (1.0 / radii[idx]).astype(np.float32)[:, None, None]
            local_x = (cos * px + sin * py) * inv_r
            local_y = (cos * py - sin * px) * inv_r
            dist_px = shape_sdf(str(kind), local_x, local_y) / inv_r
            alpha = np.clip(0.5 - dist_px, 0.0, 1.0)[..., None]
            # Per-window slices gather and scatter about twice as fast as fancy indexing.
            corners = zip(idx.tolist(), y0[idx].tolist(), x0[idx].tolist(), strict=True)
            windows = [np.s_[i, y : y + win_y, x : x + win_x] for i, y, x in corners]
            region = np.stack([out[w] for w in windows])
            region += alpha * (colors[idx, None, None, :] - region)
            for w, r in zip(windows, region, strict=True):
                out[w] = r
    return out


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """Round a float 0..255 canvas to uint8 (in place on the float buffer)."""
    np.rint(images, out=images)
    np.clip(images, 0, 255, out=images)
    return images.astype(np.uint8)


def make_shapes(
    *,
    image_size: int = 32,
    n_per_class: int = 500,
    classes: Sequence[str] = ("circle", "square", "triangle", "star", "cross", "hexagon"),
    test_fraction: float = 0.2,
    seed: int = 0,
    noise: float = 8.0,
    size_range: tuple[float, float] = (0.4, 0.9),
    min_contrast: float = 100.0,
) -> ImageDataset:
    """Labelled images of single filled shapes with random colour, pose and background.

    Each image shows one shape of its class on a random flat background colour with i.i.d.
    Gaussian pixel noise (background only; the shape is flat). Per image, independently:

    - shape diameter ``2r ~ U(size_range) · image_size``,
    - centre uniform over the positions that keep the whole shape inside the canvas,
    - rotation ``θ ~ U[0, 2π)``,
    - background and foreground colours uniform in ``[0, 255]^3``, redrawn until their
      Euclidean RGB distance is at least ``min_contrast``.

    Classes are balanced (``n_per_class`` each) and shuffled; the train/test split is
    stratified (:func:`repaudit.data.loaders.stratified_split`). Everything derives from
    ``np.random.default_rng(seed)``, so one seed gives bit-identical images.

    Parameters
    ----------
    image_size : canvas side in pixels
    n_per_class : images per class (≥ 2)
    classes : shape names from :data:`SHAPE_KINDS` (≥ 2, distinct)
    test_fraction : share of each class put in split ``"test"``
    seed : generator seed
    noise : standard deviation of the background noise, in 0..255 units
    size_range : (min, max) diameter as a fraction of ``image_size``, within (0, 1]
    min_contrast : least RGB distance between foreground and background colours (< 200)

    Returns
    -------
    ImageDataset with ids ``"shapes-000000"``…, ``class_names = list(classes)``, every
    parameter in ``attrs`` and the per-image draws in ``extras``: ``center_x``, ``center_y``,
    ``size`` (diameter), ``angle`` (radians), ``foreground`` and ``background`` (N, 3) RGB,
    all float32.
    """
    from repaudit.data.loaders import stratified_split

    classes = [str(c) for c in classes]
    unknown = sorted(set(classes) - set(SHAPE_KINDS))
    if unknown:
        raise ValueError(f"unknown shape classes {unknown}; choose from {list(SHAPE_KINDS)}")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must name at least 2 distinct shapes, got {classes}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    if n_per_class < 2:
        raise ValueError(f"n_per_class must be at least 2 (one train, one test), got {n_per_class}")
    lo, hi = size_range
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"size_range must satisfy 0 < min <= max <= 1, got {size_range}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if not 0 <= min_contrast < 200:
        raise ValueError(f"min_contrast must lie in [0, 200), got {min_contrast}")

    rng = np.random.default_rng(seed)
    n = n_per_class * len(classes)
    labels = rng.permutation(np.repeat(np.arange(len(classes), dtype=np.int64), n_per_class))
    radii = rng.uniform(lo, hi, n) * image_size / 2.0
    # Centres keep the shape (radius r) inside [0, S]: c ~ U[r, S - r].
    centers = radii[:, None] + rng.uniform(0.0, 1.0, (n, 2)) * (image_size - 2.0 * radii[:, None])
    angles = rng.uniform(0.0, 2.0 * np.pi, n)
    background = rng.uniform(0.0, 255.0, (n, 3))
    foreground = rng.uniform(0.0, 255.0, (n, 3))
    while True:  # rejection sampling; each round redraws only the low-contrast pairs
        low = np.flatnonzero(np.linalg.norm(foreground - background, axis=1) < min_contrast)
        if low.size == 0:
            break
        foreground[low] = rng.uniform(0.0, 255.0, (low.size, 3))
    split = stratified_split(labels, test_fraction, seed=int(rng.integers(2**63)))

    # Noise comes from its own stream in fixed-size chunks, so memory stays bounded and the
    # result does not depend on anything but the seed.
    noise_rng = np.random.default_rng([seed, 1])
    chunk = max(1, (1 << 22) // (image_size * image_size * 3))
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    names = np.asarray(classes)[labels]
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        m = sl.stop - sl.start
        canvas = np.broadcast_to(
            background[sl, None, None, :].astype(np.float32), (m, image_size, image_size, 3)
        ).copy()
        if noise > 0:
            canvas += noise * noise_rng.standard_normal(canvas.shape, dtype=np.float32)
        render_shapes(
            canvas, names[sl], centers[sl], radii[sl], angles[sl], foreground[sl], inplace=True
        )
        images[sl] = _to_uint8(canvas)

    return ImageDataset(
        images=images,
        labels=labels,
        split=split,
        ids=np.asarray([f"shapes-{i:06d}" for i in range(n)]),
        class_names=list(classes),
        attrs={
            "generator": "repaudit.data.shapes.make_shapes",
            "image_size": int(image_size),
            "n_per_class": int(n_per_class),
            "classes": list(classes),
            "test_fraction": float(test_fraction),
            "seed": int(seed),
            "noise": float(noise),
            "noise_region": "background",
            "size_range": [float(lo), float(hi)],
            "size_meaning": "circumscribed diameter / image_size",
            "min_contrast": float(min_contrast),
            "rotation": "uniform [0, 2pi)",
            "antialiasing": "signed-distance box coverage, 1 px",
        },
        extras={
            "center_x": centers[:, 0].astype(np.float32),
            "center_y": centers[:, 1].astype(np.float32),
            "size": (2.0 * radii).astype(np.float32),
            "angle": angles.astype(np.float32),
            "foreground": foreground.astype(np.float32),
            "background": background.astype(np.float32),
        },
    )
