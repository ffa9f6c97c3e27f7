"""`make estimate` end to end on a paper config: the real dry run, a stubbed calibration.

The calibration (timing each architecture) is replaced by numbers measured once on the 2-core
test machine, so the test takes the dry run's time and its result does not depend on the load.
"""

from __future__ import annotations

import copy
import importlib.util
from collections import Counter

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from repaudit.estimate import ModelCalibration, estimate_table

pytestmark = pytest.mark.workflow

CONFIG = ROOT / "config/paper/uniformity.yaml"
# ResNet-18 with the CIFAR stem at 32 px, as tools/estimate.py measured it here (2 threads,
# machine under load): forward time, parameters, counted FLOPs, activations, tapped widths
RESNET18_CIFAR = ModelCalibration(
    fwd_s=0.048, params=11_168_832, flops=1.111e9, train_act_mb=11.09,
    layer_dims=(64, 64, 128, 256, 512, 512),
)  # fmt: skip


def _tool():
    spec = importlib.util.spec_from_file_location("estimate_tool", ROOT / "tools/estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_estimate_of_the_uniformity_config(monkeypatch, capsys):
    tool = _tool()
    calibrated, seen = [], {}

    def calibrate_model(architecture, size, kwargs, batch, weights="", tag=""):
        calibrated.append((architecture, size, kwargs.get("cifar_stem")))
        return RESNET18_CIFAR

    def spy(name):
        real = getattr(tool, name)

        def wrapper(*args, **kwargs):
            seen[name] = real(*args, **kwargs)
            return seen[name]

        monkeypatch.setattr(tool, name, wrapper)

    monkeypatch.setattr(tool, "calibrate_model", calibrate_model)
    monkeypatch.setattr(tool, "gemm_gflops", lambda: 30.0)
    spy("planned_jobs")
    spy("estimate_table")
    assert tool.main([str(CONFIG)]) == 0
    out = capsys.readouterr().out

    # one calibration per (architecture, input size, kwargs), shared by the sheet's 8 rows
    assert calibrated == [("resnet18", 32, True)]
    jobs, table = seen["planned_jobs"], seen["estimate_table"].set_index("rule")
    counts = Counter(rule for rule, _ in jobs if rule != "all")
    # one row per rule of the dry run, with its job count
    assert table["jobs"].to_dict() == dict(counts)
    config = yaml.safe_load(CONFIG.read_text())
    sheet = pd.read_csv(ROOT / config["models"], sep="\t", comment="#")
    seeds = config.get("train_seeds") or [config["seed"]]
    assert counts["pretrain_encoder"] == (sheet["weights"] == "zoo").sum() * len(seeds) == 8
    assert counts["compute_geometry"] == 8 and counts["uniformity_study"] == 1
    # the shipped resources: nothing flagged, geometry's views on the GPU
    assert (table["flag"] == "").all(), table.loc[table["flag"] != ""]
    assert table.loc["compute_geometry", "gpu"] == 1 and table.loc["pretrain_encoder", "gpu_h"] > 1
    assert "no rule over its configured resources" in out
    assert "assumption: no GPU present" in out and "20 TFLOP/s" in out
    for rule in counts:
        assert any(line.split()[:1] == [rule] for line in out.splitlines()), rule

    # a lowered limit is flagged: pretraining's runtime, the synthetic study's memory
    lowered = copy.deepcopy(config)
    lowered["resources"]["pretrain_encoder"]["runtime"] = 60
    lowered["resources"].setdefault("uniformity_study", {})["mem_mb"] = 1000
    sizes = tool.dataset_sizes(lowered)
    calib = tool.calibrate(lowered, 2)
    flags = estimate_table(jobs, lowered, sizes, calib).set_index("rule")["flag"]
    assert flags["pretrain_encoder"] == "runtime" and flags["uniformity_study"] == "mem"
    assert (flags.drop(["pretrain_encoder", "uniformity_study"]) == "").all()
