"""Dataset generators and loaders.

Every generator or loader returns an :class:`ImageDataset`: uint8 images ``(N, H, W, 3)``,
int64 labels ``(N,)``, a train/test split, stable string ids and the parameters that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageDataset:
    """A labelled image set, the unit stored in ``results/data/{dataset}.h5``.

    Attributes
    ----------
    images : uint8 array (N, H, W, 3)
    labels : int64 array (N,), values in ``0 .. len(class_names) - 1``
    split : str array (N,), ``"train"`` or ``"test"``
    ids : str array (N,), unique and stable for a given seed
    class_names : list of str
    attrs : generator/loader parameters, stored as HDF5 attributes (JSON-serialisable values)
    extras : optional per-sample arrays (N, ...) stored beside the images (e.g. binding metadata)
    """

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    ids: np.ndarray
    class_names: list[str]
    attrs: dict = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}"
            )
        for name in ("labels", "split", "ids"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, images have {n}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError("labels must lie in 0 .. len(class_names) - 1")
        bad = set(np.unique(self.split)) - {"train", "test"}
        if bad:
            raise ValueError(f"split values must be 'train' or 'test', got {sorted(bad)}")
        if len(set(self.ids.tolist())) != n:
            raise ValueError("ids must be unique")


def take_rows(images, index):
    """``images[index]`` without reading: an in-memory array is indexed, an array kept in a file
    (:class:`repaudit.io.H5Images`) returns a view (``subset``) that reads when indexed."""
    subset = getattr(images, "subset", None)
    return subset(index) if subset is not None else images[index]
