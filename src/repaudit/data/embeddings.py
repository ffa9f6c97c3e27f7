"""Bring your own embeddings: per-layer features computed elsewhere, analysed without a network.

A dataset of kind ``embeddings`` is a folder (``root``) in one of three layouts:

``npy`` (the exchange layout)
    ``samples.tsv`` (columns ``id``, ``label``, ``split``; labels may be strings) and one folder
    per model holding one ``<layer>.npy`` per layer: an (N, D) float array whose rows follow
    samples.tsv. Optional: ``layers.txt`` (one layer name a line, shallow to deep) in the root
    (every model must have those layers) or in a model folder (that model's own); ``ids.txt``
    in a model folder (the ids its rows were written in, checked against samples.tsv);
    ``manifest.yaml`` in a model folder (:data:`MANIFEST_KEYS`).
``repaudit``
    One folder per model holding ``pretrained.h5``, a feature file this pipeline wrote
    (:func:`repaudit.io.write_features`), e.g. in another run. ``samples.tsv`` is optional:
    the files carry ids, labels and split; when present, it must list the same ids.
``thingsvision``
    One folder per model holding one folder per module, as thingsvision's
    ``save_features(features, out_path=<root>/<model>/<module>, file_format=...)`` writes it:
    ``features.npy`` or ``features.hdf5`` (dataset ``features``), or the split
    ``features_01.npy``... / datasets ``features_01``... it falls back to for large arrays.
    ``samples.tsv`` gives ids, labels and split; the ``file_names.txt`` thingsvision writes
    (in the root, a model or a module folder) is checked against the ids, which must end its
    lines (ids are paths relative to the image root, thingsvision writes them under it).

Layers are ordered by ``layers.txt``, else by natural sort with ``final`` last. The deepest is the
model's final embedding: the pipeline names layers ``"0"`` ... ``"K-2"``, ``"final"`` (the names
its tables and the claims registry use for depth), keeping names that already follow that
pattern; each layer's source name is kept in its ``source_name`` attribute.

Arrays are memory-mapped (``np.load(mmap_mode="r")``) or read per chunk from HDF5, so checking
every row for NaN/Inf (:func:`check_embeddings`) keeps memory flat at any N.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

__all__ = [
    "FORMATS",
    "MANIFEST_KEYS",
    "Embeddings",
    "LayerSource",
    "ModelEmbeddings",
    "check_embeddings",
    "embeddings_feature_set",
    "layer_names",
    "natural_key",
    "scan_embeddings",
]

FORMATS = ("npy", "repaudit", "thingsvision")
#: Keys of a model's manifest.yaml; all optional, free text. ``name`` (e.g. the hub tag) becomes
#: the features' model_tag; ``family``, ``objective`` and ``architecture`` fill the model table's
#: design columns the statistics group and control by (no network is built from them).
MANIFEST_KEYS = ("name", "modality", "pooling", "family", "objective", "architecture")
MODEL_ID = re.compile(r"^[a-z][a-z0-9_]*$")
SAMPLE_COLUMNS = ("id", "label", "split")
_CHUNK_BYTES = 1 << 26  # rows read at a time by the NaN scan: 64 MiB


def natural_key(name: str) -> list:
    """Sort key ordering ``layer2`` before ``layer10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _layer_order(names: Iterable[str]) -> list[str]:
    """Natural order with ``final`` last."""
    return sorted(names, key=lambda n: (n == "final", natural_key(n)))


def layer_names(sources: Sequence[str]) -> list[str]:
    """Pipeline names of layers given shallow to deep: ``"0"``, ``"1"``, ..., ``"final"``.

    Names that already follow the pattern (increasing integers, then ``final``) are kept;
    otherwise layers are numbered by position and the deepest is ``final``.
    """
    head = list(sources[:-1]) if sources and sources[-1] == "final" else None
    if head is not None and all(s.isdigit() for s in head):
        numbers = [int(s) for s in head]
        if numbers == sorted(set(numbers)):
            return list(sources)
    return [str(i) for i in range(len(sources) - 1)] + ["final"]


