"""Tests for repaudit.config (validation before any job runs) and repaudit.tables."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from repaudit.config import (
    ConfigError,
    random_controls,
    read_models,
    select_models,
    validate_config,
)
from repaudit.tables import collect_metrics, layer_index, select_samples, subset, with_keys

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
MODELS_SCHEMA = ROOT / "workflow/schemas/models.schema.yaml"
HEADER = "model_id\tarchitecture\tweights\ttag\tcheckpoint\tinput_size\tfamily\tobjective\tkwargs\n"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.fixture
def cfg() -> dict:
    return copy.deepcopy(load("test.yaml"))


def one_line_error(excinfo, *needles: str) -> str:
    """The error is one line and contains every needle (the bad value and the fix)."""
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    assert msg.startswith("config error:"), msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


def sheet(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "models.tsv"
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def row(model_id="m", arch="test_resnet", weights="random", tag="", ckpt="", size="32", **kw):
    cols = [model_id, arch, weights, tag, ckpt, size, kw.get("family", ""), kw.get("objective", "")]
    return "\t".join([*cols, kw.get("kwargs", "")])


# --------------------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml"])
def test_shipped_configs_validate(name):
    raw = load(name)
    config = validate_config(copy.deepcopy(raw), SCHEMA)
    # Defaults are filled (including those behind $refs), given values are kept.
    assert config["seed"] == raw.get("seed", 0)
    assert config["features"]["pooling"] in ("auto", "cls", "mean")
    assert config["geometry"]["split"] == raw["geometry"].get("split", "all")
    assert config["convexity"]["k"] == raw["convexity"].get("k", 10)
    assert config["relative"]["anchor_method"] == "uniform"


def test_defaults_are_filled(cfg):
    del cfg["seed"], cfg["features"]["batch_size"], cfg["geometry"]["local_k"]
    config = validate_config(cfg, SCHEMA)
    assert config["seed"] == 0
    assert config["features"]["batch_size"] == 256
    assert config["geometry"]["local_k"] == 20
    assert config["geometry"]["max_samples"] == 300  # given: kept
    assert config["geometry"]["t"] == 2.0


@pytest.mark.parametrize("name", ["models.tsv", "test_models.tsv"])
def test_shipped_model_sheets_read(name):
    df = read_models(ROOT / "config" / name, MODELS_SCHEMA)
    assert df.index.name == "model_id" and df.index.is_unique
    assert (df.index == df["model_id"]).all()
    assert set(df["weights"]) <= {"zoo", "random", "hub", "checkpoint"}
    assert df["input_size"].astype(int).gt(0).all()


# --------------------------------------------------------------------------- config errors


def test_typo_in_key(cfg):
    cfg["datasets"]["digits"]["imgae_size"] = cfg["datasets"]["digits"].pop("image_size")
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, "imgae_size", "datasets.digits", "image_size")


def test_typo_in_section_name(cfg):
    cfg["geomtry"] = cfg.pop("geometry")
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, "geomtry", "geometry")


def test_unknown_dataset_referenced(cfg):
    cfg["pretrain"]["dataset"] = "nope"
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, "pretrain.dataset", "'nope'", "define it under 'datasets'", "digits")


@pytest.mark.parametrize("section", ["finetune", "features"])
def test_unknown_dataset_in_lists(cfg, section):
    cfg[section]["datasets"] = ["digits", "mnist"]
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, f"{section}.datasets", "'mnist'")


def test_enum_and_range_errors(cfg):
    bad = copy.deepcopy(cfg)
    bad["device"] = "gpu"
    with pytest.raises(ConfigError) as e:
        validate_config(bad, SCHEMA)
    one_line_error(e, "device", "'gpu'", "cuda")
    cfg["geometry"]["max_samples"] = 5
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, "geometry.max_samples", "5", "minimum")


def test_missing_required_section(cfg):
    del cfg["probe"]
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, "'probe'", "required", "add it")


def test_missing_image_folder(cfg, tmp_path):
    root = str(tmp_path / "x")
    cfg["datasets"]["photos"] = {"kind": "imagefolder", "image_size": 32, "root": root}
    with pytest.raises(ConfigError) as e:
        validate_config(copy.deepcopy(cfg), SCHEMA)
    one_line_error(e, "datasets.photos.root", str(tmp_path / "x"), "class sub-folders")
    (tmp_path / "x").mkdir()
    validate_config(cfg, SCHEMA)
    del cfg["datasets"]["photos"]["root"]
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, "datasets.photos", "'root'", "required")


def test_relative_image_folder_is_checked_from_the_working_directory(cfg, tmp_path, monkeypatch):
    """Snakemake runs in the repository: a relative root is looked up from there."""
    monkeypatch.chdir(tmp_path)
    cfg["datasets"]["folder"] = {"kind": "imagefolder", "root": "no/such/folder", "image_size": 16}
    with pytest.raises(ConfigError) as e:
        validate_config(copy.deepcopy(cfg), SCHEMA)
    one_line_error(e, "datasets.folder.root", "'no/such/folder'", "class sub-folders")
    (tmp_path / "no/such/folder").mkdir(parents=True)
    validate_config(cfg, SCHEMA)


def test_torchvision_root_missing_without_download(cfg, tmp_path):
    root = str(tmp_path / "cifar")
    cfg["datasets"]["cifar"] = {"kind": "torchvision", "name": "CIFAR10", "image_size": 32}
    cfg["datasets"]["cifar"]["root"] = root
    with pytest.raises(ConfigError) as e:
        validate_config(copy.deepcopy(cfg), SCHEMA)
    one_line_error(e, "datasets.cifar.root", root, "download: true")
    cfg["datasets"]["cifar"]["download"] = True
    validate_config(cfg, SCHEMA)  # torchvision will fetch it


def test_binding_analysis_on_non_binding_dataset(cfg):
    cfg["binding"]["datasets"] = ["digits"]
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, "binding.datasets", "'digits'", "'digits'", "kind 'binding'")


def test_analysis_dataset_without_features(cfg):
    cfg["geometry"]["datasets"] = ["shapes"]
    with pytest.raises(ConfigError) as e:
        validate_config(copy.deepcopy(cfg), SCHEMA)
    one_line_error(e, "geometry.datasets", "'shapes'", "add it to features.datasets")
    # Analyses that run on images, not stored features, need no features.
    cfg["geometry"]["datasets"] = ["digits"]
    cfg["sensitivity"]["datasets"] = ["shapes"]
    cfg["euclidean_convexity"]["datasets"] = ["shapes"]
    validate_config(cfg, SCHEMA)


def test_stitching_needs_relative(cfg):
    del cfg["relative"]
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, "stitching", "'relative'")


def test_bad_dataset_name(cfg):
    cfg["datasets"]["Digits-2"] = cfg["datasets"]["digits"]
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, SCHEMA)
    one_line_error(e, "'Digits-2'", "^[a-z][a-z0-9_]*$")


# --------------------------------------------------------------------------- models.tsv errors


def test_valid_sheet_in_tmp(tmp_path):
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"x")
    path = sheet(
        tmp_path,
        row("r1"),
        row("hub_vit", "vit_base_patch16_224", "hub", tag="augreg_in1k", size="224"),
        row("local", weights="checkpoint", ckpt=str(ckpt)),
        row("z", weights="zoo", objective="simclr_w2", kwargs=""),
        row("v", "test_vit", size="", kwargs='{"img_size": 32}'),
    )
    df = read_models(path, MODELS_SCHEMA)
    # pipeline-made weights (random init, zoo) are replicates named by their seed
    assert df.index.tolist() == ["r1_s0", "hub_vit", "local", "z_s0", "v_s0"]
    assert df.loc["v_s0", "input_size"] == "224"  # empty input_size: the default
    assert df["cell"].tolist() == ["r1", "hub_vit", "local", "z", "v"]
    assert df["seed"].tolist() == ["0", "", "", "0", "0"]


def test_replicates_per_seed_and_selection(tmp_path):
    path = sheet(
        tmp_path,
        row("r_sup", weights="zoo", objective="supervised"),
        row("hub_vit", "vit_base_patch16_224", "hub", tag="augreg_in1k", size="224"),
        row("r_rand", weights="zoo", objective="random"),
    )
    df = read_models(path, MODELS_SCHEMA, seeds=[3, 7])
    assert df.index.tolist() == ["r_sup_s3", "r_sup_s7", "hub_vit", "r_rand_s3", "r_rand_s7"]
    assert df["seed"].tolist() == ["3", "7", "", "3", "7"]
    # a trained replicate's control is the random init of the same seed
    assert random_controls(df) == {"r_sup_s3": "r_rand_s3", "r_sup_s7": "r_rand_s7"}
    assert select_models(None, df, "x") == df.index.tolist()
    assert select_models(["r_sup"], df, "x") == ["r_sup_s3", "r_sup_s7"]  # a sheet id: all
    assert select_models(["*_s7", "hub_vit"], df, "x") == ["r_sup_s7", "hub_vit", "r_rand_s7"]
    with pytest.raises(ConfigError, match=r"stitching.models: 'r_sup_s0' matches no"):
        select_models(["r_sup_s0"], df, "stitching.models")
    with pytest.raises(ConfigError, match="train_seeds"):
        read_models(path, MODELS_SCHEMA, seeds=[1, 1])


def test_replicate_id_colliding_with_a_sheet_id(tmp_path):
    path = sheet(
        tmp_path, row("a", weights="zoo", objective="random"), row("a_s0", weights="hub", tag="t")
    )
    with pytest.raises(ConfigError, match=r"replicate ids \['a_s0'\] collide"):
        read_models(path, MODELS_SCHEMA)


def test_random_controls_match_architecture_size_and_kwargs(tmp_path):
    vit = '{"img_size": 32, "patch_size": 8}'
    path = sheet(
        tmp_path,
        row("r_sup", weights="zoo", objective="supervised"),
        row("r_rand", weights="zoo", objective="random"),
        row("r_rand2", weights="zoo", objective="random"),  # a duplicate: the first one wins
        row("r48", weights="zoo", objective="simclr", size="48"),  # no 48-px control
        row("v_vic", "test_vit", weights="zoo", objective="vicreg", kwargs=vit),
        row("v4", "test_vit", weights="zoo", objective="simclr", kwargs=vit.replace("8", "4")),
        row("v_rand", "test_vit", weights="zoo", objective="random", kwargs=vit),
        row("hub_r", weights="random"),  # not a zoo row
    )
    controls = random_controls(read_models(path, MODELS_SCHEMA))
    assert controls == {"r_sup_s0": "r_rand_s0", "v_vic_s0": "v_rand_s0"}
    default = random_controls(read_models(ROOT / "config" / "models.tsv", MODELS_SCHEMA))
    assert len(default) == 12 and set(default.values()) == {
        "resnet_random_s0", "convnext_random_s0", "vit_random_s0"
    }  # fmt: skip
    assert all(m.split("_")[0] == c.split("_")[0] for m, c in default.items())


def test_illegal_model_id(tmp_path):
    path = sheet(tmp_path, row("ResNet-50"))
    with pytest.raises(ConfigError) as e:
        read_models(path, MODELS_SCHEMA)
    msg = one_line_error(e, "ResNet-50", str(path))
    assert "lower-case" in msg or "^[a-z][a-z0-9_]*$" in msg


def test_unknown_architecture_suggests(tmp_path):
    path = sheet(tmp_path, row("r", "resnet_5O"))
    with pytest.raises(ConfigError) as e:
        read_models(path, MODELS_SCHEMA)
    one_line_error(e, "'resnet_5O'", "did you mean", "resnet50")


def test_unknown_architecture_without_close_match(tmp_path):
    path = sheet(tmp_path, row("r", "resnet_does_not_exist"))
    with pytest.raises(ConfigError) as e:
        read_models(path, MODELS_SCHEMA)
    msg = one_line_error(e, "'r'", "'resnet_does_not_exist'", "timm.list_models()", str(path))
    assert "did you mean" not in msg


def test_missing_checkpoint(tmp_path):
    missing = str(tmp_path / "nowhere.pt")
    path = sheet(tmp_path, row("local", weights="checkpoint", ckpt=missing))
    with pytest.raises(ConfigError) as e:
        read_models(path, MODELS_SCHEMA)
    one_line_error(e, "'local'", missing, "fix the path")


def test_relative_checkpoint_is_checked_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the sheet lives in config/, as in the repository
    (tmp_path / "config").mkdir()
    path = sheet(tmp_path / "config", row("local", weights="checkpoint", ckpt="weights/missing.pt"))
    with pytest.raises(ConfigError) as e:
        read_models(path, MODELS_SCHEMA)
    one_line_error(e, "'local'", "'weights/missing.pt'", "fix the path")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights/missing.pt").write_bytes(b"x")
    assert read_models(path, MODELS_SCHEMA).index.tolist() == ["local"]


def test_hub_without_tag(tmp_path):
    path = sheet(tmp_path, row("vit_b", "vit_base_patch16_224", "hub"))
    with pytest.raises(ConfigError) as e:
        read_models(path, MODELS_SCHEMA)
    one_line_error(e, "'vit_b'", "hub", "pinned 'tag'")


def test_duplicate_model_ids(tmp_path):
    path = sheet(tmp_path, row("a"), row("b"), row("a"))
    with pytest.raises(ConfigError) as e:
        read_models(path, MODELS_SCHEMA)
    one_line_error(e, "duplicate model_id ['a']", "unique")


def test_unknown_column(tmp_path):
    header = HEADER.replace("\tkwargs\n", "\tkwargs\tepochs\n")
    path = sheet(tmp_path, row("a") + "\t3", header=header)
    with pytest.raises(ConfigError) as e:
        read_models(path, MODELS_SCHEMA)
    one_line_error(e, "['epochs']", "allowed are", "kwargs")


def test_optional_columns_may_be_omitted(tmp_path):
    path = sheet(tmp_path, "a\ttest_resnet\trandom", header="model_id\tarchitecture\tweights\n")
    df = read_models(path, MODELS_SCHEMA)
    assert df.loc["a_s0", "input_size"] == "224" and df.loc["a_s0", "tag"] == ""


def test_bad_weights_and_zoo_objective(tmp_path):
    with pytest.raises(ConfigError) as e:
        read_models(sheet(tmp_path, row("a", weights="zooo")), MODELS_SCHEMA)
    one_line_error(e, "'zooo'", "'zoo'", "row 2")
    with pytest.raises(ConfigError) as e:
        read_models(sheet(tmp_path, row("a", weights="zoo", objective="simclrr")), MODELS_SCHEMA)
    one_line_error(e, "'simclrr'", "simclr_w2")


def test_missing_sheet(tmp_path):
    with pytest.raises(ConfigError) as e:
        read_models(tmp_path / "none.tsv", MODELS_SCHEMA)
    one_line_error(e, "none.tsv", "does not exist")


def test_bad_input_size_names_the_value(tmp_path):
    with pytest.raises(ConfigError) as e:
        read_models(sheet(tmp_path, row("a", size="abc")), MODELS_SCHEMA)
    one_line_error(e, "'abc'", "input_size")


def test_bad_kwargs_json(tmp_path):
    with pytest.raises(ConfigError) as e:
        read_models(sheet(tmp_path, row("a", kwargs="{img_size: 32")), MODELS_SCHEMA)
    one_line_error(e, "kwargs", "{img_size: 32")


# --------------------------------------------------------------------------- tables


@pytest.fixture
def models() -> pd.DataFrame:
    return read_models(ROOT / "config" / "test_models.tsv", MODELS_SCHEMA)


def tidy(model: str, layers: list[str], metric: str, **params) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": "digits",
            "model": model,
            "stage": "pretrained",
            "layer": layers,
            "metric": metric,
            "variant": "",
            "value": np.arange(len(layers), dtype=float),
            **params,
        }
    )


def test_layer_index():
    s = pd.Series(["final", "0", "2", "1"])
    assert layer_index(s).tolist() == [3, 0, 2, 1]
    assert layer_index(pd.Series(["final"])).tolist() == [0]


def test_collect_metrics(models):
    geo = tidy("resnet_sup_s0", ["0", "1", "2", "3", "4", "final"], "alpha")
    conv = tidy("vit_random_s0", [str(i) for i in range(7)] + ["final"], "convexity", k=10)
    conv["variant"] = [np.nan] * 7 + ["graph"]
    probe = tidy("resnet_sup_s0", ["final"], "probe_test_accuracy")
    probe["class"] = "all"
    long = collect_metrics([geo, conv, probe], models)
    assert len(long) == len(geo) + len(conv) + len(probe)
    assert list(long.columns[:17]) == [
        "dataset", "model", "stage", "cell", "architecture", "input_size", "family", "objective",
        "weights", "seed", "layer", "layer_index", "depth", "metric", "variant", "value", "k",
    ]  # fmt: skip
    assert "class" in long.columns
    assert long["variant"].map(type).eq(str).all()
    vit = long[long["model"] == "vit_random_s0"]
    assert (vit["architecture"] == "test_vit").all() and (vit["objective"] == "random").all()
    assert (vit["family"] == "vit").all() and (vit["weights"] == "zoo").all()
    assert (vit["k"] == 10).all()
    assert long.loc[long["model"] == "resnet_sup_s0", "k"].isna().all()
    assert (vit["cell"] == "vit_random").all() and (vit["seed"] == "0").all()
    # "final" sits one past the deepest block, per model; depth is in [0, 1].
    idx = dict(zip(vit["layer"], vit["layer_index"], strict=True))
    assert idx["0"] == 0 and idx["6"] == 6 and idx["final"] == 7
    res = long[(long["model"] == "resnet_sup_s0")]
    assert set(res.loc[res["layer"] == "final", "layer_index"]) == {5}
    assert vit.set_index("layer")["depth"].to_dict()["final"] == 1.0
    assert vit.set_index("layer")["depth"].to_dict()["3"] == pytest.approx(3 / 7)
    assert long["depth"].between(0, 1).all()
    # Values survive the join unchanged.
    got = long[(long["model"] == "vit_random_s0")].set_index("layer")["value"]
    assert got.to_dict() == conv.set_index("layer")["value"].to_dict()


def test_collect_metrics_unknown_model_and_missing_column(models):
    long = collect_metrics([tidy("other", ["0", "final"], "alpha", seed=4)], models)
    assert long["architecture"].isna().all()
    # a job's own seed is analysis_seed; seed is the encoder's training seed (none here)
    assert (long["analysis_seed"] == 4).all() and long["seed"].isna().all()
    with pytest.raises(ValueError, match=r"lacks columns \['variant'\]"):
        collect_metrics([tidy("resnet_sup_s0", ["0"], "alpha").drop(columns="variant")], models)


def test_select_samples_split_and_mask():
    labels = np.array([0, 1, 0, 1, 0, 1])
    split = np.array(["train", "test", "test", "train", "test", "train"])
    assert select_samples(labels, split, "train").tolist() == [0, 3, 5]
    assert select_samples(labels, split, "test").tolist() == [1, 2, 4]
    assert select_samples(labels, split).tolist() == list(range(6))
    mask = np.array([True, True, False, True, True, False])
    assert select_samples(labels, split, "test", mask=mask).tolist() == [1, 4]
    assert select_samples(labels, split, "train", max_samples=3).tolist() == [0, 3, 5]
    with pytest.raises(ValueError, match="split must be"):
        select_samples(labels, split, "val")


def test_select_samples_stratified_cap_is_seeded():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    rng.shuffle(labels)
    split = np.where(rng.random(1000) < 0.5, "train", "test")
    idx = select_samples(labels, split, "all", max_samples=100, seed=3)
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert len(idx) == 100
    assert np.bincount(labels[idx]).tolist() == [60, 30, 10]
    again = select_samples(labels, split, "all", max_samples=100, seed=3)
    assert np.array_equal(idx, again)
    other = select_samples(labels, split, "all", max_samples=100, seed=4)
    assert not np.array_equal(idx, other)
    test = select_samples(labels, split, "test", max_samples=50, seed=0)
    assert (split[test] == "test").all()
    shares = np.bincount(labels[test], minlength=3) / len(test)
    full = np.bincount(labels[split == "test"], minlength=3) / (split == "test").sum()
    np.testing.assert_allclose(shares, full, atol=0.03)


def test_subset_and_with_keys():
    feats = {"0": np.arange(12.0).reshape(6, 2), "final": np.arange(6.0)[:, None]}
    sub = subset(feats, np.array([4, 1]))
    assert sub["0"].tolist() == [[8.0, 9.0], [2.0, 3.0]] and sub["final"].ravel().tolist() == [4, 1]
    df = pd.DataFrame({"layer": ["0"], "metric": ["a"], "value": [1.0]})
    out = with_keys(df, dataset="d", model="m", stage="s")
    assert list(out.columns) == ["dataset", "model", "stage", "layer", "metric", "value"]
