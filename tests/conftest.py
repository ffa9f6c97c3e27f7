import os

# Deterministic, quiet CPU runs everywhere in the tests.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TIMM_FUSED_ATTN", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see workflow/rules/common.smk


def pytest_collection_modifyitems(config, items):
    """Test order for `make test`'s pytest-xdist run (`-n auto --dist loadfile
    --no-loadscope-reorder`: each file on one worker, files handed out in this order).

    Workflow files come first, those reading the session's tiny run first of all (the first
    worker to need it computes it, the others wait for it: tests/workflow/conftest.py), so that
    this long chain starts at once; the Slurm test comes last of the workflow files (it installs
    and starts Slurm). Unit tests fill the workers after.
    """
    tiny_files = {item.path for item in items if "tiny_run" in item.fixturenames}

    def order(item):
        workflow = item.path.parent.name == "workflow"
        return (not workflow, item.path.stem == "test_slurm", item.path not in tiny_files)

    items.sort(key=order)  # stable: collection order within each key
