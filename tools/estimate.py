"""Compute estimate of a config: `make estimate CONFIG=config/paper/<x>.yaml`.

Plans the config's jobs with a Snakemake dry run (in a scratch copy of the workflow with empty
stand-in data folders, so no dataset is needed), calibrates each architecture of the config on the
CPU (repaudit.estimate.calibrate: FLOPs counted on the meta device, a subset timed), and prints
repaudit.estimate's table: per rule jobs, GPU- and CPU-hours, the longest job, peak host/GPU
memory, the rule's configured resources and a flag where the estimate exceeds them.

    python tools/estimate.py config/paper/uniformity.yaml [--headroom 1.0] [--batch 2]
        [--time-budget 30]
"""

from __future__ import annotations

import argparse
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

from repaudit.config import read_sheet as read_tsv  # noqa: E402
from repaudit.estimate import calibrate, dataset_sizes, estimate_table, format_table  # noqa: E402

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
    """The config's model sheet (comment lines skipped, `#sha256=` fragments kept)."""
    return read_tsv(ROOT / config["models"])


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configfile", type=Path)
    parser.add_argument(
        "--headroom", type=float, default=1.0, help="flag when estimate x this > limit"
    )
    parser.add_argument("--batch", type=int, default=2, help="images per timed forward batch")
    parser.add_argument(
        "--time-budget", type=float, default=30.0, help="seconds of timed forwards (about)"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    config = yaml.safe_load(args.configfile.read_text())
    try:  # a one-line ``config error`` for a dataset size or hf model the estimate lacks
        sizes = dataset_sizes(config)
        jobs = planned_jobs(args.configfile, config)
        calib = calibrate(config, read_sheet(config), args.batch, args.time_budget)
    except ValueError as err:
        sys.exit(str(err))
    table = estimate_table(jobs, config, sizes, calib, headroom=args.headroom)
    print(f"# {args.configfile}: estimate in {time.perf_counter() - t0:.0f} s")
    print(format_table(table, calib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
