"""Bounded memory (issue 18, scope 4): images read from HDF5 in index batches, and Euclidean
convexity streamed pair batch by pair batch. Both must give the in-memory path's results."""

import tracemalloc

import h5py
import numpy as np
import pytest
import timm
import torch
from torch import nn

from repaudit.data import ImageDataset, take_rows
from repaudit.io import H5Images, read_dataset, write_dataset
from repaudit.metrics.convexity import euclidean_convexity
from repaudit.models import training as tr
from repaudit.models.analyses import euclidean_convexity_on_split, euclidean_convexity_table
from repaudit.models.extract import extract_layer_features, to_tensor
from repaudit.models.factory import Classifier, ModelSpec, build_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dataset(n: int, size: int = 16, seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 120, (n, size, size, 3)).astype(np.int64)
    images[labels == 0, :, :, 0] += 130  # separable colours, so fine-tuning learns something
    images[labels == 1, :, :, 2] += 130
    return ImageDataset(
        images=images.astype(np.uint8),
        labels=labels.astype(np.int64),
        split=np.where(np.arange(n) % 4 == 3, "test", "train"),
        ids=np.asarray([f"im{i:05d}" for i in range(n)]),
        class_names=["red", "blue"],
        extras={"role": np.asarray(["probe"] * n)},
    )


@pytest.fixture
def stored(tmp_path):
    data = _dataset(40)
    path = tmp_path / "d.h5"
    write_dataset(path, data)
    lazy = read_dataset(path, lazy=True)
    yield data, lazy
    lazy.images.close()


def test_lazy_dataset_reads_the_same_arrays_as_the_eager_one(stored, tmp_path):
    data, lazy = stored
    images = lazy.images
    assert isinstance(images, H5Images) and images.rows_read == 0
    assert images.shape == data.images.shape and images.dtype == np.uint8 and len(images) == 40
    for name in ("labels", "split", "ids"):
        assert np.array_equal(getattr(lazy, name), getattr(data, name))
    assert np.array_equal(lazy.extras["role"], data.extras["role"])
    x = data.images
    keys = [
        slice(None),
        slice(3, 17),
        slice(30, 5, -3),
        np.array([7, 2, 2, 39, 0]),  # unsorted, repeated
        np.array([-1, -40]),
        data.split == "test",
        torch.tensor([5, 1, 9]),
        np.array([], dtype=np.int64),
    ]
    for key in keys:
        want = x[key.numpy() if isinstance(key, torch.Tensor) else key]
        got = images[key]
        assert got.dtype == np.uint8 and np.array_equal(got, want), key
    assert np.array_equal(images[5], x[5]) and np.array_equal(images[-2], x[-2])
    view = images.subset(data.split == "train").subset(np.array([4, 0, 4]))
    assert np.array_equal(view[:], x[data.split == "train"][[4, 0, 4]])
    assert np.array_equal(np.asarray(take_rows(images, slice(0, 3))), x[:3])
    with pytest.raises(IndexError, match="out of range"):
        images[np.array([40])]
    with pytest.raises(IndexError, match="first axis"):
        images[0, 1]
    with h5py.File(tmp_path / "d.h5") as f:  # one image per chunk: a random batch reads its own
        assert f["images"].chunks == (1, 16, 16, 3)


def test_chunked_reader_never_holds_the_whole_array(tmp_path):
    n, size, batch = 1200, 32, 50
    data = _dataset(n, size=size)
    write_dataset(tmp_path / "big.h5", data)
    full = data.images.nbytes  # 3.7 MB
    del data
    lazy = read_dataset(tmp_path / "big.h5", lazy=True)
    order = np.random.default_rng(0).permutation(n)
    tracemalloc.start()
    total = 0
    for start in range(0, n, batch):
        total += int(lazy.images[order[start : start + batch]].sum())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert lazy.images.rows_read == n  # each image read once, in batches
    assert peak < full / 8, (peak, full)
    assert total > 0
    lazy.images.close()


def test_consumers_give_bit_identical_results_from_the_file(stored):
    data, lazy = stored
    enc = build_encoder(ModelSpec("m", "test_resnet", "random", input_size=16), seed=0)
    eager = extract_layer_features(enc, data.images, batch_size=16, progress=False)
    chunked = extract_layer_features(enc, lazy.images, batch_size=16, progress=False)
    assert eager.keys() == chunked.keys()
    assert all(np.array_equal(eager[k], chunked[k]) for k in eager)

    train = data.split == "train"

    def pretrain(images):
        torch.manual_seed(0)
        encoder = TinyEncoder()
        kw = dict(epochs=2, batch_size=8, lr=1e-3, log_every=1, progress=False, seed=3)
        return tr.pretrain(
            encoder, images, data.labels[train], "simclr", projector_dim=8,
            projector_hidden_dim=16, **kw,
        )  # fmt: skip

    (enc_a, hist_a), (enc_b, hist_b) = (
        pretrain(data.images[train]),
        pretrain(take_rows(lazy.images, train)),
    )
    assert _state_equal(enc_a, enc_b) and hist_a.equals(hist_b)

    def finetune(images):
        torch.manual_seed(0)
        kw = dict(epochs=2, batch_size=8, lr=2e-3, val_fraction=0.25, progress=False, seed=1)
        return tr.finetune(TinyEncoder(), images, data.labels[train], 2, **kw)

    (model_a, hist_a), (model_b, hist_b) = (
        finetune(data.images[train]),
        finetune(take_rows(lazy.images, train)),
    )
    assert _state_equal(model_a, model_b) and hist_a.equals(hist_b)
    test = data.split == "test"
    acc_a, recall_a, pred_a = tr.evaluate_classifier(model_a, data.images[test], data.labels[test])
    acc_b, recall_b, pred_b = tr.evaluate_classifier(
        model_a, take_rows(lazy.images, test), data.labels[test]
    )
    assert acc_a == acc_b and recall_a == recall_b and np.array_equal(pred_a, pred_b)
    # a resume file written for the in-memory images is valid for the same images in a file
    assert tr._fingerprint(images=data.images) == tr._fingerprint(images=lazy.images)


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = timm.create_model("test_resnet", pretrained=False, num_classes=0)
        self.num_features = int(self.body.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x - 0.5)


