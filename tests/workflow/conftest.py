"""Fixtures that run the tiny workflow once per test session, in a copy of the repository."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TRACKED = ("Snakefile", "workflow", "config", "envs", "src", "notebooks", "pyproject.toml")


# The Slurm executor plugin runs `scontrol show config` whenever Snakemake starts; where Slurm
# is installed but not running (after test_slurm stopped its cluster) that call waits 9 s. Local
# runs find this stub first on PATH instead, which fails at once (the plugin then skips it).
NO_SLURM = Path(tempfile.mkdtemp(prefix="repaudit-no-slurm-"))
(NO_SLURM / "scontrol").write_text("#!/bin/sh\nexit 1\n")
(NO_SLURM / "scontrol").chmod(0o755)


def snakemake_env(slurm: bool = False) -> dict:
    """The environment of a Snakemake run: the venv first on PATH; Slurm's tools only if asked."""
    path = [str(BIN), *([] if slurm else [str(NO_SLURM)]), os.environ["PATH"]]
    env = dict(os.environ, PATH=os.pathsep.join(path))
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
    """The whole tiny workflow (config/test.yaml) run locally, plus its report.

    Computed once per pytest run: under pytest-xdist the workers share the run's temporary
    directory, the first worker to ask computes it under a file lock, and the others wait for it
    and read it (tests only read it, or copy it).
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the directory above every worker's own
    work, done = root / "tiny" / "repo", root / "tiny" / "done"
    work.parent.mkdir(exist_ok=True)
    with open(root / "tiny.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(work, ignore_errors=True)  # a worker that failed before us
            copy_repo(work)
            snakemake(work, "--cores", "2", "--configfile", "config/test.yaml")
            snakemake(work, "--cores", "1", "--configfile", "config/test.yaml",
                      "--report", "results/report.html")  # fmt: skip
            done.touch()
    return work
