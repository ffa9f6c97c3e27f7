import os

# Deterministic, quiet CPU runs everywhere in the tests.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TIMM_FUSED_ATTN", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see workflow/rules/common.smk


def pytest_collection_modifyitems(config, items):
    """Groups and order for `make test`'s pytest-xdist run (`-n auto --dist loadgroup`).

    Tests that use the session's tiny run form one group (one worker computes the run once);
    each other workflow module is a group (its module fixture is built once); unit tests are
    free. The tiny-run group goes first so that this long chain starts at once, and the Slurm
    test goes last in it: once Slurm is installed and stopped, the Slurm executor plugin's
    import-time `scontrol show config` waits about 9 s in every later Snakemake start.
    """
    import pytest

    def group(item):
        if "tiny_run" in item.fixturenames:
            return "tiny_run"
        if item.path.parent.name == "workflow":
            return item.path.stem
        return None

    def order(item):
        name = group(item)
        return (name != "tiny_run", name is None, item.path.stem == "test_slurm")

    for item in items:
        if name := group(item):
            item.add_marker(pytest.mark.xdist_group(name))
    items.sort(key=order)  # stable: collection order within each key
