"""Two-object scenes for shape–position binding with disjoint colour sets, and swap pairs.

The target paper (Chung & Kim, ICML 2026, arXiv:2602.03282) describes a synthetic "Attribute
Binding" benchmark testing shape–position binding across disjoint colour sets plus a
same/different structural probe, but not its generator. This module implements our design
**[D]**, drawn for a 224-pixel canvas; the choices marked *ours* are its finer details.

Scene (geometry scaled from the 224-pixel canvas to ``image_size``):

- uniform mid-grey background (128); two filled, anti-aliased, untextured, upright objects in a
  left and a right slot centred at ``(S/4, S/2)`` and ``(3S/4, S/2)`` (``(x, y)``), each with
  independent uniform position jitter of ``±jitter·S`` per axis (±8 px at 224);
- object size (circumscribed diameter) ``~ U(size_range)·S`` (56–64 px at 224);
- shapes from ``shapes`` (default six: :data:`BINDING_SHAPES`), the two shapes of a scene distinct;
- label = ordered pair (left, right): ``k(k−1)`` classes (30), named ``"circle|square"``. A
  bag-of-shapes code can reach at most 50 % accuracy, so more requires position binding;
- colours: ``n_train_colours + n_test_colours`` saturated hues evenly spaced on the hue circle
  (HSV with S = V = 1, hue ``i·360°/K``); the two objects draw colours independently (they may
  coincide). Split ``"train"`` uses only the train colours, ``"test"`` only the test colours.
  *Ours:* test hues are indices ``⌊(j + ½)·K/n_test⌋``, i.e. interleaved with the train hues
  (for 4 + 4: train = red, chartreuse, cyan, violet; test = orange, spring green, azure, rose)
  so neither set covers only one side of the hue circle.

Probe images: ``n_per_class_train`` train-colour images and ``n_per_class_test`` test-colour
images per class (100 and 100 in the full-size design), ``extras["role"] == "probe"``.

Swap pairs (the paper's same/different probe; *ours:* counts, colours, nuisances), all in split
``"test"`` with ``extras["role"] == "swap"``. ``n_swap_pairs`` unordered shape pairs ``{A, B}``
are drawn as balanced as possible over the ``k(k−1)/2`` pairs, each with a random order
``(A, B)``, and each gives two image pairs:

- *different structure* (``pair_kind == "swap"``): ``(A, B)`` and ``(B, A)``. With
  ``swap_colours="slot"`` (default, *ours*) the left and right colours stay with the slots,
  so the two images differ only in where each shape is; with ``"object"`` the colours (and
  sizes) travel with the shapes, so the pair is a mirror of objects;
- *same structure* (``pair_kind == "same"``): ``(A, B)`` twice, the second image with new
  colours for both slots (each different from the first image's colour in that slot).

Within a pair, the jitter and sizes per slot are identical (*ours*), so a pair differs only in
the factor it tests. Swap pairs use the test colours (*ours*: they are out-of-distribution for
a probe trained on the train split). The binding metric must keep them out of the probe's test
set: select probes with ``extras["role"] == "probe"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, permutations

import numpy as np

from repaudit.data import ImageDataset
from repaudit.data.shapes import SHAPE_KINDS, _to_uint8, render_shapes

__all__ = ["BINDING_SHAPES", "hue_palette", "make_binding", "swap_pairs_from_extras"]

BINDING_SHAPES: tuple[str, ...] = SHAPE_KINDS[:6]
"""The design's shape set: circle, square, triangle, star, cross, hexagon."""

BACKGROUND = 128.0


def hue_palette(n: int) -> np.ndarray:
    """``n`` fully saturated, full-value RGB colours at hues ``i·360°/n`` (float, 0..255)."""
    h = np.arange(n) * 6.0 / n  # hue in sextants
    # HSV -> RGB with S = V = 1: channel k is clip(|h + shift_k mod 6 − 3| − 1, 0, 1).
    shifts = np.array([0.0, 4.0, 2.0])  # red, green, blue
    rgb = np.clip(np.abs(np.mod(h[:, None] + shifts, 6.0) - 3.0) - 1.0, 0.0, 1.0)
    return 255.0 * rgb


