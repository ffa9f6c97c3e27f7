"""Per-rule cluster resources (memory, runtime, GPUs, CPUs) from the config's ``resources``.

Every workflow rule reads its requests through :func:`rule_resources` (via one helper in
workflow/rules/common.smk), so a paper config sizes its own jobs and the Slurm profile carries
only cluster plumbing. Memory and runtime grow linearly with Snakemake's ``attempt`` (1 on the
first submission, 2 on the first retry...): a job killed for memory or time is resubmitted
with twice, then three times, its request, the usual Snakemake retry idiom.
"""

from __future__ import annotations

from collections.abc import Mapping

# Laptop-sized defaults (the embedded default and the tiny test config fit them); paper configs
# override per rule. gpu: GPUs per job (a resource Snakemake counts against --resources gpu=N
# and the Slurm plugin turns into --gpus); cpus: the rule's threads (--cpus-per-task on Slurm).
DEFAULT_RESOURCES: dict[str, dict[str, int]] = {
    "make_dataset": {"mem_mb": 4000, "runtime": 30, "gpu": 0, "cpus": 1},
    "import_embeddings": {"mem_mb": 8000, "runtime": 30, "gpu": 0, "cpus": 1},
    "pretrain_encoder": {"mem_mb": 8000, "runtime": 240, "gpu": 1, "cpus": 1},
    "finetune_encoder": {"mem_mb": 8000, "runtime": 240, "gpu": 1, "cpus": 1},
    "linear_probe": {"mem_mb": 4000, "runtime": 30, "gpu": 0, "cpus": 1},
    "extract_features": {"mem_mb": 8000, "runtime": 60, "gpu": 1, "cpus": 1},
    "compute_geometry": {"mem_mb": 8000, "runtime": 60, "gpu": 0, "cpus": 1},
    "uniformity_study": {"mem_mb": 8000, "runtime": 60, "gpu": 0, "cpus": 1},
    "compute_graph_convexity": {"mem_mb": 8000, "runtime": 120, "gpu": 0, "cpus": 1},
    "compute_euclidean_convexity": {"mem_mb": 8000, "runtime": 240, "gpu": 1, "cpus": 1},
    "compute_sensitivity": {"mem_mb": 8000, "runtime": 240, "gpu": 1, "cpus": 1},
    "probe_binding": {"mem_mb": 4000, "runtime": 60, "gpu": 0, "cpus": 1},
    "compare_relative": {"mem_mb": 8000, "runtime": 60, "gpu": 0, "cpus": 1},
    "stitch_encoders": {"mem_mb": 8000, "runtime": 240, "gpu": 0, "cpus": 1},
    "discover_concepts": {"mem_mb": 8000, "runtime": 120, "gpu": 0, "cpus": 1},
    "align_concepts": {"mem_mb": 8000, "runtime": 120, "gpu": 0, "cpus": 1},
    "collect_metrics": {"mem_mb": 4000, "runtime": 30, "gpu": 0, "cpus": 1},
    "list_skipped": {"mem_mb": 1000, "runtime": 10, "gpu": 0, "cpus": 1},
    "reliability": {"mem_mb": 4000, "runtime": 30, "gpu": 0, "cpus": 1},
    "test_claims": {"mem_mb": 4000, "runtime": 30, "gpu": 0, "cpus": 1},
    "probe_margins": {"mem_mb": 4000, "runtime": 30, "gpu": 0, "cpus": 1},
    "plot_figure": {"mem_mb": 4000, "runtime": 15, "gpu": 0, "cpus": 1},
    "replication": {"mem_mb": 4000, "runtime": 30, "gpu": 0, "cpus": 1},
    "plot_replication": {"mem_mb": 4000, "runtime": 15, "gpu": 0, "cpus": 1},
    "plot_reliability": {"mem_mb": 4000, "runtime": 15, "gpu": 0, "cpus": 1},
}
# Requests that grow with the attempt number (GPUs and CPUs do not: more of them would not
# rescue a job that ran out of memory or time).
SCALED = ("mem_mb", "runtime")


def rule_resources(config: Mapping, rule: str) -> dict[str, int]:
    """The first-attempt requests of ``rule``: the config's entry over the built-in default.

    >>> rule_resources({"resources": {"make_dataset": {"mem_mb": 16000}}}, "make_dataset")
    {'mem_mb': 16000, 'runtime': 30, 'gpu': 0, 'cpus': 1}
    """
    if rule not in DEFAULT_RESOURCES:
        raise KeyError(f"rule {rule!r} has no default resources in repaudit.resources")
    given = (config.get("resources") or {}).get(rule) or {}
    return {**DEFAULT_RESOURCES[rule], **given}


def at_attempt(value: int, key: str, attempt: int) -> int:
    """The request ``key`` at retry ``attempt`` (1-based): memory and runtime x attempt."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return value * attempt if key in SCALED else value
