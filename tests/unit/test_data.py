"""Tests for repaudit.data: shape rasteriser, shapes and binding generators, loaders."""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repaudit.data import ImageDataset
from repaudit.data.binding import hue_palette, make_binding, swap_pairs_from_extras
from repaudit.data.glyphs import make_glyphs, optdigits_blocks
from repaudit.data.loaders import (
    load_digits,
    load_imagefolder,
    load_torchvision,
    resize_images,
    stratified_split,
)
from repaudit.data.shapes import _POLYGONS, SHAPE_KINDS, make_shapes, render_shapes, shape_sdf

# --------------------------------------------------------------------------- rasteriser


def _coverage(kind: str, radius: float, size: int = 96, angle: float = 0.3) -> float:
    canvas = np.zeros((1, size, size, 3), np.float32)
    out = render_shapes(canvas, kind, [[size / 2, size / 2]], [radius], [angle], [[255, 0, 0]])
    return float(out[0, :, :, 0].sum() / 255.0)


def _shoelace(v: np.ndarray) -> float:
    x, y = v[:, 0], v[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


@pytest.mark.parametrize(
    ("kind", "unit_area"),
    [
        ("circle", math.pi),
        ("square", 2.0),  # diagonal 2
        ("triangle", 3 * math.sqrt(3) / 4),  # circumradius 1
        ("hexagon", 3 * math.sqrt(3) / 2),
        ("ring", math.pi * (1 - 0.55**2)),
        ("star", 5 * 0.45 * math.sin(math.pi / 5)),  # 10 triangles (centre, tip, notch)
        ("cross", 4 * 0.33 * math.sqrt(1 - 0.33**2) * 2 - (2 * 0.33) ** 2),  # two bars - overlap
    ],
)
def test_render_area_matches_hand_derived(kind, unit_area):
    # Box-coverage anti-aliasing integrates the area: error ≈ perimeter · O(1/r) at r = 30 px.
    r = 30.0
    assert _coverage(kind, r) == pytest.approx(unit_area * r * r, rel=0.01)


@pytest.mark.parametrize("kind", sorted(_POLYGONS))
def test_polygon_area_matches_shoelace(kind):
    r = 30.0
    assert _coverage(kind, r) == pytest.approx(_shoelace(_POLYGONS[kind]) * r * r, rel=0.01)


def _slow_polygon_sdf(px: float, py: float, v: np.ndarray) -> float:
    """Reference: nearest of 2,001 samples per edge, inside by winding number (angle sum)."""
    t = np.linspace(0.0, 1.0, 2001)[:, None]
    boundary = np.concatenate([a + t * (b - a) for a, b in zip(v, np.roll(v, -1, 0), strict=True)])
    best = float(np.hypot(boundary[:, 0] - px, boundary[:, 1] - py).min())
    winding = 0.0
    for a, b in zip(v, np.roll(v, -1, 0), strict=True):
        ang = math.atan2(b[1] - py, b[0] - px) - math.atan2(a[1] - py, a[0] - px)
        winding += (ang + math.pi) % (2 * math.pi) - math.pi
    return -best if abs(winding) > math.pi else best


@pytest.mark.parametrize("kind", ["star", "cross", "triangle", "arrow"])
def test_polygon_sdf_matches_slow_reference(kind):
    rng = np.random.default_rng(1)
    pts = rng.uniform(-1.3, 1.3, (40, 2))
    fast = shape_sdf(kind, pts[:, 0], pts[:, 1])
    slow = [_slow_polygon_sdf(x, y, _POLYGONS[kind]) for x, y in pts]
    np.testing.assert_allclose(fast, slow, atol=2e-3)


def test_circle_sdf_and_unknown_shape():
    np.testing.assert_allclose(
        shape_sdf("circle", np.array([0.0, 2.0]), np.array([0.0, 0.0])), [-1, 1]
    )
    with pytest.raises(ValueError, match="unknown shape"):
        shape_sdf("blob", np.zeros(1), np.zeros(1))


def test_render_windows_match_full_canvas_reference():
    # Windowed rendering must equal evaluating the SDF on every pixel, also at the borders.
    rng = np.random.default_rng(0)
    n, size = 24, 40
    kinds = rng.choice(SHAPE_KINDS, n)
    centers = rng.uniform(-5, size + 5, (n, 2))
    radii = rng.uniform(3, 15, n)
    angles = rng.uniform(0, 2 * np.pi, n)
    colors = rng.uniform(0, 255, (n, 3))
    canvas = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    before = canvas.copy()
    fast = render_shapes(canvas, kinds, centers, radii, angles, colors, max_elements=3000)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for i in range(n):
        dx, dy = xx - centers[i, 0], yy - centers[i, 1]
        c, s = math.cos(angles[i]), math.sin(angles[i])
        lx, ly = (c * dx + s * dy) / radii[i], (c * dy - s * dx) / radii[i]
        alpha = np.clip(0.5 - shape_sdf(kinds[i], lx, ly) * radii[i], 0, 1)[..., None]
        ref = canvas[i] + alpha * (colors[i] - canvas[i])
        np.testing.assert_allclose(fast[i], ref, atol=1e-3)
    np.testing.assert_array_equal(canvas, before)  # the input is not modified
    # The chunk size changes only memory use, not the result.
    again = render_shapes(canvas, kinds, centers, radii, angles, colors)
    np.testing.assert_array_equal(again, fast)


def test_render_is_antialiased_and_inplace_contract():
    canvas = np.zeros((1, 32, 32, 3), np.float32)
    out = render_shapes(canvas, "circle", [[16.3, 15.7]], [9.0], None, [[200, 200, 200]])
    values = out[0, :, :, 0]
    assert np.any((values > 1) & (values < 199))  # partial coverage on the edge
    assert canvas.max() == 0  # not modified without inplace
    same = render_shapes(canvas, "circle", [[16.3, 15.7]], [9.0], None, [[200] * 3], inplace=True)
    assert same is canvas and canvas.max() == pytest.approx(200)
    with pytest.raises(ValueError, match="float32"):
        render_shapes(
            canvas.astype(np.float64), "circle", [[1, 1]], [1.0], None, [[0] * 3], inplace=True
        )
    with pytest.raises(ValueError, match="positive"):
        render_shapes(canvas, "circle", [[1, 1]], [0.0], None, [[0] * 3])


def test_render_rotation_symmetry():
    canvas = np.zeros((2, 33, 33, 3), np.float32)
    c = [[16.5, 16.5]] * 2
    sq = render_shapes(canvas, "square", c, [12.0, 12.0], [0.0, np.pi / 2], [[255] * 3] * 2)
    np.testing.assert_allclose(sq[0], sq[1], atol=1e-3)
    circ = render_shapes(canvas, "circle", c, [12.0, 12.0], [0.0, 1.234], [[255] * 3] * 2)
    np.testing.assert_allclose(circ[0], circ[1], atol=1e-3)


# --------------------------------------------------------------------------- shapes


def _shapes(**kw) -> ImageDataset:
    return make_shapes(**{"image_size": 24, "n_per_class": 20, **kw})


def test_make_shapes_layout_balance_and_split():
    d = _shapes()
    n = 6 * 20
    assert d.images.shape == (n, 24, 24, 3) and d.images.dtype == np.uint8
    assert d.labels.dtype == np.int64 and d.class_names == list(SHAPE_KINDS[:6])
    assert Counter(d.labels.tolist()) == dict.fromkeys(range(6), 20)
    for c in range(6):  # stratified: round(0.2 · 20) = 4 test images per class
        assert np.sum((d.labels == c) & (d.split == "test")) == 4
    assert len(set(d.ids.tolist())) == n and d.ids[0] == "shapes-000000"
    json.dumps(d.attrs)  # HDF5 attributes must be JSON-serialisable
    assert d.attrs["seed"] == 0 and d.attrs["classes"] == d.class_names
    assert d.images.min() < 30 and d.images.max() > 225  # values span the range


def test_make_shapes_seeded():
    a, b, c = _shapes(seed=3), _shapes(seed=3), _shapes(seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.split, b.split)
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.labels, c.labels)


