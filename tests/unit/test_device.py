"""Device and precision (repaudit.models.device) and their record in every output's provenance."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from repaudit.data import ImageDataset
from repaudit.io import load_checkpoint, read_features, save_checkpoint, write_features
from repaudit.models import training, zoo
from repaudit.models.device import (
    Precision,
    autocast,
    precision_scope,
    resolve_device,
    runtime,
)
from repaudit.models.extract import extract_feature_set, extract_layer_features
from repaudit.models.factory import ModelSpec, build_encoder

TRAIN = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "progress": False}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _data(n: int = 24, size: int = 16) -> ImageDataset:
    rng = np.random.default_rng(0)
    return ImageDataset(
        images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        labels=np.arange(n) % 3,
        ids=np.array([f"i{k}" for k in range(n)]),
        split=np.where(np.arange(n) < 2 * n // 3, "train", "test"),
        class_names=["a", "b", "c"],
    )


def _encoder():
    spec = ModelSpec("m", "test_resnet", "random", input_size=16)
    return build_encoder(spec, seed=0), spec


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# --------------------------------------------------------------------------- resolution


def test_auto_resolves_to_cpu_without_a_gpu_and_logs_it(no_gpu, caplog):
    with caplog.at_level(logging.INFO, logger="repaudit.models.device"):
        assert resolve_device("auto") == "cpu"
    assert "device auto -> cpu (no CUDA GPU visible)" in caplog.text
    assert resolve_device("cpu") == "cpu"


def test_cuda_without_a_gpu_is_a_one_line_error_naming_the_fix(no_gpu):
    for name in ("cuda", "cuda:0"):
        with pytest.raises(RuntimeError, match="set device: auto or cpu") as err:
            resolve_device(name)
        assert "\n" not in str(err.value) and repr(name) in str(err.value)


def test_bad_device_names_and_missing_gpu_index(monkeypatch):
    for bad in ("gpu", "cuda:x", "", None):
        with pytest.raises(ValueError, match="auto, cpu, cuda"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(RuntimeError, match="sees 2 GPU"):
        resolve_device("cuda:2")


# --------------------------------------------------------------------------- precision


def test_precision_from_config_and_labels():
    assert Precision.of(None) == Precision() == Precision.of({})
    assert Precision.of({"amp": True}) == Precision(amp=True)
    assert Precision.of(Precision(tf32=True)) == Precision(tf32=True)
    assert Precision().label("cpu") == "float32"
    assert Precision(amp=True).label("cpu") == "bf16-autocast"
    assert Precision(tf32=True).label("cpu") == "float32"  # TF32 is CUDA-only
    assert Precision(amp=True, tf32=True).label("cuda") == "bf16-autocast+tf32"
    with pytest.raises(ValueError, match="unknown key"):
        Precision.of({"fp16": True})
    with pytest.raises(ValueError, match="true or false"):
        Precision.of({"amp": "yes"})
    assert runtime("cpu", {"amp": True}) == {
        "device": "cpu", "device_name": "cpu", "precision": "bf16-autocast"
    }  # fmt: skip


def test_precision_scope_sets_and_restores_the_tf32_flags():
    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = [f.allow_tf32 for f in flags]
    with precision_scope("cuda"):  # off means off, cuDNN's TF32 default included
        assert [f.allow_tf32 for f in flags] == [False, False]
    with precision_scope("cuda", {"tf32": True}):
        assert [f.allow_tf32 for f in flags] == [True, True]
    assert [f.allow_tf32 for f in flags] == before
    with precision_scope("cpu", {"tf32": True}):  # the CPU leaves them alone
        assert [f.allow_tf32 for f in flags] == before


def test_autocast_runs_bf16_only_when_asked():
    lin = torch.nn.Linear(4, 2)
    x = torch.ones(3, 4)
    with autocast("cpu"):
        assert lin(x).dtype == torch.float32
    with autocast("cpu", {"amp": True}):
        assert lin(x).dtype == torch.bfloat16


def test_config_schema_defaults_precision_off():
    from pathlib import Path

    import yaml

    from repaudit.config import ConfigError, check_schema

    root = Path(__file__).parents[2]
    config = yaml.safe_load((root / "config/test.yaml").read_text())
    config.pop("precision", None)
    check_schema(config, root / "workflow/schemas/config.schema.yaml")
    assert config["precision"] == {"amp": False, "tf32": False}
    config["precision"] = {"fp16": True}
    with pytest.raises(ConfigError, match="precision"):
        check_schema(config, root / "workflow/schemas/config.schema.yaml")


# --------------------------------------------------------------------------- provenance


def test_feature_file_records_device_and_precision(tmp_path):
    encoder, spec = _encoder()
    data = _data(8)
    kw = {"features": {"batch_size": 4}, "model": {}, "stage": "pretrained", "dataset": "d"}
    fs = extract_feature_set(encoder, spec, data, seed=0, **kw)
    write_features(tmp_path / "f.h5", fs)
    attrs = read_features(tmp_path / "f.h5").attrs
    assert (attrs["device"], attrs["device_name"], attrs["precision"]) == ("cpu", "cpu", "float32")
    amp = extract_feature_set(encoder, spec, data, seed=0, precision={"amp": True}, **kw)
    assert amp.attrs["precision"] == "bf16-autocast"


def test_amp_extraction_runs_in_bf16_and_returns_float32_close_to_it():
    encoder, _ = _encoder()
    images = _data(8).images
    seen = []
    hook = encoder.backbone.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        full = extract_layer_features(encoder, images, batch_size=4, progress=False)
        amp = extract_layer_features(
            encoder, images, batch_size=4, progress=False, precision={"amp": True}
        )
    finally:
        hook.remove()
    assert seen == [torch.float32] * 2 + [torch.bfloat16] * 2
    for name in full:
        assert amp[name].dtype == np.float32
        scale = np.abs(full[name]).max()
        np.testing.assert_allclose(amp[name], full[name], atol=0.05 * scale)


def test_checkpoints_record_device_and_precision(tmp_path):
    data = _data()
    spec = ModelSpec("m", "test_resnet", "zoo", input_size=16, objective="simclr")
    payload, _ = zoo.pretrain_zoo(spec, data, TRAIN, seed=0, device="cpu")
    assert payload["provenance"]["device"] == "cpu"
    assert payload["provenance"]["device_name"] == "cpu"
    assert payload["provenance"]["precision"] == "float32"
    amp, hist = zoo.pretrain_zoo(spec, data, TRAIN, seed=0, device="cpu", precision={"amp": True})
    assert amp["provenance"]["precision"] == "bf16-autocast" and np.isfinite(hist["loss"]).all()
    # bf16 forward passes train other weights than float32 ones
    assert amp["provenance"]["weights_sha256"] != payload["provenance"]["weights_sha256"]
    save_checkpoint(tmp_path / "p.pt", amp)
    tuned, hist, table = zoo.finetune_stage(
        spec, str(tmp_path / "p.pt"), data, TRAIN, seed=0, device="cpu", precision={"amp": True}
    )
    assert tuned["provenance"]["precision"] == "bf16-autocast"
    assert np.isfinite(hist["train_loss"]).all() and 0 <= table["value"].iloc[0] <= 1
    save_checkpoint(tmp_path / "probe.pt", _probe()[0])
    assert load_checkpoint(tmp_path / "probe.pt")["provenance"] == {
        "device": "cpu", "device_name": "cpu", "precision": "float64"
    }  # fmt: skip


@pytest.mark.parametrize(
    "objective", ["supervised", "simclr_w2", "moco_v2_w2", "byol", "barlow_twins", "vicreg"]
)
def test_amp_pretraining_runs_every_kind_of_objective(objective, one_torch_thread):
    """bf16 reaches the encoder only: MoCo's float32 queue once refused bf16 keys."""
    data = _data(16)
    encoder, _ = _encoder()
    _, hist = training.pretrain(
        encoder, data.images, data.labels, objective, epochs=1, batch_size=8, progress=False,
        moco_queue_size=32, precision={"amp": True},
    )  # fmt: skip
    assert np.isfinite(hist["loss"]).all()