@dataclass(frozen=True)
class LayerSource:
    """Where one layer's (N, D) rows are: npy files (one, or thingsvision's split parts, stacked
    in order) or datasets of one HDF5 file (``keys``)."""

    name: str  # the source's own name (file stem, module, HDF5 layer)
    paths: tuple[Path, ...]
    keys: tuple[str, ...] = ()

    def parts(self) -> Iterator:
        """The layer's row blocks, memory-mapped or as lazy HDF5 datasets, in order."""
        if not self.keys:
            for path in self.paths:
                yield np.load(path, mmap_mode="r", allow_pickle=False)
            return
        import h5py

        with h5py.File(self.paths[0], "r") as f:
            for key in self.keys:
                yield f[key]

    def read(self) -> np.ndarray:
        """The whole layer as float32 (N, D)."""
        blocks = [np.asarray(part, dtype=np.float32) for part in self.parts()]
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    def describe(self) -> str:
        path = self.paths[0].name if len(self.paths) == 1 else f"{len(self.paths)} files"
        return f"{path}:{self.keys[0]}" if len(self.keys) == 1 else path


@dataclass
class ModelEmbeddings:
    """One model's layers (pipeline name -> source, shallow to deep), manifest and stated ids."""

    model_id: str
    folder: Path
    layers: dict[str, LayerSource]
    manifest: dict = field(default_factory=dict)
    ids: np.ndarray | None = None  # the ids its files state (None: samples.tsv order by contract)
    ids_source: str = ""

    def files(self) -> list[Path]:
        """Every file the model's features are read from (inputs of the import job)."""
        found = {p for layer in self.layers.values() for p in layer.paths}
        for extra in ("manifest.yaml", "layers.txt", "ids.txt"):
            if (self.folder / extra).is_file():
                found.add(self.folder / extra)
        return sorted(found)


@dataclass
class Embeddings:
    """A scanned embeddings folder: the samples (ids, int labels, class names, split) and models."""

    root: Path
    format: str
    ids: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    split: np.ndarray
    models: dict[str, ModelEmbeddings]

    def files(self, model: str) -> list[Path]:
        samples = self.root / "samples.tsv"
        return ([samples] if samples.is_file() else []) + self.models[model].files()


