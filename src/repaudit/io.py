"""All file I/O of the library: HDF5 datasets and features, TSV tables, checkpoints.

Every writer is atomic: it writes ``<name>.tmp-<pid>`` beside the target and renames it
into place only when the write finished, so an interrupted job never leaves a truncated
file that Snakemake would mistake for an output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from repaudit.data import ImageDataset

STR = h5py.string_dtype("utf-8")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _attr(value):
    """HDF5 attributes hold scalars and strings; anything structured goes in as JSON."""
    if isinstance(value, str | int | float | bool | np.integer | np.floating):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _read_attrs(attrs: h5py.AttributeManager) -> dict:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def _strings(values) -> np.ndarray:
    return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values])


# --------------------------------------------------------------------------- datasets


def write_dataset(path: str | os.PathLike, data: ImageDataset) -> None:
    """Write an :class:`ImageDataset` to HDF5 (images gzip-compressed, one image per chunk).

    One image per chunk lets :class:`H5Images` read a shuffled training batch by decompressing
    only its own images; a chunk of many images would be decompressed once per member drawn.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(
            "images",
            data=np.asarray(data.images),
            chunks=(1, *data.images.shape[1:]),
            compression="gzip",
            compression_opts=4,
        )
        f.create_dataset("labels", data=data.labels.astype(np.int64))
        f.create_dataset("split", data=data.split.astype(object), dtype=STR)
        f.create_dataset("ids", data=data.ids.astype(object), dtype=STR)
        f.create_dataset("class_names", data=np.asarray(data.class_names, dtype=object), dtype=STR)
        for key, value in data.extras.items():
            value = np.asarray(value)
            if value.dtype.kind in "USO":
                f.create_dataset(f"extras/{key}", data=value.astype(object), dtype=STR)
            else:
                f.create_dataset(f"extras/{key}", data=value)
        for key, value in data.attrs.items():
            f.attrs[key] = _attr(value)


