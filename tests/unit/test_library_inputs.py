"""The metrics as a library: every public metric takes any array-like and rejects bad input.

Each case calls one public metric (or table) function of ``repaudit.metrics`` on tiny inputs.
The reference is the result on C-contiguous float64 copies of the inputs (computed once per
case); every other layout a user may hold the same values in (negative-stride and strided views,
Fortran order, float16, nested lists, torch tensors on the CPU and, when present, on the GPU)
must give that result. The float16 and float32 layouts hold rounded values, so their reference
is the float64 copy of the rounded values (a kNN set or an anchor choice must not change), and
they are compared with looser tolerances, ``F16_RTOL`` and ``F32_RTOL``: a torch-native function
returns its result in the input's precision. Every other layout holds the identical float64
values, compared at ``RTOL``.

Bad input (NaN, Inf, no rows, no columns, ragged nested lists; labels of the wrong length,
ragged or empty) must raise a one-line ValueError that names the argument.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from repaudit.metrics import binding as B
from repaudit.metrics import concepts as CO
from repaudit.metrics import convexity as CV
from repaudit.metrics import geometry as G
from repaudit.metrics import relative as R
from repaudit.metrics import sensitivity as S
from repaudit.metrics import uniformity as U

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RTOL, ATOL = 1e-10, 1e-12
# A torch-native function returns its result in the input's precision: float16 (2^-11
# relative rounding) or float32 (2^-24).
F16_RTOL, F16_ATOL = 1e-3, 1e-3
F32_RTOL, F32_ATOL = 1e-6, 1e-7
CUDA = torch.cuda.is_available()

# ------------------------------------------------------------------------------------ data
_rng = np.random.default_rng(0)
N = 24
X = _rng.standard_normal((N, 5)) * [3.0, 2.0, 1.0, 0.5, 0.25]  # anisotropic, no zero rows
X2 = _rng.standard_normal((N, 4)) + 0.5 * X[:, :4]
Y3 = np.repeat(np.arange(3), N // 3)  # 3 classes of 8
X_CLS = X + 4.0 * np.eye(5)[Y3]  # class structure, for probes, concepts and convexity


def _soft_partition(n: int, c: int) -> np.ndarray:
    """Memberships in multiples of 1/64 with rows summing to exactly 1, so that the float16
    layout holds a valid fuzzy partition too (see test_float16_memberships for rounded ones)."""
    P = np.floor(_rng.dirichlet(np.ones(c), size=n) * 64) / 64
    P[:, -1] = 1.0 - P[:, :-1].sum(axis=1)
    return P


P, Q = _soft_partition(N, 3), _soft_partition(N, 4)
SPLIT = np.where(np.arange(N) % 2 == 0, "train", "test")
TR, TE = SPLIT == "train", SPLIT == "test"
SWAP = np.arange(16).reshape(8, 2)
SAME = np.arange(8) % 2 == 0
IMAGES = _rng.uniform(size=(3, 3, 4, 4))
SVALS = np.array([3.0, 2.0, 1.5, 0.5, 0.1])
GRI_MATRIX = np.array([[1.0, 0.9, 0.5], [0.9, 1.0, 0.8], [0.5, 0.8, 1.0]])
D_MATRIX = np.array([[0.3, 0.05, 0.4], [0.2, 0.5, 0.1]])


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 6), torch.nn.Tanh())


MODEL = _model()
with torch.random.fork_rng(devices=[]):
    DECODER = R.train_decoder(X_CLS[TR], Y3[TR], epochs=2, hidden=8, batch_size=4)


# ------------------------------------------------------------------------------------ cases
@dataclass
class Case:
    """``call(arrays, labels)`` on float inputs ``arrays`` and integer/bool inputs ``labels``.

    ``names`` maps an input key to the name the error message must use when that input differs
    from the key (a layer inside a features mapping); ``length_checked`` lists the labels whose
    length is checked against other inputs.
    """

    call: Callable
    arrays: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)
    length_checked: tuple = ()
    layouts: bool = True  # False: only the bad-input checks (the call is too slow for this file)


def _single(f, **kw):
    return Case(lambda a, lab: f(a["X"], **kw), {"X": X})


CASES: dict[str, Case] = {
    # Chung & Kim 2026 (arXiv:2602.03282): global geometry and JER
    "rankme": _single(G.rankme),
    "rankme_centred": _single(G.rankme, centred=True),
    "effective_rank": _single(G.effective_rank),
    "participation_ratio": _single(G.participation_ratio),
    "participation_ratio_normalised": _single(G.participation_ratio_normalised),
    "global_isotropy": _single(G.global_isotropy),
    "nesum": _single(G.nesum),
    "alpha_req_fit": _single(G.alpha_req_fit, fit_range=(0, 5)),
    "alpha_req": _single(G.alpha_req, fit_range=(0, 5)),
    "self_cluster": _single(G.self_cluster),
    "local_isotropy": _single(G.local_isotropy, k=5),
    "geometry_table": Case(
        lambda a, lab: G.geometry_table({"a": a["a"], "b": a["b"]}, local_k=5, alpha_range=(0, 4)),
        {"a": X, "b": X2},
        names={"a": "features['a']", "b": "features['b']"},
    ),
    "jacobian_effective_rank": Case(
        lambda a, lab: S.jacobian_effective_rank(MODEL, a["images"], k=2, power_iters=1),
        {"images": IMAGES},
    ),
    "jacobian_effective_rank_per_image": Case(
        lambda a, lab: S.jacobian_effective_rank_per_image(MODEL, a["images"], k=2, power_iters=1),
        {"images": IMAGES},
    ),
    "jacobian_singular_values": Case(
        lambda a, lab: S.jacobian_singular_values(MODEL, a["image"], k=2, power_iters=1),
        {"image": IMAGES},
    ),
    "exact_jacobian_effective_rank": Case(
        lambda a, lab: S.exact_jacobian_effective_rank(MODEL, a["images"], k=3),
        {"images": IMAGES},
    ),
    "exact_jacobian_singular_values": Case(
        lambda a, lab: S.exact_jacobian_singular_values(MODEL, a["image"]),
        {"image": IMAGES},
    ),
    "jacobian_frobenius_sq": Case(
        lambda a, lab: S.jacobian_frobenius_sq(MODEL, a["images"], n_probes=2),
        {"images": IMAGES},
    ),
    "relative_jacobian_frobenius": Case(
        lambda a, lab: S.relative_jacobian_frobenius(MODEL, a["images"], n_probes=2),
        {"images": IMAGES},
    ),
    "sensitivity_table": Case(
        lambda a, lab: S.sensitivity_table(
            MODEL, a["images"], k=2, power_iters=1, n_probes=2, noise_control=False
        ),
        {"images": IMAGES},
    ),
    "singular_value_participation_ratio": Case(
        lambda a, lab: S.singular_value_participation_ratio(a["s"], k=4), {"s": SVALS}
    ),
    # Chung & Kim 2026: binding probes
    "binding_probe": Case(
        lambda a, lab: B.binding_probe(
            a["train_X"], lab["train_y"], a["test_X"], lab["test_y"], c_grid=(1.0,), cv=2
        ),
        {"train_X": X_CLS[TR], "test_X": X_CLS[TE]},
        {"train_y": Y3[TR], "test_y": Y3[TE]},
        length_checked=("train_y", "test_y"),
    ),
    "knn_readout": Case(
        lambda a, lab: B.knn_readout(a["train_X"], lab["train_y"], a["test_X"], lab["test_y"], 3),
        {"train_X": X_CLS[TR], "test_X": X_CLS[TE]},
        {"train_y": Y3[TR], "test_y": Y3[TE]},
        length_checked=("train_y", "test_y"),
    ),
    "swap_auc": Case(
        lambda a, lab: B.swap_auc(a["za"], a["zb"], lab["same"]),
        {"za": X[:8], "zb": X2[:8, :4] @ np.ones((4, 5))},
        {"same": SAME},
        length_checked=("same",),
    ),
    "binding_table": Case(
        lambda a, lab: B.binding_table(
            {"final": a["final"]},
            lab["labels"],
            SPLIT,
            c_grid=(1.0,),
            cv=2,
            knn_k=3,
            swap_pairs=SWAP,
            swap_same=SAME,
        ),
        {"final": X_CLS},
        {"labels": Y3},
        names={"final": "features['final']"},
        length_checked=("labels",),
    ),
    # Moschella et al. 2023 (arXiv:2209.15430): relative representations
    "select_anchors_fps": Case(
        lambda a, lab: R.select_anchors(4, X=a["X"], method="fps"), {"X": X}
    ),
    "select_anchors_kmeans": Case(
        lambda a, lab: R.select_anchors(4, X=a["X"], method="kmeans"), {"X": X}
    ),
    "select_anchors_stratified": Case(
        lambda a, lab: R.select_anchors(6, labels=lab["labels"], method="stratified"),
        labels={"labels": Y3},
    ),
    "relative_projection": Case(
        lambda a, lab: R.relative_projection(a["X"], a["anchors_X"]),
        {"X": X, "anchors_X": X[:4]},
    ),
    "relative_projection_whitened": Case(
        lambda a, lab: R.relative_projection(a["X"], a["anchors_X"], whiten=True),
        {"X": X, "anchors_X": X[:8]},
    ),
    "linear_cka": Case(lambda a, lab: R.linear_cka(a["X"], a["Y"]), {"X": X, "Y": X2}),
    "mutual_knn": Case(lambda a, lab: R.mutual_knn(a["X"], a["Y"], k=3), {"X": X, "Y": X2}),
    "latent_similarity": Case(
        lambda a, lab: R.latent_similarity(a["src"], a["tgt"], k=3),
        {"src": X, "tgt": X + 0.3 * X2 @ np.ones((4, 5))},
    ),
    "weighted_f1_score": Case(
        lambda a, lab: R.weighted_f1_score(lab["y_true"], lab["y_pred"]),
        labels={"y_true": Y3, "y_pred": np.roll(Y3, 3)},
        length_checked=("y_true", "y_pred"),
    ),
    "train_decoder": Case(
        lambda a, lab: R.train_decoder(a["X_train"], lab["y_train"], epochs=1, hidden=8),
        {"X_train": X_CLS},
        {"y_train": Y3},
        length_checked=("y_train",),
    ),
    "decoder_predict": Case(lambda a, lab: R.decoder_predict(DECODER, a["X"]), {"X": X_CLS}),
    "stitching_scores": Case(
        lambda a, lab: R.stitching_scores(
            {"m": a["tr"]},
            {"m": a["te"]},
            lab["y_train"],
            lab["y_test"],
            seeds=(0,),
            epochs=1,
            hidden=8,
        ),
        {"tr": X_CLS[TR], "te": X_CLS[TE]},
        {"y_train": Y3[TR], "y_test": Y3[TE]},
        names={"tr": "train_spaces['m']", "te": "test_spaces['m']"},
        length_checked=("y_train", "y_test"),
    ),
    "relative_table": Case(
        lambda a, lab: R.relative_table(
            {"a": {"0": a["a"]}, "b": {"0": a["b"]}},
            lab["labels"],
            SPLIT,
            n_anchors=4,
            k=3,
            mutual_k=3,
        ),
        {"a": X_CLS, "b": X2},
        {"labels": Y3},
        names={"a": "features['a']['0']", "b": "features['b']['0']"},
        length_checked=("labels",),
    ),
    "stitching_table": Case(
        lambda a, lab: R.stitching_table(
            {"a": {"0": a["a"]}, "b": {"0": a["b"]}},
            lab["labels"],
            SPLIT,
            n_anchors=4,
            seeds=(0,),
            epochs=1,
            hidden=8,
        ),
        {"a": X_CLS, "b": X2},
        {"labels": Y3},
        names={"a": "features['a']['0']", "b": "features['b']['0']"},
        length_checked=("labels",),
    ),
    # Vielhaben et al. 2025 (arXiv:2412.06639): concepts and the generalised Rand index
    "generalized_rand_index": Case(
        lambda a, lab: CO.generalized_rand_index(a["P"], a["Q"]), {"P": P, "Q": Q}
    ),
    "generalized_rand_index_estimate_mc": Case(
        lambda a, lab: CO.generalized_rand_index_estimate(
            a["P"], a["Q"], exact_max_n=2, n_pairs=500, dtype="float64"
        ),
        {"P": P, "Q": Q},
    ),
    "concept_pair_distances": Case(
        lambda a, lab: CO.concept_pair_distances(a["P"], a["Q"]), {"P": P, "Q": Q}
    ),
    "match_concepts": Case(lambda a, lab: CO.match_concepts(a["D"], 0.2), {"D": D_MATRIX}),
    "sanity_score": Case(
        lambda a, lab: CO.sanity_score(a["gri_matrix"]), {"gri_matrix": GRI_MATRIX}
    ),
    "one_hot": Case(lambda a, lab: CO.one_hot(lab["labels"]), labels={"labels": Y3}),
    # a UMAP fit costs seconds on first use; the coercion is as_features's, checked above
    "discover_concepts": Case(
        lambda a, lab: CO.discover_concepts(a["X"], n_components=2, n_neighbors=5),
        {"X": X_CLS},
        layouts=False,
    ),
    "sampled_concepts_table": Case(
        lambda a, lab: CO.sampled_concepts_table(
            {"0": a["0"]},
            lab["labels"],
            SPLIT,
            params={"split": "train", "max_samples": 9, "methods": ("kmeans",), "n_concepts": 3},
        ),
        {"0": X_CLS},
        {"labels": Y3},
        names={"0": "features['0']"},
        length_checked=("labels",),
    ),
    "kmeans_concepts": Case(lambda a, lab: CO.kmeans_concepts(a["X"], 3), {"X": X_CLS}),
    "pca_concepts": Case(lambda a, lab: CO.pca_concepts(a["X"], 3), {"X": X_CLS}),
    "concepts_table": Case(
        lambda a, lab: CO.concepts_table(
            {"0": a["0"], "1": a["1"]}, lab["labels"], methods=("kmeans", "pca"), n_concepts=3
        ),
        {"0": X_CLS, "1": X},
        {"labels": Y3},
        names={"0": "features['0']", "1": "features['1']"},
        length_checked=("labels",),
    ),
    # Tětková et al. 2025 (arXiv:2305.17154): graph convexity
    "graph_convexity": Case(
        lambda a, lab: CV.graph_convexity(a["X"], lab["y"], k=3, max_paths=20),
        {"X": X_CLS},
        {"y": Y3},
        length_checked=("y",),
    ),
    "permutation_chance": Case(
        lambda a, lab: CV.permutation_chance(a["X"], lab["y"], k=3, max_paths=10, n_permutations=2),
        {"X": X_CLS},
        {"y": Y3},
        length_checked=("y",),
    ),
    "knn_graph": Case(lambda a, lab: CV.knn_graph(a["X"], k=3), {"X": X}),
    "sample_pairs": Case(lambda a, lab: CV.sample_pairs(lab["y"], max_pairs=5), labels={"y": Y3}),
    "convexity_table": Case(
        lambda a, lab: CV.convexity_table(
            {"0": a["0"]}, lab["labels"], k=3, max_paths=10, n_permutations=2
        ),
        {"0": X_CLS},
        {"labels": Y3},
        names={"0": "features['0']"},
        length_checked=("labels",),
    ),
    "euclidean_convexity": Case(
        lambda a, lab: CV.euclidean_convexity(
            torch.from_numpy(X_CLS), lab["y"], lambda z: z.argmax(1) % 3, n_points=3
        ),
        labels={"y": Y3},
        length_checked=("y",),
    ),
    # Fang et al. 2024 (arXiv:2403.00642): Wasserstein uniformity (and Wang & Isola's L_U)
    "wasserstein_uniformity": _single(U.wasserstein_uniformity),
    "wasserstein_uniformity_loss": Case(
        lambda a, lab: U.wasserstein_uniformity_loss(a["z"]), {"z": X}
    ),
    "wang_isola_uniformity": _single(U.wang_isola_uniformity),
    "alignment": Case(lambda a, lab: U.alignment(a["Xa"], a["Xb"]), {"Xa": X, "Xb": X + 0.5}),
}


# ------------------------------------------------------------------------------- layouts
def _negative_strides(x: np.ndarray) -> np.ndarray:
    """The same values as a view with negative strides on every axis (e.g. ``P[:, ::-1]``)."""
    flip = (slice(None, None, -1),) * x.ndim
    return np.ascontiguousarray(x[flip])[flip]


def _strided(x: np.ndarray) -> np.ndarray:
    """The same values as a non-contiguous view (every other element of the last axis)."""
    buf = np.zeros((*x.shape[:-1], 2 * x.shape[-1]), dtype=x.dtype)
    buf[..., ::2] = x
    return buf[..., ::2]


def _transposed_tensor(x: np.ndarray) -> torch.Tensor:
    """A float32 torch tensor whose memory is the transpose (non-contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(x.T)).float().T


