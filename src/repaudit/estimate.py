"""Compute estimate of a config before submission: jobs, GPU/CPU-hours and peak memory per rule.

Each job's cost is a documented cost model scaled by calibrations measured on the machine that
runs the estimate (:func:`calibrate`; random weights, synthetic inputs at the config's input
size, and a float32 GEMM):

- every architecture's FLOPs (torch's FlopCounterMode), parameters and activations are counted
  on the ``meta`` device (shapes only, no compute); its forward time per image is *timed* on
  the CPU (a batch after a warm-up, best of 2-5 repeats) for the cheapest architecture of each
  network class and then, cheapest first, as many others as a time budget allows; an untimed
  architecture's time is its counted FLOPs at the FLOP rate its class achieved when timed here
  (the median rate of the timed ones where its class was not timed). This assumes a class's
  achieved FLOP/s does not fall with size, which holds on CPUs for these GEMM-bound networks
  (larger matrices run at least as fast), so big models are if anything over-estimated.

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

import json
import math
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from repaudit.resources import rule_resources

TRAIN_FACTOR = 3.0  # forward + backward ~ 3 forwards (arXiv:2001.08361, Sec. 2.1)
DECODE_S = {"imagefolder": 5e-3, "torchvision": 2e-5}  # per image: JPEG decode + resize; array copy
GENERATE_S = 1e-3  # per generated image (shapes, glyphs, digits, binding): drawing a few shapes
UMAP_S_PER_POINT = 2e-3  # UMAP + HDBSCAN per point and layer at D ~ 768 (assumption)
STATS_S = 60.0  # tables, claims, figures: small, constant
# GRI between two soft partitions (arXiv:2412.06639 Eq. 3): per pair of images an L1 distance of
# both membership rows; CONCEPTS concepts per row and ELEMENTWISE_S seconds per value (a
# memory-bound elementwise op, ~1 G values/s per CPU thread) are assumptions, not measurements
CONCEPTS = 64
ELEMENTWISE_S = 1e-9
GRI_EXACT_MAX_N, GRI_PAIRS = 20000, 1_000_000  # repaudit.metrics.concepts.cross_model_gri
OVERHEAD_MB = 2000  # Python, torch and library imports of one job
# Sizes (train, test) of the fixed-size torchvision datasets repaudit.data.loaders reads
TORCHVISION_SIZES = {"CIFAR10": (50000, 10000), "CIFAR100": (50000, 10000)}


@dataclass(frozen=True)
class ModelCalibration:
    """Measured on the calibrating device for one architecture at one input size.

    fwd_s: seconds of one image's forward pass (batch-amortised); params: parameter count;
    train_act_mb: activation memory of one image kept for the backward pass (sum of every
    module's output); layer_dims: pooled width of each tapped layer (features per image);
    peak_act_mb: the largest single module output of one image (an inference forward holds
    about its input and output at once); family: the network class (rates are shared within
    it); timed: whether ``fwd_s`` was timed, else derived from ``flops`` (:func:`calibrate`).
    """

    fwd_s: float
    params: int
    flops: float  # of one image's forward pass (counted, not timed)
    train_act_mb: float
    layer_dims: tuple[int, ...]
    peak_act_mb: float = 0.0
    family: str = ""
    timed: bool = True

    def infer_mb(self, batch: int) -> float:
        """Device memory of an inference forward of ``batch`` images: weights, the largest
        layer's input and output, and the pooled features tapped from every layer."""
        per_image = 2 * self.peak_act_mb + self.feature_dim * 4 / 1e6
        return self.params * 4 / 1e6 + batch * per_image

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
    note: str = ""  # how the forward times were obtained (printed with the table)


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
        cost.gpu_mb = m.infer_mb(config["features"].get("batch_size", 256))
    elif rule == "compute_geometry":
        # two augmented views of every image through the encoder, then N^2 metrics (float64)
        cost.network_s = 2 * n * m.fwd_s if m else 0.0
        cost.cpu_s = 4 * pairwise_flops(n, m.final_dim if m else 512) / gf
        cost.host_mb += 3 * n * n * 8 / 1e6
        cost.gpu_mb = m.infer_mb(64) if m else 0.0
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
        cost.gpu_mb = m.infer_mb(sec.get("batch_size", 256))
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
            # cross_model_gri_table: every ordered model pair x method x (layer A, layer B)
            # pair, each GRI over all image pairs up to GRI_EXACT_MAX_N images, else sampled
            layers = len(sec.get("cross_model_layers") or []) or len(models[0].layer_dims)
            methods = len(config.get("concepts", {}).get("methods", [1, 2, 3]))
            pairs = n * (n - 1) / 2 if n <= GRI_EXACT_MAX_N else GRI_PAIRS
            per_gri = pairs * 2 * CONCEPTS * 3 * ELEMENTWISE_S  # |.|, sum, difference per value
            cost.cpu_s = k * k * methods * layers**2 * per_gri
            # memberships of every model, method and layer, float32
            cost.host_mb += k * methods * (layers + 1) * n * CONCEPTS * 4 / 1e6 + 2**23 * 12 / 1e6
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
    if calib.note:
        lines.append(calib.note)
    flagged = table.loc[table["flag"] != "", "rule"].tolist()
    lines.append(
        f"over their configured resources: {', '.join(flagged)}"
        if flagged
        else "no rule over its configured resources"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------- calibration (imports torch)

# Hugging Face families (repaudit.models.hf) and sizes -> the timm model of the same shape, for
# hf rows whose config.json is neither a local folder nor in the HF cache (the estimate never
# downloads). data2vec-vision uses BEiT's network (Baevski et al. 2022, arXiv 2202.03555, Sec. 3).
HF_STANDINS = (
    (r"(?:beit|data2vec-vision)-(base|large)", "beit_{}_patch16_224"),
    (r"dinov2-(small|base|large|giant)", "vit_{}_patch14_dinov2"),
    (r"deit-(tiny|small|base)", "deit_{}_patch16_224"),
    (r"vit-(base|large|huge)-patch(\d+)", "vit_{}_patch{}_224"),
)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def build_model(architecture: str, kwargs: Mapping, weights: str = "", tag: str = ""):
    """A sheet row's network with random weights, in eval mode with frozen parameters, on the
    default device (``with torch.device("meta")`` builds it without memory or compute).

    ``weights: hf`` rows use their own config where one is on this machine (a save_pretrained
    folder or the HF cache), else the timm model of the same shape (HF_STANDINS).
    """
    import timm

    from repaudit.models.factory import use_cifar_stem

    kwargs = dict(kwargs)
    if weights == "hf":
        from transformers import AutoConfig, AutoModel

        kwargs.pop("global_pool", None)
        try:
            config = AutoConfig.from_pretrained(architecture, revision=tag or None, **kwargs)
        except (OSError, ValueError):
            for pattern, timm_name in HF_STANDINS:
                found = re.search(pattern, architecture.lower())
                if found:
                    name = timm_name.format(*found.groups())
                    _log(f"  {architecture}: no config here, counted as {name}")
                    return build_model(name, {})
            raise ValueError(
                f"config error: hf model {architecture!r}: no config.json here (run "
                "tools/prefetch_weights.py) and no timm stand-in of its family for the estimate"
            ) from None
        model = AutoModel.from_config(config)
        # the trunk's taps (repaudit.models.hf): the embedding and every block, hidden_size wide
        model.layer_dims = (config.hidden_size,) * (config.num_hidden_layers + 1)
    else:
        cifar_stem = kwargs.pop("cifar_stem", False)
        try:
            model = timm.create_model(architecture, pretrained=False, num_classes=0, **kwargs)
        except TypeError:
            model = timm.create_model(architecture, pretrained=False, num_classes=0)
        if cifar_stem:  # the zoo's own stem swap, so the counted network is the trained one
            use_cifar_stem(model)
    # no parameter needs a gradient: FlopCounterMode's module tracker otherwise hooks tensors
    # derived from parameters (SigLIP's attention-pool latent), which inference mode leaves
    # without a grad_fn
    return model.eval().requires_grad_(False)


def _forward(model, x):
    return model(pixel_values=x) if hasattr(model, "config") else model(x)


def count_model(
    architecture: str, size: int, kwargs: Mapping, weights: str = "", tag: str = ""
) -> ModelCalibration:
    """FLOPs, parameters, activations and tapped widths of one image's forward, counted on the
    meta device (no memory, no compute); ``fwd_s`` is left 0 for :func:`calibrate`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(architecture, kwargs, weights, tag)
    acts: list[int] = []

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            acts.append(output.numel() * output.element_size())

    handles = [mod.register_forward_hook(hook) for mod in model.modules()]
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        _forward(model, torch.empty(1, 3, size, size, device="meta"))
    for handle in handles:
        handle.remove()
    dims = getattr(model, "layer_dims", None)
    if dims is None:
        info = getattr(model, "feature_info", None) or []
        dims = [int(f["num_chs"]) for f in info] + [int(model.num_features)]
    return ModelCalibration(
        fwd_s=0.0,
        params=sum(p.numel() for p in model.parameters()),
        flops=float(counter.get_total_flops()),
        train_act_mb=sum(acts) / 1e6,
        layer_dims=tuple(dims),
        peak_act_mb=max(acts, default=0) / 1e6,
        family=type(model).__name__,
        timed=False,
    )


def time_forward(
    architecture: str, size: int, kwargs: Mapping, batch: int, weights: str = "", tag: str = ""
) -> float:
    """Seconds of one image's forward on the CPU: a ``batch`` of random images after a warm-up
    at that shape (oneDNN builds its kernels per shape), the best of 2 to 5 repeats (as many as
    fit in a second: on a shared machine a single forward can run several times slower),
    divided by ``batch``."""
    import torch

    model = build_model(architecture, kwargs, weights, tag)
    x = torch.rand(batch, 3, size, size)
    times: list[float] = []
    with torch.inference_mode():
        _forward(model, x)
        while len(times) < 2 or (len(times) < 5 and sum(times) < 1.0):
            t0 = time.perf_counter()
            _forward(model, x)
            times.append(time.perf_counter() - t0)
    return min(times) / batch


def gemm_gflops(n: int = 1024, reps: int = 5) -> float:
    """The CPU's float32 GEMM rate in GFLOP/s."""
    import torch

    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def calibrate(
    config: Mapping, sheet: pd.DataFrame, batch: int = 2, budget_s: float = 30.0
) -> Calibration:
    """Calibrations of the sheet's models: one per (architecture, input size, kwargs), shared by
    its model ids (``<id>_s<seed>`` for trained rows), as the module docstring describes.

    Every architecture is counted on the meta device; forwards are timed first for the cheapest
    architecture of each family, then for the others cheapest first while the predicted timing
    cost (3 forwards of ``batch`` at the rate measured so far) keeps within ``budget_s``.
    """
    import torch

    seeds = config.get("train_seeds") or [config.get("seed", 0)]
    default_size = next(iter(config["datasets"].values())).get("image_size", 224)
    rows: dict[tuple, dict] = {}
    ids: dict[str, tuple] = {}
    for row in sheet.to_dict(orient="records"):
        size = int(row.get("input_size") or default_size)
        kwargs = json.loads(row["kwargs"]) if row.get("kwargs") else {}
        key = (row["architecture"], size, json.dumps(kwargs, sort_keys=True))
        rows.setdefault(key, {**row, "size": size, "kwargs": kwargs})
        model_ids = [row["model_id"]]
        if row["weights"] in ("zoo", "random"):
            model_ids = [f"{row['model_id']}_s{s}" for s in seeds]
        ids.update(dict.fromkeys(model_ids, key))

    def args(key):
        r = rows[key]
        return r["architecture"], r["size"], r["kwargs"]

    counted = {}
    for key in rows:
        _log(f"counting {key[0]} at {key[1]} px (meta device) ...")
        counted[key] = count_model(*args(key), rows[key]["weights"], rows[key].get("tag", ""))
    gflops = gemm_gflops()
    by_cost = sorted(rows, key=lambda k: counted[k].flops)
    first_of_family = {}
    for key in by_cost:
        first_of_family.setdefault(counted[key].family, key)
    order = list(first_of_family.values()) + [
        k for k in by_cost if k not in first_of_family.values()
    ]
    rates: dict[tuple, float] = {}  # achieved FLOP/s of each timed architecture
    spent = 0.0
    for key in order:
        rate = statistics.median(rates.values()) if rates else gflops * 1e9 / 2
        if rates and spent + 3 * batch * counted[key].flops / rate > budget_s:
            continue
        _log(f"timing {key[0]} at {key[1]} px (batch {batch}) ...")
        t0 = time.perf_counter()
        fwd_s = time_forward(*args(key), batch, rows[key]["weights"], rows[key].get("tag", ""))
        spent += time.perf_counter() - t0
        counted[key] = replace(counted[key], fwd_s=fwd_s, timed=True)
        rates[key] = counted[key].flops / fwd_s
    overall = statistics.median(rates.values())
    for key, m in counted.items():
        same = [r for k, r in rates.items() if counted[k].family == m.family]
        if not m.timed:
            counted[key] = replace(
                m, fwd_s=m.flops / (statistics.median(same) if same else overall)
            )
        how = "timed" if m.timed else f"{'its class' if same else 'median'} rate"
        _log(
            f"  {key[0]} ({m.family}, {key[1]} px): {m.flops / 1e9:.1f} GFLOP, "
            f"{counted[key].fwd_s * 1e3:.0f} ms per image ({how}, "
            f"{m.flops / counted[key].fwd_s / 1e9:.0f} GFLOP/s)"
        )
    timed = sum(m.timed for m in counted.values())
    note = (
        f"CPU forward times: {timed} of {len(counted)} architectures timed here (batch {batch}, "
        "best of 2-5 after a warm-up, cheapest of each network class first, "
        f"{budget_s:g} s budget); the others = FLOPs counted on the meta device / the FLOP rate "
        "their class achieved here (else the median of the timed)"
    )
    return Calibration(
        models={model_id: counted[key] for model_id, key in ids.items()},
        gflops=gflops,
        threads=torch.get_num_threads(),
        gpu_present=False,  # timed on the CPU: tools/gpu_check.py covers GPU runs
        gpu_tflops=float((config.get("estimate") or {}).get("gpu_tflops", 20)),
        note=note,
    )
