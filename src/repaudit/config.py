"""Validation of ``config.yaml`` and ``models.tsv`` before any job runs.

Every problem becomes one :class:`ConfigError` line that names the bad value and the fix.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from io import StringIO
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from repaudit.data.embeddings import Embeddings, check_embeddings, scan_embeddings
from repaudit.models.objective_names import OBJECTIVE_ALIASES, OBJECTIVES

MODEL_ID = re.compile(r"^[a-z][a-z0-9_]*$")
MODEL_COLUMNS = (
    "model_id",
    "architecture",
    "weights",
    "tag",
    "checkpoint",
    "input_size",
    "family",
    "objective",
    "kwargs",
)


ANALYSES = (
    "geometry",
    "convexity",
    "euclidean_convexity",
    "sensitivity",
    "binding",
    "relative",
    "stitching",
    "concepts",
)


class ConfigError(ValueError):
    """A config or sheet problem, stated in one line with its fix."""


def _with_defaults(validator_class):
    """A validator that fills ``default`` values of missing properties (as Snakemake does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = sub["default"]
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _inline_refs(node, defs: dict):
    """Replace local ``#/$defs/x`` references by their targets, so defaults behind them fill."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _one_line(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"{where}: unknown key(s) {extra}; allowed keys are {allowed}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "required":
        return f"{where}: {error.message}; add it (see config/README.md)"
    return f"{where}: {error.message}"


def check_schema(instance, schema_path: str | Path, what: str = "config") -> None:
    """Validate ``instance`` in place against a YAML JSON schema, filling defaults.

    Raises :class:`ConfigError` with one line, ``"<what> error: <where>: <problem>"``.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    schema = _inline_refs(schema, schema.get("$defs", {}))
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(f"{what} error: {_one_line(best)}")


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Validate ``config`` in place against the JSON schema, filling defaults."""
    check_schema(config, schema_path)
    _check_references(config)
    return config


def _check_references(config: Mapping) -> None:
    """Cross-references a schema cannot express: dataset names and paths on disk."""
    datasets = config["datasets"]

    def need(name: str, where: str) -> None:
        if name not in datasets:
            raise ConfigError(
                f"config error: {where}: unknown dataset {name!r}; "
                f"define it under 'datasets' (defined: {sorted(datasets)})"
            )

    if "pretrain" in config:
        need(config["pretrain"]["dataset"], "pretrain.dataset")
        if datasets[config["pretrain"]["dataset"]]["kind"] == "embeddings":
            raise ConfigError(
                "config error: pretrain.dataset: pretraining needs images; name an image dataset"
            )
    finetune = config.get("finetune", {}).get("datasets", [])
    for d in finetune:
        need(d, "finetune.datasets")
    if any(datasets[d]["kind"] != "embeddings" for d in finetune) and "probe" not in config:
        raise ConfigError(
            "config error: <top level>: 'probe' is required with finetune (the linear probe on "
            "frozen embeddings is the pretrained stage's classifier); add it (see config/README.md)"
        )
    for d in config["features"]["datasets"]:
        need(d, "features.datasets")
    extracted = set(config["features"]["datasets"])
    for section in ANALYSES:
        for d in config.get(section, {}).get("datasets", []):
            need(d, f"{section}.datasets")
            if d not in extracted and section not in ("euclidean_convexity", "sensitivity"):
                raise ConfigError(
                    f"config error: {section}.datasets: {d!r} has no features; "
                    "add it to features.datasets"
                )
    for d in config.get("binding", {}).get("datasets", []):
        if datasets[d]["kind"] not in ("binding", "embeddings"):  # embeddings: skipped
            raise ConfigError(
                f"config error: binding.datasets: {d!r} is of kind {datasets[d]['kind']!r}; "
                "binding probes need a dataset of kind 'binding'"
            )
    if "stitching" in config and "relative" not in config:
        raise ConfigError("config error: stitching needs the 'relative' section (anchors)")
    for name, spec in datasets.items():
        root = spec.get("root")
        if spec["kind"] == "imagefolder" and not Path(root).is_dir():
            raise ConfigError(
                f"config error: datasets.{name}.root: image folder {root!r} does not exist; "
                "point it to a folder of class sub-folders"
            )
        if spec["kind"] == "torchvision" and not spec.get("download") and not Path(root).is_dir():
            raise ConfigError(
                f"config error: datasets.{name}.root: {root!r} does not exist; "
                "set the path, or 'download: true' to let torchvision fetch it"
            )
    for name, source in embeddings_sources(config).items():
        try:
            check_embeddings(source, required_layers=_compared_layers(config, name))
        except ValueError as err:
            raise ConfigError(f"config error: datasets.{name}.root: {err}") from None


def _compared_layers(config: Mapping, dataset: str) -> list[str]:
    """Layers the cross-model analyses of ``dataset`` compare: every model needs them."""
    layers = []
    for section, source, key in (
        ("relative", "relative", "layers"),
        ("stitching", "relative", "layers"),
        ("concepts", "concepts", "cross_model_layers"),
    ):
        if dataset in config.get(section, {}).get("datasets", []):
            layers += config[source].get(key, ["final"])
    return list(dict.fromkeys(layers))


# --------------------------------------------------------------------------- embeddings


def embeddings_sources(config: Mapping) -> dict[str, Embeddings]:
    """Every dataset of kind ``embeddings``, scanned: samples, model folders and their layers.

    Only listings and headers are read (the arrays are checked by :func:`validate_config`).
    """
    sources = {}
    for name, spec in config["datasets"].items():
        if spec["kind"] == "embeddings":
            try:
                sources[name] = scan_embeddings(spec["root"], spec.get("format", "auto"))
            except ValueError as err:
                raise ConfigError(f"config error: datasets.{name}.root: {err}") from None
    return sources


def embedding_models(sources: Mapping[str, Embeddings]) -> pd.DataFrame:
    """Model-table rows of the embeddings datasets' model folders, weights ``embeddings``.

    No network: architecture, family and objective come from a manifest.yaml where it has them
    (free text, for the statistics' design columns); a folder name in several datasets is one
    model (the same encoder's embeddings of other samples).
    """
    rows: dict[str, dict] = {}
    for source in sources.values():
        for model_id, model in source.models.items():
            meta = model.manifest
            rows.setdefault(
                model_id,
                {
                    **dict.fromkeys(MODEL_COLUMNS, ""),
                    "model_id": model_id,
                    "weights": "embeddings",
                    "tag": meta.get("name", ""),
                    **{k: meta.get(k, "") for k in ("architecture", "family", "objective")},
                    "cell": model_id,
                    "seed": "",
                },
            )
    return pd.DataFrame(list(rows.values()), columns=[*MODEL_COLUMNS, "cell", "seed"])


def load_models(
    config: Mapping,
    schema_path: str | Path,
    seeds: Sequence[int],
    sources: Mapping[str, Embeddings],
) -> pd.DataFrame:
    """The model table: the sheet's replicates (``models``, optional when every dataset the
    models run on is of kind embeddings), then the embeddings datasets' models, by ``model_id``.
    """
    frames = []
    if config.get("models"):
        frames.append(read_models(config["models"], schema_path, seeds).reset_index(drop=True))
    frames.append(embedding_models(sources))
    models = pd.concat(frames, ignore_index=True)
    if models.empty:
        raise ConfigError(
            "config error: no models: set 'models' (an encoder sheet) or add a dataset of kind "
            "'embeddings' (see config/README.md)"
        )
    _check_unique_ids(
        models,
        "model folder(s) {dup} of an embeddings dataset collide with sheet ids; rename the folders",
    )
    return models.set_index("model_id", drop=False)


def dataset_models(
    config: Mapping, models: pd.DataFrame, sources: Mapping[str, Embeddings]
) -> dict[str, list[str]]:
    """Models with features on each dataset: an embeddings dataset's own model folders; on
    an image dataset, every encoder but the embeddings models (which have no network to run)."""
    encoders = models.loc[models["weights"] != "embeddings", "model_id"].tolist()
    return {
        name: [m for m in models["model_id"] if m in sources[name].models]
        if name in sources
        else encoders
        for name in config["datasets"]
    }


#: Analyses that need the network or the images, not only features, and why: embeddings models
#: skip them (results/tables/skipped.tsv). Geometry runs, all but its alignment.
NETWORK_ONLY = {
    "geometry": (
        "alignment",
        "needs the encoder on two augmented views of each image; the other geometry metrics ran",
    ),
    "euclidean_convexity": (
        "all",
        "interpolates hidden states and runs them through the rest of the network and its head",
    ),
    "sensitivity": ("all", "differentiates the encoder with respect to its input images"),
    "binding": ("all", "needs the binding benchmark's images and their swap-pair metadata"),
    "finetune": (
        "all",
        "trains the encoder's weights on the images (and with it the linear probe of the "
        "pretrained stage)",
    ),
}


def skipped_analyses(
    config: Mapping, analysis_models: Mapping[str, Sequence[str]], sources: Mapping[str, Embeddings]
) -> list[dict]:
    """One row per (analysis, embeddings dataset, model) that needs the network, with why.

    ``analysis_models``: the models each analysis section selects (all for ``finetune``).
    Columns: dataset, model, stage, analysis, metrics (``all`` or the part skipped), reason.
    """
    rows = []
    for section, (metrics, reason) in NETWORK_ONLY.items():
        spec = config.get(section) or {}
        if section == "finetune":
            stage = "finetuned_{}"
        elif "pretrained" in spec.get("stages", ["pretrained"]):
            stage = "pretrained"  # embeddings have no other stage
        else:
            continue
        chosen = analysis_models.get(section)
        for d in (d for d in spec.get("datasets", []) if d in sources):
            for m in sources[d].models:
                if chosen is None or m in chosen:
                    row = {"dataset": d, "model": m, "stage": stage.format(d)}
                    rows.append({**row, "analysis": section, "metrics": metrics, "reason": reason})
    return rows


#: Weights trained or initialised by the pipeline: one replicate per training seed.
SEEDED_WEIGHTS = ("zoo", "random")


def read_sheet(path: str | Path) -> pd.DataFrame:
    """A TSV sheet as strings. Lines starting with ``#`` are comments; a ``#`` inside a cell is
    data (a checkpoint URL's ``#sha256=`` fragment), which pandas' ``comment`` would cut."""
    text = Path(path).read_text()
    lines = [line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#")]
    return pd.read_csv(StringIO("".join(lines)), sep="\t", dtype=str, keep_default_na=False)


def read_models(
    path: str | Path, schema_path: str | Path, seeds: Sequence[int] = (0,)
) -> pd.DataFrame:
    """Read and validate ``models.tsv``; return one row per replicate, indexed by ``model_id``.

    See :func:`replicate_models` for the replicates of ``seeds``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config error: models sheet {str(path)!r} does not exist; set 'models'")
    df = read_sheet(path)
    unknown = sorted(set(df.columns) - set(MODEL_COLUMNS))
    if unknown:
        raise ConfigError(
            f"config error: {path}: unknown column(s) {unknown}; allowed are {list(MODEL_COLUMNS)}"
        )
    for col in MODEL_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df["input_size"] = df["input_size"].replace("", "224")
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for i, row in df.iterrows():
        record = {k: v for k, v in row.items() if v != ""}
        size = record["input_size"]
        record["input_size"] = int(size) if size.isdigit() else size
        error = jsonschema.exceptions.best_match(validator.iter_errors(record))
        if error is not None:
            raise ConfigError(
                f"config error: {path} row {i + 2} ({row['model_id']!r}): {_one_line(error)}"
            )
    _check_unique_ids(df, f"{path}: duplicate model_id {{dup}}; ids must be unique")
    for _, row in df.iterrows():
        _check_model_row(row, path)
    models = replicate_models(df, seeds)
    _check_unique_ids(
        models,
        f"{path}: replicate ids {{dup}} collide with a sheet id; rename the row (ids "
        "ending in _s<seed> are the replicates' names)",
    )
    return models.set_index("model_id", drop=False)


def _check_unique_ids(models: pd.DataFrame, message: str) -> None:
    """One ConfigError line if ``model_id`` repeats; ``message`` formats the repeated ``{dup}``."""
    dup = models.loc[models["model_id"].duplicated(), "model_id"].tolist()
    if dup:
        raise ConfigError(f"config error: {message.format(dup=dup)}")


def replicate_models(sheet: pd.DataFrame, seeds: Sequence[int]) -> pd.DataFrame:
    """Each pipeline-trained row once per training seed, hub and checkpoint rows once.

    A replicate of sheet row ``resnet_sup`` under seed 1 is ``resnet_sup_s1``: the seed is in
    every path, so two seeds, or runs with different seeds, never overwrite each other.
    ``cell`` keeps the sheet id (the design cell the replicates share) and ``seed`` the
    training seed ("" for fixed weights, which have one replicate).
    """
    if len(seeds) == 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(
            f"config error: train_seeds: {list(seeds)} must be distinct, at least one"
        )
    rows = []
    for row in sheet.to_dict(orient="records"):
        if row["weights"] not in SEEDED_WEIGHTS:
            rows.append({**row, "cell": row["model_id"], "seed": ""})
            continue
        for seed in seeds:
            rows.append(
                {
                    **row,
                    "model_id": f"{row['model_id']}_s{seed}",
                    "cell": row["model_id"],
                    "seed": str(seed),
                }
            )
    return pd.DataFrame(rows, columns=[*sheet.columns, "cell", "seed"])


def _check_model_row(row: pd.Series, path: Path) -> None:
    from repaudit.models.checkpoints import is_url, split_url
    from repaudit.models.factory import check_architecture

    where = f"{path} ({row['model_id']!r})"
    if not MODEL_ID.match(row["model_id"]):
        raise ConfigError(
            f"config error: {where}: illegal model_id; use lower-case letters, digits and '_' "
            "(ids become file names; put the timm name in 'architecture')"
        )
    if row["weights"] != "hf":  # an hf row names a Hugging Face model, checked below
        try:
            check_architecture(row["architecture"])
        except ValueError as err:
            raise ConfigError(f"config error: {where}: {err}") from None
    try:
        kwargs = json.loads(row["kwargs"]) if row["kwargs"].strip() else {}
    except json.JSONDecodeError:
        kwargs = None
    if not isinstance(kwargs, dict):
        raise ConfigError(
            f"config error: {where}: kwargs {row['kwargs']!r} is not a JSON object; "
            'write e.g. {"img_size": 32}'
        )
    if row["weights"] == "hf":
        _check_hf_row(row, kwargs, where)
    if row["weights"] == "hub" and not row["tag"]:
        raise ConfigError(
            f"config error: {where}: weights 'hub' needs a pinned 'tag' (e.g. augreg_in1k)"
        )
    if row["weights"] == "checkpoint" and is_url(row["checkpoint"]):
        try:  # the file itself is fetched by tools/prefetch_weights.py, checked at load
            split_url(row["checkpoint"])
        except ValueError as err:
            raise ConfigError(f"config error: {where}: {err}") from None
    elif row["weights"] == "checkpoint" and not Path(row["checkpoint"]).is_file():
        raise ConfigError(
            f"config error: {where}: checkpoint {row['checkpoint']!r} does not exist; "
            "fix the path, give a URL, or use weights 'hub'"
        )
    if row["weights"] == "zoo" and row["objective"] not in OBJECTIVES + tuple(OBJECTIVE_ALIASES):
        raise ConfigError(
            f"config error: {where}: zoo models need an objective in "
            f"{list(OBJECTIVES + tuple(OBJECTIVE_ALIASES))}, got {row['objective']!r}"
        )


HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _check_hf_row(row: pd.Series, kwargs: dict, where: str) -> None:
    """An ``hf`` row names a Hugging Face id with a pinned revision, or a local model folder."""
    if kwargs.get("global_pool", "auto") not in ("auto", "token", "avg"):
        raise ConfigError(
            f"config error: {where}: kwargs global_pool must be auto, token or avg, "
            f"got {kwargs['global_pool']!r}"
        )
    name = row["architecture"]
    if Path(name).is_dir():
        if not (Path(name) / "config.json").is_file():
            raise ConfigError(
                f"config error: {where}: hf model folder {name!r} has no config.json "
                "(write it with save_pretrained)"
            )
        return
    if not HF_ID.match(name):
        raise ConfigError(
            f"config error: {where}: hf architecture {name!r} is neither a Hugging Face id "
            "('org/name') nor an existing model folder"
        )
    if not row["tag"]:
        raise ConfigError(
            f"config error: {where}: weights 'hf' needs the pinned revision (a commit hash) "
            "in 'tag'"
        )


def random_controls(models: pd.DataFrame) -> dict[str, str]:
    """Each trained zoo model's random-initialisation control, where the sheet has one.

    The control is the first ``random`` zoo row with the same architecture, input size, timm
    kwargs and training seed: the same network at the same seeded initialisation, never trained
    (see :func:`repaudit.models.zoo.pretrain_zoo`). Rows without one (hub, checkpoint) are absent.
    """
    zoo = models[models["weights"] == "zoo"].fillna({"kwargs": ""})
    key = ["architecture", "input_size", "kwargs", *(["seed"] if "seed" in zoo else [])]
    random = zoo[zoo["objective"] == "random"].drop_duplicates(key)
    trained = zoo[zoo["objective"] != "random"]
    pairs = trained.merge(random, on=key, suffixes=("", "_control"))
    return dict(zip(pairs["model_id"], pairs["model_id_control"], strict=True))


def select_models(names: Sequence[str] | None, models: pd.DataFrame, where: str) -> list[str]:
    """Replicate ids named by ``names``, in sheet order; None selects every model.

    A name is a sheet id (all its replicates), a replicate id, or a shell pattern over either
    (``vit_*_s0``: the ViTs' seed-0 replicates). A name that matches nothing is a ConfigError.
    """
    ids = models["model_id"].tolist()
    if names is None:
        return ids
    chosen = set()
    for name in names:
        hits = {
            m
            for m, cell in zip(ids, models["cell"], strict=True)
            if fnmatch.fnmatchcase(m, name) or fnmatch.fnmatchcase(cell, name)
        }
        if not hits:
            raise ConfigError(
                f"config error: {where}: {name!r} matches no sheet id or replicate id "
                f"(replicates are named like {ids[0]!r})"
            )
        chosen |= hits
    return [m for m in ids if m in chosen]
