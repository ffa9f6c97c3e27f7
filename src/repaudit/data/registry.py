"""Dispatch a ``datasets:`` config entry to its generator or loader."""

from __future__ import annotations

from repaudit.data import ImageDataset


def build_dataset(spec: dict, seed: int) -> ImageDataset:
    """Build the dataset described by one ``datasets.<name>`` config entry.

    ``kind`` selects the builder; every other key is passed on as a keyword argument, so the
    config keys are exactly the builder's parameters (documented in config/README.md).
    """
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "shapes":
        from repaudit.data.shapes import make_shapes as build
    elif kind == "glyphs":
        from repaudit.data.glyphs import make_glyphs as build
    elif kind == "binding":
        from repaudit.data.binding import make_binding as build
    elif kind == "digits":
        from repaudit.data.loaders import load_digits as build
    elif kind == "imagefolder":
        from repaudit.data.loaders import load_imagefolder as build
    elif kind == "torchvision":
        from repaudit.data.loaders import load_torchvision as build
    else:
        raise ValueError(f"unknown dataset kind {kind!r}")
    data = build(**spec, seed=seed)
    data.attrs.update(kind=kind, seed=seed)
    return data