def _probe(device: str = "cpu"):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    final = (rng.normal(size=(30, 4)) + 2 * np.eye(3, 4)[labels]).astype(np.float32)
    split = np.where(np.arange(30) % 3 == 0, "test", "train")
    ids = np.array([f"i{k}" for k in range(30)])
    params = {"weight_decay": [1e-3], "max_iter": 20}
    return zoo.probe_stage(
        {"final": final}, labels, ids, split, ["a", "b", "c"], params, seed=0, device=device
    )


def test_finetune_evaluation_and_probe_run_on_the_configured_device(monkeypatch):
    """The fine-tuned model used to be moved to the CPU before its test, and the probe had no
    device at all: both ran on the CPU whatever the config said."""
    calls = {}

    def spy(name, real):
        def wrapped(*args, **kwargs):
            calls[name] = (kwargs.get("device"), kwargs.get("precision"))
            return real(*args, **kwargs)

        monkeypatch.setattr(training, name, wrapped)

    spy("evaluate_classifier", training.evaluate_classifier)
    spy("linear_probe", training.linear_probe)
    _, spec = _encoder()
    # "cpu:0" stands in for a GPU: a device that is not the default "cpu"
    zoo.finetune_stage(spec, None, _data(), TRAIN, seed=0, device="cpu:0", precision={})
    _probe(device="cpu:0")
    assert calls == {"evaluate_classifier": ("cpu:0", {}), "linear_probe": ("cpu:0", None)}