def test_make_shapes_content_matches_extras():
    d = _shapes(noise=0.0, n_per_class=10, image_size=32)
    ex = d.extras
    assert np.all(np.linalg.norm(ex["foreground"] - ex["background"], axis=1) >= 100)
    r = ex["size"] / 2
    assert np.all(ex["center_x"] - r >= -1e-4) and np.all(ex["center_x"] + r <= 32 + 1e-4)
    assert np.all(ex["size"] >= 0.4 * 32 - 1e-4) and np.all(ex["size"] <= 0.9 * 32 + 1e-4)
    for i in range(len(d.labels)):
        img = d.images[i].astype(float)
        # The corner pixel shows the background, the centre pixel the foreground (all shapes
        # but the ring contain their centre).
        np.testing.assert_allclose(img[0, 0], ex["background"][i], atol=0.51)
        if d.class_names[d.labels[i]] != "ring":
            cy, cx = int(ex["center_y"][i]), int(ex["center_x"][i])
            np.testing.assert_allclose(img[cy, cx], ex["foreground"][i], atol=1.0)


def test_make_shapes_noise_is_background_only_and_all_kinds():
    d = make_shapes(image_size=32, n_per_class=4, classes=SHAPE_KINDS, noise=20.0)
    assert len(d.class_names) == len(SHAPE_KINDS)
    assert d.images[:, :2, :2].astype(float).std(axis=(1, 2)).mean() > 5  # noisy corners


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"classes": ("circle", "blob")}, "unknown"),
        ({"classes": ("circle",)}, "at least 2"),
        ({"n_per_class": 1}, "n_per_class"),
        ({"size_range": (0.5, 1.5)}, "size_range"),
        ({"noise": -1.0}, "noise"),
        ({"test_fraction": 1.0}, "test_fraction"),
    ],
)
def test_make_shapes_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        _shapes(**kw)


