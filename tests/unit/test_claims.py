"""Tests of the claims registry: loading, selectors, verdict rules, planted effects, registry."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from statsmodels.stats.multitest import multipletests

from repaudit import claims as C

REGISTRY = Path(__file__).resolve().parents[2] / "config" / "claims.yaml"
FAST = {"n_boot": 200, "n_perm": 200}
OBJECTIVES = ["supervised", "simclr", "barlow", "simclr_w2", "random"]
LEVEL = {"supervised": 2, "simclr": 0, "barlow": 0, "simclr_w2": 0, "random": 0}
GEOMETRY = ["participation_ratio_normalised", "global_isotropy", "local_isotropy", "nesum"]
LAYERS = ["0", "1", "2", "3", "final"]


@pytest.fixture(scope="module")
def registry() -> dict:
    return yaml.safe_load(REGISTRY.read_text())


@pytest.fixture(scope="module")
def claims(registry) -> list[C.Claim]:
    return C.load_claims(registry, FAST)


def _synthetic_table(plant: bool, seed: int = 0, n_arch: int = 4, n_classes: int = 10):
    """A metrics table with every metric the registry needs; effects planted or absent."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []

    def add(**kw):
        row = {"dataset": "digits", "stage": "pretrained", "layer": "final", "variant": ""}
        row.update(kw)
        rows.append(row)

    models = [(f"a{a}_{o}", f"arch{a}", o) for a in range(n_arch) for o in OBJECTIVES]
    width = {f"arch{a}": 32 * (1 + a % 2) for a in range(n_arch)}
    for model, arch, obj in models:
        meta = {"model": model, "architecture": arch, "objective": obj, "family": "cnn"}
        bind = rng.uniform(0.3, 0.9)
        add(**meta, dataset="binding", metric="binding_ood_accuracy", variant="logreg", value=bind)
        jer = (20 * bind if plant else 10) + rng.normal(0, 1.5)
        add(**meta, metric="jacobian_effective_rank", variant="images", value=jer)
        add(**meta, metric="jacobian_effective_rank", variant="noise", value=rng.normal(20, 2))
        model_eff = rng.normal(0, 3)
        for li, layer in enumerate(LAYERS):
            depth = li / 4
            where = {"layer": layer, "layer_index": li, "depth": depth}
            for g in GEOMETRY:
                add(**meta, **where, metric=g, value=rng.normal())
            for v in ("uncentred", "centred"):
                add(**meta, **where, metric="rankme", variant=v, value=rng.normal())
            conv = 12 + (20 + 40 * depth if plant else 0) + model_eff + rng.normal(0, 2)
            if layer == "final":
                conv_final = conv
            add(**meta, **where, metric="graph_convexity", **{"class": "all"}, value=conv)
            chance = 12 + rng.normal(0, 1)
            add(**meta, **where, metric="graph_convexity_chance", **{"class": "all"}, value=chance)
            gri = 0.7 - (0.1 * LEVEL[obj] if plant else 0) + rng.normal(0, 0.03)
            add(**meta, **where, metric="gri_labels", variant="manifold", value=gri)
        ft = {"stage": "finetuned_digits", "layer_index": 4, "depth": 1.0}
        conv_ft = conv_final + (5 if plant else 0) + rng.normal(0, 2)
        add(**meta, **ft, metric="graph_convexity", **{"class": "all"}, value=conv_ft)
        acc = (0.2 + 0.008 * conv_final if plant else 0.7) + rng.normal(0, 0.01)
        add(**meta, **ft, metric="finetune_test_accuracy", value=acc)
        for c in range(n_classes):
            cc = conv_final + rng.normal(0, 8)
            add(**meta, metric="graph_convexity", **{"class": str(c)}, value=cc)
            # Recall rows carry float class labels: keys must still match "3" == 3.0.
            recall = (0.3 + 0.006 * cc if plant else 0.7) + model_eff / 100
            add(
                **meta,
                **ft,
                metric="finetune_class_recall",
                **{"class": float(c)},
                value=recall + rng.normal(0, 0.03),
            )
        w2 = 0.8 - (0.2 if plant and obj == "simclr_w2" else 0) + rng.normal(0, 0.03)
        add(**meta, metric="wasserstein_uniformity", value=w2)
        probe = 0.8 + (0.03 if plant and obj == "simclr_w2" else 0) + rng.normal(0, 0.01)
        add(**meta, metric="probe_test_accuracy", value=probe)
        for v, mu in (("manifold", 0.9 if plant else 0.6), ("kmeans", 0.6), ("pca", 0.6)):
            add(**meta, metric="concept_sanity", variant=v, value=mu + rng.normal(0, 0.05))
    for ma, aa, oa in models:
        for mb, ab, _ in models:
            meta = {"model": ma, "architecture": aa, "objective": oa, "model_b": mb}
            same_width = width[aa] == width[ab]
            for met in ("latent_jaccard", "latent_mrr", "latent_cosine"):
                absolute = 0.02 + rng.normal(0, 0.01) if same_width else np.nan
                relative = (0.7 if plant else 0.02) + rng.normal(0, 0.05)
                if ma == mb:
                    absolute = relative = 1.0
                add(**meta, metric=met, variant="relative", value=relative)
                add(**meta, metric=met, variant="absolute", value=absolute)
            rel_f1 = (60 if plant else 11) + rng.normal(0, 5)
            abs_f1 = 11 + rng.normal(0, 2) if same_width else np.nan
            add(**meta, metric="stitching_f1", variant="relative", value=rel_f1)
            add(**meta, metric="stitching_f1", variant="absolute", value=abs_f1)
    # Planted: -L_U with 3 replicate seeds; null: L_U itself, one replicate, no seed (as the
    # uniformity module writes it), which must give a descriptive contrast without a CI.
    for dim in (64, 256):
        for eta in (0.0, 0.25, 0.5, 0.75):
            for s in range(3 if plant else 1):
                meta = {
                    "dataset": "synthetic",
                    "model": "none",
                    "stage": "none",
                    "layer": "none",
                    "study": "collapse",
                    "dim": dim,
                    "eta": eta,
                    "seed": s if plant else np.nan,
                }
                w2 = np.sqrt(2 - 2 * np.sqrt(1 - eta))
                add(**meta, metric="wasserstein_uniformity", value=w2 + rng.normal(0, 0.005))
                if plant:
                    neg_lu = 4 - 8 / ((1 - eta) * dim) + rng.normal(0, 0.005)
                    add(**meta, metric="neg_wang_isola_uniformity", value=neg_lu)
                else:  # L_U as sensitive to eta as W2 (and more)
                    add(**meta, metric="wang_isola_uniformity", value=-4 * (1 - eta))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def planted():
    return _synthetic_table(plant=True)


