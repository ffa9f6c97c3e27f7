"""Tests for repaudit.io: HDF5 datasets/features/memberships, TSV tables, checkpoints, hashes."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from repaudit.data import ImageDataset
from repaudit.io import (
    FeatureSet,
    atomic_path,
    config_hash,
    file_sha256,
    library_versions,
    load_checkpoint,
    read_dataset,
    read_features,
    read_memberships,
    read_table,
    save_checkpoint,
    write_dataset,
    write_features,
    write_figure,
    write_memberships,
    write_table,
)
from repaudit.metrics.concepts import ConceptResult


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


# --------------------------------------------------------------------------- datasets


def make_dataset(n: int = 6) -> ImageDataset:
    rng = np.random.default_rng(0)
    return ImageDataset(
        images=rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8),
        labels=np.arange(n, dtype=np.int64) % 3,
        split=np.array(["train", "test"] * (n // 2)),
        ids=np.array([f"img_{i:03d}" for i in range(n)]),
        class_names=["circle", "square", "triangle"],
        attrs={
            "kind": "shapes",
            "image_size": 8,
            "noise": 2.5,
            "flag": True,
            "classes": ["circle", "square", "triangle"],
            "params": {"a": 1, "b": [1, 2], "c": {"d": "e"}},
        },
        extras={
            "positions": rng.normal(size=(n, 2)),
            "pair": np.arange(n, dtype=np.int32),
            "colour": np.array(["red", "green", "blue", "red", "green", "blü"]),
        },
    )


def test_dataset_round_trip(tmp_path):
    data = make_dataset()
    path = tmp_path / "sub" / "shapes.h5"  # parent folders are created
    write_dataset(path, data)
    back = read_dataset(path)
    np.testing.assert_array_equal(back.images, data.images)
    assert back.images.dtype == np.uint8
    np.testing.assert_array_equal(back.labels, data.labels)
    assert back.labels.dtype == np.int64
    assert back.split.tolist() == data.split.tolist()
    assert back.ids.tolist() == data.ids.tolist()
    assert back.class_names == data.class_names
    assert back.attrs == data.attrs
    assert type(back.attrs["image_size"]) is int and type(back.attrs["flag"]) is bool
    assert set(back.extras) == set(data.extras)
    np.testing.assert_array_equal(back.extras["positions"], data.extras["positions"])
    assert back.extras["positions"].dtype == np.float64
    np.testing.assert_array_equal(back.extras["pair"], data.extras["pair"])
    assert back.extras["colour"].tolist() == data.extras["colour"].tolist()
    assert leftovers(path.parent) == []


def test_dataset_without_extras(tmp_path):
    data = make_dataset()
    data.extras = {}
    data.attrs = {}
    write_dataset(tmp_path / "d.h5", data)
    back = read_dataset(tmp_path / "d.h5")
    assert back.extras == {} and back.attrs == {}


# --------------------------------------------------------------------------- features


def make_features(n: int = 5) -> FeatureSet:
    rng = np.random.default_rng(1)
    # Deliberately not in alphabetical order: "final" after "10" after "2".
    names = ["0", "2", "10", "final"]
    return FeatureSet(
        features={
            name: rng.normal(size=(n, 3 + i)).astype(np.float32) for i, name in enumerate(names)
        },
        labels=np.array([0, 1, 2, 1, 0]),
        ids=np.array([f"id{i}" for i in range(n)]),
        split=np.array(["train", "train", "test", "test", "train"]),
        attrs={
            "model": "vit_sup",
            "stage": "pretrained",
            "seed": 0,
            "provenance": {"versions": {"torch": "2.x"}, "weights_sha256": "ab", "n": [1, 2]},
        },
        layer_attrs={
            "0": {"pooling": "mean", "index": 0},
            "2": {"pooling": "cls", "index": 2},
            "10": {"pooling": "cls", "index": 10},
            "final": {"pooling": "head", "index": 11},
        },
    )


def test_features_round_trip(tmp_path):
    fs = make_features()
    path = tmp_path / "f.h5"
    write_features(path, fs)
    back = read_features(path)
    assert list(back.features) == ["0", "2", "10", "final"]
    for name, x in fs.features.items():
        assert back.features[name].dtype == np.float32
        np.testing.assert_array_equal(back.features[name], x)
    np.testing.assert_array_equal(back.labels, fs.labels)
    assert back.labels.dtype == np.int64
    assert back.ids.tolist() == fs.ids.tolist()
    assert back.split.tolist() == fs.split.tolist()
    assert back.attrs == fs.attrs  # layer_order is internal and not returned
    assert back.attrs["provenance"]["versions"] == {"torch": "2.x"}
    assert back.layer_attrs == fs.layer_attrs


def test_features_float64_input_stored_as_float32(tmp_path):
    fs = make_features()
    fs.features = {k: v.astype(np.float64) + 1e-12 for k, v in fs.features.items()}
    write_features(tmp_path / "f.h5", fs)
    back = read_features(tmp_path / "f.h5")
    assert all(v.dtype == np.float32 for v in back.features.values())


def test_features_hdf5_layout(tmp_path):
    fs = make_features()
    path = tmp_path / "f.h5"
    write_features(path, fs)
    with h5py.File(path, "r") as f:
        assert set(f) == {"layers", "labels", "ids", "split"}
        assert set(f["layers"]) == set(fs.features)
        for name, x in fs.features.items():
            assert f[f"layers/{name}"].dtype == np.float32
            assert f[f"layers/{name}"].shape == x.shape
        assert f["labels"].dtype == np.int64 and f["labels"].shape == (5,)
        assert [v.decode() for v in f["ids"][()]] == fs.ids.tolist()
        assert [v.decode() for v in f["split"][()]] == fs.split.tolist()
        assert json.loads(f.attrs["layer_order"]) == list(fs.features)
        assert json.loads(f.attrs["provenance"]) == fs.attrs["provenance"]
        assert f["layers/2"].attrs["pooling"] == "cls"


def test_read_features_subset_and_unknown_layer(tmp_path):
    path = tmp_path / "f.h5"
    write_features(path, make_features())
    # Depth order is kept, whatever order the caller asks in.
    sub = read_features(path, layers=["final", "2"])
    assert list(sub.features) == ["2", "final"]
    assert set(sub.layer_attrs) == {"2", "final"}
    with pytest.raises(ValueError, match=r"no layers \['7'\].*stored layers"):
        read_features(path, layers=["final", "7"])


@pytest.mark.parametrize(
    "bad",
    [
        {"2": np.zeros((4, 3), np.float32)},  # wrong number of rows
        {"2": np.zeros((5,), np.float32)},  # not 2-D
    ],
)
def test_features_atomic_write_on_error(tmp_path, bad):
    path = tmp_path / "f.h5"
    with pytest.raises(ValueError, match="layer '2'"):
        write_features(path, FeatureSet(**{**make_features().__dict__, "features": {
            **make_features().features, **bad}}))  # fmt: skip
    assert not path.exists()
    assert leftovers(tmp_path) == []
    # An existing good file is left untouched by a failed rewrite.
    write_features(path, make_features())
    digest = file_sha256(path)
    with pytest.raises(ValueError):
        write_features(path, FeatureSet(**{**make_features().__dict__, "features": {
            **make_features().features, **bad}}))  # fmt: skip
    assert file_sha256(path) == digest
    assert leftovers(tmp_path) == []
    assert list(read_features(path).features) == ["0", "2", "10", "final"]


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists()
        assert ".tmp-" in tmp.name and tmp.parent == tmp_path
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


def test_write_figure_writes_each_suffix_format_and_no_temporaries(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    svg, png = tmp_path / "sub" / "f.svg", tmp_path / "sub" / "f.png"
    write_figure(fig, svg, png)
    plt.close(fig)
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert leftovers(tmp_path / "sub") == []


def test_write_dataset_error_leaves_nothing(tmp_path):
    data = make_dataset()
    data.extras = {"bad": np.array([object(), object()], dtype=object)}  # HDF5 cannot store it
    with pytest.raises((TypeError, ValueError)):
        write_dataset(tmp_path / "d.h5", data)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- tables


def test_table_round_trip_numbers_and_strings(tmp_path):
    df = pd.DataFrame(
        {
            "layer": ["0", "final", "3"],
            "metric": ["alpha", "alpha", "rank"],
            "value": [0.1234567890123, np.nan, -2.5e-7],
            "k": [10, 20, 30],
        }
    )
    path = tmp_path / "t.tsv"
    write_table(df, path)
    back = read_table(path)
    assert list(back.columns) == list(df.columns)
    assert back["layer"].tolist() == ["0", "final", "3"]
    assert back["metric"].tolist() == df["metric"].tolist()
    assert np.isnan(back["value"][1])
    np.testing.assert_allclose(back["value"][[0, 2]], df["value"][[0, 2]], rtol=1e-9)
    assert back["k"].tolist() == [10, 20, 30]
    assert leftovers(tmp_path) == []
    # Same table, same bytes: reruns are byte-identical.
    write_table(df, tmp_path / "t2.tsv")
    assert file_sha256(path) == file_sha256(tmp_path / "t2.tsv")


def test_table_round_trip_keeps_empty_strings_and_nan(tmp_path):
    df = pd.DataFrame(
        {
            "layer": ["final", "final"],
            "variant": ["", "cos"],
            "class": ["", ""],
            "value": [np.nan, 1.0],
        }
    )
    write_table(df, tmp_path / "t.tsv")
    back = read_table(tmp_path / "t.tsv")
    assert back["variant"].tolist() == ["", "cos"]
    assert back["class"].tolist() == ["", ""]
    assert np.isnan(back["value"][0]) and back["value"][1] == 1.0


# --------------------------------------------------------------------------- checkpoints


def _sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2).state_dict()


def test_checkpoint_payload_round_trip(tmp_path):
    payload = {"state_dict": _sd(), "head": None, "provenance": {"seed": 3, "v": "x"}}
    path = tmp_path / "ckpt" / "pretrained.pt"
    save_checkpoint(path, payload)
    back = load_checkpoint(path)
    assert set(back) == {"state_dict", "head", "provenance"}
    assert back["provenance"] == {"seed": 3, "v": "x"} and back["head"] is None
    for k, v in payload["state_dict"].items():
        assert torch.equal(back["state_dict"][k], v)
    assert leftovers(path.parent) == []


def test_load_checkpoint_plain_and_model_wrapped(tmp_path):
    sd = _sd()
    torch.save(sd, tmp_path / "plain.pt")
    torch.save({"model": sd, "epoch": 3}, tmp_path / "wrapped.pth")
    for name in ("plain.pt", "wrapped.pth"):
        back = load_checkpoint(tmp_path / name)
        assert set(back) == {"state_dict"}
        assert set(back["state_dict"]) == set(sd)
        assert all(torch.equal(back["state_dict"][k], v) for k, v in sd.items())


def test_load_checkpoint_safetensors_and_missing(tmp_path):
    from safetensors.torch import save_file

    sd = _sd()
    save_file(sd, tmp_path / "w.safetensors")
    back = load_checkpoint(tmp_path / "w.safetensors")
    assert all(torch.equal(back["state_dict"][k], v) for k, v in sd.items())
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")


# --------------------------------------------------------------------------- memberships


def test_memberships_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    m1 = rng.dirichlet(np.ones(4), size=10) * 0.9
    r1 = ConceptResult(
        memberships=m1,
        labels=np.array([0, 1, 2, 3, -1, 0, 1, 2, 3, -1]),
        n_concepts=4,
        noise_ratio=0.2,
        method="manifold",
        seconds=1.5,
        sample_index=np.arange(10) * 3,
    )
    r2 = ConceptResult(
        memberships=np.eye(3)[[0, 1, 2, 0]],
        labels=np.array([0, 1, 2, 0]),
        n_concepts=3,
        noise_ratio=0.0,
        method="kmeans",
    )
    data = {"manifold": {"0": r1, "final": r1}, "kmeans": {"final": r2}}
    path = tmp_path / "m.h5"
    write_memberships(path, data)
    back = read_memberships(path)
    assert {m: set(v) for m, v in back.items()} == {"manifold": {"0", "final"}, "kmeans": {"final"}}
    for method, layers in data.items():
        for layer, r in layers.items():
            got = back[method][layer]
            assert isinstance(got, ConceptResult)
            np.testing.assert_array_equal(got.memberships, r.memberships)
            assert got.memberships.dtype == np.float64
            np.testing.assert_array_equal(got.labels, r.labels)
            assert got.n_concepts == r.n_concepts and isinstance(got.n_concepts, int)
            assert got.noise_ratio == r.noise_ratio and isinstance(got.noise_ratio, float)
            assert got.method == method
            if r.sample_index is None:
                assert got.sample_index is None
            else:
                np.testing.assert_array_equal(got.sample_index, r.sample_index)
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- provenance


def test_config_hash_order_independent_and_sensitive():
    a = {"k": 10, "methods": ["a", "b"], "nested": {"x": 1, "y": [1, 2]}}
    b = {"nested": {"y": [1, 2], "x": 1}, "methods": ["a", "b"], "k": 10}
    assert config_hash(a) == config_hash(b)
    assert len(config_hash(a)) == 16 and int(config_hash(a), 16) >= 0
    assert config_hash(a) != config_hash({**a, "k": 11})
    assert config_hash(a) != config_hash({**a, "methods": ["b", "a"]})  # list order matters


def test_file_sha256_and_versions(tmp_path):
    blob = np.random.default_rng(0).bytes(300_000)
    (tmp_path / "b.bin").write_bytes(blob)
    assert file_sha256(tmp_path / "b.bin", chunk=1000) == hashlib.sha256(blob).hexdigest()
    versions = library_versions()
    assert {"python", "numpy", "torch", "timm", "repaudit"} <= set(versions)
    assert all(isinstance(v, str) and v for v in versions.values())
