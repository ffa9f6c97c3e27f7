import os
import sys
from pathlib import Path

# The library lives in src/: importable here and, through PYTHONPATH, in every job's script
# (in the venv, under --sdm conda, and inside Slurm jobs, which inherit the environment).
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)

from repaudit.config import ConfigError, read_models, validate_config

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"
try:
    validate_config(config, SCHEMAS / "config.schema.yaml")
    MODELS = read_models(config["models"], SCHEMAS / "models.schema.yaml")
except ConfigError as err:
    sys.exit(str(err))

MODEL_IDS = MODELS["model_id"].tolist()
ZOO = MODELS.loc[MODELS["weights"] == "zoo", "model_id"].tolist()
DATASETS = list(config["datasets"])
FINETUNE = config["finetune"]["datasets"]


wildcard_constraints:
    model="|".join(MODEL_IDS),
    dataset="|".join(DATASETS),
    stage="pretrained|" + "|".join(f"finetuned_{d}" for d in FINETUNE),


# ---------------------------------------------------------------- sheets and parameters


def get_model_row(wildcards):
    return MODELS.loc[wildcards.model].to_dict()


def get_dataset_spec(wildcards):
    return config["datasets"][wildcards.dataset]


def stages(dataset):
    """Stages whose features exist for ``dataset``: fine-tuned ones only on their own data."""
    return ["pretrained"] + ([f"finetuned_{dataset}"] if dataset in FINETUNE else [])


# ---------------------------------------------------------------- input functions


def get_pretrained_weights(wildcards):
    """Zoo models read the pipeline's checkpoint; hub/checkpoint/random rows need no file."""
    if wildcards.model in ZOO:
        return f"results/models/{wildcards.model}/pretrained.pt"
    return []


def get_stage_weights(wildcards):
    if wildcards.stage == "pretrained":
        return get_pretrained_weights(wildcards)
    return f"results/models/{wildcards.model}/{wildcards.stage}.pt"


def get_stage_head(wildcards):
    """The classifier of a stage: the fine-tuned head, or the linear probe for pretrained."""
    if wildcards.stage == "pretrained":
        return f"results/models/{wildcards.model}/probe_{wildcards.dataset}.pt"
    return []


# ---------------------------------------------------------------- targets


def feature_files():
    return [
        f"results/features/{d}/{m}/{s}.h5"
        for d in config["features"]["datasets"]
        for m in MODEL_IDS
        for s in stages(d)
    ]


def metric_tables():
    """Every per-job metric table that collect_metrics concatenates."""
    tables = [
        f"results/metrics/training/{d}/{m}/{s}.tsv"
        for d in FINETUNE
        for m in MODEL_IDS
        for s in stages(d)
    ]
    return tables


def figure_files():
    return []


def final_outputs():
    return ["results/tables/metrics.tsv", *feature_files(), *figure_files()]
