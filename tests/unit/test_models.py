"""Tests for repaudit.models.factory and repaudit.models.extract (tiny timm models, random init)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from repaudit.io import save_checkpoint
from repaudit.models.extract import extract_layer_features, to_tensor
from repaudit.models.factory import (
    Encoder,
    ModelSpec,
    build_classifier,
    build_encoder,
    check_architecture,
    create_backbone,
    load_encoder,
    state_dict_sha256,
)

VIT_KW = {"img_size": 32, "patch_size": 8}
ARCHS = {"test_vit": VIT_KW, "test_resnet": {}, "test_convnext": {}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def spec(arch: str, weights: str = "random", **kw) -> ModelSpec:
    return ModelSpec(
        model_id=arch, architecture=arch, weights=weights, input_size=32, kwargs=ARCHS[arch], **kw
    )


@pytest.fixture(scope="module")
def encoders() -> dict[str, Encoder]:
    return {arch: build_encoder(spec(arch), seed=0) for arch in ARCHS}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    # Different size from input_size, so the resize path inside the encoder runs too.
    return torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(1))


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return a.shape == b.shape and float((a - b).abs().max()) < tol


# --------------------------------------------------------------------------- layer taps


def test_vit_taps_count_width_and_final(encoders, images):
    enc = encoders["test_vit"]
    assert enc.n_layers == 7
    assert enc.layer_names() == [str(i) for i in range(7)] + ["final"]
    with torch.no_grad():
        feats = enc.layer_features(images)
        assert list(feats) == enc.layer_names()
        assert all(v.shape == (4, 64) for v in feats.values())
        pre = enc.preprocess(images)
        bb = enc.backbone
        own = bb.forward_head(bb.forward_features(pre), pre_logits=True)
        assert close(feats["final"], enc(images))
        assert close(feats["final"], own)
        # Block taps equal timm's own intermediates (tokens incl. CLS, before the final norm).
        hidden = enc.hidden_states(images)
        inter = bb.forward_intermediates(
            pre, indices=6, norm=False, output_fmt="NLC", intermediates_only=True
        )
        for h, ref in zip(hidden[1:], inter, strict=True):
            assert close(h[:, bb.num_prefix_tokens :], ref)
        # CLS pooling above layer 0: the class token of each block output.
        for i in range(1, 7):
            assert close(feats[str(i)], hidden[i][:, 0])


@pytest.mark.parametrize("arch", ["test_resnet", "test_convnext"])
def test_cnn_taps_count_width_and_final(encoders, images, arch):
    enc = encoders[arch]
    bb = enc.backbone
    widths = [f["num_chs"] for f in bb.feature_info]
    if arch == "test_convnext":  # feature_info lists the 4 stages; the stem keeps stage 0's width
        widths = [widths[0], *widths]
    assert enc.n_layers == 5
    assert enc.layer_names() == ["0", "1", "2", "3", "4", "final"]
    with torch.no_grad():
        feats = enc.layer_features(images)
        hidden = enc.hidden_states(images)
        assert [feats[str(i)].shape[1] for i in range(5)] == widths
        assert feats["final"].shape == (4, bb.num_features)
        for i in range(5):
            assert close(feats[str(i)], hidden[i].mean(dim=(-2, -1)))
        pre = enc.preprocess(images)
        own = bb.forward_head(bb.forward_features(pre), pre_logits=True)
        assert close(feats["final"], own)
        assert close(feats["final"], enc(images))
        pooled_last = hidden[-1].mean(dim=(-2, -1))
        if arch == "test_resnet":  # pre-logits of a ResNet is the channel mean of layer4
            assert close(pooled_last, own)
        else:  # ConvNeXt's pre-logits layer-normalise the channel mean
            assert close(bb.head.norm(pooled_last[..., None, None]).flatten(1), own)
        # Stage taps equal timm's own intermediates.
        inter = bb.forward_intermediates(pre, intermediates_only=True)
        ours = hidden if arch == "test_resnet" else hidden[1:]
        assert len(inter) == len(ours)
        for h, ref in zip(ours, inter, strict=True):
            assert close(h, ref)


# --------------------------------------------------------------------------- partial forward


@pytest.mark.parametrize("arch", list(ARCHS))
def test_forward_from_every_layer_reproduces_embedding_and_logits(encoders, images, arch):
    enc = encoders[arch]
    g = torch.Generator().manual_seed(3)
    head = {
        "weight": torch.randn(5, enc.num_features, generator=g),
        "bias": torch.randn(5, generator=g),
    }
    clf = build_classifier(enc, head)
    with torch.no_grad():
        full = enc(images)
        logits = clf(images)
        assert close(logits, full @ head["weight"].T + head["bias"])
        hidden = enc.hidden_states(images)
        assert len(hidden) == enc.n_layers
        for layer, h in enumerate(hidden):
            assert close(enc.forward_from(layer, h), full, 1e-4), layer
            assert close(clf.logits_from(layer, h), logits, 1e-4), layer
        # A perturbed hidden state changes the output (the steps after the layer really run;
        # random noise, since LayerNorm would cancel a constant shift).
        noise = torch.randn(hidden[0].shape, generator=g)
        assert not close(enc.forward_from(0, hidden[0] + noise), full, 1e-2)
        with pytest.raises(ValueError, match="layer must lie"):
            enc.forward_from(enc.n_layers, hidden[-1])


def test_hidden_states_upto(encoders, images):
    enc = encoders["test_resnet"]
    with torch.no_grad():
        full = enc.hidden_states(images)
        part = enc.hidden_states(images, upto=2)
    assert len(part) == 3
    assert all(torch.equal(a, b) for a, b in zip(part, full[:3], strict=True))


# --------------------------------------------------------------------------- pooling


def test_cls_vit_layer0_uses_patch_mean(encoders, images):
    enc = encoders["test_vit"]
    assert enc.pooling == "cls"
    assert enc.layer_pooling(0) == "mean"
    assert all(enc.layer_pooling(i) == "cls" for i in range(1, enc.n_layers))
    with torch.no_grad():
        h0 = enc.hidden_states(images, upto=0)[0]
        f0 = enc.layer_features(images)["0"]
    # Why: the class token at the embedding output is the same for every image.
    assert float((h0[:, 0] - h0[:1, 0]).abs().max()) == 0.0
    assert close(f0, h0[:, 1:].mean(dim=1))
    assert float(f0.std(dim=0).max()) > 1e-3


def test_mean_pooling_option_and_avg_pool_vit(images):
    enc = build_encoder(spec("test_vit"), pooling="mean")
    assert enc.pooling == "mean"
    with torch.no_grad():
        h = enc.hidden_states(images)
        f = enc.layer_features(images)
    assert close(f["3"], h[3][:, 1:].mean(dim=1))
    # auto on a ViT whose head averages patches: patch mean everywhere.
    avg = build_encoder(
        ModelSpec("v", "test_vit", "random", input_size=32, kwargs={**VIT_KW, "global_pool": "avg"})
    )
    assert avg.pooling == "mean"
    assert build_encoder(spec("test_resnet")).pooling == "avg"


def test_pooling_errors():
    no_cls = ModelSpec(
        "v",
        "test_vit",
        "random",
        input_size=32,
        kwargs={**VIT_KW, "class_token": False, "global_pool": "avg"},
    )
    assert build_encoder(no_cls).pooling == "mean"
    with pytest.raises(ValueError, match="class token"):
        build_encoder(no_cls, pooling="cls")
    with pytest.raises(ValueError, match="pooling must be"):
        build_encoder(spec("test_resnet"), pooling="max")


# --------------------------------------------------------------------------- weights sources


def test_random_weights_seeded():
    a = create_backbone(spec("test_resnet"), seed=0)
    b = create_backbone(spec("test_resnet"), seed=0)
    c = create_backbone(spec("test_resnet"), seed=1)
    assert state_dict_sha256(a) == state_dict_sha256(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert state_dict_sha256(a) != state_dict_sha256(c)
    assert not torch.equal(a.layer1[0].conv1.weight, c.layer1[0].conv1.weight)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_checkpoint_weights_load_exactly(tmp_path):
    torch.manual_seed(123)
    src = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    path = tmp_path / "resnet.pt"
    torch.save(_state(src), path)
    s = spec("test_resnet", weights="checkpoint", checkpoint=str(path))
    enc, head = load_encoder(s, seed=0)
    assert head is None
    assert state_dict_sha256(enc.backbone) == state_dict_sha256(src)
    # The seed cannot leak into checkpoint weights.
    enc2, _ = load_encoder(s, seed=7)
    assert state_dict_sha256(enc2.backbone) == state_dict_sha256(src)


def test_checkpoint_with_classifier_head_and_module_prefix(tmp_path):
    torch.manual_seed(5)
    src = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    sd = {f"module.{k}": v for k, v in _state(src).items()}  # DataParallel-style names
    assert "module.fc.weight" in sd
    path = tmp_path / "with_head.pt"
    torch.save(sd, path)
    enc, _ = load_encoder(spec("test_resnet", weights="checkpoint", checkpoint=str(path)))
    for k, v in enc.backbone.state_dict().items():
        assert torch.equal(v, src.state_dict()[k]), k


def test_checkpoint_missing_key_raises(tmp_path):
    sd = _state(timm.create_model("test_resnet", pretrained=False, num_classes=0))
    del sd["layer2.0.conv1.weight"]
    path = tmp_path / "broken.pt"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"missing \['layer2\.0\.conv1\.weight'\]"):
        load_encoder(spec("test_resnet", weights="checkpoint", checkpoint=str(path)))
    extra = _state(timm.create_model("test_resnet", pretrained=False, num_classes=0))
    extra["layer9.weight"] = torch.zeros(1)
    torch.save(extra, path)
    with pytest.raises(ValueError, match=r"unexpected \['layer9\.weight'\]"):
        load_encoder(spec("test_resnet", weights="checkpoint", checkpoint=str(path)))


def test_checkpoint_of_other_architecture_raises(tmp_path):
    sd = _state(timm.create_model("test_convnext", pretrained=False, num_classes=0))
    path = tmp_path / "convnext.pt"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="check the architecture"):
        load_encoder(spec("test_resnet", weights="checkpoint", checkpoint=str(path)))


def test_zoo_payload_round_trip(tmp_path):
    zoo = spec("test_vit", weights="zoo", objective="simclr")
    with pytest.raises(ValueError, match="zoo models need"):
        load_encoder(zoo)
    trained = build_encoder(spec("test_vit"), seed=11)
    with torch.no_grad():  # move off the seeded init so a re-initialisation would show
        for p in trained.backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    head = {"weight": torch.randn(3, 64), "bias": torch.randn(3)}
    path = tmp_path / "pretrained.pt"
    save_checkpoint(path, {"state_dict": trained.backbone.state_dict(), "head": head})
    enc, got_head = load_encoder(zoo, str(path), seed=0)
    assert state_dict_sha256(enc.backbone) == state_dict_sha256(trained.backbone)
    for k, v in trained.backbone.state_dict().items():
        assert torch.equal(enc.backbone.state_dict()[k], v), k
    assert torch.equal(got_head["weight"], head["weight"])
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(enc(x), trained(x))


def test_hub_resolves_tag_without_download(monkeypatch):
    hub = ModelSpec(
        model_id="vit_b", architecture="vit_base_patch16_224", weights="hub", tag="augreg_in1k"
    )
    assert hub.timm_name == "vit_base_patch16_224.augreg_in1k"
    # The tag only applies to hub weights.
    assert ModelSpec("r", "vit_base_patch16_224", "random", tag="augreg_in1k").timm_name == (
        "vit_base_patch16_224"
    )
    real = timm.create_model
    calls = []

    def fake(name, pretrained=False, **kwargs):
        calls.append((name, pretrained, kwargs))
        return real("test_vit", pretrained=False, num_classes=0, **VIT_KW)

    monkeypatch.setattr(timm, "create_model", fake)
    create_backbone(hub)
    assert calls == [("vit_base_patch16_224.augreg_in1k", True, {"num_classes": 0})]
    calls.clear()
    create_backbone(spec("test_resnet"))
    assert calls == [("test_resnet", False, {"num_classes": 0})]


def test_unknown_architecture_and_weights():
    with pytest.raises(ValueError, match=r"unknown timm architecture 'test_resnt'.*test_resnet"):
        check_architecture("test_resnt")
    with pytest.raises(ValueError, match="did you mean"):
        build_encoder(ModelSpec("m", "resnet_5O", "random"))
    check_architecture("test_vit")  # known: no error
    with pytest.raises(ValueError, match="weights must be one of"):
        create_backbone(ModelSpec("m", "test_resnet", "imagenet"))


def test_model_spec_from_row():
    row = {
        "model_id": "vit_sup",
        "architecture": "test_vit",
        "weights": "zoo",
        "tag": "",
        "checkpoint": "",
        "input_size": "32",
        "family": "vit",
        "objective": "supervised",
        "kwargs": '{"img_size": 32, "patch_size": 8}',
    }
    s = ModelSpec.from_row(row)
    assert s.kwargs == VIT_KW and s.input_size == 32 and s.objective == "supervised"
    assert ModelSpec.from_row({**row, "kwargs": "", "input_size": ""}).input_size == 224
    assert ModelSpec.from_row({**row, "kwargs": " "}).kwargs == {}
    assert ModelSpec(**s.as_dict()) == s


# --------------------------------------------------------------------------- extraction


def test_extract_layer_features_batching_dtype_shapes(encoders):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    for enc in encoders.values():
        small = extract_layer_features(enc, imgs, batch_size=3, progress=False)
        big = extract_layer_features(enc, imgs, batch_size=64, progress=False)
        assert list(small) == enc.layer_names() == list(big)
        for name in small:
            assert small[name].dtype == np.float32
            assert small[name].shape[0] == 7 and small[name].ndim == 2
            np.testing.assert_allclose(small[name], big[name], rtol=0, atol=1e-6)
        with torch.no_grad():
            direct = enc.layer_features(to_tensor(imgs))
        for name, v in direct.items():
            np.testing.assert_allclose(big[name], v.numpy(), rtol=0, atol=1e-5)


def test_to_tensor_layout_and_scale():
    imgs = np.zeros((1, 2, 3, 3), dtype=np.uint8)
    imgs[0, 1, 2] = [255, 0, 51]
    x = to_tensor(imgs)
    assert x.shape == (1, 3, 2, 3) and x.dtype == torch.float32
    assert x[0, :, 1, 2].tolist() == pytest.approx([1.0, 0.0, 0.2])
    assert float(x.sum()) == pytest.approx(1.2)


def test_extract_rejects_bad_images(encoders):
    enc = encoders["test_resnet"]
    with pytest.raises(ValueError, match="uint8"):
        extract_layer_features(enc, np.zeros((2, 32, 32, 3), np.float32), progress=False)
    with pytest.raises(ValueError, match="uint8"):
        extract_layer_features(enc, np.zeros((2, 3, 32, 32), np.uint8), progress=False)


def test_extract_non_finite_raises():
    enc = build_encoder(spec("test_resnet"))
    with torch.no_grad():
        enc.backbone.layer4[0].conv2.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite"):
        extract_layer_features(enc, np.zeros((2, 32, 32, 3), np.uint8), progress=False)


# --------------------------------------------------------------------------- hashing


def test_state_dict_sha256_stable_and_sensitive():
    m = create_backbone(spec("test_resnet"), seed=0)
    h = state_dict_sha256(m)
    assert h == state_dict_sha256(m) and len(h) == 64
    copy = create_backbone(spec("test_resnet"), seed=0)
    copy.load_state_dict(m.state_dict())
    assert state_dict_sha256(copy) == h
    with torch.no_grad():
        copy.layer3[0].conv2.weight[0, 0, 0, 0] += 1e-6
    assert state_dict_sha256(copy) != h
    # Buffers count too (BatchNorm running statistics change what the model computes).
    other = create_backbone(spec("test_resnet"), seed=0)
    with torch.no_grad():
        other.bn1.running_mean[0] += 1.0
    assert state_dict_sha256(other) != h
    # bfloat16 weights hash (through float32 bytes) and differ from the float32 hash.
    assert state_dict_sha256(create_backbone(spec("test_resnet"), seed=0).bfloat16()) != h


def test_checkpoint_missing_convnext_head_norm_raises(tmp_path):
    sd = _state(timm.create_model("test_convnext", pretrained=False, num_classes=0))
    del sd["head.norm.weight"], sd["head.norm.bias"]
    path = tmp_path / "convnext.pt"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"head\.norm\.weight"):
        load_encoder(spec("test_convnext", weights="checkpoint", checkpoint=str(path)))


def test_pretrain_zoo_applies_augment_overrides_and_records_them():
    from repaudit.data.glyphs import make_glyphs
    from repaudit.models.zoo import pretrain_zoo

    data = make_glyphs(n_per_class=8, letters="LOTX", image_size=32)
    zoo = spec("test_resnet", weights="zoo", objective="simclr")
    base = {"epochs": 1, "batch_size": 8, "lr": 1e-3}
    runs = {
        name: pretrain_zoo(zoo, data, {**base, **extra}, seed=0, device="cpu")
        for name, extra in (
            ("recipe", {}),
            ("glyph", {"augment": {"crop_scale": [0.2, 1.0], "flip_p": 0.0}}),
        )
    }
    recorded = {k: p["provenance"]["train"]["augment"] for k, (p, _) in runs.items()}
    assert recorded["recipe"]["crop_scale"] == (0.08, 1.0) and recorded["recipe"]["flip_p"] == 0.5
    assert recorded["glyph"]["crop_scale"] == (0.2, 1.0) and recorded["glyph"]["flip_p"] == 0.0
    weights = [p["provenance"]["weights_sha256"] for p, _ in runs.values()]
    assert weights[0] != weights[1]  # the views, hence the training, differ


def test_probe_stage_predictions_match_its_accuracy():
    from repaudit.models.zoo import probe_stage

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    final = (rng.normal(size=(60, 4)) + 1.5 * np.eye(3, 4)[labels]).astype(np.float32)
    split = np.where(np.arange(60) % 4 == 0, "test", "train")
    ids = np.array([f"img{i}" for i in range(60)])
    params = {"weight_decay": [1e-3], "max_iter": 50}
    payload, table, predictions = probe_stage(
        {"final": final}, labels, ids, split, ["a", "b", "c"], params, seed=0
    )
    assert predictions.columns.tolist() == ["id", "label", "prediction", "correct"]
    assert predictions["id"].tolist() == ids[split == "test"].tolist()
    assert (predictions["correct"] == (predictions["prediction"] == predictions["label"])).all()
    accuracy = table.loc[table["metric"] == "probe_test_accuracy", "value"].item()
    assert predictions["correct"].mean() == pytest.approx(accuracy)
    assert accuracy == payload["metrics"]["accuracy"] and 0.5 < accuracy < 1.0
    assert "test_predictions" not in payload["metrics"]  # arrays stay out of the checkpoint


# --------------------------------------------------------------------------- CIFAR stem


def test_cifar_stem_keeps_full_resolution_into_the_first_stage(monkeypatch):
    cifar = ModelSpec("r", "resnet18", "random", input_size=32, kwargs={"cifar_stem": True})
    enc = build_encoder(cifar, seed=0)
    conv = enc.backbone.conv1
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(enc.backbone.maxpool, torch.nn.Identity)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sides = [h.shape[-1] for h in enc.hidden_states(x)]
        assert sides == [32, 32, 16, 8, 4]  # ImageNet stem: 16, 8, 4, 2, 1
        assert close(enc.layer_features(x)["final"], enc(x))
    # Seeded like any random build, and a zoo checkpoint of it loads back strictly.
    again = create_backbone(cifar, seed=0)
    assert state_dict_sha256(again) == state_dict_sha256(enc.backbone)
    create_backbone(cifar, state_dict=enc.backbone.state_dict(), seed=1)
    # Deep stems keep their three 3x3 convs, the first with stride 1.
    deep = create_backbone(ModelSpec("t", "test_resnet", "random", kwargs={"cifar_stem": True}))
    assert deep.conv1[0].stride == (1, 1) and isinstance(deep.maxpool, torch.nn.Identity)
    with pytest.raises(ValueError, match="cifar_stem needs a timm ResNet"):
        create_backbone(ModelSpec("v", "test_vit", "random", kwargs={**VIT_KW, "cifar_stem": True}))
    with pytest.raises(ValueError, match="true or false"):
        create_backbone(ModelSpec("r", "test_resnet", "random", kwargs={"cifar_stem": "yes"}))
    with pytest.raises(ValueError, match="hub weights"):
        create_backbone(
            ModelSpec("r", "resnet18", "hub", tag="a1_in1k", kwargs={"cifar_stem": True})
        )
