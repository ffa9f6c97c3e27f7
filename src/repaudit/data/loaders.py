"""Loaders for real image data: sklearn digits, ImageFolder trees and torchvision datasets.

All loaders hold every image in memory as uint8 ``(N, S, S, 3)``; for large sets (ImageNet,
CIFAR at 224 px) bound the size with ``max_per_class``. Resampling rules:

- arrays already square (digits, CIFAR) are resized with bilinear interpolation with
  antialiasing (``torch.nn.functional.interpolate(mode="bilinear", antialias=True,
  align_corners=False)``), a no-op when the size already matches;
- files (ImageFolder) are resized so the shorter side equals ``image_size`` (PIL bilinear,
  which low-pass filters when shrinking), then centre-cropped to ``image_size``, the
  torchvision ``Resize(S) + CenterCrop(S)`` rule.

Nothing is ever downloaded unless ``download=True`` is passed explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from repaudit.data import ImageDataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "load_digits",
    "load_imagefolder",
    "load_torchvision",
    "optdigits_to_images",
    "resize_images",
    "stratified_split",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
)  # fmt: skip


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded stratified train/test assignment.

    Class ``c`` with ``n_c`` members gets ``clip(round(test_fraction · n_c), 1, n_c − 1)``
    test samples chosen uniformly at random, so every class appears in both splits.

    Parameters
    ----------
    labels : int array (N,)
    test_fraction : in (0, 1)
    seed : seed of the random choice (classes are visited in sorted order)

    Returns
    -------
    str array (N,) of ``"train"`` / ``"test"``.
    """
    labels = np.asarray(labels)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    if np.any(counts < 2):
        small = classes[counts < 2].tolist()
        raise ValueError(
            f"classes {small} have fewer than 2 samples; a stratified split needs one train and "
            "one test sample per class: add images or drop those classes"
        )
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "train", dtype="<U5")
    for c, n_c in zip(classes, counts, strict=True):
        n_test = int(np.clip(round(test_fraction * n_c), 1, n_c - 1))
        members = np.flatnonzero(labels == c)
        split[rng.permutation(members)[:n_test]] = "test"
    return split


