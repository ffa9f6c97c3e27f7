"""Static checks of the conda envs (--sdm conda cannot run here: no conda channel is reachable).

Every rule names an env file that exists; every env is pinned and uses conda-forge + nodefaults;
each env provides every third-party package its rules' scripts import, directly or through the
repaudit modules they import.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

RULE = re.compile(r"^rule (\w+):", re.M)
CONDA = re.compile(r'conda:\s*\n\s*"([^"]+)"')
SCRIPT = re.compile(r'script:\s*\n\s*"([^"]+)"')
# import name -> distribution name in the env files
DIST = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow", "umap": "umap-learn",
        "matplotlib": "matplotlib-base"}  # fmt: skip
# installed with another pinned package of the env
PROVIDED_BY = {"torchvision": "torch", "safetensors": "timm", "threadpoolctl": "scikit-learn"}


def rules() -> dict[str, dict]:
    out = {}
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        text = smk.read_text()
        bodies = RULE.split(text)[1:]
        for name, body in zip(bodies[::2], bodies[1::2], strict=True):
            conda, script = CONDA.search(body), SCRIPT.search(body)
            out[name] = {
                "conda": (smk.parent / conda.group(1)).resolve() if conda else None,
                "script": (smk.parent / script.group(1)).resolve() if script else None,
            }
    return out


def _module_level(tree: ast.Module):
    """Import statements executed on import (not those deferred inside functions)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def third_party_imports(path: Path, seen: set[Path] | None = None, script=True) -> set[str]:
    """Third-party modules a script imports, following repaudit modules and _common.

    A script's own imports all count; in library modules only module-level imports do, since
    deferred imports run only when the function needing them is called by a script.
    """
    seen = set() if seen is None else seen
    if path in seen:
        return set()
    seen.add(path)
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree) if script else _module_level(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top == "repaudit":
                target = ROOT / "src" / Path(*name.split("."))
                for candidate in (target.with_suffix(".py"), target / "__init__.py"):
                    if candidate.exists():
                        found |= third_party_imports(candidate, seen, script=False)
            elif top == "_common":
                found |= third_party_imports(
                    ROOT / "workflow/scripts/_common.py", seen, script=False
                )
            elif top not in sys.stdlib_module_names and top != "snakemake":
                found.add(top)
    return found


def env_packages(path: Path) -> set[str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    names = set()
    for dep in deps:
        if isinstance(dep, dict):
            names |= {re.split(r"[=<>]", p)[0] for p in dep["pip"]}
        else:
            names.add(dep.split("=")[0].strip())
    return names


RULES = rules()


def test_every_rule_has_an_existing_env():
    assert RULES, "no rules found"
    for name, rule in RULES.items():
        assert rule["conda"] is not None, f"rule {name} has no conda: directive"
        assert rule["conda"].is_file(), f"rule {name}: {rule['conda']} does not exist"


@pytest.mark.parametrize("env", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_is_pinned(env):
    spec = yaml.safe_load(env.read_text())
    assert spec["channels"] == ["conda-forge", "nodefaults"]
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            assert all("==" in p for p in dep["pip"]), dep
        else:
            assert re.search(r"\s*=\s*\d", dep), f"{env.name}: {dep} is not pinned"


@pytest.mark.parametrize("rule", sorted(r for r in RULES if RULES[r]["script"]))
def test_env_provides_script_imports(rule):
    spec = RULES[rule]
    provided = env_packages(spec["conda"])
    for module in third_party_imports(spec["script"]):
        dist = PROVIDED_BY.get(module, DIST.get(module, module))
        assert dist in provided, f"rule {rule}: {module} ({dist}) missing from {spec['conda'].name}"
