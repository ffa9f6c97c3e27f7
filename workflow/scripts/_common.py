"""Plumbing shared by the workflow scripts: log redirection, threads, model specs."""

import logging
import signal
import sys


def start(snakemake) -> logging.Logger:
    """Send stdout/stderr (tqdm included) and logging to the rule's log; set torch threads."""
    # SIGTERM (Ctrl-C, scancel, a killed snakemake) unwinds like an exception, so atomic
    # writers remove their temporary files instead of leaving them behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log = open(snakemake.log[0], "w", buffering=1)
    sys.stdout = sys.stderr = log
    logging.basicConfig(
        stream=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    try:  # the stats and plots envs have no torch
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(max(1, int(snakemake.threads)))
    return logging.getLogger(snakemake.rule)


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