# --------------------------------------------------------------------------- glyphs


def _glyphs(**kw) -> ImageDataset:
    return make_glyphs(**{"n_per_class": 6, "letters": "AHOX", "image_size": 8, **kw})


def test_optdigits_blocks_hand_derived():
    # A full square fills the 32 x 32 bitmap: every 4 x 4 block counts 16.
    np.testing.assert_array_equal(optdigits_blocks(np.ones((5, 5), bool)), np.full((8, 8), 16))
    # A 2-wide, 8-tall bar is scaled by 4 to 8 x 32 and centred at columns 12..19: blocks
    # 3 and 4 of every block row are full, the rest empty.
    bar = np.zeros((20, 20), bool)
    bar[3:11, 7:9] = True
    expected = np.zeros((8, 8), np.uint8)
    expected[:, 3:5] = 16
    np.testing.assert_array_equal(optdigits_blocks(bar), expected)
    # Position in the input does not matter (bounding-box crop); an empty glyph stays empty.
    np.testing.assert_array_equal(optdigits_blocks(np.roll(bar, 5, axis=1)), expected)
    assert optdigits_blocks(np.zeros((9, 9), bool)).sum() == 0


def test_make_glyphs_matches_digits_format():
    d = _glyphs()
    assert d.images.shape == (24, 8, 8, 3) and d.class_names == list("AHOX")
    assert Counter(d.labels.tolist()) == dict.fromkeys(range(4), 6)
    np.testing.assert_array_equal(d.images[..., 0], d.images[..., 2])  # grey
    # At 8 x 8 the pixels are the 4 x 4 block counts mapped like sklearn digits: 255 k / 16.
    levels = np.rint(np.arange(17) * 255 / 16)
    assert np.isin(d.images, levels).all()
    # Size normalisation: every glyph touches two opposite borders of the 32 x 32 bitmap.
    on = d.images[..., 0] > 0
    touches_rows = on[:, 0, :].any(1) & on[:, -1, :].any(1)
    touches_cols = on[:, :, 0].any(1) & on[:, :, -1].any(1)
    assert np.all(touches_rows | touches_cols)
    json.dumps(d.attrs)
    assert d.attrs["letters"] == "AHOX" and d.ids[0] == "glyphs-000000"


