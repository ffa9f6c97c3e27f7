"""The README's "The metrics as a library" examples run as written.

Each example is a ```python block whose first line is ``# example: <name>``; every block is
executed in a fresh namespace (its prints go to pytest's captured output).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## The metrics as a library"
# one per paper: Chung & Kim, Moschella et al., Vielhaben et al., Tětková et al., Fang et al.
NAMES = ["chung-kim", "moschella", "vielhaben", "tetkova", "fang"]


def examples() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.S)
    out = {}
    for block in blocks:
        match = re.match(r"# example: (\S+)\n", block)
        if match:
            out[match.group(1)] = block
    return out


def test_the_section_has_one_example_per_paper():
    assert list(examples()) == NAMES


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("name", NAMES)
def test_example_runs(name):
    code = examples()[name]
    exec(compile(code, f"README.md example {name!r}", "exec"), {"__name__": f"readme_{name}"})