class H5Images:
    """Read-only image array ``(N, H, W, 3)`` uint8 kept in an HDF5 file, read on indexing.

    Indexing follows NumPy for the first axis (an int, a slice, an integer or boolean array, a
    torch index tensor) and returns a NumPy array holding only the rows asked for, in the order
    asked for: the file is read once per call over the sorted distinct rows, so a shuffled batch
    costs its own images, not the whole array. :meth:`subset` is a view that reads nothing.
    ``rows_read`` counts the image rows read from the file (for memory checks). Converting the
    whole object with ``np.asarray`` reads everything, on purpose only.
    """

    def __init__(self, dset: h5py.Dataset, rows: np.ndarray | None = None) -> None:
        if dset.ndim != 4:
            raise ValueError(f"{dset.name}: expected (N, H, W, 3) images, got {dset.shape}")
        self._dset = dset
        self._file = dset.file  # keeps the file open while a view exists
        self._rows = rows  # None: all rows in file order
        self._counter = [0]  # shared by views of one file

    @property
    def shape(self) -> tuple[int, ...]:
        n = self._dset.shape[0] if self._rows is None else len(self._rows)
        return (n, *self._dset.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self._dset.dtype

    @property
    def ndim(self) -> int:
        return 4

    @property
    def rows_read(self) -> int:
        return self._counter[0]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"H5Images({self._file.filename!r}, shape={self.shape})"

    def _file_rows(self, key) -> np.ndarray:
        """File rows of a first-axis key, in the key's order."""
        if isinstance(key, tuple):
            raise IndexError("H5Images indexes images (the first axis) only")
        if hasattr(key, "numpy"):  # a torch tensor
            key = key.cpu().numpy()
        n = len(self)
        if isinstance(key, slice):
            local = np.arange(n)[key]
        else:
            key = np.asarray(key)
            if key.dtype == bool:
                if key.shape != (n,):
                    raise IndexError(f"boolean index of shape {key.shape} for {n} images")
                local = np.flatnonzero(key)
            elif np.issubdtype(key.dtype, np.integer):
                local = key.astype(np.int64)
                if local.size and (local.max() >= n or local.min() < -n):
                    raise IndexError(f"index out of range for {n} images")
                local = np.where(local < 0, local + n, local)
            else:
                raise IndexError(f"cannot index images with {key.dtype} values")
        return local if self._rows is None else self._rows[local]

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if rows.size == 0:
            return np.empty((*rows.shape, *self._dset.shape[1:]), dtype=self.dtype)
        flat = rows.reshape(-1)
        unique, inverse = np.unique(flat, return_inverse=True)
        # One slice read per run of consecutive rows: h5py's point (fancy) selection costs
        # ~20x more per image than a loop of slices (measured for 256 of 20k 32x32 images).
        block = np.empty((unique.size, *self._dset.shape[1:]), dtype=self.dtype)
        cuts = np.flatnonzero(np.diff(unique) != 1) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, unique.size], strict=True):
            block[lo:hi] = self._dset[int(unique[lo]) : int(unique[hi - 1]) + 1]
        self._counter[0] += unique.size
        if unique.size == flat.size and np.array_equal(unique, flat):
            return block.reshape(*rows.shape, *block.shape[1:])
        return block[inverse].reshape(*rows.shape, *block.shape[1:])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self._read(self._file_rows(np.asarray([key])))[0]
        return self._read(self._file_rows(key))

    def subset(self, key) -> H5Images:
        """A view on some rows (same indexing as ``__getitem__``); reads nothing."""
        view = H5Images(self._dset, self._file_rows(key))
        view._counter = self._counter
        return view

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Consecutive batches of at most ``batch_size`` images, in order."""
        for start in range(0, len(self), batch_size):
            yield self[start : start + batch_size]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def close(self) -> None:
        self._file.close()


def read_dataset(path: str | os.PathLike, *, lazy: bool = False) -> ImageDataset:
    """Read a dataset written by :func:`write_dataset`.

    With ``lazy`` the images stay in the file (:class:`H5Images`, read batch by batch, the file
    open while they are referenced); labels, ids, split and extras are read into memory.
    """
    f = h5py.File(path, "r")
    try:
        extras = {}
        for key, dset in f.get("extras", {}).items():
            value = dset[()]
            extras[key] = _strings(value) if dset.dtype.kind == "O" else value
        data = ImageDataset(
            images=H5Images(f["images"]) if lazy else f["images"][()],
            labels=f["labels"][()].astype(np.int64),
            split=_strings(f["split"][()]),
            ids=_strings(f["ids"][()]),
            class_names=_strings(f["class_names"][()]).tolist(),
            attrs=_read_attrs(f.attrs),
            extras=extras,
        )
    except BaseException:
        f.close()
        raise
    if not lazy:
        f.close()
    return data


# --------------------------------------------------------------------------- features


@dataclass
class FeatureSet:
    """Per-layer pooled features of one (dataset, model, stage), as stored in HDF5.

    ``features`` maps layer names ("0", "1", ..., "final") to float32 (N, D) arrays,
    ordered shallow to deep; ``layer_attrs`` holds each layer's pooling and index.
    """

    features: dict[str, np.ndarray]
    labels: np.ndarray
    ids: np.ndarray
    split: np.ndarray
    attrs: dict = field(default_factory=dict)
    layer_attrs: dict[str, dict] = field(default_factory=dict)


def write_features(path: str | os.PathLike, fs: FeatureSet) -> None:
    """Write features: ``/layers/<name>`` (N, D) float32, ``/labels``, ``/ids``, ``/split``.

    Root attributes carry provenance; ``layer_order`` keeps the depth order of the layers.
    """
    n = len(fs.labels)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, x in fs.features.items():
            x = np.asarray(x, dtype=np.float32)
            if x.ndim != 2 or len(x) != n:
                raise ValueError(f"layer {name!r}: expected ({n}, D) features, got {x.shape}")
            dset = f.create_dataset(f"layers/{name}", data=x, chunks=(min(n, 1024), x.shape[1]))
            for key, value in fs.layer_attrs.get(name, {}).items():
                dset.attrs[key] = _attr(value)
        f.create_dataset("labels", data=fs.labels.astype(np.int64))
        f.create_dataset("ids", data=fs.ids.astype(object), dtype=STR)
        f.create_dataset("split", data=fs.split.astype(object), dtype=STR)
        f.attrs["layer_order"] = json.dumps(list(fs.features))
        for key, value in fs.attrs.items():
            f.attrs[key] = _attr(value)


def read_features(path: str | os.PathLike, layers: list[str] | None = None) -> FeatureSet:
    """Read features written by :func:`write_features` (optionally only some layers)."""
    with h5py.File(path, "r") as f:
        attrs = _read_attrs(f.attrs)
        order = attrs.pop("layer_order")
        wanted = order if layers is None else [name for name in order if name in set(layers)]
        missing = set(layers or []) - set(order)
        if missing:
            raise ValueError(f"{path}: no layers {sorted(missing)}; stored layers are {order}")
        return FeatureSet(
            features={name: f[f"layers/{name}"][()] for name in wanted},
            labels=f["labels"][()].astype(np.int64),
            ids=_strings(f["ids"][()]),
            split=_strings(f["split"][()]),
            attrs=attrs,
            layer_attrs={name: _read_attrs(f[f"layers/{name}"].attrs) for name in wanted},
        )


def read_stage_features(
    paths: list[str], models: list[str], layers: list[str]
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    """Features of every model of one (dataset, stage): ``{model: {layer: X}}``, labels, split.

    All files describe the same images in the same order; a mismatch is an error.
    """
    sets = {m: read_features(path, layers=layers) for m, path in zip(models, paths, strict=True)}
    first = next(iter(sets.values()))
    for m, fs in sets.items():
        if not np.array_equal(fs.ids, first.ids):
            raise ValueError(f"{m}: features cover other images than {models[0]}; re-extract them")
    return {m: fs.features for m, fs in sets.items()}, first.labels, first.split


# --------------------------------------------------------------------------- tables


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a tab-separated table atomically (10 significant digits; NaN written as ``NaN``)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.10g", na_rep="NaN")


def write_figure(fig, *paths: str | os.PathLike, dpi: int = 150) -> None:
    """Save a matplotlib figure atomically to each path, in the format its suffix names."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip("."), dpi=dpi, bbox_inches="tight")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a TSV written by :func:`write_table`; empty strings stay strings."""
    text_columns = ("dataset", "model", "model_b", "stage", "layer", "layer_b", "metric")
    text_columns += ("variant", "class", "split", "reason", "note")
    return pd.read_csv(
        path,
        sep="\t",
        keep_default_na=False,
        na_values=["NaN", "nan", "<NA>"],
        dtype=dict.fromkeys(text_columns, str),
    )


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, payload: Mapping) -> None:
    """``torch.save`` a dict atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (or a plain state dict) on the CPU."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return {"state_dict": load_file(path)}
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and ("state_dict" in obj or "head" in obj):  # written by us
        return obj
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        return {"state_dict": obj["model"]}
    return {"state_dict": obj}


# --------------------------------------------------------------------------- concept memberships


def write_memberships(path: str | os.PathLike, memberships: Mapping) -> None:
    """Concept memberships ``{method: {layer: ConceptResult}}`` as ``/<method>/<layer>/...``."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for method, layers in memberships.items():
            for layer, result in layers.items():
                g = f.create_group(f"{method}/{layer}")
                g.create_dataset("memberships", data=result.memberships, compression="gzip")
                g.create_dataset("labels", data=result.labels)
                if result.sample_index is not None:
                    g.create_dataset("sample_index", data=result.sample_index)
                g.attrs.update(n_concepts=result.n_concepts, noise_ratio=result.noise_ratio)