@pytest.fixture(scope="module")
def null():
    # Each null claim is a false positive with probability ~alpha; seed 0 gives one for C1b
    # (p = 0.019), so the fixture uses seed 1, where none of the 17 occurs.
    return _synthetic_table(plant=False, seed=1)


# ----------------------------------------------------------------------------- registry


REQUIRED_IDS = {
    "C1",
    "C1b",
    "C2",
    "C3a",
    "C3b",
    "C3c",
    "C4a",
    "C4b",
    "C4c",
    "C5a",
    "C5b",
    "C5c",
    "C6a",
    "C6b",
    "C7a",
    "C7b",
    "C7c",
}


def test_registry_loads_with_every_claim_and_rule(claims):
    assert REQUIRED_IDS <= {c.id for c in claims}
    for c in claims:
        assert c.test in C.TESTS
        assert c.rule.kind in C.RULE_KINDS and len(c.rule.text) > 40
        assert c.paper and c.statement
    c1 = next(c for c in claims if c.id == "C1")
    assert c1.params["x"]["dataset"] == "digits"  # $natural_dataset substituted
    assert c1.params["n_boot"] == FAST["n_boot"]  # overridden variable keeps its type


def test_variables_can_be_overridden(registry):
    claims = C.load_claims(registry, {"natural_dataset": "cifar10"})
    c1 = next(c for c in claims if c.id == "C1")
    assert c1.params["x"]["dataset"] == "cifar10"
    assert c1.params["n_boot"] == 10_000