def test_make_glyphs_classes_differ_and_pose_varies():
    d = _glyphs(n_per_class=20, image_size=32)
    x = d.images[..., 0].reshape(len(d.labels), -1).astype(float)
    means = np.stack([x[d.labels == c].mean(0) for c in range(4)])
    within = np.mean([np.linalg.norm(x[d.labels == c] - means[c], axis=1).mean() for c in range(4)])
    between = np.mean([np.linalg.norm(a - b) for a in means for b in means if a is not b])
    assert within > 0 and between > 0.5 * within  # letters are told apart, poses vary
    assert d.extras["rotation"].std() > 3 and d.extras["shear"].std() > 0.05


def test_make_glyphs_seeded():
    a, b, c = _glyphs(seed=1), _glyphs(seed=1), _glyphs(seed=2)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.split, b.split)
    assert not np.array_equal(a.images, c.images)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"letters": "AA"}, "distinct"),
        ({"letters": "A"}, "at least 2"),
        ({"letters": "A "}, "non-blank"),
        ({"n_per_class": 1}, "n_per_class"),
        ({"font_size_range": (4, 30)}, "font_size_range"),
        ({"max_shear": -0.1}, "max_shear"),
    ],
)
def test_make_glyphs_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        _glyphs(**kw)


# --------------------------------------------------------------------------- binding


def _binding(**kw) -> ImageDataset:
    return make_binding(**{"n_per_class_train": 4, "n_per_class_test": 3, "n_swap_pairs": 30, **kw})


def test_binding_layout_labels_and_balance():
    d = _binding()
    ex = d.extras
    assert len(d.class_names) == 30 and d.class_names[0] == "circle|square"
    assert d.images.shape == (30 * 7 + 4 * 30, 32, 32, 3)
    shapes = d.attrs["shapes"]
    for i in range(len(d.labels)):
        left, right = d.class_names[d.labels[i]].split("|")
        assert (left, right) == (shapes[ex["left_shape"][i]], shapes[ex["right_shape"][i]])
    assert np.all(ex["left_shape"] != ex["right_shape"])
    probe = ex["role"] == "probe"
    assert Counter(d.labels[probe & (d.split == "train")].tolist()) == dict.fromkeys(range(30), 4)
    assert Counter(d.labels[probe & (d.split == "test")].tolist()) == dict.fromkeys(range(30), 3)
    assert set(d.split[~probe]) == {"test"}
    assert np.all(ex["pair_id"][probe] == -1) and np.all(ex["pair_member"][probe] == -1)
    json.dumps(d.attrs)


def test_binding_colour_sets_disjoint_and_rendered():
    d = _binding()
    ex = d.extras
    train_c, test_c = set(d.attrs["train_colours"]), set(d.attrs["test_colours"])
    assert train_c.isdisjoint(test_c) and len(train_c) == len(test_c) == 4
    assert train_c | test_c == set(range(8))
    tr = d.split == "train"
    used_train = set(ex["left_colour"][tr]) | set(ex["right_colour"][tr])
    used_test = set(ex["left_colour"][~tr]) | set(ex["right_colour"][~tr])
    assert used_train <= train_c and used_test <= test_c
    assert not used_train & used_test  # no test colour appears in any training image
    palette = np.asarray(d.attrs["palette"])
    np.testing.assert_allclose(palette, hue_palette(8))
    # Pixels at object centres carry the recorded colour; the corner is mid-grey.
    for i in range(0, len(d.labels), 7):
        img = d.images[i].astype(float)
        for side in ("left", "right"):
            x, y = int(ex[f"{side}_x"][i]), int(ex[f"{side}_y"][i])
            np.testing.assert_allclose(img[y, x], palette[ex[f"{side}_colour"][i]], atol=1.0)
        np.testing.assert_array_equal(img[0, 0], [128, 128, 128])


