"""Bring your own embeddings: the readers (npy, repaudit, thingsvision), the checks before any
job runs (each bad input one ``config error:`` line), the models they add and what they skip."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from repaudit.config import (
    ConfigError,
    dataset_models,
    embeddings_sources,
    load_models,
    skipped_analyses,
    validate_config,
)
from repaudit.data.embeddings import (
    check_embeddings,
    embeddings_feature_set,
    layer_names,
    scan_embeddings,
)
from repaudit.io import FeatureSet, read_features, write_features

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
MODELS_SCHEMA = ROOT / "workflow/schemas/models.schema.yaml"
N = 60


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "make_example_data", ROOT / "tools/make_example_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_example_data = _load_tool()


@pytest.fixture
def emb(tmp_path) -> Path:
    """The worked example's embeddings folder, N rows: model_a..c, layers early and final."""
    return make_example_data.make_embeddings(tmp_path / "emb", n_samples=N, seed=0)


def config(root: Path, **sections) -> dict:
    return {
        "datasets": {"mine": {"kind": "embeddings", "root": str(root)}},
        "features": {"datasets": ["mine"]},
        **sections,
    }


def config_error(cfg: dict, *needles: str) -> str:
    """validate_config fails with one 'config error:' line holding every needle."""
    with pytest.raises(ConfigError) as excinfo:
        validate_config(cfg, SCHEMA)
    msg = str(excinfo.value)
    assert "\n" not in msg and msg.startswith("config error: datasets.mine.root:"), msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


# --------------------------------------------------------------------------- reading


def test_scan_the_example(emb):
    source = scan_embeddings(emb)
    assert source.format == "npy"
    assert list(source.models) == ["model_a", "model_b", "model_c"]
    assert source.class_names == sorted(make_example_data.CLASSES)  # strings, sorted
    assert source.labels.dtype == np.int64 and len(source.ids) == N
    for model in source.models.values():
        assert list(model.layers) == ["0", "final"]
        assert [layer.name for layer in model.layers.values()] == ["early", "final"]
    assert source.models["model_b"].manifest["objective"] == "supervised"
    check_embeddings(source, required_layers=["final"])


def test_string_labels_in_natural_order(tmp_path):
    root = tmp_path / "e"
    (root / "m").mkdir(parents=True)
    labels = ["c10", "c2", "c1", "c2"]
    rows = "".join(f"s{i}\t{lab}\ttrain\n" for i, lab in enumerate(labels))
    (root / "samples.tsv").write_text("id\tlabel\tsplit\n" + rows)
    np.save(root / "m" / "final.npy", np.eye(4, dtype=np.float32))
    source = scan_embeddings(root)
    assert source.class_names == ["c1", "c2", "c10"]
    assert source.labels.tolist() == [2, 1, 0, 1]


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        (["0", "1", "final"], ["0", "1", "final"]),  # already the pipeline's names
        (["early", "final"], ["0", "final"]),
        (["block1", "block2", "block10"], ["0", "1", "final"]),  # the deepest is final
        (["final"], ["final"]),
        (["visual"], ["final"]),
    ],
)
def test_layer_names(sources, expected):
    assert layer_names(sources) == expected


def test_layer_order_natural_then_layers_txt(emb):
    for name in ("layer10", "layer2"):
        np.save(emb / "model_a" / f"{name}.npy", np.ones((N, 3), np.float32))
    source = scan_embeddings(emb)
    order = [layer.name for layer in source.models["model_a"].layers.values()]
    assert order == ["early", "layer2", "layer10", "final"]
    (emb / "model_a" / "layers.txt").write_text("layer10\nlayer2\nfinal\n")  # this model only
    source = scan_embeddings(emb)
    layers = source.models["model_a"].layers
    assert [layer.name for layer in layers.values()] == ["layer10", "layer2", "final"]
    assert list(layers) == ["0", "1", "final"]
    assert list(source.models["model_b"].layers) == ["0", "final"]


def test_feature_set_round_trip(emb, tmp_path):
    source = scan_embeddings(emb)
    fs = embeddings_feature_set(source, "model_b", dataset="mine")  # stored as float16
    write_features(tmp_path / "f.h5", fs)
    back = read_features(tmp_path / "f.h5")
    raw = np.load(emb / "model_b" / "final.npy")
    assert raw.dtype == np.float16
    np.testing.assert_array_equal(back.features["final"], raw.astype(np.float32))
    assert back.features["0"].dtype == np.float32 and list(back.features) == ["0", "final"]
    assert back.ids.tolist() == source.ids.tolist()
    np.testing.assert_array_equal(back.labels, source.labels)
    assert back.attrs["weights"] == "embeddings" and back.attrs["stage"] == "pretrained"
    assert back.attrs["model_tag"] == "example model_b"
    assert back.attrs["class_names"] == source.class_names
    assert back.layer_attrs["0"]["source_name"] == "early"
    assert back.layer_attrs["final"]["pooling"] == "mean"


