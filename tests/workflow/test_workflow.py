"""Workflow tests: lint, dry runs of every config, bad input, the tiny end-to-end run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import BIN, ROOT, copy_repo, copy_run, job_counts, snakemake, snakemake_env

from repaudit.config import read_models, read_sheet
from repaudit.models.checkpoints import is_url

pytestmark = pytest.mark.workflow
SCHEMAS = ROOT / "workflow" / "schemas"

CONFIGS = sorted(
    p.relative_to(ROOT)
    for p in [*ROOT.glob("config/*.yaml"), *ROOT.glob("config/paper/*.yaml")]
    if p.name != "claims.yaml"
)


def test_lint():
    proc = snakemake(ROOT, "--lint", "--configfile", "config/test.yaml", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _make_fake_data(work: Path, config: dict) -> None:
    """Paper configs name data a real user has; dry runs only need the folders to exist."""
    for spec in config["datasets"].values():
        if spec["kind"] in ("imagefolder", "torchvision"):
            for sub in ("train/class_a", "val/class_a"):
                (work / spec["root"] / sub).mkdir(parents=True, exist_ok=True)
    models = read_sheet(work / config["models"])
    for path in models.get("checkpoint", pd.Series(dtype=str)):
        if path and not is_url(path):  # URL rows are planned without their (cached) file
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).touch()


@pytest.fixture(scope="module")
def dry_run_repo(tmp_path_factory) -> Path:
    """One copy of the repository for every dry run (they write only .snakemake/ and fake data)."""
    return copy_repo(tmp_path_factory.mktemp("dry") / "repo")


@pytest.mark.parametrize("configfile", CONFIGS, ids=str)
def test_dry_run(configfile, dry_run_repo, monkeypatch):
    work = dry_run_repo
    config = yaml.safe_load((ROOT / configfile).read_text())
    _make_fake_data(work, config)
    proc = snakemake(work, "-n", "--configfile", str(configfile))
    counts = job_counts(proc.stdout)
    seeds = config.get("train_seeds") or [config.get("seed", 0)]
    monkeypatch.chdir(work)  # checkpoint paths are relative to the run directory
    models = read_models(config["models"], SCHEMAS / "models.schema.yaml", seeds)
    finetune = set(config["finetune"]["datasets"])
    expected = sum(
        len(models) * (2 if d in finetune else 1) for d in config["features"]["datasets"]
    )
    assert counts["extract_features"] == expected
    assert counts.get("pretrain_encoder", 0) == (models["weights"] == "zoo").sum()
    assert counts["test_claims"] == 1 and counts["collect_metrics"] == 1


def test_bad_input_fails_before_any_job(tmp_path):
    """A bad input stops Snakemake with one 'config error:' line naming the bad value.

    One case is enough here: it shows that the workflow validates the config and the model
    sheet (one try block in workflow/rules/common.smk) before any job. Every other bad input
    (typos, unknown datasets, model ids, architectures, missing checkpoints) is a unit test of
    repaudit.config in tests/unit/test_config.py. This case looks for a relative path from the
    directory Snakemake runs in.
    """
    work = copy_repo(tmp_path / "repo")
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config["datasets"]["folder"] = {
        "kind": "imagefolder",
        "root": "no/such/folder",
        "image_size": 16,
    }
    (work / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(work, "--cores", "1", "--configfile", "config/bad.yaml", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("config error:")]
    assert len(errors) == 1 and "no/such/folder" in errors[0], proc.stderr
    assert not (work / "results").exists()


def test_tiny_run_features(tiny_run):
    path = tiny_run / "results/features/digits/resnet_sup_s0/pretrained.h5"
    with h5py.File(path) as f:
        layers = list(f["layers"])
        assert "final" in layers and "0" in layers
        n = len(f["labels"])
        assert all(f[f"layers/{name}"].shape[0] == n for name in layers)
        assert f["layers/final"].dtype == "float32"
        for key in ("model_tag", "weights_sha256", "versions", "config_hash", "seed"):
            assert key in f.attrs, key
    assert not list((tiny_run / "results").rglob("*.tmp-*"))


def test_tiny_run_tables_and_report(tiny_run):
    metrics = pd.read_csv(tiny_run / "results/tables/metrics.tsv", sep="\t")
    for metric in ("graph_convexity", "euclidean_convexity", "rankme", "wasserstein_uniformity",
                   "jacobian_effective_rank", "binding_ood_accuracy", "latent_mrr",
                   "stitching_f1", "gri_labels", "finetune_test_accuracy",
                   "probe_test_accuracy"):  # fmt: skip
        assert metric in set(metrics["metric"]), metric
    assert (tiny_run / "results/stats/claims.tsv").stat().st_size > 0  # test_claims_config.py
    margins = pd.read_csv(tiny_run / "results/stats/probe_margins_digits.tsv", sep="\t")
    assert margins["model"].tolist() == ["resnet_sup_s0", "resnet_simclr_s0"]
    assert (margins["control"] == "resnet_random_s0").all()
    probe = metrics.query("metric == 'probe_test_accuracy' and model == 'resnet_sup_s0'")["value"]
    assert margins["accuracy"].iloc[0] == pytest.approx(100 * probe.iloc[0])
    report = tiny_run / "results/report.html"
    assert report.stat().st_size > 100_000
    figures = list((tiny_run / "results/figures").glob("*.svg"))
    assert figures and all(f.stat().st_size > 1000 for f in figures)


# Reproducibility (the same config gives bit-identical tables in a second run, pretraining
# from scratch included) is checked by tests/workflow/test_slurm.py, which reruns a chain of
# the tiny run under Slurm and compares every table with the local run byte for byte, and by
# the rerun below, which must give the tiny run's features exactly.


def test_kill_during_extraction_then_rerun(tiny_run, tmp_path):
    """A killed extraction leaves no partial file; the rerun gives the tiny run's features."""
    target = "results/features/digits/vit_random_s0/pretrained.h5"
    # everything upstream, from the tiny run
    upstream = ["results/data/digits.h5", "results/models/vit_random_s0/pretrained.pt"]
    work = copy_run(tiny_run, tmp_path / "repo", upstream)
    # targets go first: --configfile takes every argument that follows it
    options = ["--cores", "2", "--configfile", "config/test.yaml"]
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), target, *options],
        cwd=work, env=snakemake_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = work / "logs/features/digits/vit_random_s0/pretrained.log"
    deadline = time.time() + 300
    while not log.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    out = work / target
    if out.exists():  # finished before the kill: then it must be whole
        with h5py.File(out) as f:
            assert "layers/final" in f
    assert not list((work / "results").rglob("*.tmp-*")), "a partial file was left behind"
    snakemake(work, "--unlock", "--configfile", "config/test.yaml")
    snakemake(work, target, "--rerun-incomplete", *options)
    with h5py.File(out) as f, h5py.File(tiny_run / target) as g:
        assert f["layers/final"].shape[0] == len(f["labels"])
        assert list(f["layers"]) == list(g["layers"])
        for name in ["labels", *(f"layers/{layer}" for layer in g["layers"])]:
            assert np.array_equal(f[name][()], g[name][()]), name
