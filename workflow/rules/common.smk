import os
import sys
from pathlib import Path

# The library lives in src/: importable here and, through PYTHONPATH, in every job's script
# (in the venv, under --sdm conda, and inside Slurm jobs, which inherit the environment).
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)
# All rules run on one thread by default, and jobs side by side. At the embedded default's
# scale, two 2-thread jobs on 2 cores (or one beside a 1-thread job) oversubscribe the cores,
# and OpenMP barriers then made small solves (sklearn's lbfgs) 25x slower here. Give heavy
# rules more through the config's `resources: {<rule>: {cpus: N}}` (the paper configs do).
# Idle OpenMP threads sleep instead of spinning: with jobs sharing cores, spinning made
# torch 4-10x slower here (measured on the Jacobian benchmark).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from repaudit.config import (
    ANALYSES,
    NETWORK_ONLY,
    ConfigError,
    dataset_models,
    embeddings_sources,
    load_models,
    random_controls,
    select_models,
    skipped_analyses,
    validate_config,
)

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"


def section_models(section):
    """Replicates an analysis runs on: its ``models`` key (ids or patterns), else every model.

    Pairwise analyses and UMAP grow fastest with the zoo, so configs may limit them.
    """
    names = (config.get(section) or {}).get("models")
    return select_models(names, MODELS, f"{section}.models")


try:
    validate_config(config, SCHEMAS / "config.schema.yaml")
    # training seeds: each zoo/random row is one replicate per seed (ids <row>_s<seed>)
    TRAIN_SEEDS = config["train_seeds"] or [config["seed"]]
    # datasets of kind embeddings: features computed elsewhere, their folders are models too
    EMBEDDINGS = embeddings_sources(config)
    MODELS = load_models(
        config, SCHEMAS / "models.schema.yaml", TRAIN_SEEDS, EMBEDDINGS
    )
    # the replicates each analysis runs on (its ``models`` key)
    ANALYSIS_MODELS = {section: section_models(section) for section in ANALYSES}
except ConfigError as err:
    sys.exit(str(err))
# the models with features on each dataset, and what embeddings models cannot run (no network)
DATASET_MODELS = dataset_models(config, MODELS, EMBEDDINGS)
SKIPPED = skipped_analyses(config, ANALYSIS_MODELS, EMBEDDINGS)
if SKIPPED:
    print(
        f"note: {len(SKIPPED)} analysis runs need the network and skip embeddings models; "
        "see results/tables/skipped.tsv",
        file=sys.stderr,
    )

MODEL_IDS = MODELS["model_id"].tolist()
ZOO = MODELS.loc[MODELS["weights"] == "zoo", "model_id"].tolist()
# trained zoo model -> its architecture's random-init control (linear-probe margins)
RANDOM_CONTROLS = random_controls(MODELS)
DATASETS = list(config["datasets"])
# embeddings have no images to fine-tune on (listed in SKIPPED)
FINETUNE = [
    d for d in config.get("finetune", {}).get("datasets", []) if d not in EMBEDDINGS
]
if ZOO and "pretrain" not in config:
    sys.exit(
        f"config error: zoo models {ZOO} need a 'pretrain' section (see config/README.md)"
    )


wildcard_constraints:
    model="|".join(MODEL_IDS),
    dataset="|".join(DATASETS),
    stage="pretrained|" + "|".join(f"finetuned_{d}" for d in FINETUNE),
    figure="[a-z_]+",


# ---------------------------------------------------------------- resources
# Every rule's requests come from the config's `resources` section (repaudit.resources holds
# the defaults). They are resources and threads, never params, so editing them reruns nothing.
# The Slurm plugin turns them into sbatch --mem, -t, --gpus and --cpus-per-task. (Snakemake's
# lint reads the word rule, a space, then a colon later on one line as a rule definition.)


def job_resources(rule):
    """``resources:`` of ``rule``: mem_mb and runtime x attempt on retries, gpu when > 0."""
    from repaudit.resources import at_attempt, rule_resources

    wanted = rule_resources(config, rule)
    # Snakemake calls these with the job's attempt (1, then 2, ... on --retries)
    grown = {
        key: lambda wildcards, attempt, key=key: at_attempt(wanted[key], key, attempt)
        for key in ("mem_mb", "runtime")
    }
    return {**grown, **({"gpu": wanted["gpu"]} if wanted["gpu"] else {})}


def job_threads(rule):
    """``threads:`` of ``rule``: its configured cpus (Snakemake caps them at --cores)."""
    from repaudit.resources import rule_resources

    return rule_resources(config, rule)["cpus"]


# ---------------------------------------------------------------- sheets and parameters
# Snakemake reruns a job whose params changed, comparing their repr. So a rule's params hold
# only what changes its output, with dict keys sorted: a reordered config reruns nothing, and
# keys that only choose jobs (which become inputs and outputs) rerun nothing either.

# Keys that choose datasets, stages or models to run on, not what a job computes.
SELECTION_KEYS = ("dataset", "datasets", "stages", "models")


