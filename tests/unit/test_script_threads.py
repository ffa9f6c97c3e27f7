"""workflow/scripts/_common.limit_threads: every thread pool of a job held to its threads.

Run in a fresh interpreter each: thread pools and numba's threading layer are process state.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"

PROGRAM = """
import sys
sys.path.insert(0, {scripts!r})
import numpy as np
{before}
from _common import limit_threads
limit_threads(1)
import numba, torch
from threadpoolctl import threadpool_info

@numba.njit(cache=True)
def total(x):
    s = 0.0
    for v in x:
        s += v
    return s

assert total(np.arange(4.0)) == 6.0  # compiles after the limit (the failure mode)
pools = [p["num_threads"] for p in threadpool_info()]
print(pools, torch.get_num_threads(), numba.get_num_threads())
"""


def run(before: str, tmp_path) -> str:
    program = tmp_path / "job.py"  # numba caches functions of files only
    program.write_text(PROGRAM.format(scripts=str(SCRIPTS), before=before))
    cache = tmp_path / f"cache{len(before)}"  # empty: the function compiles
    env = {"PATH": "/usr/bin:/bin", "NUMBA_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_pools_are_limited_whether_numba_loads_before_or_after(tmp_path):
    # metrics import numba (and torch) before start(); others load them later
    for before in ("import numba", "", "import numba, torch"):
        pools, torch_threads, numba_threads = run(before, tmp_path).rsplit(" ", 2)
        assert set(eval(pools)) == {1}, before
        assert torch_threads == "1" and numba_threads == "1", before


def test_numba_cache_defaults_to_the_working_directory(tmp_path):
    """Jobs share one numba cache under .snakemake/ of the working directory; a user's wins."""
    program = f"import os, sys; sys.path.insert(0, {str(SCRIPTS)!r}); import _common; "
    program += "print(os.environ['NUMBA_CACHE_DIR'])"
    for env, expected in (
        ({}, tmp_path / ".snakemake" / "numba-cache"),
        ({"NUMBA_CACHE_DIR": "/x"}, "/x"),
    ):
        out = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, check=True,
            cwd=tmp_path, env={"PATH": "/usr/bin:/bin", **env},
        )  # fmt: skip
        assert out.stdout.strip() == str(expected)
