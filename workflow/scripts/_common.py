"""Plumbing shared by the workflow scripts: log redirection, threads, model specs."""

import logging
import os
import signal
import sys

# numba compiles its kernels afresh in every process unless they are cached on disk. One cache
# per working directory, beside Snakemake's state (.snakemake/numba-cache; deleting it only
# costs a recompile), that every job shares: UMAP, NN-descent and repaudit kernels then compile
# once per run, not once per job (~8 s of each concepts job), also when the environment is
# read-only. Set on import, as scripts import this module first: numba fixes the location of
# a cache=True function's cache when its module is imported. A user's NUMBA_CACHE_DIR wins.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.abspath(os.path.join(".snakemake", "numba-cache")))


def start(snakemake) -> logging.Logger:
    """Send stdout/stderr (tqdm included) and logging to the rule's log; limit threads."""
    # SIGTERM (Ctrl-C, scancel, a killed snakemake) unwinds like an exception, so atomic
    # writers remove their temporary files instead of leaving them behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log = open(snakemake.log[0], "w", buffering=1)
    sys.stdout = sys.stderr = log
    logging.basicConfig(
        stream=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    limit_threads(max(1, int(snakemake.threads)))
    return logging.getLogger(snakemake.rule)


def limit_threads(n: int) -> None:
    """Hold every thread pool of the job to its Snakemake threads.

    OpenBLAS, OpenMP and numba start one thread per core by default, and OpenBLAS's idle
    threads spin: two 1-thread jobs on two cores then fight for them (measured: a graph
    convexity job took 40 % more CPU time). Pools already loaded are limited now; libraries
    loaded later read the environment.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    numba = sys.modules.get("numba")
    if numba is None:
        os.environ["NUMBA_NUM_THREADS"] = str(n)
    else:  # a loaded numba refuses to compile once NUMBA_NUM_THREADS changes under it
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    # torch reads OMP_NUM_THREADS when it is imported; one loaded already is set here. Importing
    # it only to set its threads cost the jobs without torch (stats, plots, binding) ~1.7 s each.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def model_spec(snakemake):
    from repaudit.models.factory import ModelSpec

    return ModelSpec.from_row(snakemake.params.model)


def resume_settings(snakemake, section: str):
    """The resume file of an interrupted training job and its training parameters.

    The state lives beside the output (Snakemake deletes only outputs, so a rerun finds it).
    How often it is saved changes no result, so ``checkpoint_every`` comes from the config,
    not from params (Snakemake reruns jobs whose params change).
    """
    from pathlib import Path

    resume = Path(f"{snakemake.output.model}.resume.pt")
    train = {
        **snakemake.params.train,
        "checkpoint_every": snakemake.config[section]["checkpoint_every"],
    }
    return resume, train
