"""Compute estimate of a config: `make estimate CONFIG=config/paper/<x>.yaml`.

Plans the config's jobs with a Snakemake dry run (in a scratch copy of the workflow with empty
stand-in data folders, so no dataset is needed), times each architecture of the config on the
device present (timm, random weights, synthetic inputs), and prints repaudit.estimate's table:
per rule jobs, GPU- and CPU-hours, the longest job, peak host/GPU memory, the rule's configured
resources and a flag where the estimate exceeds them.

    python tools/estimate.py config/paper/uniformity.yaml [--headroom 1.0] [--batch 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
# The estimate downloads nothing (random weights; hf configs only from this machine). Set before
# timm or transformers import huggingface_hub, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from repaudit.estimate import (  # noqa: E402
    Calibration,
    ModelCalibration,
    dataset_sizes,
    estimate_table,
    format_table,
)

LINKED = ("Snakefile", "workflow", "src", "config", "envs")


def scaffold(config: dict, work: Path) -> None:
    """The workflow under ``work`` (links) with empty stand-ins for the config's data files."""
    for name in LINKED:
        (work / name).symlink_to(ROOT / name)
    for spec in config["datasets"].values():
        if spec["kind"] in ("imagefolder", "torchvision"):
            for sub in ("train/class_a", "val/class_a"):
                (work / spec["root"] / sub).mkdir(parents=True, exist_ok=True)
    sheet = read_sheet(config)
    for path in sheet.get("checkpoint", pd.Series(dtype=str)):
        if path and "://" not in path:
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).touch()


def read_sheet(config: dict) -> pd.DataFrame:
    return pd.read_csv(
        ROOT / config["models"], sep="\t", dtype=str, keep_default_na=False, comment="#"
    )


