"""Feature extraction with provenance (repaudit.models.extract.extract_feature_set)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repaudit.data import ImageDataset
from repaudit.io import config_hash
from repaudit.models.extract import extract_feature_set, extract_layer_features
from repaudit.models.factory import ModelSpec, build_encoder


@pytest.fixture(scope="module")
def encoder_and_spec():
    torch.manual_seed(0)
    spec = ModelSpec("m", "test_resnet", "random", input_size=16)
    return build_encoder(spec, seed=0), spec


def test_extract_feature_set(encoder_and_spec):
    encoder, spec = encoder_and_spec
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    data = ImageDataset(
        images=images,
        labels=np.arange(6) % 2,
        ids=np.array([f"i{k}" for k in range(6)]),
        split=np.array(["train"] * 4 + ["test"] * 2),
        class_names=["a", "b"],
    )
    features = {"batch_size": 4, "pooling": "auto"}
    model = {"model_id": "m"}
    fs = extract_feature_set(
        encoder, spec, data, features=features, model=model, stage="pretrained",
        dataset="digits", seed=7,
    )  # fmt: skip
    direct = extract_layer_features(encoder, images, batch_size=4, progress=False)
    assert list(fs.features) == list(direct)
    for name in direct:
        np.testing.assert_array_equal(fs.features[name], direct[name])
    np.testing.assert_array_equal(fs.labels, data.labels)
    np.testing.assert_array_equal(fs.split, data.split)
    a = fs.attrs
    assert (a["model_id"], a["stage"], a["dataset"], a["seed"]) == ("m", "pretrained", "digits", 7)
    assert a["config_hash"] == config_hash({"features": features, "model": model})
    assert a["preprocessing"]["input_size"] == encoder.input_size
    assert len(a["weights_sha256"]) == 64
    names = list(direct)
    assert fs.layer_attrs[names[0]] == {
        "layer_index": 0, "depth": 0.0, "pooling": encoder.layer_pooling(0)
    }  # fmt: skip
    assert fs.layer_attrs["final"]["pooling"] == "pre_logits"
    assert fs.layer_attrs["final"]["depth"] == (len(names) - 1) / encoder.n_layers