# --------------------------------------------------------------------------- scanning


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _read_samples(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """ids, int64 labels, class names (natural order) and split of samples.tsv."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    missing = [c for c in SAMPLE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; it needs tab-separated columns id, label, split"
        )
    if len(df) == 0:
        raise ValueError(f"{path}: no samples")
    for column in SAMPLE_COLUMNS:
        empty = df.index[df[column].str.strip() == ""]
        if len(empty):
            raise ValueError(
                f"{path}: empty {column!r} on line {empty[0] + 2}; every sample needs one"
            )
    ids = df["id"].to_numpy(dtype=str)
    duplicated = df["id"][df["id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"{path}: duplicate id(s) {duplicated[:3]}; ids must be unique")
    bad = sorted(set(df["split"]) - {"train", "test"})
    if bad:
        raise ValueError(f"{path}: split values {bad[:3]} are not 'train' or 'test'")
    class_names = sorted(set(df["label"]), key=natural_key)
    index = {name: i for i, name in enumerate(class_names)}
    labels = df["label"].map(index).to_numpy(dtype=np.int64)
    return ids, labels, class_names, df["split"].to_numpy(dtype=str)


def _manifest(folder: Path) -> dict:
    path = folder / "manifest.yaml"
    if not path.is_file():
        return {}
    try:
        manifest = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a mapping of {list(MANIFEST_KEYS)}")
    unknown = sorted(set(manifest) - set(MANIFEST_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed are {list(MANIFEST_KEYS)}")
    return {key: str(value) for key, value in manifest.items() if value is not None}


def _ordered(found: dict[str, LayerSource], listed: list[str] | None, where: str) -> list[str]:
    """Source names shallow to deep: those of layers.txt (each must exist), else all found."""
    if listed is None:
        return _layer_order(found)
    missing = [name for name in listed if name not in found]
    if missing:
        raise ValueError(
            f"{where}: no layer {missing[0]!r} (listed in layers.txt); it has {_layer_order(found)}"
        )
    return listed


def _npy_layers(folder: Path) -> dict[str, LayerSource]:
    return {p.stem: LayerSource(p.stem, (p,)) for p in folder.glob("*.npy") if p.is_file()}


_SPLIT_PART = re.compile(r"^features_(\d+)$")


def _thingsvision_layer(module: Path) -> LayerSource | None:
    """A module folder's features as thingsvision's save_features wrote them, or None."""
    if (module / "features.npy").is_file():
        return LayerSource(module.name, (module / "features.npy",))
    parts = sorted(
        (p for p in module.glob("features_*.npy") if _SPLIT_PART.match(p.stem)),
        key=lambda p: int(p.stem.split("_")[1]),
    )
    if parts:
        return LayerSource(module.name, tuple(parts))
    if (module / "features.hdf5").is_file():
        import h5py

        path = module / "features.hdf5"
        with h5py.File(path, "r") as f:
            keys = ["features"] if "features" in f else [k for k in f if _SPLIT_PART.match(k)]
        keys.sort(key=lambda k: 0 if k == "features" else int(k.split("_")[1]))
        if not keys:
            raise ValueError(f"{path}: no dataset 'features' (or features_01, ...)")
        return LayerSource(module.name, (path,), tuple(keys))
    other = sorted(p.name for p in module.glob("features.*"))
    if other:
        raise ValueError(
            f"{module}: {other[0]} is not readable here; save features with "
            "file_format='npy' or 'hdf5'"
        )
    return None


def _thingsvision_layers(folder: Path) -> dict[str, LayerSource]:
    found = {}
    for module in sorted(p for p in folder.iterdir() if p.is_dir()):
        layer = _thingsvision_layer(module)
        if layer is not None:
            found[module.name] = layer
    return found


def _repaudit_layers(path: Path) -> tuple[dict[str, LayerSource], list[str], dict]:
    """Layers (in the file's own order), and ids/labels/split/class names of a feature file."""
    import h5py

    with h5py.File(path, "r") as f:
        if "layers" not in f or "ids" not in f:
            raise ValueError(f"{path}: not a repaudit feature file (no /layers or /ids)")
        order = f.attrs.get("layer_order")
        order = json.loads(order) if isinstance(order, str) else list(f["layers"])
        samples = {
            "ids": np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in f["ids"]]),
            "labels": f["labels"][()].astype(np.int64),
            "split": np.asarray(
                [v.decode() if isinstance(v, bytes) else str(v) for v in f["split"]]
            ),
        }
        names = f.attrs.get("class_names")
        if isinstance(names, str):
            samples["class_names"] = json.loads(names)
    layers = {name: LayerSource(name, (path,), (f"layers/{name}",)) for name in order}
    return layers, list(order), samples


def _detect_format(models: list[Path]) -> str:
    for folder in models:
        if (folder / "pretrained.h5").is_file():
            return "repaudit"
        if any(folder.glob("*.npy")):
            return "npy"
        if any(_thingsvision_layer(p) for p in folder.iterdir() if p.is_dir()):
            return "thingsvision"
    return "npy"


def _file_ids(candidates: Sequence[Path]) -> tuple[np.ndarray | None, str]:
    """The ids the first existing file of ``candidates`` lists, and its path."""
    for path in candidates:
        if path.is_file():
            return np.asarray(_read_lines(path)), str(path)
    return None, ""