# the float64 values a layout holds
VALUES = {
    "exact": lambda x: x,
    "float16": lambda x: x.astype(np.float16).astype(float),
    "float32": lambda x: x.astype(np.float32).astype(float),
}
# name -> (layout of the float inputs, key of the values it holds)
FLOAT_LAYOUTS = {
    "negative_strides": (_negative_strides, "exact"),
    "strided_view": (_strided, "exact"),
    "fortran_order": (np.asfortranarray, "exact"),
    "float16": (lambda x: x.astype(np.float16), "float16"),
    "list": (lambda x: x.tolist(), "exact"),
    "torch_cpu": (torch.from_numpy, "exact"),
    "torch_float32_transposed": (
        lambda x: _transposed_tensor(x) if x.ndim == 2 else torch.from_numpy(x).float(),
        "float32",
    ),
    "torch_cuda": (lambda x: torch.from_numpy(x).cuda(), "exact"),
}
# A torch-native function returns its result in the input's precision.
TOLERANCE = {
    "exact": (RTOL, ATOL),
    "float16": (F16_RTOL, F16_ATOL),
    "float32": (F32_RTOL, F32_ATOL),
}
LABEL_LAYOUTS = {
    "negative_strides": _negative_strides,
    "strided_view": _strided,
    "int32": lambda y: y.astype(np.int32) if y.dtype.kind in "iu" else y,
    "list": lambda y: y.tolist(),
    "torch_cpu": torch.from_numpy,
    "torch_cuda": lambda y: torch.from_numpy(y).cuda(),
}