def _state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------- streaming convexity


def _reference_convexity(hidden, y, predict, n_points, max_pairs, seed, batch_size):
    """The pre-streaming implementation: every sample's hidden state held in one tensor."""
    from repaudit.metrics.convexity import _summarise, interpolation_weights, sample_pairs

    lam = torch.as_tensor(interpolation_weights(n_points), dtype=hidden.dtype)
    lam = lam.reshape((1, n_points) + (1,) * (hidden.ndim - 1))
    per_batch = max(1, batch_size // n_points)
    scores = {}
    for c, (a, b) in sample_pairs(y, max_pairs, ordered=False, seed=seed).items():
        hits = np.empty(a.size)
        for s in range(0, a.size, per_batch):
            ia, ib = torch.as_tensor(a[s : s + per_batch]), torch.as_tensor(b[s : s + per_batch])
            z = lam * hidden[ia].unsqueeze(1) + (1 - lam) * hidden[ib].unsqueeze(1)
            pred = np.asarray(predict(z.reshape((-1, *hidden.shape[1:]))))
            hits[s : s + ia.numel()] = (pred.reshape(-1, n_points) == c).mean(1)
        scores[c] = hits
    return _summarise(scores, {c: int((y == c).sum()) for c in scores}, None)


@pytest.mark.parametrize("batch_size", [1, 7, 40, 1000])
def test_streamed_euclidean_convexity_equals_the_in_memory_one(batch_size):
    rng = np.random.default_rng(1)
    hidden = torch.as_tensor(rng.normal(size=(30, 4, 3)), dtype=torch.float32)
    y = np.repeat(np.arange(3), 10)
    w = torch.as_tensor(rng.normal(size=(12, 3)), dtype=torch.float32)

    def predict(points):
        return (points.reshape(len(points), -1) @ w).argmax(1).numpy()

    calls = []

    def states(rows):
        calls.append(rows.size)
        return hidden[torch.as_tensor(rows)].clone()

    kw = dict(n_points=5, max_pairs=12, seed=2, batch_size=batch_size)
    want = _reference_convexity(hidden, y, predict, **kw)
    for source in (hidden, states):
        got = euclidean_convexity(source, y, predict, **kw)
        assert got.score == want.score and got.class_scores == want.class_scores
        assert got.sem == want.sem or np.allclose(list(got.sem.values()), list(want.sem.values()))
    # one call per pair batch, never more than its endpoints
    assert max(calls) <= 2 * max(1, batch_size // 5) and len(calls) == sum(
        -(-12 // max(1, batch_size // 5)) for _ in range(3)
    )
    with pytest.raises(ValueError, match="NaN or Inf"):
        euclidean_convexity(lambda rows: torch.full((rows.size, 2), np.nan), y, predict)
    with pytest.raises(ValueError, match=r"must return a \(2, \.\.\.\) tensor"):
        euclidean_convexity(lambda rows: torch.zeros(3, 2), y[:4] // 2, predict, batch_size=1)


@pytest.mark.parametrize("batch_size", [10, 33, 256])
def test_streamed_table_from_the_file_equals_full_hidden_states(stored, batch_size):
    data, lazy = stored
    encoder = build_encoder(ModelSpec("m", "test_resnet", "random", input_size=16), seed=0)
    torch.manual_seed(0)
    classifier = Classifier(encoder, nn.Linear(encoder.num_features, 2)).eval()
    kw = dict(n_points=4, max_pairs=15, seed=0, batch_size=batch_size)
    table = euclidean_convexity_table(classifier, lazy.images, data.labels, layers=["1", "2"], **kw)
    with torch.inference_mode():
        hidden = encoder.hidden_states(to_tensor(data.images))
        for layer in (1, 2):

            def predict(points, layer=layer):
                return classifier.logits_from(layer, points).argmax(1).numpy()

            want = _reference_convexity(hidden[layer], data.labels, predict, **kw)
            got = table.query(f"layer == '{layer}' and metric == 'euclidean_convexity'")
            assert got.query("`class` == 'all'")["value"].item() == pytest.approx(
                want.score, abs=1e-12
            )
            for c, v in want.class_scores.items():
                assert got.query(f"`class` == '{c}'")["value"].item() == pytest.approx(v, abs=1e-12)
    # the split's sample is read from the file, not the whole array
    before = lazy.images.rows_read
    params = dict(split="test", max_samples=6, layers=["1"], n_points=2, max_pairs=3)
    euclidean_convexity_on_split(
        classifier, lazy.images, data.labels, data.split, params={**params, "batch_size": 4}
    )
    assert 0 < lazy.images.rows_read - before <= 3 * 2 * 3