def read_memberships(path: str | os.PathLike) -> dict:
    """Read :func:`write_memberships` output back into ``ConceptResult`` objects."""
    from repaudit.metrics.concepts import ConceptResult

    out: dict = {}
    with h5py.File(path, "r") as f:
        for method, layers in f.items():
            out[method] = {
                layer: ConceptResult(
                    memberships=g["memberships"][()],
                    labels=g["labels"][()],
                    n_concepts=int(g.attrs["n_concepts"]),
                    noise_ratio=float(g.attrs["noise_ratio"]),
                    method=method,
                    sample_index=g["sample_index"][()] if "sample_index" in g else None,
                )
                for layer, g in layers.items()
            }
    return out


# --------------------------------------------------------------------------- provenance


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def config_hash(config: Mapping) -> str:
    """A short, order-independent hash of a (JSON-serialisable) config section."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    """Versions that change numbers: recorded in every HDF5 file and in the report."""
    from importlib.metadata import version

    import timm
    import torch

    import repaudit

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        # from the installed metadata: importing scikit-learn for its version cost 0.8 s a job
        "scipy": version("scipy"),
        "scikit-learn": version("scikit-learn"),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "h5py": h5py.__version__,
        "repaudit": repaudit.__version__,
    }
    return {k: str(v) for k, v in versions.items()}  # torch's version is not a plain str
