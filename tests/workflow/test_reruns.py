"""A config edit reruns only the jobs whose output it changes (dry runs after a completed run)."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, copy_repo, job_counts, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> tuple[Path, dict]:
    """The tiny workflow marked complete by ``--touch``: empty outputs and Snakemake's records
    of every job's params, in seconds instead of a real run."""
    work = copy_repo(tmp_path_factory.mktemp("touched") / "repo")
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    # two datasets, so that which one the convexity figure shows (the first) is a figure-only key
    config["convexity"]["datasets"] = ["digits", "binding"]
    path = _write(config, work / "config/base.yaml")
    summary = snakemake(work, "--summary", "--configfile", str(path)).stdout
    for line in summary.splitlines()[1:]:
        output = work / line.split("\t")[0]
        output.parent.mkdir(parents=True, exist_ok=True)
        output.touch()
    snakemake(work, "--touch", "--forceall", "--cores", "1", "--configfile", str(path))
    return work, config


def _write(config: dict, path: Path, sort_keys: bool = False) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=sort_keys))
    return path


def _planned(work: Path, config: dict, path: Path, sort_keys: bool = False) -> Counter:
    """Jobs per rule that a dry run with ``config`` plans."""
    proc = snakemake(work, "-n", "--configfile", str(_write(config, path, sort_keys)))
    return job_counts(proc.stdout)


def test_unchanged_config_plans_nothing(completed, tmp_path):
    work, config = completed
    assert _planned(work, config, tmp_path / "same.yaml") == Counter()


def test_config_with_sorted_keys_plans_nothing(completed, tmp_path):
    work, config = completed
    assert _planned(work, config, tmp_path / "sorted.yaml", sort_keys=True) == Counter()


def test_new_feature_dataset_plans_only_its_extractions(completed, tmp_path):
    work, config = completed
    edited = copy.deepcopy(config)
    edited["features"]["datasets"].append("shapes")  # built already: pretraining data
    n_models = len((work / config["models"]).read_text().splitlines()) - 1
    plan = _planned(work, edited, tmp_path / "new_dataset.yaml")
    assert plan == Counter(extract_features=n_models, all=1)


def test_figure_only_edit_plans_only_that_figure(completed, tmp_path):
    work, config = completed
    edited = copy.deepcopy(config)
    edited["convexity"]["datasets"].reverse()  # the same jobs; the figure shows binding
    assert _planned(work, edited, tmp_path / "figure.yaml") == Counter(plot_figure=1, all=1)
