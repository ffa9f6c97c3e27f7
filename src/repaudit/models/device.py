"""Where and in what precision the networks run, and the record of both.

:func:`resolve_device` turns the config's ``device`` into a torch device (``auto`` logs what it
picked; ``cuda`` without a visible GPU is an error). :class:`Precision` is the config's
``precision`` section: bf16 autocast (``amp``) and TF32 (``tf32``), both off by default, i.e.
float32 throughout. :func:`precision_scope` applies the TF32 choice for a block,
:func:`autocast` the AMP choice around forward passes, and :func:`runtime` is the provenance
record (device, device name, effective precision) that checkpoints, feature files and logs carry.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

__all__ = ["Precision", "autocast", "device_name", "precision_scope", "resolve_device", "runtime"]

log = logging.getLogger(__name__)


def resolve_device(name: str) -> str:
    """The torch device that a config's ``device`` names.

    ``cpu``; ``cuda`` or ``cuda:N`` (a GPU must be visible, else RuntimeError in one line naming
    the fix); ``auto``: ``cuda`` when a GPU is visible, else ``cpu``, and the choice is logged.
    """
    if not isinstance(name, str):
        raise ValueError(f"device must be a string (auto, cpu, cuda or cuda:N), got {name!r}")
    if name == "auto":
        chosen = "cuda" if torch.cuda.is_available() else "cpu"
        why = device_name(chosen) if chosen == "cuda" else "no CUDA GPU visible"
        log.info("device auto -> %s (%s)", chosen, why)
        return chosen
    if name == "cpu":
        return name
    kind, _, index = name.partition(":")
    if kind != "cuda" or not (index == "" or index.isdigit()):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device {name!r} but torch sees no CUDA GPU; set device: auto or cpu in the config, "
            "or run the job where a GPU is visible"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise RuntimeError(
            f"device {name!r} but torch sees {torch.cuda.device_count()} GPU(s); "
            f"use cuda:0..cuda:{torch.cuda.device_count() - 1} or auto"
        )
    return name


def device_name(device: str | torch.device) -> str:
    """The GPU's name (``torch.cuda.get_device_name``) for a CUDA device, else the device type."""
    dev = torch.device(device)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type


@dataclass(frozen=True)
class Precision:
    """The config's ``precision`` section; both off is float32 throughout.

    ``amp``: bf16 autocast of the networks' forward passes in training, evaluation and feature
    extraction (losses stay float32); on the CPU as well. ``tf32``: TF32 for float32 matmuls and
    cuDNN convolutions on CUDA (no effect on the CPU).
    """

    amp: bool = False
    tf32: bool = False

    @classmethod
    def of(cls, value: Precision | Mapping | None) -> Precision:
        """``value`` as a Precision: None (the default), a Precision, or ``{amp, tf32}``."""
        if value is None or isinstance(value, cls):
            return value or cls()
        if not isinstance(value, Mapping):
            raise ValueError(f"precision must be a mapping {{amp, tf32}}, got {value!r}")
        unknown = sorted(set(value) - {"amp", "tf32"})
        if unknown:
            raise ValueError(f"precision: unknown key(s) {unknown}; allowed keys are amp, tf32")
        bad = {k: v for k, v in value.items() if not isinstance(v, bool)}
        if bad:
            raise ValueError(f"precision: amp and tf32 must be true or false, got {bad}")
        return cls(**value)

    def label(self, device: str | torch.device) -> str:
        """What runs on ``device``: ``float32``, ``bf16-autocast``, ``tf32`` or both joined by +."""
        on_cuda = torch.device(device).type == "cuda"
        parts = [
            name
            for name, on in (("bf16-autocast", self.amp), ("tf32", self.tf32 and on_cuda))
            if on
        ]
        return "+".join(parts) or "float32"


@contextlib.contextmanager
def precision_scope(
    device: str | torch.device, precision: Precision | Mapping | None = None
) -> Iterator[None]:
    """TF32 on or off for CUDA matmuls and cuDNN convolutions inside the block, restored after.

    Off is set explicitly because PyTorch's default lets cuDNN convolutions use TF32, and the
    recorded precision would then not be float32. Nothing changes on the CPU.
    """
    p = Precision.of(precision)
    if torch.device(device).type != "cuda":
        if p.tf32:
            log.info("precision: tf32 applies to CUDA only; %s runs float32 matmuls", device)
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = p.tf32
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


def autocast(
    device: str | torch.device, precision: Precision | Mapping | None = None
) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``precision.amp``, else a context that does nothing."""
    if not Precision.of(precision).amp:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def runtime(device: str | torch.device, precision: Precision | Mapping | None = None) -> dict:
    """Provenance of a run: ``device``, ``device_name`` and the effective ``precision``."""
    return {
        "device": str(device),
        "device_name": device_name(device),
        "precision": Precision.of(precision).label(device),
    }
