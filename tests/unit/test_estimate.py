"""The compute estimate's cost models on hand-computed cases, and its table and flags."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from repaudit.estimate import (
    Calibration,
    ModelCalibration,
    count_model,
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


def test_count_on_meta_equals_a_real_forward():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from repaudit.estimate import build_model

    m = count_model("resnet18", 32, {"cifar_stem": True})
    assert m.layer_dims == (64, 64, 128, 256, 512, 512) and m.family == "ResNet"
    assert not m.timed and m.fwd_s == 0.0
    real = build_model("resnet18", {"cifar_stem": True})
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        real(torch.rand(1, 3, 32, 32))
    assert m.flops == counter.get_total_flops() > 0
    # torchvision's 11,689,512 less the 1000-class head and the CIFAR stem's 3x3 (not 7x7) conv
    head, stem = 512 * 1000 + 1000, 64 * 3 * (49 - 9)
    assert m.params == sum(p.numel() for p in real.parameters()) == 11_689_512 - head - stem
    # the largest module output of one image: 64 channels at 32 x 32, float32
    assert m.peak_act_mb == pytest.approx(64 * 32 * 32 * 4 / 1e6)
    with pytest.raises(ValueError, match="no timm stand-in"):
        count_model("someone/unknown-net", 224, {}, weights="hf")


def test_calibrate_times_cheapest_per_family_and_scales_the_rest(monkeypatch):
    from repaudit import estimate

    flops = {"small_a": 1e9, "big_a": 8e9, "huge_a": 1e12, "only_b": 4e9}
    rate = {"a": 2e9, "b": 1e9}  # achieved FLOP/s of each family here
    timed = []

    def count(arch, size, kwargs, weights="", tag=""):
        return ModelCalibration(0.0, 1, flops[arch], 1.0, (4,), family=arch[-1], timed=False)

    def time_forward(arch, size, kwargs, batch, weights="", tag=""):
        timed.append(arch)
        return flops[arch] / rate[arch[-1]]

    monkeypatch.setattr(estimate, "count_model", count)
    monkeypatch.setattr(estimate, "time_forward", time_forward)
    monkeypatch.setattr(estimate, "gemm_gflops", lambda: 4.0)
    sheet = pd.DataFrame(
        {"model_id": list(flops), "architecture": list(flops), "weights": "hub"}
    ).assign(input_size="224")
    config = {"datasets": {"d": {"kind": "imagefolder"}}}
    # budget 40 s: the family heads, then big_a (3 x 2 x 8e9 / median rate 1.5e9 = 32 s);
    # huge_a would take 4,000 s and is derived from its FLOPs at family a's rate
    calib = estimate.calibrate(config, sheet, batch=2, budget_s=40)
    assert timed == ["small_a", "only_b", "big_a"]
    huge = calib.models["huge_a"]
    assert not huge.timed and huge.fwd_s == pytest.approx(1e12 / 2e9)
    assert calib.models["only_b"].timed and calib.models["only_b"].fwd_s == pytest.approx(4)
    assert "3 of 4 architectures timed here" in calib.note


def test_align_concepts_and_inference_memory_cost_models():
    config = {
        "datasets": {"i": {"kind": "imagefolder"}},
        "features": {"batch_size": 10},
        "concepts": {"methods": ["manifold", "pca"], "cross_model_layers": ["1", "2", "3"]},
    }
    calib = _calib()
    # every ordered model pair (2 x 2) x 2 methods x 3 x 3 layer pairs, each GRI over all
    # N(N-1)/2 image pairs up to 20,000 images and a 1e6-pair sample beyond
    for n, pairs in ((1000, 1000 * 999 / 2), (25000, 1e6)):
        cost = job_cost("align_concepts", {"dataset": "i"}, config, {"i": (n, 0)}, calib)
        assert cost.cpu_s == pytest.approx(4 * 2 * 9 * pairs * 2 * 64 * 3 * 1e-9)
    # extraction on the device: weights + batch x (largest layer in and out + tapped features)
    m = ModelCalibration(0.01, 1_000_000, 1e9, 50.0, (8, 16), peak_act_mb=2.0)
    cost = job_cost(
        "extract_features", {"model": "a", "dataset": "i"}, config, {"i": (5, 5)},
        Calibration(models={"a": m}, gflops=1.0, threads=1),
    )  # fmt: skip
    assert cost.gpu_mb == pytest.approx(4.0 + 10 * (2 * 2.0 + 24 * 4 / 1e6))
