"""The feature metrics at N = 5k, 20k and 50k, D = 768 (issue 19, scope 3): time and peak memory.

Data: float32 features with class structure (20 Gaussian classes, power-law feature scales, a
non-zero mean), one or two such "layers" of the same items. Per N and metric:

- geometry suite on one layer: RankMe (uncentred and centred), effective rank, participation
  ratio (plain and normalised), global isotropy, NESum, α-ReQ, self-cluster;
- W2 uniformity and Wang-Isola L_U (t = 2);
- linear CKA and mutual kNN (k = 10) between two layers;
- relative projection onto 300 anchors;
- GRI between two soft memberships with 20 concepts (library defaults: exact over all pairs up
  to N = 20,000, Monte-Carlo over 10^6 pairs beyond).

Peak memory is the peak resident set size above the one before the call, sampled every 5 ms
by a thread (so torch allocations count too, unlike tracemalloc). The torch paths run on CUDA
when a GPU is present (mutual kNN, L_U, GRI).

The 20k and 50k cases take minutes on a small CPU (mutual kNN at 50k: ~5 min on 2 loaded
cores); they only run with ``--benchmark-enable`` (``make bench``). Under the default
``--benchmark-disable``, which would still call each benchmark once, they are skipped.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch

from repaudit.metrics.concepts import generalized_rand_index_estimate
from repaudit.metrics.geometry import (
    alpha_req,
    effective_rank,
    global_isotropy,
    nesum,
    participation_ratio,
    participation_ratio_normalised,
    rankme,
    self_cluster,
)
from repaudit.metrics.projection import relative_projection
from repaudit.metrics.similarity import linear_cka, mutual_knn
from repaudit.metrics.uniformity import wang_isola_uniformity, wasserstein_uniformity

D, N_CLASSES, N_CONCEPTS, N_ANCHORS, SEED = 768, 20, 20, 300, 0
SIZES = [5_000, 20_000, 50_000]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MB = 1e6

# Budgets at N = 50,000, D = 768 on this project's 2-core CPU under load (~4-5): seconds, peak
# RSS above the caller's in MB. Memory is O(N·D) everywhere (float64 working copies of the
# features: 50,000 x 768 x 8 B = 307 MB each); a dense N x N float32 matrix would be 10,000 MB.
BUDGET_50K = {
    "geometry_suite": (60, 2_000),
    "w2": (15, 2_000),
    "lu": (300, 2_000),
    "linear_cka": (30, 2_000),
    "mutual_knn": (600, 2_000),
    "relative_projection": (10, 2_000),
    "gri": (10, 2_000),
}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss(fn):
    """(result of fn, peak RSS above the starting RSS in bytes), sampled every 5 ms."""
    base = _rss()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out = fn()
    finally:
        done.set()
        th.join()
    peak[0] = max(peak[0], _rss())
    return out, peak[0] - base


def _layers(n: int, n_layers: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(SEED)
    y = rng.integers(0, N_CLASSES, size=n)
    scales = np.arange(1, D + 1, dtype=np.float64) ** -0.5
    out = []
    for _ in range(n_layers):
        centres = 2.0 * rng.standard_normal((N_CLASSES, D))
        X = (centres[y] + rng.standard_normal((n, D))) * scales + 0.1
        out.append(X.astype(np.float32))
    return out


def _memberships(n: int, rng: np.random.Generator) -> np.ndarray:
    """Soft memberships (rows sum to 1) concentrated on one of N_CONCEPTS concepts."""
    logits = rng.standard_normal((n, N_CONCEPTS))
    logits[np.arange(n), rng.integers(0, N_CONCEPTS, size=n)] += 4.0
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (P / P.sum(axis=1, keepdims=True)).astype(np.float32)


def _geometry_suite(X: np.ndarray) -> dict[str, float]:
    return {
        "rankme": rankme(X),
        "rankme_centred": rankme(X, centred=True),
        "effective_rank": effective_rank(X),
        "participation_ratio": participation_ratio(X),
        "pr_normalised": participation_ratio_normalised(X),
        "global_isotropy": global_isotropy(X),
        "nesum": nesum(X),
        "alpha_req": alpha_req(X),
        "self_cluster": self_cluster(X),
    }


def _case(name: str, n: int):
    """fn() -> summary value(s) for metric ``name`` at size n (data built outside the timing)."""
    if name == "geometry_suite":
        (X,) = _layers(n)
        return lambda: _geometry_suite(X)
    if name == "w2":
        (X,) = _layers(n)
        return lambda: wasserstein_uniformity(X)
    if name == "lu":
        (X,) = _layers(n)
        return lambda: wang_isola_uniformity(X, t=2.0, device=DEVICE)
    if name == "linear_cka":
        X, Y = _layers(n, 2)
        return lambda: linear_cka(X, Y)
    if name == "mutual_knn":
        X, Y = _layers(n, 2)
        return lambda: mutual_knn(X, Y, k=10, device=DEVICE)
    if name == "relative_projection":
        (X,) = _layers(n)
        anchors = X[np.random.default_rng(SEED).choice(n, N_ANCHORS, replace=False)]
        return lambda: float(relative_projection(X, anchors).mean())
    if name == "gri":
        rng = np.random.default_rng(SEED)
        P, Q = _memberships(n, rng), _memberships(n, rng)

        def gri():
            est = generalized_rand_index_estimate(P, Q, device=DEVICE)
            return {"gri": est.value, "exact": est.exact, "n_pairs": est.n_pairs}

        return gri
    raise KeyError(name)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("metric", list(BUDGET_50K))
def test_metric_at_scale(benchmark, timed, request, metric, n):
    """One metric at N = n, D = 768: seconds and peak RSS; at N = 50,000 both must be within
    the metric's budget (``BUDGET_50K``)."""
    if n > 5_000 and not request.config.getoption("benchmark_enable"):
        pytest.skip("N > 5,000 runs only under --benchmark-enable (make bench)")
    fn = _case(metric, n)
    (value, peak), seconds = timed(lambda: _peak_rss(fn))
    info = dict(
        metric=metric,
        n=n,
        d=D,
        device=DEVICE,
        peak_rss_mb=round(peak / MB, 1),
        load_after=os.getloadavg()[0],
    )
    if isinstance(value, dict):
        info.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in value.items()})
    else:
        info["value"] = round(float(value), 4)
    benchmark.extra_info.update(info)
    if n == 50_000:
        budget_s, budget_mb = BUDGET_50K[metric]
        benchmark.extra_info["budget"] = f"<= {budget_s} s, <= {budget_mb} MB peak RSS"
        assert peak / MB <= budget_mb
        assert seconds <= budget_s


