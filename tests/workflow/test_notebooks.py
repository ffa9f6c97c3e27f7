"""The audit notebooks run top to bottom on the tiny workflow's results and write nothing.

Each notebook is executed in memory with nbclient (never saved), with the working directory at
the tiny run's repository copy and ``REPAUDIT_RESULTS`` pointing to its results. The kernel is
this interpreter (the venv's python), declared by a kernel spec written to a temporary folder
and passed to the kernel manager directly, so no kernel is registered anywhere and a spec in
``~/.local/share/jupyter`` cannot shadow it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

pytestmark = pytest.mark.workflow

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAPERS = {  # notebook -> the arXiv id its introduction must cite
    "geometry_vs_binding": "2602.03282",
    "relative_representations": "2209.15430",
    "concept_alignment": "2412.06639",
    "convexity": "2305.17154",
    "wasserstein_uniformity": "2403.00642",
}


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory) -> str:
    """A folder holding one kernel spec, ``python3``, that runs this interpreter."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "python3"
    spec.mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (repaudit venv)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return str(root)


def run_notebook(path: Path, cwd: Path, results: Path, kernel_dirs: str) -> nbformat.NotebookNode:
    """Execute ``path`` in memory (the file is not rewritten); raise on the first error."""
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernel_dirs])
    )
    client = NotebookClient(
        nb, km=km, timeout=600, allow_errors=False, resources={"metadata": {"path": str(cwd)}}
    )
    env = {**os.environ, "REPAUDIT_RESULTS": str(results)}
    env.pop("PYTHONPATH", None)
    client.execute(env=env)
    return nb


def snapshot(root: Path, *, content: bool) -> dict[str, tuple]:
    """Every file under ``root`` with its size and mtime (and SHA-256 when ``content``)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or "__pycache__" in p.parts:
            continue
        st = p.stat()
        key = (st.st_size, st.st_mtime_ns)
        if content:
            key += (hashlib.sha256(p.read_bytes()).hexdigest(),)
        out[str(p.relative_to(root))] = key
    return out


def outputs(nb: nbformat.NotebookNode, kind: str) -> list:
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return [o for c in cells for o in c.outputs if kind in o.get("data", {})]


def test_notebooks_are_committed_clean():
    """Five notebooks, python3 kernel, no outputs, each citing its paper."""
    assert {p.stem for p in NOTEBOOKS} == set(PAPERS)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3", path.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name
        assert f"arXiv:{PAPERS[path.stem]}" in nb.cells[0].source, path.name
        text = "".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "REPAUDIT_RESULTS" in text and "to_csv" not in text and "savefig" not in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_tiny_results(path, tiny_run, kernel_dirs):
    results = tiny_run / "results"
    before = snapshot(results, content=True)
    tree_before = snapshot(tiny_run, content=False)
    nb = run_notebook(path, tiny_run, results, kernel_dirs)
    assert snapshot(results, content=True) == before, "the notebook changed results/"
    assert snapshot(tiny_run, content=False) == tree_before, "the notebook wrote a file"
    assert outputs(nb, "image/png"), "no figure was drawn"
    claims = [o["data"]["text/markdown"] for o in outputs(nb, "text/markdown")]
    assert any("***" in text for text in claims), "no claim verdicts were shown"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_tolerates_missing_results(path, tmp_path, kernel_dirs):
    """No metrics table and no claims: notes instead of errors."""
    (tmp_path / "results").mkdir()
    nb = run_notebook(path, tmp_path, tmp_path / "results", kernel_dirs)
    notes = [o["data"]["text/markdown"] for o in outputs(nb, "text/markdown")]
    assert any("does not exist" in text for text in notes)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["results"]
