"""Claims follow the config: a user's own image folder gets its claims tested, gaps are named."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from repaudit.claims import (
    REPLICATION_VERDICTS,
    config_vars,
    evaluate_claims,
    load_claims,
    no_data_warning,
)
from repaudit.config import validate_config

pytestmark = pytest.mark.workflow


def _variables(config: dict) -> dict:
    """What rule test_claims passes to the registry (workflow/rules/stats.smk)."""
    return {**config_vars(config), **config["claims"]["vars"]}


@pytest.fixture(scope="module")
def folder_config(tmp_path_factory) -> dict:
    """The tiny config with its natural-image dataset replaced by an image folder."""
    root = tmp_path_factory.mktemp("photos")
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config["datasets"]["photos"] = {"kind": "imagefolder", "root": str(root), "image_size": 16}
    del config["datasets"]["digits"]
    for section in config.values():
        if isinstance(section, dict) and isinstance(section.get("datasets"), list):
            section["datasets"] = ["photos" if d == "digits" else d for d in section["datasets"]]
    config["models"] = str(ROOT / config["models"])
    return validate_config(config, ROOT / "workflow/schemas/config.schema.yaml")


def test_an_image_folder_config_tests_its_claims_on_the_folder(folder_config, tiny_run):
    variables = _variables(folder_config)
    assert variables["natural_dataset"] == "photos"
    assert variables["sensitivity_dataset"] == "photos"
    # The tiny run's metrics, as if its natural images had come from the folder.
    metrics = pd.read_csv(tiny_run / "results/tables/metrics.tsv", sep="\t")
    for col in ("dataset", "stage"):
        metrics[col] = metrics[col].replace(
            {"digits": "photos", "finetuned_digits": "finetuned_photos"}
        )
    registry = yaml.safe_load((ROOT / "config/claims.yaml").read_text())
    fast = {"n_boot": 200, "n_perm": 200}
    claims = load_claims(registry, {**variables, **fast})
    _, summary = evaluate_claims(metrics, claims, fragility=False)
    tested = summary[summary["n_units"] > 0]["claim"]
    assert {"C5a", "C5b", "C5c", "C6a", "C3b"} <= set(tested)
    # The old behaviour: the registry's default dataset finds nothing, and says so.
    stale = load_claims(registry, {"natural_dataset": "digits", **fast})
    _, empty = evaluate_claims(metrics, stale, fragility=False)
    warning = no_data_warning(empty)
    assert "C5a (" in warning and "no rows left after filter dataset='digits'" in warning


def test_the_tiny_run_warns_about_claims_without_data(tiny_run):
    summary = pd.read_csv(tiny_run / "results/stats/claims.tsv", sep="\t")
    assert list(summary.columns[:13]) == [
        "claim", "paper", "statement", "unit", "estimate", "ci_low", "ci_high", "p",
        "n_units", "n_obs", "mde", "fragile", "verdict",
    ]  # fmt: skip
    assert set(summary["verdict"]) <= {"supported", "not supported", "underpowered", "no data"}
    log = (tiny_run / "logs/stats/test_claims.log").read_text()
    empty = summary[summary["verdict"] == "no data"]["claim"].tolist()
    if empty:
        assert "WARNING" in log and all(f"{c} (" in log for c in empty)
    else:
        assert "no data in this config" not in log
    assert (summary.loc[summary["verdict"] != "no data", "n_units"] > 0).all()
    replication = pd.read_csv(tiny_run / "results/stats/replication.tsv", sep="\t")
    assert set(summary["claim"]) <= set(replication["claim"])
    assert set(replication["verdict"]) <= set(REPLICATION_VERDICTS)
    assert (tiny_run / "results/stats/replication.svg").stat().st_size > 1000


def test_claims_vars_in_the_config_override_the_derived_datasets(folder_config):
    config = copy.deepcopy(folder_config)
    config["claims"]["vars"] = {"natural_dataset": "binding"}
    assert _variables(config)["natural_dataset"] == "binding"


def test_a_bad_registry_fails_before_any_job_with_one_line(tmp_path):
    from conftest import copy_repo, snakemake

    work = copy_repo(tmp_path / "repo")
    registry = yaml.safe_load((work / "config/claims.yaml").read_text())
    registry["claims"][0]["unit"] = "layer"  # layers are not independent units
    (work / "config/claims.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    proc = snakemake(work, "-n", "--configfile", "config/test.yaml", check=False)
    assert proc.returncode != 0
    assert "claims error: claims.0.unit: 'layer' is not one of" in proc.stdout + proc.stderr
    assert not (work / "results").exists()