# ------------------------------------------------------------ bounded memory (issue 18, scope 4)
#
# Euclidean convexity and dataset loading at N = 1k, 10k, 50k: images in an HDF5 file read in
# index batches (repaudit.io.H5Images), a tiny CNN. The metric samples at most ``max_pairs``
# pairs per class, so N enters through storage only: peak memory must not grow with N. Before
# streaming, every image's hidden states were held at once (N x the per-image size below).

MEMORY_SIZES = [1_000, 10_000, 50_000]


def _image_file(path, n: int, size: int, n_classes: int = 10) -> None:
    from repaudit.data import ImageDataset
    from repaudit.io import write_dataset

    rng = np.random.default_rng(SEED)
    write_dataset(
        path,
        ImageDataset(
            images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
            labels=np.arange(n) % n_classes,
            split=np.full(n, "test"),
            ids=np.char.add("i", np.arange(n).astype(str)),
            class_names=[str(c) for c in range(n_classes)],
        ),
    )


def _traced(fn):
    """(result, peak tracemalloc bytes: NumPy/h5py host buffers, not torch's allocator)."""
    import tracemalloc

    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_euclidean_convexity_memory_constant_in_n(benchmark, timed, request, tmp_path):
    """Peak RSS and tracemalloc of streamed Euclidean convexity at N = 1k, 10k, 50k (2 layers,
    10 classes x 20 pairs, 4 interpolants): the spread over N stays within 40 MB, while the
    hidden states the old implementation kept would grow by ~N x their per-image size."""
    from torch import nn

    from repaudit.io import read_dataset
    from repaudit.models.analyses import euclidean_convexity_table
    from repaudit.models.extract import to_tensor
    from repaudit.models.factory import Classifier, ModelSpec, build_encoder

    sizes = MEMORY_SIZES if request.config.getoption("benchmark_enable") else [1_000, 2_000]
    encoder = build_encoder(ModelSpec("m", "test_resnet", "random", input_size=16), seed=SEED)
    torch.manual_seed(SEED)
    classifier = Classifier(encoder, nn.Linear(encoder.num_features, 10)).eval()
    kw = dict(layers=["0", "1"], n_points=4, max_pairs=20, batch_size=64, seed=SEED)
    with torch.inference_mode():
        per_image = sum(
            h[0].numel() * 4 for h in encoder.hidden_states(to_tensor(np.zeros((1, 16, 16, 3))))
        )
    peaks, traced, scores, files = {}, {}, {}, {}
    for n in sizes:
        files[n] = tmp_path / f"d{n}.h5"
        _image_file(files[n], n, 16)

    def run_all():
        for n in [sizes[0], *sizes]:  # the first run warms torch's allocator up; not recorded
            data = read_dataset(files[n], lazy=True)
            (table, tm), rss = _peak_rss(
                lambda data=data: _traced(
                    lambda: euclidean_convexity_table(
                        classifier, data.images, data.labels, device=DEVICE, **kw
                    )
                )
            )
            peaks[n], traced[n] = rss / MB, tm / MB
            scores[n] = float(table.query("`class` == 'all'")["value"].iloc[0])
            data.images.close()

    timed(run_all)
    spread = max(peaks.values()) - min(peaks.values())
    benchmark.extra_info.update(
        sizes=sizes,
        peak_rss_mb={n: round(v, 1) for n, v in peaks.items()},
        peak_tracemalloc_mb={n: round(v, 2) for n, v in traced.items()},
        rss_spread_mb=round(spread, 1),
        all_layers_hidden_mb_before={n: round(n * per_image / MB, 1) for n in sizes},
        score_layer0={n: round(v, 2) for n, v in scores.items()},
        device=DEVICE,
        load_after=os.getloadavg()[0],
    )
    assert spread <= 40, peaks
    assert max(traced.values()) - min(traced.values()) <= 5, traced