def _layout_param(name):
    marks = pytest.mark.skipif(not CUDA, reason="no GPU") if name == "torch_cuda" else ()
    return pytest.param(name, marks=marks, id=name)


# ------------------------------------------------------------------------------ comparison
def _assert_same(a, b, rtol: float, atol: float, where: str = "result") -> None:
    """Recursive closeness of two results of the same function (floats, arrays, frames...)."""
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=rtol, atol=atol, obj=where)
    elif isinstance(a, torch.nn.Module):
        _assert_same(a.state_dict(), b.state_dict(), rtol, atol, where)
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        _assert_same(a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy(),
                     rtol, atol, where)  # fmt: skip
    elif sp.issparse(a):
        _assert_same(a.toarray(), b.toarray(), rtol, atol, where)
    elif dataclasses.is_dataclass(a):
        skip = {"seconds"}  # wall time
        for f in dataclasses.fields(a):
            if f.name not in skip:
                _assert_same(
                    getattr(a, f.name), getattr(b, f.name), rtol, atol, f"{where}.{f.name}"
                )
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_same(a[key], b[key], rtol, atol, f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _assert_same(u, v, rtol, atol, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) and a.dtype.kind not in "fc":
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, np.ndarray | float | np.floating):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, equal_nan=True, err_msg=where)
    else:
        assert a == b, where