def planned_jobs(configfile: Path, config: dict) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a fresh run of ``configfile`` would run."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scaffold(config, work)
        env = dict(
            os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        )
        proc = subprocess.run(
            ["snakemake", "-n", "--configfile", str(configfile.resolve()), "--cores", "1"],
            cwd=work, env=env, capture_output=True, text=True,
        )  # fmt: skip
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.exit(f"dry run of {configfile} failed:\n{out[-3000:]}")
    jobs: list[tuple[str, dict[str, str]]] = []
    for block in re.split(r"(?m)^(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m:
            continue
        w = re.search(r"(?m)^\s+wildcards: (.*)$", block)
        wildcards = dict(kv.split("=", 1) for kv in w.group(1).split(", ")) if w else {}
        jobs.append((m.group(1), wildcards))
    return jobs


# Hugging Face families (repaudit.models.hf) and sizes -> the timm model of the same shape, for
# hf rows whose config.json is neither a local folder nor in the HF cache (the estimate never
# downloads). data2vec-vision uses BEiT's network (Baevski et al. 2022, arXiv 2202.03555, Sec. 3).
HF_STANDINS = (
    (r"(?:beit|data2vec-vision)-(base|large)", "beit_{}_patch16_224"),
    (r"dinov2-(small|base|large|giant)", "vit_{}_patch14_dinov2"),
    (r"deit-(tiny|small|base)", "deit_{}_patch16_224"),
    (r"vit-(base|large|huge)-patch(\d+)", "vit_{}_patch{}_224"),
)


def hf_model(architecture: str, tag: str, kwargs: dict):
    """A ``weights: hf`` row's network with random weights: its own config where one is on this
    machine (a save_pretrained folder or the HF cache), else the timm model of the same shape."""
    from transformers import AutoConfig, AutoModel

    kwargs = {k: v for k, v in kwargs.items() if k != "global_pool"}
    try:
        config = AutoConfig.from_pretrained(architecture, revision=tag or None, **kwargs)
    except (OSError, ValueError):
        for pattern, timm_name in HF_STANDINS:
            m = re.search(pattern, architecture.lower())
            if m:
                print(f"  {architecture}: no config here, timed as {timm_name.format(*m.groups())}",
                      file=sys.stderr)  # fmt: skip
                return build(timm_name.format(*m.groups()), {})
        sys.exit(
            f"config error: hf model {architecture!r}: no config.json here (run "
            "tools/prefetch_weights.py) and no timm stand-in of its family for the estimate"
        )
    model = AutoModel.from_config(config).eval()
    # the trunk's taps (repaudit.models.hf): the embedding and every block, hidden_size wide
    model.layer_dims = (config.hidden_size,) * (config.num_hidden_layers + 1)
    return model


def build(architecture: str, kwargs: dict):
    import timm
    import torch

    cifar_stem = kwargs.pop("cifar_stem", False)
    try:
        model = timm.create_model(architecture, pretrained=False, num_classes=0, **kwargs)
    except TypeError:
        model = timm.create_model(architecture, pretrained=False, num_classes=0)
    if cifar_stem:  # 3x3 stride-1 first conv, no max-pool (the zoo's CIFAR ResNet stem)
        model.conv1 = torch.nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
    return model.eval()


def calibrate_model(
    architecture: str, size: int, kwargs: dict, batch: int, weights: str = "", tag: str = ""
) -> ModelCalibration:
    """Forward time per image, parameters, activation memory and tapped widths of one model."""
    import torch

    if weights == "hf":
        model = hf_model(architecture, tag, dict(kwargs))
    else:
        model = build(architecture, dict(kwargs))
    # no parameter needs a gradient: FlopCounterMode's module tracker otherwise hooks tensors
    # derived from parameters (SigLIP's attention-pool latent), which inference mode leaves
    # without a grad_fn
    model.requires_grad_(False)
    acts = []

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            acts.append(output.numel() * output.element_size())

    handles = [mod.register_forward_hook(hook) for mod in model.modules()]
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode():
        with counter:  # one image: its FLOPs and its activations
            model(torch.rand(1, 3, size, size))
        for h in handles:
            h.remove()
        x = torch.rand(batch, 3, size, size)
        model(x)  # warm-up at the timed shape (oneDNN builds its kernels per shape)
        times = []
        for _ in range(2):  # best of two: the machine may be shared
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
        fwd_s = min(times) / batch
    dims = getattr(model, "layer_dims", None)
    if dims is None:
        info = getattr(model, "feature_info", None) or []
        dims = [int(f["num_chs"]) for f in info] + [int(model.num_features)]
    return ModelCalibration(
        fwd_s=fwd_s,
        params=sum(p.numel() for p in model.parameters()),
        flops=float(counter.get_total_flops()),
        train_act_mb=sum(acts) / 1e6,
        layer_dims=tuple(dims),
    )


def gemm_gflops(n: int = 1024, reps: int = 5) -> float:
    import torch

    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def calibrate(config: dict, batch: int) -> Calibration:
    """One calibration per (architecture, input size, kwargs), shared by its model ids."""
    import torch

    sheet = read_sheet(config)
    seeds = config.get("train_seeds") or [config.get("seed", 0)]
    default_size = next(iter(config["datasets"].values())).get("image_size", 224)
    cache: dict[tuple, ModelCalibration] = {}
    models = {}
    for row in sheet.to_dict(orient="records"):
        size = int(row.get("input_size") or default_size)
        kwargs = json.loads(row["kwargs"]) if row.get("kwargs") else {}
        key = (row["architecture"], size, json.dumps(kwargs, sort_keys=True))
        if key not in cache:
            print(f"calibrating {row['architecture']} at {size} px ...", file=sys.stderr)
            cache[key] = calibrate_model(
                row["architecture"], size, kwargs, batch, row["weights"], row.get("tag", "")
            )
        ids = [row["model_id"]]
        if row["weights"] in ("zoo", "random"):
            ids = [f"{row['model_id']}_s{s}" for s in seeds]
        models.update(dict.fromkeys(ids, cache[key]))
    return Calibration(
        models=models,
        gflops=gemm_gflops(),
        threads=torch.get_num_threads(),
        gpu_present=False,  # timed on the CPU: tools/gpu_check.py covers GPU runs
        gpu_tflops=float((config.get("estimate") or {}).get("gpu_tflops", 20)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configfile", type=Path)
    parser.add_argument(
        "--headroom", type=float, default=1.0, help="flag when estimate x this > limit"
    )
    parser.add_argument("--batch", type=int, default=2, help="images per timed forward batch")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    config = yaml.safe_load(args.configfile.read_text())
    try:
        sizes = dataset_sizes(config)
    except ValueError as err:
        sys.exit(str(err))
    jobs = planned_jobs(args.configfile, config)
    calib = calibrate(config, args.batch)
    table = estimate_table(jobs, config, sizes, calib, headroom=args.headroom)
    print(f"# {args.configfile}: estimate in {time.perf_counter() - t0:.0f} s")
    print(format_table(table, calib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
