"""Hugging Face encoders (weights ``hf``): tiny random configs saved in the test, no download."""

from __future__ import annotations

import huggingface_hub.constants
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from repaudit.config import ConfigError, _check_model_row  # noqa: E402
from repaudit.metrics.sensitivity import jacobian_effective_rank_per_image  # noqa: E402
from repaudit.models.analyses import euclidean_convexity_table  # noqa: E402
from repaudit.models.extract import (  # noqa: E402
    extract_layer_features,
    feature_provenance,
    layer_attributes,
    to_tensor,
)
from repaudit.models.factory import (  # noqa: E402
    Classifier,
    ModelSpec,
    build_encoder,
    load_encoder,
    state_dict_sha256,
)

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    image_size=32,
    patch_size=8,
)
# One config per supported family; BEiT/data2vec with their per-block and shared relative
# position biases, which the trunk must pass to every block as transformers does.
CONFIGS = {
    "vit": (transformers.ViTConfig, {}),
    "beit": (
        transformers.BeitConfig,
        {"use_shared_relative_position_bias": True, "use_mean_pooling": False},
    ),
    "data2vec": (transformers.Data2VecVisionConfig, {"use_relative_position_bias": True}),
    "dinov2": (transformers.Dinov2Config, {}),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Folders written by ``save_pretrained``; the ViT also has an image processor."""
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for name, (config_class, extra) in CONFIGS.items():
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(config_class(**TINY, **extra))
        model.save_pretrained(root / name)
        out[name] = str(root / name)
    transformers.ViTImageProcessor(
        image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3], size={"height": 32, "width": 32}
    ).save_pretrained(out["vit"])
    return out


def _spec(path: str, input_size: int = 32, **kwargs) -> ModelSpec:
    return ModelSpec("tiny", path, "hf", input_size=input_size, kwargs=kwargs)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), np.repeat(np.arange(3), 4)


@pytest.mark.parametrize("input_size", [32, 48], ids=["native", "interpolated"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_from_every_layer_reproduces_the_output(saved, name, input_size):
    encoder = build_encoder(_spec(saved[name], input_size))
    model = encoder.backbone.model
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        hidden = encoder.hidden_states(x)
        final = encoder(x)
        kwargs = {"interpolate_pos_encoding": True} if input_size != 32 else {}
        if name == "dinov2":  # DINOv2 always interpolates its position embeddings
            kwargs = {}
        reference = model(
            pixel_values=encoder.preprocess(x), output_hidden_states=True, **kwargs
        ).hidden_states
        assert len(hidden) == len(reference) == 3  # embeddings + 2 blocks
        for ours, theirs in zip(hidden, reference, strict=True):
            torch.testing.assert_close(ours, theirs)
        for k, h in enumerate(hidden):
            torch.testing.assert_close(encoder.forward_from(k, h), final)
    assert final.shape == (3, 32)
    assert encoder.layer_names() == ["0", "1", "2", "final"]


def test_pooling_follows_the_config_and_the_row(saved):
    x = torch.rand(2, 3, 32, 32)
    vit = build_encoder(_spec(saved["vit"]))
    assert (vit.pooling, vit.backbone.global_pool) == ("cls", "token")
    with torch.no_grad():
        hidden = vit.backbone.model(pixel_values=vit.preprocess(x)).last_hidden_state
        torch.testing.assert_close(vit(x), hidden[:, 0])  # CLS after the final norm
    # data2vec's mean pooling: the patch-token mean through the pooler's norm (its own output)
    d2v = build_encoder(_spec(saved["data2vec"]))
    assert (d2v.pooling, d2v.backbone.global_pool) == ("mean", "avg")
    with torch.no_grad():
        torch.testing.assert_close(d2v(x), d2v.backbone.model(d2v.preprocess(x)).pooler_output)
    # the row's global_pool and the config's per-layer pooling override the defaults
    mean_vit = build_encoder(_spec(saved["vit"], global_pool="avg"), pooling="mean")
    assert (mean_vit.pooling, mean_vit.backbone.global_pool) == ("mean", "avg")
    with torch.no_grad():
        torch.testing.assert_close(mean_vit(x), hidden[:, 1:].mean(1))
        assert mean_vit.layer_features(x)["1"].shape == (2, 32)
    with pytest.raises(ValueError, match="global_pool must be"):
        build_encoder(_spec(saved["vit"], global_pool="max"))


def test_extraction_and_provenance(saved, images):
    x, _ = images
    spec = _spec(saved["vit"])
    encoder = build_encoder(spec)
    feats = extract_layer_features(encoder, x, batch_size=5, progress=False)
    assert set(feats) == {"0", "1", "2", "final"}
    assert all(f.shape == (12, 32) and np.isfinite(f).all() for f in feats.values())
    prov = feature_provenance(
        encoder, spec, stage="pretrained", dataset="d", seed=0, config={"m": 1}
    )
    pre = prov["preprocessing"]
    assert prov["weights"] == "hf" and prov["model_tag"] == saved["vit"]
    assert prov["weights_sha256"] == state_dict_sha256(encoder.backbone)
    assert pre["mean"] == pytest.approx([0.5, 0.4, 0.3])  # the image processor's statistics
    assert pre["std"] == pytest.approx([0.2, 0.25, 0.3])
    processor = pre["hf_preprocessing"]["image_processor"]
    assert processor["image_mean"] == [0.5, 0.4, 0.3] and processor["size"]["height"] == 32
    assert (pre["pooling"], pre["global_pool"]) == ("cls", "token")
    attrs = layer_attributes(encoder, feats)
    assert [attrs[k]["pooling"] for k in ("0", "1", "final")] == ["mean", "cls", "pre_logits"]
    # no preprocessor_config.json: ImageNet statistics, recorded as such
    beit = build_encoder(_spec(saved["beit"]))
    assert beit.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert beit.backbone.data_config()["image_processor"] is None


def test_euclidean_convexity_and_jacobian_rank(saved, images):
    x, y = images
    torch.manual_seed(0)
    encoder = build_encoder(_spec(saved["data2vec"]))
    classifier = Classifier(encoder, nn.Linear(encoder.num_features, 3)).eval()
    table = euclidean_convexity_table(classifier, x, y, n_points=3, max_pairs=3)
    scores = table.query("metric == 'euclidean_convexity' and `class` == 'all'")
    assert sorted(scores["layer"]) == ["0", "1", "2"]
    assert np.isfinite(scores["value"]).all() and scores["value"].between(0, 100).all()
    jer = jacobian_effective_rank_per_image(encoder, to_tensor(x[:3]), k=4, power_iters=1)
    assert jer.shape == (3,) and np.isfinite(jer).all() and ((jer >= 1) & (jer <= 4)).all()


def test_fine_tuned_weights_round_trip_and_gradients_reach_the_model(saved, tmp_path):
    from repaudit.io import save_checkpoint

    spec = _spec(saved["vit"])
    encoder = build_encoder(spec)
    classifier = Classifier(encoder, nn.Linear(encoder.num_features, 3)).train()
    loss = classifier(torch.rand(2, 3, 32, 32)).sum()
    loss.backward()
    block = encoder.backbone.blocks[0]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    with torch.no_grad():
        for p in encoder.backbone.parameters():
            p.add_(0.01)
    path = tmp_path / "finetuned.pt"
    save_checkpoint(path, {"state_dict": encoder.backbone.state_dict(), "head": None})
    loaded, _ = load_encoder(spec, str(path))
    assert state_dict_sha256(loaded.backbone) == state_dict_sha256(encoder.backbone)
    assert state_dict_sha256(loaded.backbone) != state_dict_sha256(build_encoder(spec).backbone)


def test_bad_id_or_revision_is_one_line(saved, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never the network
    for spec in (
        ModelSpec("m", "no-such-org/no-such-model", "hf", tag="0" * 40, input_size=32),
        ModelSpec("m", "google/vit-base-patch16-224", "hf", tag="no-such-rev", input_size=32),
    ):
        with pytest.raises(ValueError) as err:
            build_encoder(spec)
        message = str(err.value)
        assert "\n" not in message and "could not be loaded" in message
        assert spec.architecture in message


def _row(**values) -> pd.Series:
    row = dict(model_id="m", architecture="", weights="hf", tag="", checkpoint="", kwargs="")
    return pd.Series({**row, **values})


def test_config_checks_hf_rows(saved, tmp_path):
    _check_model_row(_row(architecture="facebook/dinov2-small", tag="main"), tmp_path)
    _check_model_row(_row(architecture=saved["vit"]), tmp_path)  # a local folder needs no tag
    bad = [
        (_row(architecture="facebook/dinov2-small"), "pinned revision"),
        (_row(architecture="not an id", tag="x"), "neither a Hugging Face id"),
        (_row(architecture=str(tmp_path)), "no config.json"),
        (_row(architecture=saved["vit"], kwargs='{"global_pool": "max"}'), "global_pool"),
    ]
    for row, message in bad:
        with pytest.raises(ConfigError, match=message) as err:
            _check_model_row(row, tmp_path)
        assert str(err.value).startswith("config error:") and "\n" not in str(err.value)