def test_hue_palette_is_saturated():
    p = hue_palette(8)
    np.testing.assert_allclose(p[0], [255, 0, 0])
    np.testing.assert_allclose(p[2], [127.5, 255, 0])  # 90°
    np.testing.assert_allclose(p[4], [0, 255, 255])  # 180°
    assert np.all(p.max(axis=1) == 255) and np.all(p.min(axis=1) == 0)


def test_binding_objects_stay_in_their_half():
    d = _binding(image_size=64)
    ex = d.extras
    assert np.all(ex["left_x"] + ex["left_size"] / 2 <= 32) and np.all(
        ex["left_x"] - ex["left_size"] / 2 >= 0
    )
    assert np.all(ex["right_x"] - ex["right_size"] / 2 >= 32)
    assert np.all(np.abs(ex["left_y"] - 32) <= 64 * 8 / 224 + 1e-4)
    # No object pixels cross the midline: the column pair at the centre is background.
    np.testing.assert_array_equal(d.images[:, :, 31:33], 128)


def test_binding_swap_pairs():
    d = _binding()
    ex = d.extras
    pairs, same = swap_pairs_from_extras(ex)
    assert pairs.shape == (60, 2) and same.sum() == 30
    a, b = pairs[:, 0], pairs[:, 1]
    assert np.all(ex["pair_id"][a] == ex["pair_id"][b]) and np.all(d.split[pairs] == "test")
    sw = ~same
    # Different structure: mirrored shapes, identical colours per slot, so the label changes.
    np.testing.assert_array_equal(ex["left_shape"][a[sw]], ex["right_shape"][b[sw]])
    np.testing.assert_array_equal(ex["right_shape"][a[sw]], ex["left_shape"][b[sw]])
    np.testing.assert_array_equal(ex["left_colour"][a[sw]], ex["left_colour"][b[sw]])
    np.testing.assert_array_equal(ex["right_colour"][a[sw]], ex["right_colour"][b[sw]])
    assert np.all(d.labels[a[sw]] != d.labels[b[sw]])
    # Same structure: same shapes and label, both slots recoloured within the test colours.
    np.testing.assert_array_equal(d.labels[a[same]], d.labels[b[same]])
    assert np.all(ex["left_colour"][a[same]] != ex["left_colour"][b[same]])
    assert np.all(ex["right_colour"][a[same]] != ex["right_colour"][b[same]])
    assert set(ex["left_colour"][pairs.ravel()]) <= set(d.attrs["test_colours"])
    # Nuisances are shared within a pair; images differ.
    for key in ("left_x", "left_y", "right_x", "right_y", "left_size", "right_size"):
        np.testing.assert_array_equal(ex[key][a], ex[key][b])
    assert all(not np.array_equal(d.images[i], d.images[j]) for i, j in pairs)
    # 30 sampled pairs over 15 unordered shape pairs: each exactly twice per kind.
    unordered = Counter(
        tuple(sorted(p))
        for p in zip(ex["left_shape"][a[sw]], ex["right_shape"][a[sw]], strict=True)
    )
    assert sorted(unordered.values()) == [2] * 15


def test_binding_swap_object_mode_moves_colours_with_shapes():
    d = _binding(swap_colours="object", n_swap_pairs=5)
    ex = d.extras
    pairs, same = swap_pairs_from_extras(ex)
    a, b = pairs[~same, 0], pairs[~same, 1]
    np.testing.assert_array_equal(ex["left_colour"][a], ex["right_colour"][b])
    np.testing.assert_array_equal(ex["left_size"][a], ex["right_size"][b])
    # Mirroring both objects' content: the right half of b shows a's left object, shifted.
    np.testing.assert_array_equal(ex["left_shape"][a], ex["right_shape"][b])