def _colour_split(n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    k = n_train + n_test
    test = np.floor((np.arange(n_test) + 0.5) * k / n_test).astype(np.int64)
    train = np.setdiff1d(np.arange(k), test)
    return train, test


def make_binding(
    *,
    image_size: int = 32,
    n_per_class_train: int = 100,
    n_per_class_test: int = 100,
    n_swap_pairs: int = 150,
    n_train_colours: int = 4,
    n_test_colours: int = 4,
    jitter: float = 8.0 / 224.0,
    size_range: tuple[float, float] = (56.0 / 224.0, 64.0 / 224.0),
    shapes: Sequence[str] = BINDING_SHAPES,
    swap_colours: str = "slot",
    seed: int = 0,
) -> ImageDataset:
    """Binding scenes (ordered shape pair in left/right slots) with disjoint colour sets.

    See the module docstring for the design and which parts are ours.

    Parameters
    ----------
    image_size : canvas side in pixels (32 for the embedded default, 224 in the full-size design)
    n_per_class_train : train-colour probe images per class (split ``"train"``)
    n_per_class_test : test-colour probe images per class (split ``"test"``)
    n_swap_pairs : sampled unordered shape pairs; each yields one "swap" and one "same" pair,
        so ``4·n_swap_pairs`` images (0 for none)
    n_train_colours, n_test_colours : sizes of the disjoint colour sets (≥ 1; ≥ 2 test colours
        when swap pairs are requested)
    jitter : maximal slot offset per axis as a fraction of ``image_size``
    size_range : (min, max) object diameter as a fraction of ``image_size``
    shapes : ≥ 2 distinct names from :data:`repaudit.data.shapes.SHAPE_KINDS`
    swap_colours : ``"slot"`` or ``"object"``, how colours behave in a "swap" pair
    seed : generator seed; one seed gives bit-identical images

    Returns
    -------
    ImageDataset, rows ordered train probes, test probes, swap pairs (members adjacent), with
    ``extras``:

    - ``role`` (str) ``"probe"`` / ``"swap"``; ``pair_id`` (int, −1 for probes; unique per pair),
      ``pair_member`` (0/1, −1 for probes), ``pair_kind`` (``"swap"`` / ``"same"``, ``""``)
    - ``left_shape``, ``right_shape`` (index into ``attrs["shapes"]``), ``left_colour``,
      ``right_colour`` (index into ``attrs["palette"]``)
    - ``left_x``, ``left_y``, ``right_x``, ``right_y``, ``left_size``, ``right_size`` (float32
      pixels; size = diameter)
    """
    shapes = [str(s) for s in shapes]
    unknown = sorted(set(shapes) - set(SHAPE_KINDS))
    if unknown:
        raise ValueError(f"unknown shapes {unknown}; choose from {list(SHAPE_KINDS)}")
    if len(shapes) < 2 or len(set(shapes)) != len(shapes):
        raise ValueError(f"shapes must name at least 2 distinct shapes, got {shapes}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    if n_per_class_train < 1 or n_per_class_test < 1:
        raise ValueError(
            "n_per_class_train and n_per_class_test must be >= 1, got "
            f"{n_per_class_train} and {n_per_class_test}"
        )
    if n_swap_pairs < 0:
        raise ValueError(f"n_swap_pairs must be >= 0, got {n_swap_pairs}")
    if n_train_colours < 1 or n_test_colours < 1:
        raise ValueError("n_train_colours and n_test_colours must both be >= 1")
    if n_swap_pairs and n_test_colours < 2:
        raise ValueError("'same' swap pairs recolour both slots: set n_test_colours >= 2")
    lo, hi = size_range
    if not 0 < lo <= hi:
        raise ValueError(f"size_range must satisfy 0 < min <= max, got {size_range}")
    if not 0 <= jitter:
        raise ValueError(f"jitter must be >= 0, got {jitter}")
    # Objects must stay inside their half of the canvas: S/4 ± (jitter·S + hi·S/2) ⊂ [0, S/2].
    if jitter + hi / 2.0 > 0.25:
        raise ValueError(
            f"jitter + size_range max / 2 = {jitter + hi / 2:.3f} exceeds 0.25: objects would "
            "leave their half of the canvas; reduce jitter or size_range"
        )
    if swap_colours not in ("slot", "object"):
        raise ValueError(f"swap_colours must be 'slot' or 'object', got {swap_colours!r}")

    rng = np.random.default_rng(seed)
    palette = hue_palette(n_train_colours + n_test_colours)
    train_colours, test_colours = _colour_split(n_train_colours, n_test_colours)
    ordered = np.asarray(list(permutations(range(len(shapes)), 2)), dtype=np.int64)
    n_classes = len(ordered)
    s = float(image_size)

    def nuisance(m: int) -> tuple[np.ndarray, np.ndarray]:
        """Slot centres (m, 2 slots, xy) with jitter, and diameters (m, 2 slots)."""
        base = np.array([[s / 4, s / 2], [3 * s / 4, s / 2]])
        centers = base + rng.uniform(-jitter * s, jitter * s, (m, 2, 2))
        return centers, rng.uniform(lo * s, hi * s, (m, 2))

    # Probe images: balanced classes in random order, iid colours from the split's set.
    blocks = []
    for split_name, per_class, colours in (
        ("train", n_per_class_train, train_colours),
        ("test", n_per_class_test, test_colours),
    ):
        labels = rng.permutation(np.repeat(np.arange(n_classes, dtype=np.int64), per_class))
        centers, sizes = nuisance(len(labels))
        blocks.append(
            {
                "labels": labels,
                "shape": ordered[labels],
                "colour": rng.choice(colours, (len(labels), 2)),
                "centers": centers,
                "sizes": sizes,
                "split": np.full(len(labels), split_name, dtype="<U5"),
                "role": np.full(len(labels), "probe", dtype="<U5"),
                "pair_id": np.full(len(labels), -1, dtype=np.int64),
                "pair_member": np.full(len(labels), -1, dtype=np.int64),
                "pair_kind": np.full(len(labels), "", dtype="<U4"),
                "ids": np.asarray([f"binding-{split_name}-{i:05d}" for i in range(len(labels))]),
            }
        )

    if n_swap_pairs:
        swaps = _swap_block(
            rng, n_swap_pairs, len(shapes), test_colours, nuisance, swap_colours, ordered
        )
        blocks.append(swaps)

    cat = {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
    n = len(cat["labels"])
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    names = np.asarray(shapes)
    rgb = palette[cat["colour"]]  # (n, 2, 3)
    chunk = max(1, (1 << 23) // (image_size * image_size * 3))  # ≤ 32 MiB float canvas
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        canvas = np.full((sl.stop - sl.start, image_size, image_size, 3), BACKGROUND, np.float32)
        for slot in (0, 1):
            render_shapes(
                canvas,
                names[cat["shape"][sl, slot]],
                cat["centers"][sl, slot],
                cat["sizes"][sl, slot] / 2.0,
                None,
                rgb[sl, slot],
                inplace=True,
            )
        images[sl] = _to_uint8(canvas)

    class_names = [f"{shapes[a]}|{shapes[b]}" for a, b in ordered]
    extras = {
        "role": cat["role"],
        "pair_id": cat["pair_id"],
        "pair_member": cat["pair_member"],
        "pair_kind": cat["pair_kind"],
        "left_shape": cat["shape"][:, 0].copy(),
        "right_shape": cat["shape"][:, 1].copy(),
        "left_colour": cat["colour"][:, 0].astype(np.int64),
        "right_colour": cat["colour"][:, 1].astype(np.int64),
        "left_x": cat["centers"][:, 0, 0].astype(np.float32),
        "left_y": cat["centers"][:, 0, 1].astype(np.float32),
        "right_x": cat["centers"][:, 1, 0].astype(np.float32),
        "right_y": cat["centers"][:, 1, 1].astype(np.float32),
        "left_size": cat["sizes"][:, 0].astype(np.float32),
        "right_size": cat["sizes"][:, 1].astype(np.float32),
    }
    return ImageDataset(
        images=images,
        labels=cat["labels"],
        split=cat["split"],
        ids=cat["ids"],
        class_names=class_names,
        attrs={
            "generator": "repaudit.data.binding.make_binding",
            "design": "our design of the arXiv:2602.03282 binding benchmark [D]",
            "image_size": int(image_size),
            "n_per_class_train": int(n_per_class_train),
            "n_per_class_test": int(n_per_class_test),
            "n_swap_pairs": int(n_swap_pairs),
            "n_train_colours": int(n_train_colours),
            "n_test_colours": int(n_test_colours),
            "palette": palette.round(3).tolist(),
            "train_colours": train_colours.tolist(),
            "test_colours": test_colours.tolist(),
            "swap_pair_colours": "test",
            "swap_colours": swap_colours,
            "jitter": float(jitter),
            "size_range": [float(lo), float(hi)],
            "size_meaning": "circumscribed diameter / image_size",
            "slot_centres": "(S/4, S/2), (3S/4, S/2)",
            "background": BACKGROUND,
            "shapes": list(shapes),
            "seed": int(seed),
            "antialiasing": "signed-distance box coverage, 1 px",
        },
        extras=extras,
    )


def _swap_block(rng, n_pairs, n_shapes, colours, nuisance, swap_colours, ordered) -> dict:
    """Rows for ``n_pairs`` sampled shape pairs: a "swap" pair and a "same" pair each."""
    unordered = np.asarray(list(combinations(range(n_shapes), 2)), dtype=np.int64)
    reps = -(-n_pairs // len(unordered))
    # Balanced: each unordered pair appears ⌊n/P⌋ or ⌈n/P⌉ times, in random order.
    picks = unordered[rng.permutation(np.tile(np.arange(len(unordered)), reps))[:n_pairs]]
    flip = rng.random(n_pairs) < 0.5
    first = np.where(flip[:, None], picks[:, ::-1], picks)  # (A, B) shown first, A on the left

    m = 2 * n_pairs  # pair j < n_pairs is "swap", j >= n_pairs is "same"
    base_shape = np.concatenate([first, first])
    base_colour = rng.choice(colours, (m, 2))
    centers, sizes = nuisance(m)

    # "same" pairs: recolour both slots, each to a different colour of the same set.
    shift = rng.integers(1, len(colours), (n_pairs, 2))
    pos = np.searchsorted(colours, base_colour[n_pairs:])
    recoloured = colours[(pos + shift) % len(colours)]

    shape2 = base_shape.copy()
    colour2 = base_colour.copy()
    sizes2 = sizes.copy()
    shape2[:n_pairs] = base_shape[:n_pairs, ::-1]
    if swap_colours == "object":  # colours and sizes travel with the shapes
        colour2[:n_pairs] = base_colour[:n_pairs, ::-1]
        sizes2[:n_pairs] = sizes[:n_pairs, ::-1]
    colour2[n_pairs:] = recoloured

    # Interleave members: rows 2j and 2j + 1 are pair j.
    def pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.stack([a, b], axis=1).reshape(2 * m, *a.shape[1:])

    shape = pairs(base_shape, shape2)
    class_of = {tuple(p): i for i, p in enumerate(ordered.tolist())}
    pair_id = np.repeat(np.arange(m, dtype=np.int64), 2)
    kind = np.where(pair_id < n_pairs, "swap", "same").astype("<U4")
    member = np.tile(np.array([0, 1], dtype=np.int64), m)
    ids = [f"binding-{k}-{j:05d}-{i}" for j, k, i in zip(pair_id, kind, member, strict=True)]
    return {
        "labels": np.asarray([class_of[tuple(p)] for p in shape.tolist()], dtype=np.int64),
        "shape": shape,
        "colour": pairs(base_colour, colour2),
        "centers": pairs(centers, centers),
        "sizes": pairs(sizes, sizes2),
        "split": np.full(2 * m, "test", dtype="<U5"),
        "role": np.full(2 * m, "swap", dtype="<U5"),
        "pair_id": pair_id,
        "pair_member": member,
        "pair_kind": kind,
        "ids": np.asarray(ids),
    }


def swap_pairs_from_extras(extras: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the swap-probe pairs stored by :func:`make_binding`.

    Parameters
    ----------
    extras : ``ImageDataset.extras`` (or the same arrays read back from HDF5); needs
        ``role``, ``pair_id``, ``pair_member`` and ``pair_kind``

    Returns
    -------
    pairs : int64 (P, 2), rows ``[member 0, member 1]``, ordered by ``pair_id``
    same : bool (P,), True for "same structure" pairs (recoloured), False for "swap" pairs
    """
    missing = [k for k in ("role", "pair_id", "pair_member", "pair_kind") if k not in extras]
    if missing:
        raise ValueError(
            f"extras lack {missing}; swap pairs come from repaudit.data.binding.make_binding"
        )
    role = np.asarray(extras["role"]).astype(str)
    pair_id = np.asarray(extras["pair_id"], dtype=np.int64)
    member = np.asarray(extras["pair_member"], dtype=np.int64)
    kind = np.asarray(extras["pair_kind"]).astype(str)
    rows = np.flatnonzero(role == "swap")
    if rows.size == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=bool)
    order = rows[np.lexsort((member[rows], pair_id[rows]))]
    if order.size % 2 or np.any(member[order] != np.tile([0, 1], order.size // 2)):
        raise ValueError("every swap pair_id must have exactly one member 0 and one member 1")
    pairs = order.reshape(-1, 2)
    if np.any(pair_id[pairs[:, 0]] != pair_id[pairs[:, 1]]):
        raise ValueError("swap pair members disagree on pair_id")
    if np.any(kind[pairs[:, 0]] != kind[pairs[:, 1]]) or not set(kind[pairs[:, 0]]) <= {
        "swap",
        "same",
    }:
        raise ValueError("pair_kind must be 'swap' or 'same' and agree within each pair")
    return pairs, kind[pairs[:, 0]] == "same"
