#!/usr/bin/env python
"""Pre-fetch the timm weights of encoder sheets, for clusters whose compute nodes are offline.

Run it once on a machine with internet (a login node) for the sheets you will use. Weights land in
the Hugging Face cache ($HF_HOME, default ~/.cache/huggingface); the few tags that timm serves from
a plain URL instead (e.g. vit_huge_patch14_gap_224.in1k_ijepa) land in the torch hub cache
($TORCH_HOME, default ~/.cache/torch). Put both on a filesystem the compute nodes see, then run
every job with HF_HUB_OFFLINE=1 so that none of them tries the network:

    export HF_HOME=/shared/$USER/hf TORCH_HOME=/shared/$USER/torch
    python tools/prefetch_weights.py config/paper/*_models.tsv
    HF_HUB_OFFLINE=1 python tools/prefetch_weights.py config/paper/*_models.tsv  # cache-only check
    HF_HUB_OFFLINE=1 snakemake --workflow-profile workflow/profiles/slurm --configfile ...

Arguments are encoder sheets (models.tsv) or config files (.yaml/.yml, whose ``models`` key names
the sheet). ``hub`` rows are fetched as ``timm.create_model(f"{architecture}.{tag}",
pretrained=True, num_classes=0, **kwargs)``, the call the pipeline makes. ``checkpoint`` rows
whose cell is a URL (``https://...#sha256=<hex>``) are downloaded into the checkpoint cache
($REPAUDIT_CHECKPOINT_CACHE, default ~/.cache/repaudit/checkpoints; ``--cache-dir`` overrides) and
their SHA-256 verified; a URL without a hash is trusted on first use: its hash is recorded beside
the file (jobs verify against it) and printed, to pin in the sheet. ``zoo``, ``random`` and local
``checkpoint`` rows need nothing. Jobs read the same cache, so export the same variable for them.

``--dry-run`` prints the tagged names, then the URLs, one per line, and touches no network. A name
timm does not list in ``timm.list_pretrained()``, or a malformed URL, stops the script before any
download (exit status 2); a failed download or hash mismatch is reported and the others go on
(exit status 1).

``hf`` rows (Hugging Face transformers models: ``architecture`` the id, ``tag`` the pinned
revision) are fetched with ``huggingface_hub.snapshot_download(id, revision=tag)`` (configs
and PyTorch weights only) into the same Hugging Face cache, and listed by ``--dry-run`` as
``id@revision`` after the others; rows naming a local folder need nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from repaudit.config import read_sheet
from repaudit.models.checkpoints import CACHE_ENV, cache_dir, fetch, is_url, split_url


def sheet_path(path: Path) -> Path:
    """The models sheet a command-line argument names (a sheet, or a config's ``models``)."""
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        config = yaml.safe_load(path.read_text()) or {}
        if "models" not in config:
            raise ValueError(f"{path}: no 'models' key; pass the models sheet instead")
        return Path(config["models"])
    return path


def hub_rows(sheet: Path) -> list[tuple[str, dict]]:
    """``(architecture.tag, kwargs)`` of every ``hub`` row, read as repaudit.config does."""
    if not sheet.is_file():
        raise ValueError(f"models sheet {str(sheet)!r} does not exist")
    df = read_sheet(sheet)
    missing = {"model_id", "architecture", "weights"} - set(df.columns)
    if missing:
        raise ValueError(f"{sheet}: missing column(s) {sorted(missing)}")
    rows = []
    for _, row in df.iterrows():
        if row["weights"] != "hub":
            continue
        tag = row.get("tag", "").strip()
        if not tag:
            raise ValueError(f"{sheet} ({row['model_id']!r}): weights 'hub' needs a pinned 'tag'")
        text = row.get("kwargs", "").strip()
        kwargs = json.loads(text) if text else {}
        if not isinstance(kwargs, dict):
            raise ValueError(f"{sheet} ({row['model_id']!r}): kwargs {text!r} is not a JSON object")
        rows.append((f"{row['architecture']}.{tag}", kwargs))
    return rows


def url_rows(sheet: Path) -> list[str]:
    """The ``checkpoint`` cells of ``checkpoint`` rows that are URLs, checked for syntax."""
    df = read_sheet(sheet)
    if "checkpoint" not in df.columns:
        return []
    urls = []
    for _, row in df[df["weights"] == "checkpoint"].iterrows():
        cell = row["checkpoint"].strip()
        if is_url(cell):
            try:
                split_url(cell)
            except ValueError as err:
                raise ValueError(f"{sheet} ({row['model_id']!r}): {err}") from None
            urls.append(cell)
    return urls


def collect_urls(paths: list[Path]) -> list[str]:
    """Unique checkpoint URLs over all sheets, in first-seen order."""
    return list(dict.fromkeys(u for path in paths for u in url_rows(sheet_path(path))))


def fetch_urls(urls: list[str], cache: Path) -> list[str]:
    """Download and verify each URL into ``cache``; the ones that failed."""
    failed = []
    for cell in urls:
        url, expected = split_url(cell)
        try:
            path = fetch(cell, cache)
        except (OSError, ValueError) as err:  # report every failure, fetch the rest
            failed.append(url)
            print(f"FAILED {url}: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        if not expected:
            digest = path.with_name(path.name + ".sha256").read_text().strip()
            print(
                f"note: {url} has no sha256 in the sheet; trusted on first use and recorded: "
                f"pin it as {url}#sha256={digest}",
                file=sys.stderr,
            )
        print(url, flush=True)
    return failed


def collect(paths: list[Path]) -> list[tuple[str, dict]]:
    """Unique ``(name, kwargs)`` over all sheets, in first-seen order."""
    seen, out = set(), []
    for path in paths:
        for name, kwargs in hub_rows(sheet_path(path)):
            key = (name, json.dumps(kwargs, sort_keys=True))
            if key not in seen:
                seen.add(key)
                out.append((name, kwargs))
    return out


def hf_rows(sheet: Path) -> list[tuple[str, str]]:
    """``(model id, revision)`` of every ``hf`` row (Hugging Face transformers models); a row
    naming a local ``save_pretrained`` folder needs nothing."""
    import pandas as pd

    if not sheet.is_file():
        raise ValueError(f"models sheet {str(sheet)!r} does not exist")
    df = pd.read_csv(sheet, sep="\t", dtype=str, keep_default_na=False, comment="#")
    rows = []
    for _, row in df[df["weights"] == "hf"].iterrows():
        name, revision = row["architecture"].strip(), row.get("tag", "").strip()
        if Path(name).is_dir():
            continue
        if not revision:
            raise ValueError(
                f"{sheet} ({row['model_id']!r}): weights 'hf' needs a pinned revision in 'tag'"
            )
        rows.append((name, revision))
    return rows


def collect_hf(paths: list[Path]) -> list[tuple[str, str]]:
    """Unique ``(id, revision)`` of hf rows over all sheets, in first-seen order."""
    return list(dict.fromkeys(r for path in paths for r in hf_rows(sheet_path(path))))


# What AutoModel/AutoImageProcessor read: configs, PyTorch weights (not TF/Flax/ONNX copies).
HF_PATTERNS = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.txt"]


def fetch_hf(entries: list[tuple[str, str]]) -> list[str]:
    """``snapshot_download`` each id at its revision into the Hugging Face cache; the failures."""
    from huggingface_hub import snapshot_download

    failed = []
    for name, revision in entries:
        try:
            path = snapshot_download(name, revision=revision, allow_patterns=HF_PATTERNS)
        except Exception as err:  # report every failure, fetch the rest
            failed.append(f"{name}@{revision}")
            print(f"FAILED {name}@{revision}: {type(err).__name__}: {err}", file=sys.stderr)
        else:
            print(f"{name}@{revision}", flush=True)
            # the cache keeps each snapshot under its commit: a branch or tag names that commit
            commit = Path(path).name
            if commit != revision:
                print(f"  {name}: {revision} is commit {commit}; put it in the sheet's tag to pin")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="models sheets or config YAML files")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the timm names and URLs only; no network"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help=f"checkpoint cache for URL rows (default ${CACHE_ENV}, else "
        "~/.cache/repaudit/checkpoints); jobs must see the same directory",
    )
    args = parser.parse_args(argv)

    try:
        entries = collect(args.paths)
        hf = collect_hf(args.paths)
        urls = collect_urls(args.paths)
    except (ValueError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import timm
    from timm.models import get_pretrained_cfg

    known = set(timm.list_pretrained())
    unknown = sorted({name for name, _ in entries if name not in known})
    if unknown:
        print(
            f"error: timm {timm.__version__} has no pretrained weights named {unknown}; "
            "check the tag against timm.list_pretrained()",
            file=sys.stderr,
        )
        return 2

    names = list(dict.fromkeys(name for name, _ in entries))
    for name in names:
        cfg = get_pretrained_cfg(name)
        if cfg is not None and not cfg.hf_hub_id:
            print(f"note: {name} is served from a URL: cached under $TORCH_HOME", file=sys.stderr)
    if args.dry_run:
        print("\n".join([*names, *dict.fromkeys(split_url(u)[0] for u in urls)]))
        if hf:
            print("\n".join(f"{name}@{rev}" for name, rev in hf))
        return 0

    failed = []
    for name, kwargs in entries:
        try:
            timm.create_model(name, pretrained=True, num_classes=0, **kwargs)
        except Exception as err:  # report every failure, fetch the rest
            failed.append(name)
            print(f"FAILED {name}: {type(err).__name__}: {err}", file=sys.stderr)
        else:
            print(name, flush=True)
    failed += fetch_urls(urls, args.cache_dir or cache_dir())
    total = len(entries) + len(urls)
    failed += fetch_hf(hf)
    if failed:
        print(f"{len(failed)} of {total} failed: {failed}", file=sys.stderr)
        return 1
    print(f"{total} encoder(s) cached", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