def test_swap_pairs_from_extras_order_free_and_errors():
    d = _binding(n_swap_pairs=4)
    perm = np.random.default_rng(0).permutation(len(d.labels))
    shuffled = {k: v[perm] for k, v in d.extras.items()}
    pairs, same = swap_pairs_from_extras(shuffled)
    ref_pairs, ref_same = swap_pairs_from_extras(d.extras)
    np.testing.assert_array_equal(perm[pairs], ref_pairs)
    np.testing.assert_array_equal(same, ref_same)
    broken = dict(d.extras, pair_member=np.where(d.extras["role"] == "swap", 0, -1))
    with pytest.raises(ValueError, match="member"):
        swap_pairs_from_extras(broken)
    with pytest.raises(ValueError, match="extras lack"):
        swap_pairs_from_extras({"role": d.extras["role"]})
    none = make_binding(n_per_class_train=1, n_per_class_test=1, n_swap_pairs=0)
    assert swap_pairs_from_extras(none.extras)[0].shape == (0, 2)


def test_binding_seeded_and_224():
    a, b, c = _binding(seed=1), _binding(seed=1), _binding(seed=2)
    np.testing.assert_array_equal(a.images, b.images)
    for k in a.extras:
        np.testing.assert_array_equal(a.extras[k], b.extras[k])
    assert not np.array_equal(a.images, c.images)
    big = make_binding(image_size=224, n_per_class_train=1, n_per_class_test=1, n_swap_pairs=2)
    assert big.images.shape == (68, 224, 224, 3)
    # The object occupies about its design size (56–64 px diameter) at 224.
    assert 50 <= big.extras["left_size"].min() and big.extras["left_size"].max() <= 64


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_test_colours": 1}, "n_test_colours >= 2"),
        ({"jitter": 0.2}, "half of the canvas"),
        ({"swap_colours": "mixed"}, "swap_colours"),
        ({"shapes": ("circle", "blob")}, "unknown"),
        ({"n_per_class_train": 0}, "n_per_class_train"),
    ],
)
def test_binding_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        _binding(**kw)


# --------------------------------------------------------------------------- split and resize


def test_stratified_split_counts_and_seed():
    labels = np.repeat([0, 1, 2], [10, 3, 2])
    s = stratified_split(labels, 0.25, seed=0)
    assert [int(np.sum((labels == c) & (s == "test"))) for c in range(3)] == [2, 1, 1]
    np.testing.assert_array_equal(s, stratified_split(labels, 0.25, seed=0))
    assert any(not np.array_equal(s, stratified_split(labels, 0.25, seed=k)) for k in range(1, 5))
    with pytest.raises(ValueError, match="fewer than 2"):
        stratified_split(np.array([0, 0, 1]), 0.5, seed=0)
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(labels, 0.0, seed=0)


def test_resize_images_constant_and_identity():
    x = np.full((2, 8, 8, 3), 77, np.uint8)
    assert resize_images(x, 8) is x
    np.testing.assert_array_equal(resize_images(x, 20), 77)
    assert resize_images(x, 5).shape == (2, 5, 5, 3)


# --------------------------------------------------------------------------- digits


def test_load_digits():
    from sklearn.datasets import load_digits as sk_digits

    d = load_digits(image_size=8)
    ref = sk_digits()
    assert d.images.shape == (1797, 8, 8, 3) and len(d.class_names) == 10
    np.testing.assert_array_equal(d.images[..., 0], np.rint(ref.images * 255 / 16))
    np.testing.assert_array_equal(d.images[..., 0], d.images[..., 2])
    np.testing.assert_array_equal(d.labels, ref.target)
    frac = [np.mean(d.split[d.labels == c] == "test") for c in range(10)]
    assert np.allclose(frac, 0.25, atol=0.01)
    assert d.ids[0] == "digits-0000" and d.images.max() == 255
    big = load_digits(image_size=32, seed=0)
    assert big.images.shape == (1797, 32, 32, 3)
    np.testing.assert_array_equal(big.split, d.split)  # the split depends on the seed only
    assert not np.array_equal(load_digits(image_size=8, seed=1).split, d.split)


