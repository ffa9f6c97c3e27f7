"""`make estimate` end to end on a paper config: the real dry run, a stubbed calibration.

The calibration's measurements (counting and timing each architecture, the GEMM rate) are
replaced by numbers measured once on the 2-core test machine, so the test takes the dry run's
time and its result does not depend on the load; repaudit.estimate.calibrate itself runs.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
from collections import Counter

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from repaudit import estimate
from repaudit.estimate import ModelCalibration, estimate_table

pytestmark = pytest.mark.workflow

CONFIG = ROOT / "config/paper/uniformity.yaml"
# ResNet-18 with the CIFAR stem at 32 px, as tools/estimate.py measured it here (2 threads,
# machine under load): forward time, parameters, counted FLOPs, activations, tapped widths,
# largest module output
RESNET18_CIFAR = ModelCalibration(
    fwd_s=0.048, params=11_168_832, flops=1.111e9, train_act_mb=11.09,
    layer_dims=(64, 64, 128, 256, 512, 512), peak_act_mb=0.26, family="ResNet",
)  # fmt: skip


def _tool():
    spec = importlib.util.spec_from_file_location("estimate_tool", ROOT / "tools/estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_estimate_of_the_uniformity_config(monkeypatch, capsys):
    tool = _tool()
    counted, timed, seen = [], [], {}

    def count_model(architecture, size, kwargs, weights="", tag=""):
        counted.append((architecture, size, kwargs.get("cifar_stem")))
        return dataclasses.replace(RESNET18_CIFAR, fwd_s=0.0, timed=False)

    def time_forward(architecture, size, kwargs, batch, weights="", tag=""):
        timed.append((architecture, size, batch))
        return RESNET18_CIFAR.fwd_s

    def spy(name):
        real = getattr(tool, name)

        def wrapper(*args, **kwargs):
            seen[name] = real(*args, **kwargs)
            return seen[name]

        monkeypatch.setattr(tool, name, wrapper)

    monkeypatch.setattr(estimate, "count_model", count_model)
    monkeypatch.setattr(estimate, "time_forward", time_forward)
    monkeypatch.setattr(estimate, "gemm_gflops", lambda: 30.0)
    spy("planned_jobs")
    spy("estimate_table")
    assert tool.main([str(CONFIG)]) == 0
    out = capsys.readouterr().out

    # one calibration per (architecture, input size, kwargs), shared by the sheet's 8 rows
    assert counted == [("resnet18", 32, True)] and timed == [("resnet18", 32, 2)]
    assert "1 of 1 architectures timed here" in out
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
    calib = estimate.calibrate(lowered, tool.read_sheet(lowered))
    assert calib.models["r18_byol_s0"] == RESNET18_CIFAR  # counted, then timed
    flags = estimate_table(jobs, lowered, sizes, calib).set_index("rule")["flag"]
    assert flags["pretrain_encoder"] == "runtime" and flags["uniformity_study"] == "mem"
    assert (flags.drop(["pretrain_encoder", "uniformity_study"]) == "").all()