def scan_embeddings(root: str | os.PathLike, format: str = "auto") -> Embeddings:
    """List an embeddings folder: samples, models, their layers and manifests (cheap).

    Only file listings, samples.tsv, manifests and HDF5 headers are read; the arrays themselves
    are checked by :func:`check_embeddings`. Raises ValueError with one line naming the problem.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(
            f"embeddings folder {str(root)!r} does not exist; point 'root' at a folder with "
            "samples.tsv and one sub-folder per model"
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no model folders; put each model's layers in <root>/<model>/")
    for folder in folders:
        if not MODEL_ID.match(folder.name):
            raise ValueError(
                f"{root}: model folder {folder.name!r} is not a legal model id; rename it to "
                "lower-case letters, digits and '_' (ids become file names)"
            )
    if format == "auto":
        format = _detect_format(folders)
    if format not in FORMATS:
        raise ValueError(f"unknown embeddings format {format!r}; use one of {list(FORMATS)}")

    samples_path = root / "samples.tsv"
    samples = _read_samples(samples_path) if samples_path.is_file() else None
    if samples is None and format != "repaudit":
        raise ValueError(
            f"{root}: no samples.tsv; write one with tab-separated columns id, label, split "
            "(one row per embedding row, in the same order)"
        )
    root_order = _read_lines(root / "layers.txt") if (root / "layers.txt").is_file() else None

    models = {}
    for folder in folders:
        where = f"model {folder.name!r}"
        ids, ids_source = None, ""
        if format == "npy":
            found = _npy_layers(folder)
            ids, ids_source = _file_ids([folder / "ids.txt"])
        elif format == "thingsvision":
            found = _thingsvision_layers(folder)
        else:
            path = folder / "pretrained.h5"
            if not path.is_file():
                raise ValueError(f"{where}: no pretrained.h5 in {folder}")
            found, own_order, stated = _repaudit_layers(path)
            ids, ids_source = stated["ids"], str(path)
            if samples is None:
                names = stated.get("class_names") or [
                    str(c) for c in range(int(stated["labels"].max()) + 1)
                ]
                samples = (stated["ids"], stated["labels"], list(names), stated["split"])
        if not found:
            what = {"npy": "<layer>.npy files", "thingsvision": "module folders with features.npy"}
            raise ValueError(f"{where}: {folder} holds no {what.get(format, 'layers')}")
        own = folder / "layers.txt"
        listed = _read_lines(own) if own.is_file() else root_order
        if format == "repaudit" and listed is None:
            listed = own_order
        order = _ordered(found, listed, where)
        if format == "thingsvision":
            # thingsvision writes the image order beside the features it extracts
            where_ids = [folder / order[0], folder, root]
            ids, ids_source = _file_ids([p / "file_names.txt" for p in where_ids])
        names = order if format == "repaudit" else layer_names(order)
        models[folder.name] = ModelEmbeddings(
            model_id=folder.name,
            folder=folder,
            layers={name: found[src] for name, src in zip(names, order, strict=True)},
            manifest=_manifest(folder),
            ids=ids,
            ids_source=ids_source,
        )
    ids, labels, class_names, split = samples
    return Embeddings(root, format, ids, labels, class_names, split, models)


# --------------------------------------------------------------------------- checking


def _ids_match(stated: np.ndarray, ids: np.ndarray, thingsvision: bool) -> int | None:
    """Index of the first row whose stated id differs from samples.tsv's (None: all match)."""
    if len(stated) != len(ids):
        return min(len(stated), len(ids))
    for i, (a, b) in enumerate(zip(stated, ids, strict=True)):
        if a != b and not (thingsvision and a.replace("\\", "/").endswith("/" + b)):
            return i
    return None


