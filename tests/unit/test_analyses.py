"""Model-level analyses: Euclidean convexity through the network, alignment of views."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from repaudit.metrics.convexity import euclidean_convexity
from repaudit.metrics.geometry import geometry_table
from repaudit.models.analyses import (
    alignment_table,
    euclidean_convexity_on_split,
    euclidean_convexity_table,
    geometry_alignment_table,
    stage_classifier,
)
from repaudit.models.extract import to_tensor
from repaudit.models.factory import Classifier, ModelSpec, build_encoder
from repaudit.tables import select_samples, subset


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    encoder = build_encoder(ModelSpec("m", "test_resnet", "random", input_size=16), seed=0)
    return Classifier(encoder, nn.Linear(encoder.num_features, 3)).eval()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8), np.repeat(np.arange(3), 8)


def test_euclidean_table_matches_direct_call(classifier, images):
    x, y = images
    table = euclidean_convexity_table(classifier, x, y, layers=["2"], n_points=4, max_pairs=6)
    with torch.inference_mode():
        hidden = classifier.encoder.hidden_states(to_tensor(x))[2]

        def predict(points):
            return classifier.logits_from(2, points).argmax(1)

        direct = euclidean_convexity(hidden, y, predict, n_points=4, max_pairs=6)
    row = table.query("metric == 'euclidean_convexity' and `class` == 'all'")
    assert row["value"].item() == pytest.approx(direct.score)
    assert set(table["layer"]) == {"2"}


def test_euclidean_table_all_layers_and_final_refused(classifier, images):
    x, y = images
    table = euclidean_convexity_table(classifier, x, y, n_points=2, max_pairs=2)
    assert sorted(table["layer"].unique()) == [str(i) for i in range(classifier.encoder.n_layers)]
    with pytest.raises(ValueError, match="vacuous"):
        euclidean_convexity_table(classifier, x, y, layers=["final"])


def test_alignment_table_seeded_and_bounded(classifier, images):
    x, _ = images
    a = alignment_table(classifier.encoder, x, seed=1)
    b = alignment_table(classifier.encoder, x, seed=1)
    c = alignment_table(classifier.encoder, x, seed=2)
    assert a["value"].item() == b["value"].item() != c["value"].item()
    assert 0 < a["value"].item() < 4


def _head(classifier):
    return {k: v.clone() for k, v in classifier.head.state_dict().items()}


def test_stage_classifier_prefers_the_probe(classifier):
    own = _head(classifier)
    probe = {"weight": torch.zeros_like(own["weight"]), "bias": torch.arange(3.0)}
    x = torch.rand(2, 3, 16, 16)
    with torch.inference_mode():
        assert stage_classifier(classifier.encoder, own, probe)(x).argmax(1).tolist() == [2, 2]
        mine = stage_classifier(classifier.encoder, own)
        torch.testing.assert_close(mine(x), classifier(x))
    with pytest.raises(ValueError, match="no classifier head"):
        stage_classifier(classifier.encoder, None)


def test_euclidean_convexity_on_split_uses_the_configured_sample(classifier, images):
    x, y = images
    split = np.where(np.arange(len(y)) % 2 == 0, "test", "train")
    p = {"split": "test", "max_samples": 9, "layers": ["2"], "n_points": 3, "max_pairs": 4,
         "batch_size": 8}  # fmt: skip
    got = euclidean_convexity_on_split(classifier, x, y, split, params=p, seed=3)
    idx = select_samples(y, split, "test", 9, 3)
    want = euclidean_convexity_table(
        classifier, x[idx], y[idx], layers=["2"], n_points=3, max_pairs=4, batch_size=8, seed=3
    )
    pd.testing.assert_frame_equal(got, want)


def test_geometry_alignment_table_is_geometry_plus_alignment(classifier, images):
    x, y = images
    with torch.inference_mode():
        hidden = classifier.encoder.layer_features(to_tensor(x))
    feats = {k: v.float().numpy() for k, v in hidden.items()}
    split = np.full(len(y), "train")
    p = {"split": "all", "max_samples": 18, "local_k": 3, "alpha_range": (2, 5)}
    got = geometry_alignment_table(feats, y, split, classifier.encoder, x, params=p, seed=1)
    idx = select_samples(y, split, "all", 18, 1)
    geometry = geometry_table(subset(feats, idx), local_k=3, alpha_range=(2, 5), seed=1)
    aligned = alignment_table(classifier.encoder, x[idx], seed=1)
    pd.testing.assert_frame_equal(got, pd.concat([geometry, aligned], ignore_index=True))
    assert p["split"] == "all"  # the caller's section is not modified