PLANTED = {cid: "supported" for cid in REQUIRED_IDS} | {"C1": "inconclusive"}
NULL = {
    "C1": "inconclusive",
    "C1b": "supported",
    "C2": "inconclusive",
    "C3a": "not supported",
    "C3b": "not supported",
    "C3c": "not supported",
    "C4a": "inconclusive",
    "C4b": "inconclusive",
    "C4c": "inconclusive",
    "C5a": "not supported",
    "C5b": "inconclusive",
    "C5c": "inconclusive",
    "C6a": "inconclusive",
    "C6b": "inconclusive",
    "C7a": "not supported",
    "C7b": "inconclusive",
    "C7c": "inconclusive",
}


@pytest.mark.parametrize(("table", "expected"), [("planted", PLANTED), ("null", NULL)])
def test_every_registry_claim_gets_its_verdict_from_the_data(request, claims, table, expected):
    details, summary = C.evaluate_claims(request.getfixturevalue(table), claims)
    assert list(summary.columns) == C.SUMMARY_COLUMNS
    assert list(summary["claim"]) == [c.id for c in claims]
    got = dict(zip(summary["claim"], summary["verdict"], strict=True))
    assert {k: got[k] for k in expected} == expected
    assert set(summary["verdict"]) <= set(C.VERDICTS)
    ran = summary[summary["n"] > 0]
    assert len(ran) == len(summary)  # every claim found its data
    assert np.isfinite(ran["estimate"]).all()
    for cid, det in details.items():
        assert {"member", "estimate", "ci_low", "ci_high", "p", "p_holm", "n", "verdict"} <= set(
            det.columns
        ), cid


def test_spread_contrast_without_replicates_is_descriptive(null, claims):
    details, summary = C.evaluate_claims(null, [c for c in claims if c.id == "C7a"])
    row = details["C7a"].iloc[0]
    assert row["metric_b"] == "wang_isola_uniformity"  # the listed alternative was used
    assert np.isnan(row["ci_low"]) and "descriptive" in row["note"]
    # W2 spans 1.0 of sqrt 2; L_U spans 3 of 4.
    assert row["estimate"] == pytest.approx(1 / np.sqrt(2) - 0.75, abs=0.01)
    assert summary.iloc[0]["verdict"] == "not supported"


def test_planted_effect_sizes_are_recovered(planted, claims):
    _, summary = C.evaluate_claims(planted, claims)
    s = summary.set_index("claim")
    assert s.loc["C2", "estimate"] > 0.8  # JER = 20 * binding + small noise
    assert s.loc["C5c", "ci_low"] < 5 < s.loc["C5c", "ci_high"]  # +5 points after fine-tuning
    assert s.loc["C5b", "ci_low"] < 40 < s.loc["C5b", "ci_high"]  # 40 points per unit depth
    assert s.loc["C6b", "ci_low"] < 0.006 < s.loc["C6b", "ci_high"]  # recall slope
    assert s.loc["C7b", "ci_low"] < -0.2 < s.loc["C7b", "ci_high"]
    # W2 spans 0..1 over eta = 0..0.75 (of sqrt 2); -L_U moves by 8/64 - 8/256 (of 4).
    expected = 1 / np.sqrt(2) - (8 / 64 - 8 / 256) / 4
    assert s.loc["C7a", "estimate"] == pytest.approx(expected, abs=0.01)
    assert s.loc["C6b", "n"] == 16 * 10  # classes matched although labels are "3" vs 3.0
    assert s.loc["C1", "n"] == 16  # random-init controls excluded


def test_a_tsv_round_trip_gives_the_same_summary(planted, claims):
    # metrics.tsv comes back with NaN variants, numeric-looking layers and mixed class labels.
    buffer = io.StringIO()
    planted.to_csv(buffer, sep="\t", index=False)
    buffer.seek(0)
    reread = pd.read_csv(buffer, sep="\t")
    subset = [c for c in claims if c.id in ("C1", "C3a", "C5b", "C6b", "C7a")]
    _, a = C.evaluate_claims(planted, subset)
    _, b = C.evaluate_claims(reread, subset)
    pd.testing.assert_frame_equal(a, b, rtol=1e-9)