def _check_layer(model: str, name: str, layer: LayerSource, ids: np.ndarray) -> tuple[int, int]:
    """Shape and finiteness of one layer; returns (N, D)."""
    where = f"model {model!r} layer {name!r} ({layer.describe()})"
    n, dim = 0, None
    for part in layer.parts():
        if part.ndim != 2:
            raise ValueError(
                f"{where}: expected an (N, D) array, got shape {tuple(part.shape)}; flatten each "
                "sample's features (thingsvision: flatten_acts=True)"
            )
        if not np.issubdtype(part.dtype, np.floating):
            raise ValueError(f"{where}: dtype {part.dtype} is not a float; save float16 or float32")
        if dim is not None and part.shape[1] != dim:
            raise ValueError(f"{where}: parts of D = {dim} and {part.shape[1]}")
        dim = part.shape[1]
        if dim == 0:
            raise ValueError(f"{where}: no features (D = 0)")
        step = max(1, _CHUNK_BYTES // max(1, dim * part.dtype.itemsize))
        for start in range(0, part.shape[0], step):
            finite = np.isfinite(np.asarray(part[start : start + step])).all(axis=1)
            if not finite.all():
                bad = start + int(np.flatnonzero(~finite)[0])
                row = n + bad
                sample = f" (id {str(ids[row])!r})" if row < len(ids) else ""
                raise ValueError(
                    f"{where}: row {row}{sample} holds NaN or Inf; drop the sample from "
                    "samples.tsv and every layer, or fix the export"
                )
        n += part.shape[0]
    if n != len(ids):
        raise ValueError(
            f"{where}: {n} rows, but samples.tsv lists {len(ids)} samples; every layer of every "
            "model needs one row per sample, in samples.tsv order"
        )
    return n, dim


def check_embeddings(emb: Embeddings, required_layers: Sequence[str] = ()) -> None:
    """Check every array of ``emb`` against its samples; ValueError with one line if bad.

    Every layer of every model must be a float (N, D) array with N = the number of samples,
    D > 0 and no NaN/Inf row; ids a model states (ids.txt, file_names.txt, a feature file's
    /ids) must be the samples' ids in order; ``required_layers`` (pipeline names the
    cross-model analyses compare) must exist in every model.
    """
    for model in emb.models.values():
        missing = [name for name in required_layers if name not in model.layers]
        if missing:
            raise ValueError(
                f"model {model.model_id!r} has no layer {missing[0]!r} (its layers are "
                f"{list(model.layers)}), which the config compares across models"
            )
        if model.ids is not None:
            bad = _ids_match(model.ids, emb.ids, emb.format == "thingsvision")
            if bad is not None:
                stated = str(model.ids[bad]) if bad < len(model.ids) else "<none>"
                expected = str(emb.ids[bad]) if bad < len(emb.ids) else "<none>"
                raise ValueError(
                    f"model {model.model_id!r}: ids in {model.ids_source} do not match "
                    f"samples.tsv (row {bad}: {stated!r} vs {expected!r}); write the rows in "
                    "samples.tsv order"
                )
        for name, layer in model.layers.items():
            _check_layer(model.model_id, name, layer, emb.ids)


# --------------------------------------------------------------------------- features


def embeddings_feature_set(emb: Embeddings, model: str, *, dataset: str):
    """One model's embeddings as the pipeline's :class:`repaudit.io.FeatureSet` (stage
    ``pretrained``): float32 layers in depth order, int labels, ids, split and provenance."""
    from repaudit.io import FeatureSet

    if model not in emb.models:
        raise ValueError(f"{emb.root}: no model {model!r}; models are {sorted(emb.models)}")
    m = emb.models[model]
    names = list(m.layers)
    top = max(len(names) - 1, 1)
    return FeatureSet(
        features={name: layer.read() for name, layer in m.layers.items()},
        labels=emb.labels,
        ids=emb.ids,
        split=emb.split,
        attrs={
            "model_id": model,
            "model_tag": m.manifest.get("name", model),
            "weights": "embeddings",
            "stage": "pretrained",
            "dataset": dataset,
            "source": str(m.folder),
            "source_format": emb.format,
            "manifest": m.manifest,
            "class_names": emb.class_names,
        },
        layer_attrs={
            name: {
                "layer_index": i,
                "depth": i / top,
                "pooling": m.manifest.get("pooling", "unknown"),
                "source_name": layer.name,
            }
            for i, (name, layer) in enumerate(m.layers.items())
        },
    )
