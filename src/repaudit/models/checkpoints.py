"""Checkpoints named by URL, and torchvision-layout ResNet state dicts for timm.

A ``checkpoint`` cell of the models sheet is a local path or a URL (``https://``, ``http://``,
``file://``) pinned by its SHA-256 as a fragment, the convention pip uses for hashes:
``https://host/resnet50.pth#sha256=<64 hex>``. ``tools/prefetch_weights.py`` downloads each URL
once into the cache (``$REPAUDIT_CHECKPOINT_CACHE``, default ``~/.cache/repaudit/checkpoints``)
and verifies it; jobs never touch the network and re-verify the cached file before loading it,
so a truncated or replaced file fails with both hashes rather than loading other weights.

A URL without a hash is trusted on first use: prefetch records the downloaded file's hash beside
it (``<file>.sha256``) and prints it for the sheet; loads then verify against that record.

The self-supervised ResNet-50 releases (Barlow Twins, arXiv 2103.03230; VICReg, arXiv
2105.04906; SimCLR ports, arXiv 2002.05709) ship torchvision's ``ResNet`` state dict, sometimes
under ``module.``/``backbone.``/``encoder.`` and beside projector or classifier heads. timm's
``resnet50`` uses torchvision's parameter names (``conv1``, ``bn1``, ``layerN.i.convK``,
``downsample.0/1``; timm's own ``resnet50.tv_in1k`` *is* torchvision's file), so the mapping is
choosing the prefix and dropping what is not backbone; :func:`backbone_state` reports both.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

from repaudit.io import file_sha256

CACHE_ENV = "REPAUDIT_CHECKPOINT_CACHE"
SCHEMES = ("https", "http", "file")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Wrappers the SSL training scripts put around the backbone (DistributedDataParallel's
# ``module.`` is stripped first); tried in order, ties go to the earlier one.
BACKBONE_PREFIXES = ("", "backbone.", "encoder.")
# Keys outside the embedding: classifier heads and SSL projectors/predictors/prototypes.
HEAD_PREFIXES = (
    "fc.",
    "head.",
    "classifier.",
    "projector.",
    "projection_head.",
    "predictor.",
    "prototypes.",
    "neck.",
)


def is_url(checkpoint: str) -> bool:
    """Whether a sheet's ``checkpoint`` cell names a URL rather than a local path."""
    return urllib.parse.urlsplit(checkpoint).scheme.lower() in SCHEMES


def split_url(checkpoint: str) -> tuple[str, str]:
    """``(url, sha256)`` of ``url#sha256=<hex>``; sha256 is "" when the cell has no fragment.

    Raises ValueError for another scheme or fragment, or a hash that is not 64 hex digits.
    """
    parts = urllib.parse.urlsplit(checkpoint)
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(f"checkpoint URL {checkpoint!r} must start with one of {SCHEMES}")
    url = urllib.parse.urlunsplit(parts._replace(fragment=""))
    if not parts.fragment:
        return url, ""
    key, _, value = parts.fragment.partition("=")
    if key != "sha256" or not _SHA256.match(value.lower()):
        raise ValueError(
            f"checkpoint URL {checkpoint!r}: the fragment must be '#sha256=' and 64 hex digits"
        )
    return url, value.lower()


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$REPAUDIT_CHECKPOINT_CACHE``, else ``$XDG_CACHE_HOME/repaudit/checkpoints``."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "repaudit" / "checkpoints"


def cache_path(url: str, cache: str | os.PathLike | None = None) -> Path:
    """Where ``url`` (fragment ignored) is cached: ``<cache>/<url hash 16>-<file name>``.

    The URL's hash keeps apart releases that share a file name (every one is ``resnet50.pth``).
    """
    url, _ = split_url(url)
    name = Path(urllib.parse.urlsplit(url).path).name or "checkpoint"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(cache if cache is not None else cache_dir()) / f"{key}-{name}"


def verify(path: str | os.PathLike, expected: str, source: str = "") -> str:
    """The file's SHA-256; ValueError naming both hashes when it is not ``expected``."""
    actual = file_sha256(path)
    if actual != expected.lower():
        raise ValueError(
            f"sha256 mismatch for {source or path}: expected {expected.lower()}, got {actual} "
            f"({path}); delete the file and prefetch again, or fix the sheet's hash"
        )
    return actual


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def fetch(checkpoint: str, cache: str | os.PathLike | None = None, timeout: float = 60) -> Path:
    """Download ``url[#sha256=...]`` into the cache, verify it, record its hash; the path.

    A cached file is re-verified, not downloaded again. The download goes to a temporary file in
    the cache directory and is renamed only once verified, so no partial file is ever cached.
    """
    url, expected = split_url(checkpoint)
    dest = cache_path(url, cache)
    record = _record_path(dest)
    if dest.is_file() and (expected or record.is_file()):
        verify(dest, expected or record.read_text().strip(), url)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, tmp, 1 << 20)
            tmp.close()
            actual = verify(tmp.name, expected, url) if expected else file_sha256(tmp.name)
            os.replace(tmp.name, dest)
            record.write_text(actual + "\n")
        finally:
            if os.path.exists(tmp.name):
                os.unlink(tmp.name)
    return dest


def resolve(checkpoint: str, cache: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(local path, sha256)`` for a sheet's ``checkpoint`` cell, verified for URLs.

    A local path is returned as is (sha256 ""). A URL must be in the cache: missing is a
    FileNotFoundError that says to run prefetch; a hash mismatch (against the sheet's hash, or
    the one recorded at first download) is a ValueError naming both.
    """
    if not is_url(checkpoint):
        return checkpoint, ""
    url, expected = split_url(checkpoint)
    path = cache_path(url, cache)
    record = _record_path(path)
    if not path.is_file() or not (expected or record.is_file()):
        raise FileNotFoundError(
            f"checkpoint {url} is not in the cache ({path}); run "
            f"'python tools/prefetch_weights.py <models sheet>' with ${CACHE_ENV} set as for "
            "this run"
        )
    return str(path), verify(path, expected or record.read_text().strip(), url)


def _strip_module(key: str) -> str:
    while key.startswith("module."):
        key = key.removeprefix("module.")
    return key


def backbone_state(
    state_dict: Mapping, own_keys: Iterable[str]
) -> tuple[dict, list[str], list[str], list[str]]:
    """Map a checkpoint's state dict onto a model's keys: ``(state, dropped, missing, unexpected)``.

    ``module.`` (DataParallel) is stripped; the prefix in :data:`BACKBONE_PREFIXES` under which
    most keys are the model's own is the backbone. Keys outside it, and head keys
    (:data:`HEAD_PREFIXES`) inside it, are ``dropped``; other keys inside it that the model lacks
    are ``unexpected``. ``missing`` lists the model's keys the state lacks, except BatchNorm's
    ``num_batches_tracked`` counters, which some releases omit and inference never reads.
    """
    own = set(own_keys)
    state = {_strip_module(k): v for k, v in state_dict.items()}

    def fits(prefix: str) -> int:
        return sum(k.startswith(prefix) and k[len(prefix) :] in own for k in state)

    prefix = max(BACKBONE_PREFIXES, key=fits)
    kept, dropped, unexpected = {}, [], []
    for key, value in state.items():
        name = key[len(prefix) :] if key.startswith(prefix) else None
        if name in own:
            kept[name] = value
        elif name is None or name.startswith(HEAD_PREFIXES):
            dropped.append(key)
        else:
            unexpected.append(key)
    missing = sorted(k for k in own - kept.keys() if not k.endswith("num_batches_tracked"))
    return kept, dropped, missing, unexpected