# --------------------------------------------------------------------------- ImageFolder


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array)
    (im.convert(mode) if mode else im).save(path)


def _folder(root: Path, counts: dict[str, int], size=(20, 14)) -> None:
    rng = np.random.default_rng(0)
    for name, k in counts.items():
        for i in range(k):
            _png(root / name / f"img{i}.png", rng.integers(0, 256, (size[1], size[0], 3), np.uint8))


def test_imagefolder_basic(tmp_path):
    _folder(tmp_path, {"b_cls": 4, "a_cls": 3})
    _png(tmp_path / "a_cls" / "grey.png", np.full((9, 30), 50, np.uint8))  # L mode, wide
    (tmp_path / "a_cls" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    d = load_imagefolder(tmp_path, image_size=8, test_fraction=0.3, seed=0)
    assert d.class_names == ["a_cls", "b_cls"]
    assert d.images.shape == (8, 8, 8, 3)
    assert Counter(d.labels.tolist()) == {0: 4, 1: 4}
    for c in (0, 1):
        assert set(d.split[d.labels == c]) == {"train", "test"}
    assert "a_cls/grey.png" in d.ids.tolist()
    np.testing.assert_array_equal(d.images[d.ids.tolist().index("a_cls/grey.png")], 50)
    again = load_imagefolder(tmp_path, image_size=8, test_fraction=0.3, seed=0)
    np.testing.assert_array_equal(again.images, d.images)
    np.testing.assert_array_equal(again.split, d.split)
    json.dumps(d.attrs)


def test_imagefolder_resize_then_centre_crop(tmp_path):
    img = np.zeros((20, 60, 3), np.uint8)
    img[:, :20, 0] = 255  # red | green | blue thirds
    img[:, 20:40, 1] = 255
    img[:, 40:, 2] = 255
    _png(tmp_path / "x" / "a.png", img)
    _png(tmp_path / "x" / "b.png", img)
    d = load_imagefolder(tmp_path, image_size=10, test_fraction=0.5)
    crop = d.images[0].astype(int)
    assert crop.shape == (10, 10, 3)
    # Shorter side 20 -> 10 keeps the aspect (30 x 10); the centre crop is the green third.
    assert np.all(crop[:, 2:8, 1] == 255) and np.all(crop[:, 2:8, [0, 2]] == 0)


def test_imagefolder_max_per_class_and_train_val(tmp_path):
    _folder(tmp_path / "flat", {"a": 6, "b": 5})
    d = load_imagefolder(tmp_path / "flat", image_size=6, test_fraction=0.5, max_per_class=3)
    assert Counter(d.labels.tolist()) == {0: 3, 1: 3}
    _folder(tmp_path / "tv" / "train", {"a": 3, "b": 2})
    _folder(tmp_path / "tv" / "val", {"a": 1, "b": 2})
    tv = load_imagefolder(tmp_path / "tv", image_size=6, test_fraction=0.5)
    assert tv.attrs["split_rule"].startswith("train/")
    assert Counter(zip(tv.split.tolist(), tv.labels.tolist(), strict=True)) == {
        ("train", 0): 3, ("train", 1): 2, ("test", 0): 1, ("test", 1): 2,
    }  # fmt: skip
    assert all(i.startswith(("train/", "val/")) for i in tv.ids)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_imagefolder(tmp_path / "nope", image_size=8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_imagefolder(tmp_path / "empty", image_size=8)
    _folder(tmp_path / "small", {"a": 3, "b": 1})
    with pytest.raises(ValueError, match=r"small/b.*at least 2"):
        load_imagefolder(tmp_path / "small", image_size=8)
    _folder(tmp_path / "tv" / "train", {"a": 2})
    _folder(tmp_path / "tv" / "val", {"a": 1, "z": 1})
    with pytest.raises(ValueError, match="missing from train"):
        load_imagefolder(tmp_path / "tv", image_size=8)


# --------------------------------------------------------------------------- torchvision


def _fake_cifar(root: Path, hundred: bool = False) -> dict:
    """A few images in the real CIFAR python-pickle layout."""
    rng = np.random.default_rng(0)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = "fine_labels" if hundred else "labels"
    n_classes = 100 if hundred else 10
    files = (
        ["train", "test"] if hundred else [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    )
    written = {}
    for name in files:
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        labels = rng.integers(0, n_classes, 4).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, key: labels}, f)
        written[name] = (data, labels)
    meta_key = "fine_label_names" if hundred else "label_names"
    with open(folder / ("meta" if hundred else "batches.meta"), "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(n_classes)]}, f)
    return written


@pytest.fixture
def no_md5(monkeypatch):
    """The fake files cannot match torchvision's MD5s: check that they exist instead."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: Path(fpath).is_file())


def test_load_torchvision_cifar10_fake_root(tmp_path, no_md5):
    written = _fake_cifar(tmp_path)
    d = load_torchvision("CIFAR10", tmp_path, image_size=32)
    assert d.images.shape == (24, 32, 32, 3) and d.class_names[3] == "class3"
    assert Counter(d.split.tolist()) == {"train": 20, "test": 4}
    data, labels = written["data_batch_1"]
    np.testing.assert_array_equal(d.images[:4], data.reshape(4, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(d.labels[:4], labels)
    test_data, test_labels = written["test_batch"]
    np.testing.assert_array_equal(
        d.images[d.split == "test"][0], test_data[0].reshape(3, 32, 32).transpose(1, 2, 0)
    )
    np.testing.assert_array_equal(d.labels[d.split == "test"], test_labels)
    assert d.ids[0] == "cifar10-train-00000" and d.ids[-1] == "cifar10-test-00003"
    small = load_torchvision("cifar10", tmp_path, image_size=16, max_per_class=1, seed=0)
    assert small.images.shape[1:] == (16, 16, 3)
    for s in ("train", "test"):
        assert max(Counter(small.labels[small.split == s].tolist()).values()) == 1


def test_load_torchvision_cifar100_fake_root(tmp_path, no_md5):
    written = _fake_cifar(tmp_path, hundred=True)
    d = load_torchvision("CIFAR100", tmp_path, image_size=32)
    assert len(d.class_names) == 100 and d.images.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(d.labels[:4], written["train"][1])


def test_load_torchvision_missing_root_never_downloads(tmp_path):
    with pytest.raises(ValueError, match=r"download: true") as err:
        load_torchvision("CIFAR10", tmp_path / "absent", image_size=32, download=False)
    assert str(tmp_path / "absent") in str(err.value)
    assert not (tmp_path / "absent" / "cifar-10-python.tar.gz").exists()
    with pytest.raises(ValueError, match="unknown torchvision dataset"):
        load_torchvision("MNISTX", tmp_path)


def test_load_torchvision_imagenet_layout(tmp_path):
    _folder(tmp_path / "train", {"n01": 3, "n02": 2}, size=(12, 16))
    _folder(tmp_path / "val", {"n01": 1, "n02": 1}, size=(12, 16))
    d = load_torchvision("ImageNet", tmp_path, image_size=8)
    assert d.class_names == ["n01", "n02"] and d.images.shape == (7, 8, 8, 3)
    assert Counter(d.split.tolist()) == {"train": 5, "test": 2}
    assert d.ids[0] == "train/n01/img0.png"
    with pytest.raises(ValueError, match="cannot be downloaded"):
        load_torchvision("ImageNet", tmp_path, image_size=8, download=True)
    with pytest.raises(ValueError, match="val"):
        load_torchvision("ImageNet", tmp_path / "train", image_size=8)
