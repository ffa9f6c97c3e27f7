"""Model-level analyses: Euclidean convexity through the network, alignment of views."""

import numpy as np
import pytest
import torch
from torch import nn

from repaudit.metrics.convexity import euclidean_convexity
from repaudit.models.analyses import alignment_table, euclidean_convexity_table
from repaudit.models.extract import to_tensor
from repaudit.models.factory import Classifier, ModelSpec, build_encoder


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
