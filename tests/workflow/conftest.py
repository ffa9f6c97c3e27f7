"""Fixtures that run the tiny workflow once per test session, in a copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TRACKED = ("Snakefile", "workflow", "config", "envs", "src", "notebooks", "pyproject.toml")


def snakemake_env() -> dict:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    return env


def copy_repo(dest: Path) -> Path:
    """The workflow files of the repository (no results, no venv) under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in TRACKED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def copy_run(run: Path, dest: Path, outputs: list[str]) -> Path:
    """A new run directory with ``run``'s workflow files and some of its ``outputs``.

    The outputs keep their modification times and Snakemake's records of every job of ``run``
    (.snakemake/metadata) come along, so Snakemake takes the copied files as up to date and
    only plans what is missing: a test starts from the tiny run's data and models instead of
    computing them again.
    """
    dest.mkdir(parents=True)
    for name in TRACKED:
        if (run / name).is_dir():
            shutil.copytree(run / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (run / name).exists():
            shutil.copy2(run / name, dest / name)
    for output in outputs:
        (dest / output).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / output, dest / output)
    shutil.copytree(run / ".snakemake" / "metadata", dest / ".snakemake" / "metadata")
    return dest


def snakemake(cwd: Path, *args: str, timeout: int = 1800, check: bool = True):
    """Run the venv's snakemake in ``cwd``; on failure show the tail of its output and logs."""
    proc = subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=cwd,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        logs = (
            "\n".join(
                f"--- {p}\n{p.read_text()[-2000:]}"
                for p in sorted((cwd / "logs").rglob("*.log"))[-5:]
            )
            if (cwd / "logs").exists()
            else ""
        )
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-4000:]}\n{logs}")
    return proc


def job_counts(stdout: str) -> Counter:
    """Jobs per rule in a dry run's 'Job stats' table (empty when nothing is to be done)."""
    counts: Counter = Counter()
    if "Job stats:" not in stdout:
        return counts
    for line in stdout[stdout.index("Job stats:") :].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole tiny workflow (config/test.yaml) run locally, plus its report."""
    work = copy_repo(tmp_path_factory.mktemp("tiny") / "repo")
    snakemake(work, "--cores", "2", "--configfile", "config/test.yaml")
    snakemake(work, "--cores", "1", "--configfile", "config/test.yaml",
              "--report", "results/report.html")  # fmt: skip
    return work