def test_chunked_loading_at_50k(benchmark, timed, request, tmp_path):
    """A shuffled epoch over N = 50,000 32x32 images (147 MB as one array) read from the file in
    batches of 256: seconds, peak RSS and tracemalloc, far below the full array."""
    from repaudit.io import read_dataset

    n = 50_000 if request.config.getoption("benchmark_enable") else 2_000
    _image_file(tmp_path / "d.h5", n, 32)
    data = read_dataset(tmp_path / "d.h5", lazy=True)
    full = n * 32 * 32 * 3
    order = np.random.default_rng(SEED).permutation(n)

    def epoch():
        total = 0
        for start in range(0, n, 256):
            total += int(data.images[order[start : start + 256]][:, 0, 0, 0].sum())
        return total

    ((total, tm), rss), seconds = timed(lambda: _peak_rss(lambda: _traced(epoch)))
    benchmark.extra_info.update(
        n=n,
        full_array_mb=round(full / MB, 1),
        peak_rss_mb=round(rss / MB, 1),
        peak_tracemalloc_mb=round(tm / MB, 2),
        rows_read=data.images.rows_read,
        images_per_s=round(n / seconds),
        load_after=os.getloadavg()[0],
    )
    assert data.images.rows_read == n and total > 0
    batch_bytes = 256 * 32 * 32 * 3
    assert tm < 3 * batch_bytes and (n < 50_000 or rss < full / 4)
    data.images.close()
