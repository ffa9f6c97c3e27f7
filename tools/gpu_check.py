#!/usr/bin/env python
"""GPU smoke check: the pipeline's network steps on CUDA, in float32 and in the opt-in precisions.

For each tiny timm encoder of the default zoo (``--arch``) and each precision (a float32
warm-up pass, then float32, TF32, bf16 autocast + TF32) it runs, through the same library calls
as the workflow scripts, a few pretraining steps (SimCLR + W2), a short fine-tuning with its test
evaluation, a linear probe, per-layer feature extraction, and the Jacobian effective rank (JER;
always float32), and prints device, precision and wall-clock timings. It checks what it gets:
finite losses and features, the device, device name and precision that the checkpoints and the
feature file record, GPU memory allocated by every step, bf16 features close to float32 ones,
and JER in [1, k]. Any failure prints one line and exits 1. Sized to finish well inside 2
minutes on one GPU; on the 2-core development machine (``--device cpu``, one architecture, 64
images) it took about a minute.

    python tools/gpu_check.py                      # needs a visible GPU
    python tools/gpu_check.py --device cpu --arch test_resnet --n-images 64  # the script itself

Runs from a bare checkout (``src/`` is put on the path); needs torch, timm, h5py, pandas,
scipy and scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np
import torch

from repaudit.data import ImageDataset
from repaudit.io import save_checkpoint
from repaudit.metrics.sensitivity import jacobian_effective_rank
from repaudit.models import zoo
from repaudit.models.device import Precision, precision_scope, resolve_device, runtime
from repaudit.models.extract import extract_feature_set, to_tensor
from repaudit.models.factory import ModelSpec, load_encoder

PRECISIONS = {
    "float32": Precision(),
    "tf32": Precision(tf32=True),
    "amp+tf32": Precision(amp=True, tf32=True),
}
JER_K = 8


def _dataset(n: int, size: int = 32, n_classes: int = 4) -> ImageDataset:
    """Noisy images whose mean colour is their class: learnable in a few steps."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % n_classes
    colours = rng.integers(40, 216, (n_classes, 3))
    images = colours[labels][:, None, None, :] + rng.normal(0, 30, (n, size, size, 3))
    return ImageDataset(
        images=np.clip(images, 0, 255).astype(np.uint8),
        labels=labels,
        ids=np.array([f"i{k}" for k in range(n)]),
        split=np.where(np.arange(n) // n_classes % 4 == 0, "test", "train"),
        class_names=[f"c{k}" for k in range(n_classes)],
    )


def _timed(on: str, fn, /, *args, **kwargs):
    """``fn(*args, **kwargs)`` and its wall time; on CUDA also checks it allocated GPU memory."""
    cuda = torch.device(on).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    if cuda:
        torch.cuda.synchronize()
        if torch.cuda.max_memory_allocated() == 0:
            raise AssertionError(f"{fn.__name__} allocated no GPU memory: it ran on the CPU")
    return out, time.perf_counter() - t0


def _jer(encoder, images: torch.Tensor, device: str) -> float:
    with precision_scope(device):  # float32, as compute_sensitivity runs it
        return jacobian_effective_rank(encoder, images, k=JER_K, power_iters=2, device=device)


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def _recorded(prov: dict, device: str, precision: str, what: str) -> None:
    want = runtime(device)["device_name"]
    got = (prov.get("device"), prov.get("device_name"), prov.get("precision"))
    _check(
        got == (device, want, precision), f"{what} records {got}, not {(device, want, precision)}"
    )


def check_chain(arch: str, data: ImageDataset, device: str, workdir: Path) -> None:
    """Pretraining, fine-tuning and its test, probe, extraction and JER in every precision."""
    spec = ModelSpec(f"{arch}_check", arch, "zoo", input_size=32, objective="simclr_w2")
    train = {"epochs": 1, "batch_size": 64, "lr": 1e-3, "progress": False}
    images = to_tensor(data.images[:4])
    # the first pass pays for kernel selection and caches: a float32 warm-up, then the timed ones
    for name, precision in [("warm-up", Precision()), *PRECISIONS.items()]:
        label = precision.label(device)
        at = {"seed": 0, "device": device, "precision": precision}
        (payload, history), t_pre = _timed(device, zoo.pretrain_zoo, spec, data, train, **at)
        _check(np.isfinite(history["loss"]).all(), "non-finite pretraining loss")
        _recorded(payload["provenance"], device, label, "pretrained checkpoint")
        weights = str(workdir / "pretrained.pt")
        save_checkpoint(weights, payload)
        finetune = {**train, "epochs": 2}
        (tuned, ft_history, table), t_ft = _timed(
            device, zoo.finetune_stage, spec, weights, data, finetune, **at
        )
        _check(np.isfinite(ft_history["train_loss"]).all(), "non-finite fine-tuning loss")
        _recorded(tuned["provenance"], device, label, "fine-tuned checkpoint")
        encoder, _ = load_encoder(spec, weights, seed=0)
        fs, t_ex = _timed(
            device, extract_feature_set, encoder, spec, data, features={"batch_size": 256},
            model=spec.as_dict(), stage="pretrained", dataset="check", **at,
        )  # fmt: skip
        _recorded(fs.attrs, device, label, "feature file")
        _check(all(np.isfinite(v).all() for v in fs.features.values()), "non-finite features")
        probe_params = {"weight_decay": [1e-4, 1e-2], "max_iter": 100}
        (probe, _, _), t_probe = _timed(
            device, zoo.probe_stage, fs.features, fs.labels, fs.ids, fs.split, data.class_names,
            probe_params, seed=0, device=device,
        )  # fmt: skip
        _recorded(probe["provenance"], device, "float64", "probe checkpoint")
        value, t_jer = _timed(device, _jer, encoder, images, device)
        _check(1.0 - 1e-4 <= value <= JER_K + 1e-4, f"JER {value} outside [1, {JER_K}]")
        print(
            f"{arch:12s} {name:9s} {label:19s} pretrain {t_pre:6.2f}s  finetune+test {t_ft:6.2f}s"
            f"  extract {t_ex:6.2f}s  probe {t_probe:5.2f}s  JER {t_jer:5.2f}s"
            f"  | loss {history['loss'].iloc[-1]:.3f}  test acc {table['value'].iloc[0]:.2f}"
            f"  probe acc {probe['metrics']['accuracy']:.2f}  JER {value:.2f}",
            flush=True,
        )


def check_extraction(arch: str, data: ImageDataset, device: str) -> None:
    """One seeded random encoder's features in every precision against float32's: rounding
    only (mean cosine of the final embeddings > 0.99)."""
    spec = ModelSpec(f"{arch}_random", arch, "random", input_size=32)
    encoder, _ = load_encoder(spec, None, seed=0)
    finals = {}
    for name, precision in PRECISIONS.items():
        fs = extract_feature_set(
            encoder, spec, data, features={"batch_size": 256}, model={}, stage="pretrained",
            dataset="check", seed=0, device=device, precision=precision,
        )  # fmt: skip
        finals[name] = fs.features["final"].astype(np.float64)
    ref = finals["float32"]
    for name, x in finals.items():
        cos = np.mean((x * ref).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(ref, axis=1))
        print(f"{arch:12s} {name:9s} extraction vs float32: mean cosine {cos:.6f}", flush=True)
        _check(cos > 0.99, f"{arch}: {name} features vs float32: mean cosine {cos:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, auto or cpu")
    parser.add_argument("--arch", nargs="+", default=["test_resnet", "test_vit"])
    parser.add_argument("--n-images", type=int, default=512)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        device = resolve_device(args.device)
        print(f"torch {torch.__version__}; {runtime(device)}", flush=True)
        data = _dataset(args.n_images)
        with tempfile.TemporaryDirectory() as tmp:
            for arch in args.arch:
                check_chain(arch, data, device, Path(tmp))
                check_extraction(arch, data, device)
    except Exception as err:  # one line on stdout, the traceback on stderr
        traceback.print_exc()
        print(f"gpu_check FAILED: {type(err).__name__}: {err}".splitlines()[0], flush=True)
        return 1
    print(f"gpu_check OK in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