# --------------------------------------------------------------------------- on a GPU


@CUDA
def test_whole_chain_runs_on_cuda_and_records_it(tmp_path):
    from repaudit.metrics.sensitivity import sensitivity_table
    from repaudit.models.analyses import (
        euclidean_convexity_on_split,
        geometry_alignment_table,
        stage_classifier,
    )
    from repaudit.models.extract import to_tensor
    from repaudit.models.factory import load_encoder

    device = resolve_device("auto")
    assert device == "cuda"
    name = torch.cuda.get_device_name()
    data = _data(48)
    spec = ModelSpec("m", "test_resnet", "zoo", input_size=16, objective="simclr")
    amp = {"amp": True, "tf32": True}

    def on_gpu(run):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        out = run()
        torch.cuda.synchronize()
        assert torch.cuda.max_memory_allocated() > 0
        return out

    payload, _ = on_gpu(
        lambda: zoo.pretrain_zoo(spec, data, TRAIN, seed=0, device=device, precision=amp)
    )
    prov = payload["provenance"]
    assert (prov["device"], prov["device_name"], prov["precision"]) == (
        "cuda", name, "bf16-autocast+tf32"
    )  # fmt: skip
    save_checkpoint(tmp_path / "p.pt", payload)
    tuned, _, table = on_gpu(
        lambda: zoo.finetune_stage(spec, str(tmp_path / "p.pt"), data, TRAIN, seed=0, device=device)
    )
    assert tuned["provenance"]["device"] == "cuda" and tuned["provenance"]["precision"] == "float32"
    save_checkpoint(tmp_path / "f.pt", tuned)
    encoder, head = load_encoder(spec, str(tmp_path / "f.pt"), seed=0)
    fs = on_gpu(
        lambda: extract_feature_set(
            encoder, spec, data, features={"batch_size": 16}, model={}, stage="finetuned",
            dataset="d", seed=0, device=device, precision=amp,
        )
    )  # fmt: skip
    assert (fs.attrs["device"], fs.attrs["device_name"]) == ("cuda", name)
    probe, _, _ = on_gpu(
        lambda: zoo.probe_stage(
            fs.features, fs.labels, fs.ids, fs.split, data.class_names,
            {"weight_decay": [1e-3], "max_iter": 20}, seed=0, device=device,
        )
    )  # fmt: skip
    assert probe["provenance"]["device"] == "cuda"
    p = {"split": "test", "max_samples": 12, "layers": ["1"], "n_points": 3, "max_pairs": 4,
         "batch_size": 8}  # fmt: skip
    on_gpu(
        lambda: euclidean_convexity_on_split(
            stage_classifier(encoder, head), data.images, data.labels, data.split, params=p,
            device=device,
        )
    )  # fmt: skip
    g = {"split": "all", "max_samples": 24, "local_k": 3, "alpha_range": (2, 5)}
    on_gpu(
        lambda: geometry_alignment_table(
            fs.features, fs.labels, fs.split, encoder, data.images, params=g, device=device
        )
    )
    table = on_gpu(
        lambda: sensitivity_table(
            encoder, to_tensor(data.images[:2]), k=4, power_iters=1, n_probes=2, device=device
        )
    )
    assert np.isfinite(table["value"]).all()
