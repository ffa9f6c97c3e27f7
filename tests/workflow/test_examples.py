"""The worked examples (config/examples/) on the data tools/make_example_data.py writes: both
plan the expected jobs, and the embeddings example runs end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_repo, job_counts, snakemake

pytestmark = pytest.mark.workflow
MODELS = ["model_a", "model_b", "model_c"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    """A copy of the repository with the example data where the example configs look."""
    work = copy_repo(tmp_path_factory.mktemp("examples") / "repo")
    tool = ROOT / "tools" / "make_example_data.py"
    out = work / "data" / "examples"
    subprocess.run([sys.executable, str(tool), "--out", str(out)], check=True)
    return work


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "embeddings.yaml",
            {"import_embeddings": 3, "compute_geometry": 3, "compute_graph_convexity": 3,
             "discover_concepts": 3, "compare_relative": 1, "stitch_encoders": 1,
             "align_concepts": 1, "list_skipped": 1, "test_claims": 1},
        ),
        (
            "imagefolder.yaml",
            {"make_dataset": 1, "extract_features": 6, "finetune_encoder": 3, "linear_probe": 3,
             "compute_euclidean_convexity": 6, "compute_sensitivity": 3, "compute_geometry": 6,
             "discover_concepts": 3, "test_claims": 1},
        ),
    ],
)  # fmt: skip
def test_example_dry_run(examples, name, expected):
    counts = job_counts(snakemake(examples, "-n", "--configfile", f"config/examples/{name}").stdout)
    for rule, n in expected.items():
        assert counts[rule] == n, (rule, counts)
    if name == "embeddings.yaml":  # no images: nothing is built or extracted
        assert counts["make_dataset"] == counts["extract_features"] == 0


def test_embeddings_example_end_to_end(examples):
    """Every feature-only analysis on three embeddings models, then the claims; the analyses
    that need the network are listed as skipped, with the reason, and never planned."""
    config = yaml.safe_load((ROOT / "config/examples/embeddings.yaml").read_text())
    config["stitching"]["epochs"] = 2
    network = {"datasets": ["mine"]}
    config |= {"sensitivity": network, "euclidean_convexity": network, "binding": network}
    config["finetune"] = {"datasets": ["mine"], "epochs": 1, "batch_size": 8, "lr": 0.001}
    (examples / "config" / "e2e.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/stats/claims.tsv", "results/tables/skipped.tsv"]
    proc = snakemake(examples, *targets, "--cores", "2", "--configfile", "config/e2e.yaml")
    assert "skip embeddings models; see results/tables/skipped.tsv" in proc.stderr

    results = examples / "results"
    for family in ("geometry", "convexity", "concepts"):
        for model in MODELS:
            assert (results / f"metrics/{family}/mine/{model}/pretrained.tsv").stat().st_size
    for family in ("relative", "stitching", "concept_alignment"):
        assert (results / f"metrics/{family}/mine/pretrained.tsv").stat().st_size
    metrics = pd.read_csv(results / "tables/metrics.tsv", sep="\t")
    feature_only = ["rankme", "participation_ratio", "local_isotropy", "alpha_req",
                    "wasserstein_uniformity", "wang_isola_uniformity", "graph_convexity",
                    "latent_mrr", "linear_cka", "mutual_knn", "stitching_f1",
                    "gri_labels"]  # fmt: skip
    for metric in feature_only:
        assert set(metrics.loc[metrics["metric"] == metric, "model"]) == set(MODELS), metric
    assert (metrics["weights"] == "embeddings").all()
    assert "alignment" not in set(metrics["metric"])
    for family in ("sensitivity", "euclidean_convexity", "binding", "training"):
        assert not (results / "metrics" / family).exists(), family
    assert not (results / "data").exists() and not (results / "models").exists()

    skipped = pd.read_csv(results / "tables/skipped.tsv", sep="\t", keep_default_na=False)
    expected = {"geometry", "sensitivity", "euclidean_convexity", "binding", "finetune"}
    assert set(skipped["analysis"]) == expected
    for analysis in expected:
        assert sorted(skipped.loc[skipped["analysis"] == analysis, "model"]) == MODELS
    assert (skipped["reason"].str.len() > 20).all()
    assert set(skipped.loc[skipped["analysis"] == "geometry", "metrics"]) == {"alignment"}

    with h5py.File(results / "features/mine/model_b/pretrained.h5") as f:
        assert list(f["layers"]) == ["0", "final"] and f["layers/final"].dtype == "float32"
        assert f["layers/0"].attrs["source_name"] == "early"
        assert f.attrs["weights"] == "embeddings" and len(f["labels"]) == 300
    claims = pd.read_csv(results / "stats/claims.tsv", sep="\t")
    assert len(claims) and set(claims["verdict"]) - {"no data"}  # some claims are decided