def test_registry_evaluation_is_deterministic(planted, claims):
    _, a = C.evaluate_claims(planted, claims, seed=3)
    _, b = C.evaluate_claims(planted, claims, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_missing_metrics_give_inconclusive_with_n_zero(planted, claims):
    drop = ["binding_ood_accuracy", "concept_sanity", "stitching_f1"]
    table = planted[~planted["metric"].isin(drop)]
    table = table[table["dataset"] != "synthetic"].drop(columns=["model_b"])
    _, summary = C.evaluate_claims(table, claims)
    s = summary.set_index("claim")
    for cid in ("C1", "C1b", "C2", "C3a", "C3b", "C3c", "C4a", "C4b", "C7a"):
        assert s.loc[cid, "verdict"] == "inconclusive", cid
        assert s.loc[cid, "n"] == 0, cid
        assert np.isnan(s.loc[cid, "estimate"]) and np.isnan(s.loc[cid, "p"]), cid
        assert s.loc[cid, "note"].startswith("no data:"), cid
    assert "binding_ood_accuracy absent" in s.loc["C2", "note"]
    assert "not computed in this config" in s.loc["C4a", "note"]
    assert "model_b" in s.loc["C3a", "note"]
    assert s.loc["C5b", "verdict"] == "supported"  # the rest still runs


def test_a_bare_table_never_crashes(claims):
    _, summary = C.evaluate_claims(pd.DataFrame({"metric": ["x"], "value": [1.0]}), claims)
    assert (summary["verdict"] == "inconclusive").all()
    assert (summary["n"] == 0).all()
    with pytest.raises(ValueError, match="lacks columns"):
        C.evaluate_claims(pd.DataFrame({"value": [1.0]}), claims)
    with pytest.raises(ValueError, match="alpha"):
        C.evaluate_claims(pd.DataFrame({"metric": ["x"], "value": [1.0]}), claims, alpha=2)


# ----------------------------------------------------------------------------- planted effect


def _binding_table(n_models: int, rho: dict[str, float], seed: int) -> pd.DataFrame:
    """n_models encoders: binding z and geometry metrics with population correlation rho[m]."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n_models)
    rows = []
    for i in range(n_models):
        model = f"m{i:03d}"
        base = {
            "model": model,
            "objective": "simclr",
            "architecture": f"arch{i % 3}",
            "stage": "pretrained",
            "layer": "final",
            "variant": "",
        }
        rows.append(
            {
                **base,
                "dataset": "binding",
                "metric": "binding_ood_accuracy",
                "variant": "logreg",
                "value": 0.6 + 0.1 * z[i],
            }
        )
    for metric, r in rho.items():
        x = r * z + np.sqrt(1 - r * r) * rng.normal(size=n_models)
        variant = "images" if metric == "jacobian_effective_rank" else ""
        for i in range(n_models):
            rows.append(
                {
                    "model": f"m{i:03d}",
                    "objective": "simclr",
                    "architecture": f"arch{i % 3}",
                    "stage": "pretrained",
                    "layer": "final",
                    "dataset": "digits",
                    "metric": metric,
                    "variant": variant,
                    "value": 10 + x[i],
                }
            )
    return pd.DataFrame(rows)


def _by_id(claims, *ids):
    return [c for c in claims if c.id in ids]


def test_planted_correlation_c2_supported_and_null_c1_member_not_flagged(claims):
    table = _binding_table(60, {"jacobian_effective_rank": 0.7, "global_isotropy": 0.0}, seed=1)
    details, summary = C.evaluate_claims(table, _by_id(claims, "C1", "C2"))
    s = summary.set_index("claim")
    assert s.loc["C2", "verdict"] == "supported"
    assert 0.5 < s.loc["C2", "estimate"] < 0.85 and s.loc["C2", "n"] == 60
    # The uncorrelated geometry metric is not contradicted, but 60 encoders cannot show |r| < 0.3.
    assert s.loc["C1", "verdict"] == "inconclusive"
    assert s.loc["C1", "ci_low"] < 0 < s.loc["C1", "ci_high"]
    assert list(details["C1"]["member"]) == ["metric=global_isotropy"]


def test_planted_geometry_correlation_contradicts_c1(claims):
    table = _binding_table(
        60, {"participation_ratio_normalised": 0.7, "global_isotropy": 0.0}, seed=2
    )
    details, summary = C.evaluate_claims(table, _by_id(claims, "C1"))
    row = summary.iloc[0]
    assert row["verdict"] == "not supported"
    assert row["estimate"] > 0.5
    assert "participation_ratio_normalised" in row["note"]  # the decisive member is named
    det = details["C1"].set_index("member")
    assert det.loc["metric=participation_ratio_normalised", "verdict"] == "not supported"
    assert det.loc["metric=global_isotropy", "verdict"] == "inconclusive"
    # Holm over the family, as statsmodels computes it.
    ref = multipletests(details["C1"]["p"], method="holm")[1]
    assert details["C1"]["p_holm"].to_numpy() == pytest.approx(ref)


def test_planted_negative_correlation_makes_c2_not_supported(claims):
    table = _binding_table(60, {"jacobian_effective_rank": -0.7}, seed=3)
    _, summary = C.evaluate_claims(table, _by_id(claims, "C2"))
    assert summary.iloc[0]["verdict"] == "not supported"


def test_near_zero_is_supported_with_enough_encoders(claims):
    table = _binding_table(400, {"global_isotropy": 0.0, "local_isotropy": 0.0}, seed=4)
    details, summary = C.evaluate_claims(table, _by_id(claims, "C1"))
    assert summary.iloc[0]["verdict"] == "supported"
    assert (details["C1"]["ci_high"] < 0.3).all() and (details["C1"]["ci_low"] > -0.3).all()


def test_correlation_details_carry_spearman_permutation_and_partial(claims):
    table = _binding_table(30, {"jacobian_effective_rank": 0.7}, seed=5)
    details, _ = C.evaluate_claims(table, _by_id(claims, "C2"))
    row = details["C2"].iloc[0]
    assert row["pearson_r"] == row["estimate"]
    assert -1 <= row["spearman_ci_low"] <= row["spearman_rho"] <= row["spearman_ci_high"] <= 1
    assert 0 < row["permutation_p"] <= 1
    assert np.isfinite(row["partial_r"])  # controlling for architecture dummies


# ----------------------------------------------------------------------------- verdict rules


def _row(est, lo, hi, p):
    return {"estimate": est, "ci_low": lo, "ci_high": hi, "p_holm": p}


@pytest.mark.parametrize(
    ("rule", "row", "verdict"),
    [
        (C.Rule("direction", "t", expect="positive"), _row(0.5, 0.2, 0.8, 0.01), "supported"),
        (C.Rule("direction", "t", expect="positive"), _row(0.5, -0.1, 0.8, 0.2), "inconclusive"),
        (
            C.Rule("direction", "t", expect="positive"),
            _row(-0.5, -0.8, -0.2, 0.01),
            "not supported",
        ),
        # CI and test disagree at the border: conservative.
        (C.Rule("direction", "t", expect="positive"), _row(0.5, 0.01, 0.8, 0.06), "inconclusive"),
        (C.Rule("direction", "t", expect="negative"), _row(-0.5, -0.8, -0.2, 0.01), "supported"),
        (
            C.Rule("direction", "t", expect="positive", min_effect=10),
            _row(12, 11, 13, 1e-9),
            "supported",
        ),
        (
            C.Rule("direction", "t", expect="positive", min_effect=10),
            _row(9, 5, 13, 1e-9),
            "inconclusive",
        ),
        (
            C.Rule("direction", "t", expect="positive", min_effect=10),
            _row(3, 2, 4, 1e-9),
            "not supported",
        ),
        # No CI and no p (descriptive statistic): the estimate decides.
        (
            C.Rule("direction", "t", expect="positive", min_effect=0.1),
            _row(0.3, np.nan, np.nan, np.nan),
            "supported",
        ),
        (
            C.Rule("direction", "t", expect="positive"),
            _row(np.nan, np.nan, np.nan, np.nan),
            "inconclusive",
        ),
        (C.Rule("near_zero", "t", threshold=0.3), _row(0.05, -0.2, 0.25, 0.6), "supported"),
        (C.Rule("near_zero", "t", threshold=0.3), _row(0.05, -0.35, 0.4, 0.6), "inconclusive"),
        (C.Rule("near_zero", "t", threshold=0.3), _row(0.6, 0.3, 0.8, 0.001), "not supported"),
        # Significant but small: not a contradiction of "near zero".
        (C.Rule("near_zero", "t", threshold=0.3), _row(0.2, 0.05, 0.35, 0.01), "inconclusive"),
        (C.Rule("negligible", "t", threshold=0.1), _row(0.02, np.nan, np.nan, 0.4), "supported"),
        (
            C.Rule("negligible", "t", threshold=0.1),
            _row(0.3, np.nan, np.nan, 0.01),
            "not supported",
        ),
        (C.Rule("negligible", "t", threshold=0.1), _row(0.3, np.nan, np.nan, 0.2), "inconclusive"),
    ],
)
def test_member_verdicts_follow_the_stated_rule(rule, row, verdict):
    assert C._member_verdict(rule, row, 0.05) == verdict


# ----------------------------------------------------------------------------- selectors


@pytest.fixture
def small():
    return C._Table(
        pd.DataFrame(
            {
                "dataset": ["d", "d", "d", "d", "e", "d"],
                "model": ["m1", "m1", "m2", "m2", "m1", "m3"],
                "stage": [
                    "pretrained",
                    "finetuned_d",
                    "pretrained",
                    "finetuned_e",
                    "finetuned_e",
                    "pretrained",
                ],
                "layer": ["0", "0", "final", "1", "0", "final"],
                "class": ["3", 3.0, "all", np.nan, "all", None],
                "objective": ["a", "b", np.nan, "a", "b", "c"],
                "dim": [64.0, 256.0, 256.0, 64.0, 64.0, 128.0],
                "metric": ["x"] * 6,
                "value": [1.0, 2.0, 3.0, 4.0, 5.0, np.nan],
            }
        )
    )


def _rows(table, column, cond):
    return table.df.index[C._mask(table, column, cond)].tolist()


def test_filter_values_compare_canonically(small):
    assert _rows(small, "layer", 0) == [0, 1, 4]
    assert _rows(small, "class", 3) == [0, 1]  # "3" and 3.0
    assert _rows(small, "class", [None, "all"]) == [2, 3, 4, 5]
    assert _rows(small, "dim", {"min": 100, "max": 256}) == [1, 2, 5]
    # {not: ...} keeps missing values (a hub model without an objective is not "random").
    assert _rows(small, "objective", {"not": ["a"]}) == [1, 2, 4, 5]


def test_template_filter_matches_each_rows_own_dataset(small):
    assert _rows(small, "stage", "finetuned_{dataset}") == [1, 4]


def test_select_aggregates_units_and_drops_nan(small):
    out = C._select(small, {"metric": "x", "agg": "max"}, ["model"])
    assert out.set_index("model")["value"].to_dict() == {"m1": 5.0, "m2": 4.0}
    assert out.set_index("model")["n_rows"].to_dict() == {"m1": 3, "m2": 2}
    mean = C._select(small, {"metric": "x", "query": "dataset == 'd'"}, ["model"])
    assert mean.set_index("model")["value"].to_dict() == {"m1": 1.5, "m2": 3.5}


def test_select_explains_why_it_is_empty(small):
    with pytest.raises(C._NoData, match="metric nope absent"):
        C._select(small, {"metric": "nope"}, ["model"])
    with pytest.raises(C._NoData, match="after filter stage"):
        C._select(small, {"metric": "x", "stage": "finetuned_z"}, ["model"])
    with pytest.raises(C._NoData, match=r"column\(s\) \['model_b'\] absent"):
        C._select(small, {"metric": "x"}, ["model", "model_b"])


# ----------------------------------------------------------------------------- other tests


def _claim(test, params, rule=None, cid="T"):
    rule = rule or {"kind": "direction", "expect": "positive", "text": "t"}
    spec = {
        "claims": [
            {
                "id": cid,
                "paper": "p",
                "statement": "s",
                "test": test,
                "params": params,
                "rule": rule,
            }
        ]
    }
    return C.load_claims(spec)


def test_trend_spearman_method_and_threshold_with_a_number(planted):
    trend = _claim(
        "trend",
        {
            "value": {"metric": "graph_convexity", "class": "all", "stage": "pretrained"},
            "units": ["dataset", "model"],
            "method": "spearman",
        },
    )
    details, summary = C.evaluate_claims(planted, trend)
    assert summary.iloc[0]["verdict"] == "supported"
    assert details["T"].iloc[0]["n_units_with_trend"] == 20
    thr = _claim(
        "threshold",
        {
            "value": {"metric": "probe_test_accuracy"},
            "units": ["model"],
            "reference": 0.79,
        },
        rule={"kind": "direction", "expect": "positive", "min_effect": 0.5, "text": "t"},
    )
    _, summary = C.evaluate_claims(planted, thr)
    assert summary.iloc[0]["verdict"] == "not supported"  # ~0.01 above 0.79, far below 0.5


def test_group_difference_welch(planted):
    claim = _claim(
        "group_difference",
        {
            "value": {"metric": "gri_labels", "variant": "manifold", "stage": "pretrained"},
            "units": ["model"],
            "groups": {"columns": ["objective"], "a": ["supervised"], "b": ["simclr", "barlow"]},
        },
        rule={"kind": "direction", "expect": "negative", "text": "t"},
    )
    details, summary = C.evaluate_claims(planted, claim)
    assert summary.iloc[0]["verdict"] == "supported"
    assert details["T"].iloc[0]["n_a"] == 4 and details["T"].iloc[0]["n_b"] == 8
    assert summary.iloc[0]["estimate"] == pytest.approx(-0.2, abs=0.03)


def test_failed_statistic_is_reported_not_raised(planted):
    # Two units only: the correlation needs 4; the claim is inconclusive with the reason.
    claim = _claim(
        "correlation",
        {
            "x": {"metric": "probe_test_accuracy", "model": ["a0_simclr", "a1_simclr"]},
            "y": {"metric": "binding_ood_accuracy"},
            "units": ["model"],
            "n_boot": 100,
            "n_perm": 10,
        },
    )
    _, summary = C.evaluate_claims(planted, claim)
    row = summary.iloc[0]
    assert row["verdict"] == "inconclusive" and row["n"] == 2
    assert "at least 4" in row["note"]


# ----------------------------------------------------------------------------- validation


def _with(registry, i, **changes):
    spec = copy.deepcopy(registry)
    for key, value in changes.items():
        if value is None:
            del spec["claims"][i][key]
        else:
            spec["claims"][i][key] = value
    return spec


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: _with(r, 0, test="regression"), "unknown test 'regression'"),
        (lambda r: _with(r, 0, statement=None), "missing field 'statement'"),
        (lambda r: _with(r, 0, colour="red"), "unknown fields"),
        (lambda r: _with(r, 0, rule={"kind": "bigger", "text": "t"}), "rule.kind"),
        (lambda r: _with(r, 2, rule={"kind": "direction", "text": "t"}), "expect"),
        (lambda r: _with(r, 0, rule={"kind": "near_zero", "text": "t"}), "threshold"),
        (lambda r: _with(r, 0, rule={"kind": "near_zero", "threshold": 0.3}), "'text'"),
        (lambda r: _with(r, 0, id="C2"), "duplicate claim id"),
        (lambda r: _with(r, 0, params={**r["claims"][0]["params"], "colour": 1}), "unknown params"),
        (
            lambda r: _with(
                r, 0, params={k: v for k, v in r["claims"][0]["params"].items() if k != "units"}
            ),
            r"needs params \['units'\]",
        ),
        (
            lambda r: _with(r, 0, params={**r["claims"][0]["params"], "method": "kendall"}),
            "method must be one of",
        ),
        (
            lambda r: _with(r, 0, params={**r["claims"][0]["params"], "x": {"layer": {"gt": 1}}}),
            "mapping filter",
        ),
        (
            lambda r: _with(r, 0, params={**r["claims"][0]["params"], "x": {"agg": "sum"}}),
            "agg must be one of",
        ),
        (
            lambda r: _with(r, 0, params={**r["claims"][0]["params"], "x": {"dataset": "$nope"}}),
            r"unknown variable \$nope",
        ),
        (
            lambda r: _with(r, 0, params={**r["claims"][0]["params"], True: ["model"]}),
            "not strings",
        ),
        (lambda r: {"claims": []}, "non-empty"),
        (lambda r: {"vars": {}}, "'claims' list"),
    ],
)
def test_registry_validation_errors_are_clear(registry, mutate, match):
    with pytest.raises(ValueError, match=match):
        C.load_claims(mutate(registry))


def test_yaml_on_key_is_caught():
    text = """
claims:
  - id: X
    paper: p
    statement: s
    test: paired_difference
    params: {a: {metric: m}, b: {metric: n}, on: [model]}
    rule: {kind: direction, expect: positive, text: t}
"""
    with pytest.raises(ValueError, match=r"YAML 1\.1"):
        C.load_claims(yaml.safe_load(text))