def canonical(value):
    """``value`` with every mapping's keys sorted (the repr Snakemake compares is then stable)."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def section_params(section, keys=None, drop=()):
    """The part of ``config[section]`` that changes a job's output, in canonical form.

    ``keys``: the keys the rule reads; by default all but the selection keys and ``drop``.
    None when the section is absent (its rules then have no jobs).
    """
    if section not in config:
        return None
    params = config[section]
    if keys is None:
        keys = [k for k in params if k not in SELECTION_KEYS and k not in drop]
    return canonical({k: params[k] for k in keys})


def get_model_row(wildcards):
    return canonical(MODELS.loc[wildcards.model].to_dict())


def train_seed(wildcards):
    """A replicate's training seed; fixed-weight models (hub, checkpoint) use the run's seed."""
    seed = MODELS.loc[wildcards.model, "seed"]
    return int(seed) if seed != "" else config["seed"]


def get_dataset_spec(wildcards):
    return canonical(config["datasets"][wildcards.dataset])


def figure_params(wildcards):
    """Only the config values the figure shows: editing anything else reruns no figure."""
    from repaudit.figures import figure_config

    return canonical(figure_config(wildcards.figure, config))


def stages(dataset):
    """Stages whose features exist for ``dataset``: fine-tuned ones only on their own data."""
    return ["pretrained"] + ([f"finetuned_{dataset}"] if dataset in FINETUNE else [])


# ---------------------------------------------------------------- input functions


def pretrain_data():
    return (
        f"results/data/{config['pretrain']['dataset']}.h5"
        if "pretrain" in config
        else []
    )


def get_pretrained_weights(wildcards):
    """Zoo models read the pipeline's checkpoint; hub/checkpoint/random rows need no file."""
    if wildcards.model in ZOO:
        return f"results/models/{wildcards.model}/pretrained.pt"
    return []


def get_stage_weights(wildcards):
    if wildcards.stage == "pretrained":
        return get_pretrained_weights(wildcards)
    return f"results/models/{wildcards.model}/{wildcards.stage}.pt"


def image_data(wildcards):
    """The dataset's images; none for embeddings (geometry then runs without alignment)."""
    if wildcards.dataset in EMBEDDINGS:
        return []
    return f"results/data/{wildcards.dataset}.h5"


def one_of(names):
    """A wildcard regex matching exactly ``names`` (none: a regex that matches nothing)."""
    return "|".join(names) or "(?!)"


def embeddings_files(wildcards):
    """The files an embeddings model's features are imported from (reruns when they change)."""
    return [str(p) for p in EMBEDDINGS[wildcards.dataset].files(wildcards.model)]


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
        for m in DATASET_MODELS[d]
        for s in stages(d)
    ]


def runs_on(section, dataset):
    """Models ``section`` runs on for ``dataset``: selected, with features there, and, for
    analyses that need the network, no embeddings model (those are in SKIPPED)."""
    if (
        section in NETWORK_ONLY
        and NETWORK_ONLY[section][0] == "all"
        and dataset in EMBEDDINGS
    ):
        return []
    return [m for m in ANALYSIS_MODELS[section] if m in DATASET_MODELS[dataset]]


def section_models_on(section):
    """Params function: the models of a pairwise ``section`` on the job's dataset."""
    return lambda wildcards: runs_on(section, wildcards.dataset)


def stage_features(section):
    """Input function: the features of ``section``'s models at the job's dataset and stage."""

    def files(wildcards):
        return [
            f"results/features/{wildcards.dataset}/{m}/{wildcards.stage}.h5"
            for m in runs_on(section, wildcards.dataset)
        ]

    return files


def get_stage_memberships(wildcards):
    return [
        f"results/concepts/{wildcards.dataset}/{m}/{wildcards.stage}.h5"
        for m in runs_on("concepts", wildcards.dataset)
    ]


def section_stages(section, dataset):
    """Stages an analysis runs on: its ``stages`` key, else every stage of the dataset."""
    wanted = config[section].get("stages")
    return [s for s in stages(dataset) if wanted is None or s.split("_")[0] in wanted]


def per_model(family, section):
    if section not in config:
        return []
    return [
        f"results/metrics/{family}/{d}/{m}/{s}.tsv"
        for d in config[section]["datasets"]
        for m in runs_on(section, d)
        for s in section_stages(section, d)
    ]


def per_stage(family, section):
    if section not in config:
        return []
    return [
        f"results/metrics/{family}/{d}/{s}.tsv"
        for d in config[section]["datasets"]
        for s in section_stages(section, d)
    ]


def metric_tables():
    """Every per-job metric table that collect_metrics concatenates (absent sections skip)."""
    tables = [
        f"results/metrics/training/{d}/{m}/{s}.tsv"
        for d in FINETUNE
        for m in DATASET_MODELS[d]
        for s in stages(d)
    ]
    tables += per_model("geometry", "geometry")
    tables += per_model("convexity", "convexity")
    tables += per_model("euclidean_convexity", "euclidean_convexity")
    tables += per_model("sensitivity", "sensitivity")
    tables += per_model("binding", "binding")
    tables += per_model("concepts", "concepts")
    tables += per_stage("relative", "relative")
    tables += per_stage("stitching", "stitching")
    tables += per_stage("concept_alignment", "concepts")
    if "uniformity_study" in config:
        tables.append("results/metrics/uniformity/synthetic.tsv")
    return tables


def figure_files():
    from repaudit.figures import available

    return [f"results/figures/{name}.svg" for name in available(config)]


def final_outputs():
    return [
        "results/stats/claims.tsv",
        "results/stats/replication.tsv",
        "results/stats/replication.svg",
        "results/stats/reliability.svg",
        *feature_files(),
        *figure_files(),
        *probe_margin_files(),
        *(["results/tables/skipped.tsv"] if SKIPPED else []),
    ]


def probe_margin_files():
    return (
        [f"results/stats/probe_margins_{d}.tsv" for d in FINETUNE]
        if RANDOM_CONTROLS
        else []
    )


def probe_margin_models():
    """Models of the probe-margin test: each trained zoo model with a control, then the controls."""
    return list(dict.fromkeys([*RANDOM_CONTROLS, *RANDOM_CONTROLS.values()]))


def claim_ids():
    import yaml

    with open(config["claims"]["registry"]) as f:
        return [c["id"] for c in yaml.safe_load(f)["claims"]]