_REFERENCES: dict = {}


def _reference(name: str, values: str = "exact"):
    """The result on C-contiguous float64 copies of the case's (rounded) values; computed once."""
    if (name, values) not in _REFERENCES:
        case = CASES[name]
        arrays = {
            k: np.ascontiguousarray(VALUES[values](v), dtype=np.float64)
            for k, v in case.arrays.items()
        }
        labels = {k: np.ascontiguousarray(v) for k, v in case.labels.items()}
        _REFERENCES[name, values] = case.call(arrays, labels)
    return _REFERENCES[name, values]


# ---------------------------------------------------------------------------------- tests
FLOAT_CASES = [name for name, c in CASES.items() if c.arrays]
LAYOUT_CASES = [name for name in FLOAT_CASES if CASES[name].layouts]
LABEL_CASES = [name for name, c in CASES.items() if c.labels]


@pytest.mark.parametrize("layout", [_layout_param(n) for n in FLOAT_LAYOUTS])
@pytest.mark.parametrize("name", LAYOUT_CASES)
def test_any_float_layout_gives_the_contiguous_result(name, layout):
    case = CASES[name]
    make, values = FLOAT_LAYOUTS[layout]
    got = case.call({k: make(v) for k, v in case.arrays.items()}, case.labels)
    _assert_same(_reference(name, values), got, *TOLERANCE[values])