def resize_images(images: np.ndarray, image_size: int, *, chunk: int = 512) -> np.ndarray:
    """Resize uint8 ``(N, h, w, 3)`` images to ``(N, S, S, 3)`` (bilinear, antialiased).

    Returns the input unchanged when it already has the target size.
    """
    import torch
    import torch.nn.functional as F

    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    if images.shape[1:3] == (image_size, image_size):
        return images
    out = np.empty((len(images), image_size, image_size, 3), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk]))
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        y = F.interpolate(
            x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
        y = y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        out[start : start + len(y)] = y.numpy()
    return out


def _subsample_per_class(labels: np.ndarray, max_per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices keeping at most ``max_per_class`` random members of each class."""
    if max_per_class is None:
        return np.arange(len(labels))
    if max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1 or None, got {max_per_class}")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) > max_per_class:
            members = rng.choice(members, max_per_class, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep))


def optdigits_to_images(counts: np.ndarray, image_size: int) -> np.ndarray:
    """UCI optdigits block counts (N, 8, 8), values 0..16, as uint8 RGB (N, S, S, 3).

    ``round(v · 255 / 16)``, :func:`resize_images` to ``image_size``, grey replicated to three
    channels: how :func:`load_digits` and the ``glyphs`` generator turn counts into pixels.
    """
    grey = np.rint(np.asarray(counts) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return resize_images(np.repeat(grey[..., None], 3, axis=-1), image_size)


def load_digits(
    *, image_size: int = 32, test_fraction: float = 0.25, seed: int = 0
) -> ImageDataset:
    """scikit-learn's bundled handwritten digits (UCI optdigits test set), offline.

    1,797 grey 8×8 images with values 0..16 and 10 classes. Values are rescaled to 0..255
    (``round(v · 255 / 16)``), resized to ``image_size`` with :func:`resize_images`, and
    replicated to 3 channels; the split is :func:`stratified_split`.

    Returns
    -------
    ImageDataset with ids ``"digits-0000"``… (the row index in sklearn's order) and
    class names ``"0"``…``"9"``.
    """
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    images = optdigits_to_images(bunch.images, image_size)
    labels = bunch.target.astype(np.int64)
    return ImageDataset(
        images=images,
        labels=labels,
        split=stratified_split(labels, test_fraction, seed),
        ids=np.asarray([f"digits-{i:04d}" for i in range(len(labels))]),
        class_names=[str(c) for c in range(10)],
        attrs={
            "loader": "repaudit.data.loaders.load_digits",
            "source": "sklearn.datasets.load_digits",
            "image_size": int(image_size),
            "test_fraction": float(test_fraction),
            "seed": int(seed),
            "preprocessing": "0..16 -> 0..255; bilinear antialiased resize; grey -> RGB",
        },
    )


def _list_class_folders(
    root: Path, extensions: Sequence[str]
) -> tuple[list[str], list[list[Path]]]:
    """Sorted class folders under ``root`` and each one's image files (recursive, sorted)."""
    exts = tuple(e.lower() for e in extensions)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = []
    for name in classes:
        found = []
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [Path(dirpath) / f for f in sorted(filenames) if f.lower().endswith(exts)]
        files.append(found)
    return classes, files


def _load_files(paths: Sequence[Path], image_size: int) -> np.ndarray:
    """Read image files as RGB, shorter side to ``image_size`` (bilinear), centre crop."""
    from PIL import Image

    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            # torchvision's Resize(int) rule: the longer side is truncated, not rounded.
            if w <= h:
                new_w, new_h = image_size, int(image_size * h / w)
            else:
                new_w, new_h = int(image_size * w / h), image_size
            if (new_w, new_h) != (w, h):
                im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
            left = round((new_w - image_size) / 2.0)
            top = round((new_h - image_size) / 2.0)
            im = im.crop((left, top, left + image_size, top + image_size))
            out[i] = np.asarray(im, dtype=np.uint8)
    return out


def _folder_error(root: Path, problem: str) -> ValueError:
    return ValueError(
        f"image folder {root}: {problem}. Expected one sub-folder per class holding image files "
        f"(or train/ and val/ folders laid out that way); set the dataset's `root` in the "
        "config to such a folder"
    )


def load_imagefolder(
    root: str | os.PathLike,
    *,
    image_size: int = 224,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_per_class: int | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> ImageDataset:
    """Images from a folder of class sub-folders (the torchvision ImageFolder layout).

    Split rule: if ``root/train`` and ``root/val`` both exist, they are the predefined splits
    (``val`` becomes ``"test"``; ``test_fraction`` is ignored; every ``val`` class must also
    be a ``train`` class). Otherwise the class folders directly under ``root`` are split with
    :func:`stratified_split`. Class names are the sorted folder names; files are found
    recursively with a case-insensitive extension match; hidden entries are skipped.

    Each image is converted to RGB, resized so its shorter side is ``image_size`` (PIL
    bilinear) and centre-cropped to ``image_size × image_size``.

    Parameters
    ----------
    root : folder to read
    image_size : output side in pixels
    test_fraction : test share per class when no ``train``/``val`` sub-roots exist
    seed : seeds the split and the ``max_per_class`` subsample
    max_per_class : keep at most this many random images per class (per split), or None
    extensions : accepted file suffixes

    Returns
    -------
    ImageDataset whose ids are the files' paths relative to ``root`` (POSIX form).
    """
    root = Path(root)
    if not root.is_dir():
        raise _folder_error(root, "does not exist or is not a directory")
    rng = np.random.default_rng(seed)
    presplit = (root / "train").is_dir() and (root / "val").is_dir()

    if presplit:
        classes, train_files = _list_class_folders(root / "train", extensions)
        val_classes, val_files = _list_class_folders(root / "val", extensions)
        if not classes:
            raise _folder_error(root / "train", "has no class sub-folders")
        extra = sorted(set(val_classes) - set(classes))
        if extra:
            raise _folder_error(root / "val", f"classes {extra} are missing from train/")
        groups = [("train", train_files, classes), ("test", val_files, val_classes)]
        for name, files in zip(classes, train_files, strict=True):
            if not files:
                raise _folder_error(
                    root / "train" / name, "holds no images with " + str(extensions)
                )
    else:
        classes, files = _list_class_folders(root, extensions)
        if not classes:
            raise _folder_error(root, "has no class sub-folders")
        for name, found in zip(classes, files, strict=True):
            if len(found) < 2:
                raise _folder_error(
                    root / name,
                    f"holds {len(found)} image(s); each class needs at least 2 (one train, one "
                    "test): add images or remove the folder",
                )
        groups = [("", files, classes)]

    index = {name: i for i, name in enumerate(classes)}
    paths, labels, splits = [], [], []
    for split_name, files, names in groups:
        counts = [len(f) for f in files]
        group_labels = np.repeat(np.asarray([index[n] for n in names], dtype=np.int64), counts)
        group_paths = [p for f in files for p in f]
        keep = _subsample_per_class(group_labels, max_per_class, int(rng.integers(2**63)))
        paths += [group_paths[i] for i in keep]
        labels.append(group_labels[keep])
        splits.append(np.full(len(keep), split_name, dtype="<U5"))
    labels = np.concatenate(labels)
    if presplit:
        split = np.concatenate(splits)
    else:
        split = stratified_split(labels, test_fraction, int(rng.integers(2**63)))

    return ImageDataset(
        images=_load_files(paths, image_size),
        labels=labels,
        split=split,
        ids=np.asarray([p.relative_to(root).as_posix() for p in paths]),
        class_names=list(classes),
        attrs={
            "loader": "repaudit.data.loaders.load_imagefolder",
            "root": str(root),
            "image_size": int(image_size),
            "split_rule": "train/ and val/ sub-roots" if presplit else "stratified",
            "test_fraction": "predefined" if presplit else float(test_fraction),
            "seed": int(seed),
            "max_per_class": "all" if max_per_class is None else int(max_per_class),
            "extensions": list(extensions),
            "preprocessing": "RGB; shorter side -> image_size (PIL bilinear); centre crop",
        },
    )


_CIFAR = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}


def load_torchvision(
    name: str,
    root: str | os.PathLike,
    *,
    image_size: int = 32,
    download: bool = False,
    max_per_class: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """CIFAR-10, CIFAR-100 (fine labels) or an ImageNet-style tree, with their own splits.

    - ``"CIFAR10"`` / ``"CIFAR100"``: ``torchvision.datasets`` under ``root`` (which holds
      ``cifar-10-batches-py`` / ``cifar-100-python``); the train set becomes ``"train"``,
      the test set ``"test"``. Images are resized with :func:`resize_images`.
    - ``"ImageNet"``: ``torchvision.datasets.ImageFolder`` on ``root/train`` and
      ``root/val`` (``val`` in class sub-folders, e.g. after the usual ``valprep.sh``);
      ``val`` becomes ``"test"``. Files are loaded as in :func:`load_imagefolder`.
      ImageNet cannot be downloaded automatically.

    Parameters
    ----------
    name : ``"CIFAR10"``, ``"CIFAR100"`` or ``"ImageNet"`` (case-insensitive)
    root : data folder
    image_size : output side in pixels
    download : let torchvision download CIFAR into ``root``; never implied
    max_per_class : keep at most this many random images per class and split, or None
    seed : seeds the ``max_per_class`` subsample

    Returns
    -------
    ImageDataset with ids ``"{name}-{split}-{index}"`` (index in the original split) for
    CIFAR and paths relative to ``root`` for ImageNet.
    """
    import torchvision.datasets as tvd

    key = name.lower()
    root = Path(root)
    rng = np.random.default_rng(seed)
    if key in _CIFAR:
        cls = getattr(tvd, _CIFAR[key])
        parts = []
        for split_name, train in (("train", True), ("test", False)):
            try:
                ds = cls(str(root), train=train, download=download)
            except RuntimeError as err:
                raise ValueError(
                    f"{_CIFAR[key]} not found (or corrupted) under {root} ({err}). Set "
                    "`download: true` for this dataset in the config to download it, or point "
                    "`root` at the folder that holds "
                    f"{'cifar-10-batches-py' if key == 'cifar10' else 'cifar-100-python'}"
                ) from err
            targets = np.asarray(ds.targets, dtype=np.int64)
            keep = _subsample_per_class(targets, max_per_class, int(rng.integers(2**63)))
            parts.append((split_name, keep, np.asarray(ds.data)[keep], targets[keep]))
            class_names = list(ds.classes)
        images = resize_images(np.concatenate([p[2] for p in parts]), image_size)
        labels = np.concatenate([p[3] for p in parts])
        split = np.concatenate([np.full(len(p[1]), p[0], dtype="<U5") for p in parts])
        ids = np.asarray([f"{key}-{p[0]}-{i:05d}" for p in parts for i in p[1]])
        preprocessing = "bilinear antialiased resize"
    elif key == "imagenet":
        if download:
            raise ValueError(
                "ImageNet cannot be downloaded automatically; set `download: false` and place "
                f"train/ and val/ class folders under {root}"
            )
        folders = {}
        for sub in ("train", "val"):
            if not (root / sub).is_dir():
                raise ValueError(
                    f"ImageNet not found: {root / sub} is missing. ImageNet must be provided "
                    "by you (it is never downloaded): point the dataset's `root` in the config "
                    "at a folder holding train/ and val/ with one sub-folder per class"
                )
            folders[sub] = tvd.ImageFolder(str(root / sub))
        if folders["train"].classes != folders["val"].classes:
            raise ValueError(f"{root}/train and {root}/val must hold the same class folders")
        paths, labels, split = [], [], []
        for sub, split_name in (("train", "train"), ("val", "test")):
            samples = folders[sub].samples
            targets = np.asarray([t for _, t in samples], dtype=np.int64)
            keep = _subsample_per_class(targets, max_per_class, int(rng.integers(2**63)))
            paths += [Path(samples[i][0]) for i in keep]
            labels.append(targets[keep])
            split.append(np.full(len(keep), split_name, dtype="<U5"))
        images = _load_files(paths, image_size)
        labels, split = np.concatenate(labels), np.concatenate(split)
        ids = np.asarray([p.relative_to(root).as_posix() for p in paths])
        class_names = list(folders["train"].classes)
        preprocessing = "RGB; shorter side -> image_size (PIL bilinear); centre crop"
    else:
        raise ValueError(f"unknown torchvision dataset {name!r}; use CIFAR10, CIFAR100 or ImageNet")

    return ImageDataset(
        images=images,
        labels=labels,
        split=split,
        ids=ids,
        class_names=class_names,
        attrs={
            "loader": "repaudit.data.loaders.load_torchvision",
            "name": name,
            "root": str(root),
            "image_size": int(image_size),
            "download": bool(download),
            "max_per_class": "all" if max_per_class is None else int(max_per_class),
            "seed": int(seed),
            "preprocessing": preprocessing,
        },
    )
