"""Compute estimate of a config before submission: jobs, GPU/CPU-hours and peak memory per rule.

Each job's cost is a documented cost model scaled by calibrations measured on the machine that
runs the estimate (tools/estimate.py times a few batches of each architecture, random weights,
synthetic inputs at the config's input size, and a float32 GEMM):

- network work is counted in *forward image-equivalents* ``F`` and costs ``F x t_fwd`` seconds,
  ``t_fwd`` the calibrated forward time of one image. A training step costs 3 forwards (the
  backward pass is about twice the forward's FLOPs: Kaplan et al. 2020, arXiv:2001.08361, Sec.
  2.1, C ~ 6N per token of which 2N forward); a JVP or VJP costs 3 forwards likewise.
- dense linear algebra is counted in FLOPs and costs ``FLOPs / gflops`` (the calibrated GEMM
  rate): pairwise distances 2 N^2 D (kNN graphs, uniformity, relative anchors), logistic
  regression 2 N D per iteration, a covariance/eigendecomposition ~10 D^3.
- what has no measured scaling here (UMAP/HDBSCAN, JPEG decoding) uses per-item constants,
  named below; they are assumptions, not measurements.

With no GPU present, a GPU job's network work is its counted FLOPs (torch's FlopCounterMode
on one forward, times the forward-equivalents) run at ``gpu_tflops``, an assumed sustained GPU
throughput that the output states; timings on a busy CPU then affect only CPU jobs.
Numbers are estimates for sizing requests, not benchmarks.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from repaudit.resources import rule_resources

TRAIN_FACTOR = 3.0  # forward + backward ~ 3 forwards (arXiv:2001.08361, Sec. 2.1)
DECODE_S = {"imagefolder": 5e-3, "torchvision": 2e-5}  # per image: JPEG decode + resize; array copy
GENERATE_S = 1e-3  # per generated image (shapes, glyphs, digits, binding): drawing a few shapes
UMAP_S_PER_POINT = 2e-3  # UMAP + HDBSCAN per point and layer at D ~ 768 (assumption)
STATS_S = 60.0  # tables, claims, figures: small, constant
OVERHEAD_MB = 2000  # Python, torch and library imports of one job
# Sizes of the torchvision datasets the loaders support: (train, test)
TORCHVISION_SIZES = {
    "CIFAR10": (50000, 10000),
    "CIFAR100": (50000, 10000),
    "MNIST": (60000, 10000),
    "FashionMNIST": (60000, 10000),
    "SVHN": (73257, 26032),
    "STL10": (5000, 8000),
}


@dataclass(frozen=True)
class ModelCalibration:
    """Measured on the calibrating device for one architecture at one input size.

    fwd_s: seconds of one image's forward pass (batch-amortised); params: parameter count;
    train_act_mb: activation memory of one image kept for the backward pass (sum of every
    module's output); layer_dims: pooled width of each tapped layer (features per image).
    """

    fwd_s: float
    params: int
    flops: float  # of one image's forward pass (counted, not timed)
    train_act_mb: float
    layer_dims: tuple[int, ...]

    @property
    def feature_dim(self) -> int:
        return sum(self.layer_dims)

    @property
    def final_dim(self) -> int:
        return self.layer_dims[-1]


@dataclass(frozen=True)
class Calibration:
    """Per-architecture calibrations, the CPU's GEMM rate and how they were measured."""

    models: Mapping[str, ModelCalibration]  # model_id -> its architecture's calibration
    gflops: float  # float32 GEMM rate of the calibrating CPU, GFLOP/s
    threads: int  # torch threads during calibration
    gpu_present: bool = False
    gpu_tflops: float = 20.0


@dataclass
class JobCost:
    """One job: seconds of network work (device), seconds of CPU work, peak memory in MB."""

    network_s: float = 0.0
    cpu_s: float = 0.0
    host_mb: float = OVERHEAD_MB
    gpu_mb: float = 0.0
    network_flops: float = 0.0
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- dataset sizes


def dataset_sizes(config: Mapping) -> dict[str, tuple[int, int]]:
    """(train, test) image counts of every dataset, from the config alone (no data read).

    imagefolder sizes come from ``estimate.images`` (the folder is not read): a count split by
    the dataset's ``test_fraction``, or ``{train: N, test: M}`` for a folder with its own
    train/ and val/ splits; a dataset whose size cannot be known raises a one-line
    ``config error``.
    """
    given = (config.get("estimate") or {}).get("images") or {}
    sizes = {}
    for name, spec in config["datasets"].items():
        kind = spec["kind"]
        test_fraction = spec.get("test_fraction", 0.2)
        if name in given and isinstance(given[name], Mapping):
            sizes[name] = (int(given[name]["train"]), int(given[name]["test"]))
        elif name in given:
            n = int(given[name])
            n_test = round(n * test_fraction)
            sizes[name] = (n - n_test, n_test)
        elif kind == "torchvision" and spec.get("name") in TORCHVISION_SIZES:
            sizes[name] = TORCHVISION_SIZES[spec["name"]]
        elif kind == "binding":
            n_shapes = len(spec.get("shapes") or range(6))
            classes = n_shapes * (n_shapes - 1)
            sizes[name] = (classes * spec["n_per_class_train"], classes * spec["n_per_class_test"])
        elif kind in ("shapes", "glyphs") and "n_per_class" in spec:
            n_classes = len(spec.get("classes") or spec.get("letters") or range(4))
            n = n_classes * spec["n_per_class"]
            n_test = round(n * test_fraction)
            sizes[name] = (n - n_test, n_test)
        else:
            raise ValueError(
                f"config error: estimate.images.{name}: the size of dataset {name!r} "
                f"(kind {kind}) is not fixed by the config; give its image count"
            )
    return sizes


def split_count(sizes: Mapping, dataset: str, split: str, max_samples: int | None) -> int:
    """Images an analysis uses: its split of ``dataset``, capped at ``max_samples``."""
    train, test = sizes[dataset]
    n = {"all": train + test, "train": train, "test": test}[split]
    return min(n, max_samples) if max_samples else n


def n_classes(config: Mapping, dataset: str, n: int) -> int:
    """Class count of a dataset (CIFAR-100: 100; ImageNet subsets: n / max_per_class)."""
    spec = config["datasets"][dataset]
    if spec.get("name") == "CIFAR100":
        return 100
    if spec["kind"] == "binding":
        k = len(spec.get("shapes") or range(6))
        return k * (k - 1)
    if spec.get("max_per_class"):
        return max(2, n // spec["max_per_class"])
    return 10


# ---------------------------------------------------------------- cost models per rule


def pairwise_flops(n: int, d: int) -> float:
    """FLOPs of all pairwise distances of ``n`` points in ``d`` dimensions (one GEMM)."""
    return 2.0 * n * n * d


def job_cost(
    rule: str, wildcards: Mapping[str, str], config: Mapping, sizes: Mapping, calib: Calibration
) -> JobCost:
    """The cost model of one job of ``rule`` (module docstring)."""
    m = calib.models.get(wildcards.get("model", ""))
    d = wildcards.get("dataset")
    gf = calib.gflops * 1e9
    section = {
        "compute_geometry": "geometry", "compute_graph_convexity": "convexity",
        "compute_euclidean_convexity": "euclidean_convexity", "compute_sensitivity": "sensitivity",
        "probe_binding": "binding", "compare_relative": "relative", "stitch_encoders": "stitching",
        "discover_concepts": "concepts", "align_concepts": "concepts",
    }.get(rule)  # fmt: skip
    sec = config.get(section, {}) if section else {}
    n = split_count(sizes, d, sec.get("split", "all"), sec.get("max_samples")) if d else 0
    cost = JobCost()
    if rule == "make_dataset":
        spec = config["datasets"][d]
        total = sum(sizes[d])
        per = DECODE_S.get(spec["kind"], GENERATE_S)
        cost.cpu_s = total * per
        cost.host_mb += 2 * total * 3 * spec.get("image_size", 32) ** 2 / 1e6  # uint8, two copies
    elif rule == "pretrain_encoder":
        p = config["pretrain"]
        n_train = sizes[p["dataset"]][0]
        views = 2 * (4 / 3 if "moco" in wildcards["model"] or "byol" in wildcards["model"] else 1)
        cost.network_s = p["epochs"] * n_train * views * TRAIN_FACTOR * m.fwd_s
        cost.host_mb += sum(sizes[p["dataset"]]) * 3 * 32 * 32 / 1e6 + 4 * m.params * 4 / 1e6
        cost.gpu_mb = 4 * m.params * 4 / 1e6 + p["batch_size"] * views * m.train_act_mb
        if views > 2:
            cost.notes.append("momentum encoder: +1 forward per view")
    elif rule == "finetune_encoder":
        f = config["finetune"]
        train, test = sizes[d]
        cost.network_s = (f["epochs"] * train * TRAIN_FACTOR + (f["epochs"] + 1) * test) * m.fwd_s
        cost.host_mb += (train + test) * 3 * config["datasets"][d].get("image_size", 32) ** 2 / 1e6
        cost.gpu_mb = 4 * m.params * 4 / 1e6 + f["batch_size"] * m.train_act_mb
    elif rule == "extract_features":
        total = sum(sizes[d])
        cost.network_s = total * m.fwd_s
        cost.host_mb += total * m.feature_dim * 4 / 1e6 + m.params * 4 / 1e6
        batch = config["features"].get("batch_size", 256)
        cost.gpu_mb = m.params * 4 / 1e6 + batch * m.train_act_mb / 4
    elif rule == "compute_geometry":
        # two augmented views of every image through the encoder, then N^2 metrics (float64)
        cost.network_s = 2 * n * m.fwd_s if m else 0.0
        cost.cpu_s = 4 * pairwise_flops(n, m.final_dim if m else 512) / gf
        cost.host_mb += 3 * n * n * 8 / 1e6
        cost.gpu_mb = (m.params * 4 / 1e6 + 64 * m.train_act_mb / 4) if m else 0.0
    elif rule == "compute_graph_convexity":
        c = n_classes(config, d, n)
        per_layer = pairwise_flops(n, max(m.layer_dims)) / gf
        paths = c * min(sec.get("max_paths", 5000), (n / c) ** 2)
        dijkstra = c * n * sec.get("k", 10) * math.log2(max(n, 2)) * 1e-7  # heap op ~ 0.1 us
        perms = 1 + sec.get("n_permutations", 10)
        cost.cpu_s = len(m.layer_dims) * (per_layer + perms * (dijkstra + paths * 1e-6))
        cost.host_mb += n * m.feature_dim * 4 / 1e6 + 2 * n * n * 4 / 1e6
    elif rule == "compute_euclidean_convexity":
        c = n_classes(config, d, n)
        per_class = n / c
        pairs = c * min(sec.get("max_pairs", 5000), per_class * (per_class - 1) / 2)
        layers = len(m.layer_dims)
        # each interior point runs the rest of the network (half a forward on average) + head
        cost.network_s = pairs * sec.get("n_points", 10) * layers * 0.5 * m.fwd_s
        cost.host_mb += n * m.feature_dim * 4 / 1e6
        cost.gpu_mb = m.params * 4 / 1e6 + sec.get("batch_size", 256) * m.train_act_mb / 4
    elif rule == "compute_sensitivity":
        images = sec.get("n_images", 100) * (2 if sec.get("noise_control") else 1)
        passes = 2 * sec.get("k", 32) * (sec.get("power_iters", 5) + 1) + 2 * sec.get(
            "n_probes", 16
        )
        cost.network_s = images * passes * TRAIN_FACTOR * m.fwd_s
        cost.gpu_mb = m.params * 4 / 1e6 + sec.get("k", 32) * m.train_act_mb
    elif rule == "linear_probe":
        p = config["probe"]
        train = sizes[d][0]
        it = len(p["weight_decay"]) * p["max_iter"]
        cost.cpu_s = it * 2 * train * m.final_dim * n_classes(config, d, train) / gf
        cost.host_mb += train * m.final_dim * 8 / 1e6
    elif rule == "probe_binding":
        fits = len(sec.get("c_grid", [1])) * sec.get("cv", 5) + 1
        cost.cpu_s = fits * 1000 * 2 * n * m.final_dim * n_classes(config, d, n) / gf
        cost.cpu_s += pairwise_flops(n, m.final_dim) / gf
        cost.host_mb += n * m.final_dim * 8 / 1e6
    elif rule in ("compare_relative", "stitch_encoders", "align_concepts"):
        # every model of the config is compared (an upper bound where a section selects models)
        models = list(calib.models.values())
        k = len(models)
        dim = max(x.final_dim for x in models)
        if rule == "compare_relative":
            anchors = sec.get("n_anchors", 768)
            cost.cpu_s = k * 2 * n * anchors * dim / gf + k * k * pairwise_flops(n, anchors) / gf
            cost.host_mb += k * n * (dim + anchors) * 4 / 1e6 + n * n * 4 / 1e6
        elif rule == "stitch_encoders":
            train = sizes[d][0]
            hidden = sec.get("hidden", 768)
            runs = k * k * len(sec.get("seeds", [0])) * len(sec.get("variants", [0, 1]))
            flops = 6 * (dim * hidden + hidden * n_classes(config, d, train)) * train
            cost.cpu_s = runs * sec.get("epochs", 10) * flops / gf
            cost.host_mb += k * sum(sizes[d]) * dim * 4 / 1e6
        else:
            layers = len(sec.get("cross_model_layers") or [0]) or 1
            cost.cpu_s = k * k * layers * pairwise_flops(n, 64) / gf
            cost.host_mb += k * n * n * 1 / 1e6 + k * n * dim * 4 / 1e6
    elif rule == "discover_concepts":
        layers = len(m.layer_dims)
        methods = len(sec.get("methods", [1, 2, 3]))
        cost.cpu_s = layers * methods * n * UMAP_S_PER_POINT * (m.final_dim / 768)
        cost.host_mb += n * m.feature_dim * 4 / 1e6 + n * sec.get("n_neighbors", 30) * 16 / 1e6
    elif rule == "uniformity_study":
        study = config["uniformity_study"]
        for dim in study.get("dims", [128]):
            cost.cpu_s += pairwise_flops(study.get("n_samples_lu", 10000), dim) / gf
            cost.cpu_s += 10 * dim**3 / gf
        n_max = max(study.get("n_samples", 0), study.get("n_samples_lu", 0))
        cost.host_mb += n_max * n_max * 8 / 1e6
    else:  # import, tables, claims, figures
        cost.cpu_s = STATS_S
    if m is not None and cost.network_s:
        cost.network_flops = cost.network_s / m.fwd_s * m.flops
    return cost


# ---------------------------------------------------------------- the table


def job_hours(rule: str, cost: JobCost, config: Mapping, calib: Calibration) -> tuple[float, bool]:
    """(wall-clock hours of one job, whether it runs on a GPU) under the config's resources."""
    res = rule_resources(config, rule)
    on_gpu = bool(res["gpu"]) and config.get("device", "auto") != "cpu"
    # CPU work scales with the job's threads relative to the calibration's (optimistic: linear)
    cpu_scale = calib.threads / res["cpus"]
    gpu_rate = calib.gpu_tflops * 1e12
    if on_gpu:
        network = cost.network_s if calib.gpu_present else cost.network_flops / gpu_rate
    else:  # timed on a GPU, a CPU job's network work runs at the CPU's GEMM rate
        network = cost.network_flops / (calib.gflops * 1e9) if calib.gpu_present else 0.0
        network = network or cost.network_s * cpu_scale
    return (network + cost.cpu_s * cpu_scale) / 3600, on_gpu


def estimate_table(
    jobs: Sequence[tuple[str, Mapping[str, str]]],
    config: Mapping,
    sizes: Mapping,
    calib: Calibration,
    headroom: float = 1.0,
) -> pd.DataFrame:
    """One row per rule: jobs, GPU-hours, CPU-hours, longest job, peak memory, limits, flag.

    ``flag`` names what exceeds the rule's first-attempt ``resources`` (``runtime`` when the
    longest job times ``headroom`` is over the runtime limit, ``mem`` likewise for memory).
    """
    per_rule: dict[str, dict] = defaultdict(
        lambda: {"gpu_h": 0.0, "cpu_h": 0.0, "max_job_min": 0.0, "host_mb": 0.0, "gpu_mb": 0.0}
    )
    counts = Counter(rule for rule, _ in jobs)
    for rule, wildcards in jobs:
        if rule == "all":
            continue
        cost = job_cost(rule, wildcards, config, sizes, calib)
        hours, on_gpu = job_hours(rule, cost, config, calib)
        row = per_rule[rule]
        row["gpu_h" if on_gpu else "cpu_h"] += hours
        if on_gpu:  # a GPU job holds its CPUs too
            row["cpu_h"] += hours * rule_resources(config, rule)["cpus"]
        else:
            row["cpu_h"] += hours * (rule_resources(config, rule)["cpus"] - 1)
        row["max_job_min"] = max(row["max_job_min"], hours * 60)
        row["host_mb"] = max(row["host_mb"], cost.host_mb)
        row["gpu_mb"] = max(row["gpu_mb"], cost.gpu_mb if on_gpu else 0.0)
    rows = []
    for rule, r in per_rule.items():
        res = rule_resources(config, rule)
        over = []
        if r["max_job_min"] * headroom > res["runtime"]:
            over.append("runtime")
        if r["host_mb"] * headroom > res["mem_mb"]:
            over.append("mem")
        rows.append(
            {
                "rule": rule,
                "jobs": counts[rule],
                "gpu_h": r["gpu_h"],
                "cpu_h": r["cpu_h"],
                "max_job_min": r["max_job_min"],
                "peak_host_mb": r["host_mb"],
                "peak_gpu_mb": r["gpu_mb"],
                "runtime_limit": res["runtime"],
                "mem_limit": res["mem_mb"],
                "gpu": res["gpu"],
                "cpus": res["cpus"],
                "flag": ",".join(over),
            }
        )
    return pd.DataFrame(rows).sort_values("rule", kind="stable").reset_index(drop=True)


def format_table(table: pd.DataFrame, calib: Calibration) -> str:
    """The table as aligned text, with totals and the assumptions the numbers rest on."""
    shown = table.copy()
    for col, digits in (("gpu_h", 2), ("cpu_h", 2), ("max_job_min", 1)):
        shown[col] = shown[col].round(digits)
    for col in ("peak_host_mb", "peak_gpu_mb"):
        shown[col] = shown[col].round().astype(int)
    lines = [shown.to_string(index=False)]
    lines.append(
        f"total: {int(table['jobs'].sum())} jobs, {table['gpu_h'].sum():.2f} GPU-h, "
        f"{table['cpu_h'].sum():.2f} CPU-h"
    )
    if calib.gpu_present:
        lines.append("calibrated on the GPU present")
    else:
        lines.append(
            f"assumption: no GPU present; GPU jobs run their counted network FLOPs at "
            f"{calib.gpu_tflops:g} TFLOP/s (estimate.gpu_tflops); CPU jobs as timed here "
            f"({calib.threads} threads, {calib.gflops:.0f} GFLOP/s GEMM), scaled to their cpus"
        )
    flagged = table.loc[table["flag"] != "", "rule"].tolist()
    lines.append(
        f"over their configured resources: {', '.join(flagged)}"
        if flagged
        else "no rule over its configured resources"
    )
    return "\n".join(lines)