@pytest.mark.parametrize("layout", [_layout_param(n) for n in LABEL_LAYOUTS])
@pytest.mark.parametrize("name", LABEL_CASES)
def test_any_label_layout_gives_the_contiguous_result(name, layout):
    case = CASES[name]
    got = case.call(case.arrays, {k: LABEL_LAYOUTS[layout](v) for k, v in case.labels.items()})
    _assert_same(_reference(name), got, RTOL, ATOL)


def test_gri_of_a_negative_stride_view():
    """The reported failure: a column-reversed view of P is a valid second partition."""
    expected = CO.generalized_rand_index(P, np.ascontiguousarray(P[:, ::-1]))
    assert CO.generalized_rand_index(P, P[:, ::-1]) == expected
    assert CO.generalized_rand_index(P[::-1], P[::-1, ::-1]) == pytest.approx(expected, rel=1e-6)


def test_float16_memberships():
    """Rows of float16 memberships sum to 1 only up to float16 rounding; they are accepted and
    give the float64 GRI up to that rounding."""
    soft = np.random.default_rng(1).dirichlet(np.ones(5), size=40)
    half = soft.astype(np.float16)
    assert np.abs(half.astype(float).sum(axis=1) - 1).max() > 1e-4  # beyond the float64 slack
    for f in (CO.generalized_rand_index, CO.concept_pair_distances):
        np.testing.assert_allclose(f(half, soft[:, ::-1]), f(soft, soft[:, ::-1]), atol=F16_ATOL)


