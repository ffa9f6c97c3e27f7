import os

# Deterministic, quiet CPU runs everywhere in the tests.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TIMM_FUSED_ATTN", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see workflow/rules/common.smk


def pytest_collection_modifyitems(config, items):
    """Workflow tests first, and all on one xdist worker.

    `make test` runs pytest with two workers (`-n 2 --dist loadgroup`): the workflow tests share
    the session's tiny run, which must be computed once, so they form one group; and they go
    first, so that this long group starts at once while the other worker takes the unit tests.
    """
    import pytest

    workflow = [item for item in items if item.path.parent.name == "workflow"]
    for item in workflow:
        item.add_marker(pytest.mark.xdist_group("workflow"))
    others = [item for item in items if item.path.parent.name != "workflow"]
    items[:] = workflow + others
