"""The compute estimate's cost models on hand-computed cases, and its table and flags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from repaudit.estimate import (
    Calibration,
    ModelCalibration,
    dataset_sizes,
    estimate_table,
    job_cost,
    pairwise_flops,
    split_count,
)
from repaudit.resources import DEFAULT_RESOURCES, at_attempt, rule_resources

ROOT = Path(__file__).resolve().parents[2]
M = ModelCalibration(fwd_s=0.01, params=1000, flops=1e9, train_act_mb=1.0, layer_dims=(8, 16))


def _calib(**kw) -> Calibration:
    return Calibration(models={"a": M, "b": M}, gflops=1.0, threads=1, **kw)


def test_rule_resources_merge_and_grow_with_attempt():
    config = {"resources": {"make_dataset": {"mem_mb": 16000}}}
    assert rule_resources(config, "make_dataset") == {
        **DEFAULT_RESOURCES["make_dataset"],
        "mem_mb": 16000,
    }
    assert at_attempt(16000, "mem_mb", 2) == 32000 and at_attempt(60, "runtime", 3) == 180
    assert at_attempt(1, "gpu", 3) == 1 and at_attempt(8, "cpus", 2) == 8
    with pytest.raises(KeyError, match="no default resources"):
        rule_resources(config, "no_such_rule")


def test_every_rule_has_default_resources_and_a_schema_entry():
    rules = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        for name in re.findall(r"(?m)^rule (\w+):", text):
            rules.add(name)
            assert f'job_resources("{name}")' in text and f'job_threads("{name}")' in text, name
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert rules == set(DEFAULT_RESOURCES) == set(schema["properties"]["resources"]["properties"])


def test_dataset_sizes_from_the_config_alone():
    config = {
        "datasets": {
            "c": {"kind": "torchvision", "name": "CIFAR10"},
            "b": {"kind": "binding", "shapes": ["x", "y", "z"], "n_per_class_train": 2,
                  "n_per_class_test": 3},
            "i": {"kind": "imagefolder", "test_fraction": 0.5},
            "p": {"kind": "imagefolder"},  # its own train/ and val/ folders
        },
        "estimate": {"images": {"i": 100, "p": {"train": 70, "test": 5}}},
    }  # fmt: skip
    sizes = dataset_sizes(config)
    assert sizes == {"c": (50000, 10000), "b": (12, 18), "i": (50, 50), "p": (70, 5)}
    assert split_count(sizes, "c", "all", None) == 60000
    assert split_count(sizes, "c", "test", 500) == 500
    del config["estimate"]
    with pytest.raises(ValueError, match=r"config error: estimate\.images\.i"):
        dataset_sizes(config)


def test_cost_models_hand_computed():
    config = {
        "datasets": {"c": {"kind": "torchvision", "name": "CIFAR10", "image_size": 32}},
        "pretrain": {"dataset": "c", "epochs": 2, "batch_size": 4},
        "features": {"batch_size": 8},
        "sensitivity": {"n_images": 10, "k": 2, "power_iters": 1, "n_probes": 3,
                        "noise_control": True},
    }  # fmt: skip
    sizes = {"c": (100, 20)}
    calib = _calib()
    # extraction: every image once
    assert job_cost("extract_features", {"model": "a", "dataset": "c"}, config, sizes,
                    calib).network_s == pytest.approx(120 * 0.01)  # fmt: skip
    # pretraining: epochs x train images x 2 views x 3 (forward + backward)
    cost = job_cost("pretrain_encoder", {"model": "a"}, config, sizes, calib)
    assert cost.network_s == pytest.approx(2 * 100 * 2 * 3 * 0.01)
    assert cost.network_flops == pytest.approx(2 * 100 * 2 * 3 * 1e9)
    # Jacobians: 20 images x (2 k (iters + 1) + 2 probes) passes x 3 forwards
    cost = job_cost("compute_sensitivity", {"model": "a", "dataset": "c"}, config, sizes, calib)
    assert cost.network_s == pytest.approx(20 * (2 * 2 * 2 + 2 * 3) * 3 * 0.01)
    assert pairwise_flops(10, 3) == 600


def test_table_flags_a_rule_over_its_limit():
    config = {
        "datasets": {"c": {"kind": "torchvision", "name": "CIFAR10"}},
        "features": {"batch_size": 8},
        "resources": {"extract_features": {"gpu": 0, "runtime": 1, "mem_mb": 100000}},
    }
    sizes = {"c": (50000, 10000)}
    jobs = [("extract_features", {"model": m, "dataset": "c"}) for m in ("a", "b")]
    jobs.append(("test_claims", {}))
    table = estimate_table(jobs, config, sizes, _calib()).set_index("rule")
    assert list(table.columns) == [
        "jobs", "gpu_h", "cpu_h", "max_job_min", "peak_host_mb", "peak_gpu_mb",
        "runtime_limit", "mem_limit", "gpu", "cpus", "flag",
    ]  # fmt: skip
    # on the CPU (gpu 0): 60,000 x 0.01 s = 10 min per job, over the 1-min limit
    assert table.loc["extract_features", "jobs"] == 2
    assert table.loc["extract_features", "max_job_min"] == pytest.approx(10)
    assert table.loc["extract_features", "cpu_h"] == pytest.approx(2 * 10 / 60)
    assert table.loc["extract_features", "flag"] == "runtime"
    assert table.loc["test_claims", "flag"] == ""
    # on a GPU at 1 TFLOP/s: 60,000 x 1 GFLOP = 60 s per job, within limits
    config["resources"]["extract_features"] = {"gpu": 1, "runtime": 5}
    table = estimate_table(jobs, config, sizes, _calib(gpu_tflops=1.0)).set_index("rule")
    assert table.loc["extract_features", "gpu_h"] == pytest.approx(2 / 60)
    assert table.loc["extract_features", "flag"] == ""