def test_thingsvision_layouts(tmp_path):
    """save_features(out_path=<root>/<model>/<module>): npy, split npy and hdf5 files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tv"
    ids = [f"cls{i % 2}/img{i}.jpg" for i in range(10)]
    root.mkdir()
    (root / "samples.tsv").write_text(
        "id\tlabel\tsplit\n" + "".join(f"{s}\t{s[:4]}\ttrain\n" for s in ids)
    )
    x = {m: rng.standard_normal((10, 4)).astype(np.float32) for m in ("avgpool", "layer4")}
    a = root / "resnet"
    for module in x:
        (a / module).mkdir(parents=True)
    np.save(a / "avgpool" / "features.npy", x["avgpool"])
    np.save(a / "layer4" / "features_01.npy", x["layer4"][:6])  # split for memory
    np.save(a / "layer4" / "features_02.npy", x["layer4"][6:])
    (root / "resnet" / "layers.txt").write_text("layer4\navgpool\n")
    # thingsvision writes each image's path under its image root, in extraction order
    (a / "file_names.txt").write_text("".join(f"/data/images/{s}\n" for s in ids))
    (root / "clip" / "visual").mkdir(parents=True)
    with h5py.File(root / "clip" / "visual" / "features.hdf5", "w") as f:
        f.create_dataset("features", data=x["avgpool"][:, :3])
    source = scan_embeddings(root)
    assert source.format == "thingsvision"
    check_embeddings(source, required_layers=["final"])
    resnet = embeddings_feature_set(source, "resnet", dataset="tv").features
    np.testing.assert_array_equal(resnet["0"], x["layer4"])
    np.testing.assert_array_equal(resnet["final"], x["avgpool"])
    clip = embeddings_feature_set(source, "clip", dataset="tv").features
    np.testing.assert_array_equal(clip["final"], x["avgpool"][:, :3])
    (a / "file_names.txt").write_text("".join(f"/data/images/{s}\n" for s in reversed(ids)))
    with pytest.raises(ValueError, match=r"do not match samples\.tsv"):
        check_embeddings(scan_embeddings(root))


def test_thingsvision_other_file_format(tmp_path):
    (tmp_path / "tv" / "m" / "visual").mkdir(parents=True)
    (tmp_path / "tv" / "samples.tsv").write_text("id\tlabel\tsplit\na\tx\ttrain\n")
    (tmp_path / "tv" / "m" / "visual" / "features.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="file_format='npy' or 'hdf5'"):
        scan_embeddings(tmp_path / "tv", "thingsvision")


def test_repaudit_feature_files(tmp_path):
    """Another run's feature files: ids, labels and split come from the files."""
    rng = np.random.default_rng(0)
    n = 8
    common = {
        "labels": np.arange(n) % 2,
        "ids": np.array([f"i{i}" for i in range(n)]),
        "split": np.array(["train", "test"] * (n // 2)),
    }
    for model in ("a", "b"):
        layers = {k: rng.standard_normal((n, 5)).astype(np.float32) for k in ("0", "1", "final")}
        write_features(tmp_path / "r" / model / "pretrained.h5", FeatureSet(layers, **common))
    source = scan_embeddings(tmp_path / "r")
    assert source.format == "repaudit" and list(source.models) == ["a", "b"]
    assert list(source.models["a"].layers) == ["0", "1", "final"]
    assert source.class_names == ["0", "1"]
    check_embeddings(source, required_layers=["final"])
    cfg = config(tmp_path / "r")
    cfg["datasets"]["mine"]["format"] = "repaudit"
    validate_config(cfg, SCHEMA)
    rows = "".join(f"i{n - 1 - i}\t{i % 2}\ttrain\n" for i in range(n))
    (tmp_path / "r" / "samples.tsv").write_text("id\tlabel\tsplit\n" + rows)
    config_error(cfg, "pretrained.h5 do not match samples.tsv", "row 0: 'i0' vs 'i7'")


# --------------------------------------------------------------------------- bad input


def _save(path: Path, array: np.ndarray) -> None:
    np.save(path, array)


BAD = {
    "ragged N across layers": (
        lambda e: _save(e / "model_a" / "early.npy", np.ones((N - 1, 4), np.float32)),
        ["model 'model_a' layer '0' (early.npy)", f"{N - 1} rows", f"{N} samples"],
    ),
    "ragged N across models": (
        lambda e: _save(e / "model_c" / "final.npy", np.ones((N + 2, 4), np.float32)),
        ["model 'model_c' layer 'final'", f"{N + 2} rows"],
    ),
    "NaN row": (
        lambda e: _save(
            e / "model_b" / "final.npy",
            np.where(np.arange(N)[:, None] == 7, np.nan, 1.0).repeat(3, 1).astype(np.float16),
        ),
        ["model 'model_b' layer 'final'", "row 7 (id 'item_0007')", "NaN or Inf"],
    ),
    "ids not matching samples.tsv": (
        lambda e: (e / "model_a" / "ids.txt").write_text(
            "".join(f"item_{i:04d}\n" for i in reversed(range(N)))
        ),
        ["model 'model_a': ids in", "ids.txt do not match samples.tsv", "samples.tsv order"],
    ),
    "D = 0": (
        lambda e: _save(e / "model_a" / "final.npy", np.ones((N, 0), np.float32)),
        ["model 'model_a' layer 'final'", "no features (D = 0)"],
    ),
    "a layer missing for one model": (
        lambda e: (
            _save(e / "model_a" / "mid.npy", np.ones((N, 3), np.float32)),
            _save(e / "model_b" / "mid.npy", np.ones((N, 3), np.float32)),
            (e / "layers.txt").write_text("early\nmid\nfinal\n"),
        ),
        ["model 'model_c': no layer 'mid' (listed in layers.txt)"],
    ),
    "not a float": (
        lambda e: _save(e / "model_a" / "early.npy", np.ones((N, 4), np.int64)),
        ["dtype int64 is not a float"],
    ),
    "not 2-D": (
        lambda e: _save(e / "model_a" / "early.npy", np.ones((N, 2, 2), np.float32)),
        ["expected an (N, D) array, got shape (60, 2, 2)"],
    ),
    "illegal model folder": (
        lambda e: (e / "model_a").rename(e / "ResNet-50"),
        ["model folder 'ResNet-50' is not a legal model id"],
    ),
    "unknown manifest key": (
        lambda e: (e / "model_a" / "manifest.yaml").write_text("name: a\nlayer: 3\n"),
        ["manifest.yaml: unknown key(s) ['layer']"],
    ),
    "no samples.tsv": (lambda e: (e / "samples.tsv").unlink(), ["no samples.tsv"]),
    "bad split": (
        lambda e: (e / "samples.tsv").write_text(
            (e / "samples.tsv").read_text().replace("\ttest\n", "\tval\n")
        ),
        ["split values ['val'] are not 'train' or 'test'"],
    ),
    "duplicate id": (
        lambda e: (e / "samples.tsv").write_text(
            (e / "samples.tsv").read_text().replace("item_0001", "item_0000")
        ),
        ["duplicate id(s) ['item_0000']"],
    ),
    "no model folder": (
        lambda e: [p.rename(e / f".{p.name}") for p in e.iterdir() if p.is_dir()],
        ["no model folders"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_config_error(emb, case):
    damage, needles = BAD[case]
    damage(emb)
    config_error(config(emb, geometry={"datasets": ["mine"]}), *needles)


def test_compared_layer_missing(emb):
    """Cross-model analyses compare named layers: every model needs them."""
    _save(emb / "model_a" / "mid.npy", np.ones((N, 3), np.float32))  # model_a: 0, 1, final
    cfg = config(emb, relative={"datasets": ["mine"], "layers": ["1", "final"]})
    config_error(cfg, "model 'model_b' has no layer '1'", "compares across models")


def test_missing_root(tmp_path):
    config_error(config(tmp_path / "nowhere"), "does not exist")


# --------------------------------------------------------------------------- config and models


def test_example_config_validates(emb, monkeypatch):
    cfg = yaml.safe_load((ROOT / "config/examples/embeddings.yaml").read_text())
    monkeypatch.chdir(emb.parent)
    cfg["datasets"]["mine"]["root"] = emb.name
    validate_config(cfg, SCHEMA)
    assert "models" not in cfg and "image_size" not in cfg["datasets"]["mine"]


def test_models_from_folders(emb, tmp_path):
    cfg = validate_config(config(emb), SCHEMA)
    sources = embeddings_sources(cfg)
    models = load_models(cfg, MODELS_SCHEMA, [0], sources)
    assert models.index.tolist() == ["model_a", "model_b", "model_c"]
    assert (models["weights"] == "embeddings").all() and (models["architecture"] == "").all()
    assert models.loc["model_c", "objective"] == "simclr"
    assert models.loc["model_a", "family"] == "cnn"
    assert (models["cell"] == models["model_id"]).all() and (models["seed"] == "").all()
    # beside an encoder sheet: appended after its replicates, each on its own datasets
    sheet = tmp_path / "models.tsv"
    sheet.write_text("model_id\tarchitecture\tweights\tinput_size\nnet\ttest_resnet\trandom\t16\n")
    both = copy.deepcopy(cfg)
    both["models"] = str(sheet)
    both["datasets"]["digits"] = {"kind": "digits", "image_size": 16}
    models = load_models(both, MODELS_SCHEMA, [0], sources)
    assert models.index.tolist() == ["net_s0", "model_a", "model_b", "model_c"]
    on = dataset_models(both, models, sources)
    assert on == {"mine": ["model_a", "model_b", "model_c"], "digits": ["net_s0"]}
    (tmp_path / "ck.pt").touch()  # a fixed-weights row keeps its id: model_a
    sheet.write_text(
        "model_id\tarchitecture\tweights\tcheckpoint\tinput_size\n"
        f"model_a\ttest_resnet\tcheckpoint\t{tmp_path / 'ck.pt'}\t16\n"
    )
    with pytest.raises(ConfigError, match="collide with sheet ids; rename the folders"):
        load_models(both, MODELS_SCHEMA, [0], sources)


def test_no_models_at_all():
    cfg = {"datasets": {"digits": {"kind": "digits", "image_size": 16}}}
    with pytest.raises(ConfigError, match="no models: set 'models'"):
        load_models(cfg, MODELS_SCHEMA, [0], {})


def test_skipped_analyses(emb):
    cfg = config(
        emb,
        geometry={"datasets": ["mine"]},
        convexity={"datasets": ["mine"]},
        sensitivity={"datasets": ["mine"]},
        euclidean_convexity={"datasets": ["mine"], "stages": ["finetuned"]},  # no such stage
        binding={"datasets": ["mine"]},
        finetune={"datasets": ["mine"], "epochs": 1, "batch_size": 2, "lr": 0.1},
    )
    cfg = validate_config(cfg, SCHEMA)
    sources = embeddings_sources(cfg)
    rows = skipped_analyses(cfg, {"sensitivity": ["model_a"]}, sources)
    got = {(r["analysis"], r["model"], r["stage"], r["metrics"]) for r in rows}
    assert got == {
        *{("geometry", m, "pretrained", "alignment") for m in ("model_a", "model_b", "model_c")},
        ("sensitivity", "model_a", "pretrained", "all"),
        *{("binding", m, "pretrained", "all") for m in ("model_a", "model_b", "model_c")},
        *{("finetune", m, "finetuned_mine", "all") for m in ("model_a", "model_b", "model_c")},
    }
    assert all(r["reason"] and r["dataset"] == "mine" for r in rows)


def test_pretraining_needs_images(emb):
    cfg = config(emb, pretrain={"dataset": "mine", "epochs": 1, "batch_size": 2, "lr": 0.1})
    with pytest.raises(ConfigError, match="pretraining needs images"):
        validate_config(cfg, SCHEMA)


def test_geometry_without_a_network(emb):
    """Embeddings models: the geometry job's table is geometry_table alone (no alignment)."""
    from repaudit.metrics.geometry import geometry_table
    from repaudit.models.analyses import geometry_alignment_table
    from repaudit.tables import select_samples, subset

    fs = embeddings_feature_set(scan_embeddings(emb), "model_a", dataset="mine")
    p = {"split": "all", "max_samples": 40, "local_k": 3, "alpha_range": (2, 5)}
    got = geometry_alignment_table(fs.features, fs.labels, fs.split, None, None, params=p, seed=1)
    idx = select_samples(fs.labels, fs.split, "all", 40, 1)
    want = geometry_table(subset(fs.features, idx), local_k=3, alpha_range=(2, 5), seed=1)
    pd.testing.assert_frame_equal(got, want)
    assert "alignment" not in set(got["metric"])