def _with(x: np.ndarray, value: float) -> np.ndarray:
    bad = np.array(x, dtype=np.float64)
    bad.flat[0] = value
    return bad


def _ragged(x: np.ndarray) -> list:
    rows = x.tolist()
    if x.ndim == 1:
        return [rows[:2], rows[2:3]]
    rows[-1] = rows[-1][:-1]
    return rows


BAD_FLOATS = {
    "nan": lambda x: _with(x, np.nan),
    "inf": lambda x: _with(x, -np.inf),
    "no_rows": lambda x: np.zeros((0, *x.shape[1:])),
    "no_columns": lambda x: np.zeros((*x.shape[:-1], 0)),
    "ragged": _ragged,
}
BAD_LABELS = {
    "wrong_length": lambda y: y[:-1],
    "empty": lambda y: y[:0],
    "ragged": lambda y: [y[:2].tolist(), y[2:3].tolist()],
    "two_d": lambda y: np.stack([y, y], axis=1),
}


def _raises_naming(name: str, call) -> None:
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    assert re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message), message
    assert "\n" not in message, message


@pytest.mark.parametrize("bad", list(BAD_FLOATS))
@pytest.mark.parametrize("name", FLOAT_CASES)
def test_bad_float_input_is_a_value_error_naming_it(name, bad):
    case = CASES[name]
    for key, value in case.arrays.items():
        if bad == "no_columns" and value.ndim < 2:
            continue
        arrays = {**case.arrays, key: BAD_FLOATS[bad](value)}
        _raises_naming(case.names.get(key, key), lambda a=arrays: case.call(a, case.labels))


@pytest.mark.parametrize("bad", list(BAD_LABELS))
@pytest.mark.parametrize("name", LABEL_CASES)
def test_bad_labels_are_a_value_error_naming_them(name, bad):
    case = CASES[name]
    for key, value in case.labels.items():
        if bad == "wrong_length" and key not in case.length_checked:
            continue
        labels = {**case.labels, key: BAD_LABELS[bad](value)}
        _raises_naming(case.names.get(key, key), lambda lab=labels: case.call(case.arrays, lab))
