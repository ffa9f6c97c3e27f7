"""Claims engine: registry and schema, selectors, verdict rules, units, fragility, planted data."""

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
from repaudit.claims.selectors import NoData, Table, mask, select

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
    """A metrics table with every metric the registry needs; effects planted or absent.

    Planted effects live *within* architecture (each architecture also shifts every metric,
    which a within-architecture test must ignore).
    """
    rng = np.random.default_rng(seed)
    rows: list[dict] = []

    def add(**kw):
        row = {"dataset": "digits", "stage": "pretrained", "layer": "final", "variant": ""}
        row.update(kw)
        rows.append(row)

    models = [(f"a{a}_{o}", f"arch{a}", o) for a in range(n_arch) for o in OBJECTIVES]
    width = {f"arch{a}": 32 * (1 + a % 2) for a in range(n_arch)}
    shift = {f"arch{a}": rng.normal(0, 1) for a in range(n_arch)}
    for model, arch, obj in models:
        meta = {
            "model": model,
            "architecture": arch,
            "input_size": 48 if arch == "arch0" else 32,
            "objective": obj,
            "family": "cnn",
        }
        bind = rng.uniform(0.3, 0.9) + 0.1 * shift[arch] + (0.3 if plant and obj == "barlow" else 0)
        add(
            **meta,
            dataset="binding",
            metric="binding_knn_accuracy",
            variant="cosine_ood",
            value=bind,
        )
        add(**meta, dataset="binding", metric="swap_auc", variant="cosine", value=rng.normal())
        jer = (20 * bind if plant else 10 + shift[arch]) + rng.normal(0, 1.5)
        add(**meta, metric="jacobian_effective_rank", variant="images", value=jer)
        model_eff = rng.normal(0, 3)
        for li, layer in enumerate(LAYERS):
            depth = li / 4
            where = {"layer": layer, "layer_index": li, "depth": depth}
            for g in GEOMETRY:
                add(**meta, **where, metric=g, value=rng.normal() + shift[arch])
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
            # Recall rows carry float class labels: keys must still match "3" == 3.0.
            recall = (0.3 + 0.006 * cc if plant else 0.7) + model_eff / 100
            add(**meta, metric="graph_convexity", **{"class": str(c)}, value=cc)
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
            if ma == mb:
                abs_f1 = rel_f1 + (0 if plant else -20) + rng.normal(0, 1)
            add(**meta, metric="stitching_f1", variant="relative", value=rel_f1)
            add(**meta, metric="stitching_f1", variant="absolute", value=abs_f1)
    # Planted: -L_U with 3 replicate seeds; null: L_U itself, one replicate, no seed (as the
    # uniformity module writes it), which must give an exact contrast without a CI.
    synth = {"dataset": "synthetic", "model": "none", "stage": "none", "layer": "none"}
    for dim in (64, 256):
        for eta in (0.0, 0.25, 0.5, 0.75):
            for s in range(3 if plant else 1):
                meta = {
                    **synth,
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
    # Fang's properties: planted = W2 behaves as the paper proves; null = W2 does not move.
    for study, step in (("ICC", 0.0), ("FCC", 0.05), ("FBC", 0.08)):
        for eta in (0.25, 0.5):
            for n in (1, 5, 10):
                value = 0.5 + eta + (step * (n - 1) / 9 if plant else 0.0)
                if study == "ICC" and not plant:
                    value += 0.1 * (n - 1) / 9  # the null moves W2 where it should stay
                add(
                    **synth,
                    study=study,
                    eta=eta,
                    n_clones=n,
                    metric="wasserstein_uniformity",
                    value=value,
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def planted():
    return _synthetic_table(plant=True)


@pytest.fixture(scope="module")
def null():
    return _synthetic_table(plant=False, seed=1)


def _by_id(claims, *ids):
    return [c for c in claims if c.id in ids]


# ----------------------------------------------------------------------------- registry


def test_registry_names_every_headline_claim_with_its_unit(claims):
    ids = {c.id for c in claims}
    assert len(claims) >= 20
    assert {"C1", "C1b", "C2", "C2b", "C2c", "C3a", "C3d", "C5b", "C6b", "C7d"} <= ids
    for c in claims:
        assert c.unit in C.UNITS and c.test in C.TESTS and c.rule.kind in C.RULE_KINDS
        assert len(c.rule.text) > 40
    # Every claim across encoders controls the design factors.
    for c in claims:
        if c.unit == "model" and c.test not in ("spread_contrast", "property_change"):
            assert c.params.get("control_for") == ["architecture", "input_size"], c.id


def test_variables_come_from_the_config_and_its_overrides(registry):
    folder = {
        "geometry": {"datasets": ["photos"]},
        "convexity": {"datasets": ["photos"]},
        "sensitivity": {"datasets": ["photos"]},
        "binding": {"datasets": ["binding"]},
    }
    variables = C.config_vars(folder)
    assert variables == {
        "natural_dataset": "photos",
        "sensitivity_dataset": "photos",
        "binding_dataset": "binding",
    }
    claims = C.load_claims(registry, variables)
    c5a = _by_id(claims, "C5a")[0]
    assert c5a.params["common"]["dataset"] == "photos"
    assert C.config_vars({"finetune": {"datasets": ["cifar10"]}}) == {"natural_dataset": "cifar10"}


def _with(registry, i, **changes):
    spec = copy.deepcopy(registry)
    for key, value in changes.items():
        if value is None:
            del spec["claims"][i][key]
        else:
            spec["claims"][i][key] = value
    return spec


def _params(registry, i, **changes):
    params = {**registry["claims"][i]["params"], **changes}
    return _with(registry, i, params={k: v for k, v in params.items() if v is not None})


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: _with(r, 0, test="regression"), r"claims\.0\.test: 'regression' is not one"),
        (lambda r: _with(r, 0, statement=None), "'statement' is a required property"),
        (lambda r: _with(r, 0, unit=None), "'unit' is a required property"),
        (lambda r: _with(r, 0, unit="layer"), r"claims\.0\.unit: 'layer' is not one of"),
        (lambda r: _with(r, 0, colour="red"), r"unknown key\(s\) \['colour'\]"),
        (lambda r: _with(r, 0, rule={"kind": "bigger", "text": "t" * 50}), "kind"),
        (lambda r: _with(r, 2, rule={"kind": "direction", "text": "t" * 50}), "'expect'"),
        (lambda r: _with(r, 0, rule={"kind": "near_zero", "text": "t" * 50}), "'threshold'"),
        (lambda r: _with(r, 0, id="C2"), "duplicate claim id"),
        (lambda r: _params(r, 0, colour=1), r"unknown key\(s\) \['colour'\]"),
        (lambda r: _params(r, 0, units=None), "'units' is a required property"),
        (lambda r: _params(r, 0, method="kendall"), "'kendall' is not one of"),
        (lambda r: _params(r, 0, x={"agg": "sum"}), "'sum' is not one of"),
        (lambda r: _params(r, 0, x={"dataset": "$nope"}), r"unknown variable \$nope"),
        (lambda r: _params(r, 0, n_perm=5), "less than the minimum"),
        (lambda r: {"claims": []}, "should be non-empty"),
        (lambda r: {"vars": {}}, "'claims' is a required property"),
    ],
)
def test_registry_validation_errors_are_one_clear_line(registry, mutate, match):
    with pytest.raises(ValueError, match=match) as err:
        C.load_claims(mutate(registry))
    assert str(err.value).startswith("claims error: ") and "\n" not in str(err.value)


def test_yaml_on_key_is_caught():
    text = """
claims:
  - id: X
    paper: p
    statement: s
    unit: model
    test: paired_difference
    params: {a: {metric: m}, b: {metric: n}, on: [model]}
    rule: {kind: direction, expect: positive, text: t}
"""
    with pytest.raises(ValueError, match=r"YAML 1\.1"):
        C.load_claims(yaml.safe_load(text))


# ----------------------------------------------------------------------------- verdict rules


def _row(est, lo, hi, p, eq_lo=np.nan, eq_hi=np.nan):
    return {
        "estimate": est,
        "ci_low": lo,
        "ci_high": hi,
        "p_holm": p,
        "eq_low": eq_lo,
        "eq_high": eq_hi,
    }


POS = C.Rule("direction", "t", expect="positive")
POS10 = C.Rule("direction", "t", expect="positive", min_effect=10)
NEAR = C.Rule("near_zero", "t", threshold=0.3)
NEG = C.Rule("negligible", "t", threshold=0.1)


@pytest.mark.parametrize(
    ("rule", "row", "verdict"),
    [
        (POS, _row(0.5, 0.2, 0.8, 0.01), "supported"),
        (POS, _row(0.5, -0.1, 0.8, 0.2), "underpowered"),  # not significant: not evidence against
        (POS, _row(0.5, 0.01, 0.8, 0.06), "underpowered"),  # CI and p disagree: no support
        (POS, _row(-0.5, -0.8, -0.2, 0.01), "not supported"),
        (C.Rule("direction", "t", expect="negative"), _row(-0.5, -0.8, -0.2, 0.01), "supported"),
        (POS10, _row(15, 11, 19, 0.001), "supported"),
        (POS10, _row(8, 5, 11, 0.001), "underpowered"),  # above 0, below 10, 10 not excluded
        (POS10, _row(8, 5, 11, 0.001, 6, 9.5), "not supported"),  # shown smaller than 10
        (POS10, _row(12, -2, 26, 0.2, 0, 24), "underpowered"),
        (NEAR, _row(0.05, -0.2, 0.25, 0.6, -0.15, 0.2), "supported"),  # TOST inside +-0.3
        (NEAR, _row(0.05, -0.35, 0.4, 0.6, -0.32, 0.35), "underpowered"),
        (NEAR, _row(0.6, 0.3, 0.8, 0.001), "not supported"),
        (NEAR, _row(0.2, 0.05, 0.35, 0.01, 0.08, 0.32), "underpowered"),  # nonzero, not >= 0.3
        (NEG, _row(0.02, -0.05, 0.09, 0.4, -0.04, 0.08), "supported"),
        (NEG, _row(0.02, -0.05, 0.4, 0.4, -0.04, 0.3), "underpowered"),  # low power is not support
        (NEG, _row(0.3, 0.2, 0.4, 0.01), "not supported"),
        # Deterministic (one simulation): the estimate itself against the bound.
        (POS10, _row(12, np.nan, np.nan, np.nan), "supported"),
        (POS10, _row(8, np.nan, np.nan, np.nan), "not supported"),
        (NEAR, _row(0.01, np.nan, np.nan, np.nan), "supported"),
        (NEAR, _row(0.5, np.nan, np.nan, np.nan), "not supported"),
        # Bootstrap without p: the interval decides significance.
        (POS, _row(0.5, 0.2, 0.8, np.nan), "supported"),
        (POS, _row(0.5, -0.2, 0.8, np.nan), "underpowered"),
    ],
)
def test_member_verdicts_follow_the_stated_rule(rule, row, verdict):
    assert C.member_verdict(rule, row, 0.05) == verdict


# ----------------------------------------------------------------------------- planted tables


def test_planted_effects_are_supported_and_absent_ones_never_are(planted, null, claims):
    _, s_plant = C.evaluate_claims(planted, claims, fragility=False)
    _, s_null = C.evaluate_claims(null, claims, fragility=False)
    plant, none = s_plant.set_index("claim"), s_null.set_index("claim")
    assert list(s_plant.columns) == C.SUMMARY_COLUMNS
    assert set(s_plant["verdict"]) <= set(C.VERDICTS) and "no data" not in set(s_plant["verdict"])
    planted_true = [
        "C2",
        "C2b",
        "C2c",
        "C3a",
        "C3b",
        "C3c",
        "C3d",
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
        "C7d",
        "C7e",
        "C7f",
    ]
    for cid in planted_true:
        assert plant.loc[cid, "verdict"] == "supported", (cid, plant.loc[cid].to_dict())
    # Without the effects nothing is supported, except C3d (relative == absolute, planted
    # "not") is not supported, and the near-zero claims are not contradicted.
    for cid in planted_true:
        assert none.loc[cid, "verdict"] != "supported", cid
    assert none.loc["C3d", "verdict"] == "not supported"  # relative loses 20 F1 points
    assert none.loc["C7d", "verdict"] == "not supported"  # W2 moved by instance cloning
    assert none.loc["C1", "verdict"] != "not supported"
    # Units, not rows: encoders (20, 16 trained), encoder pairs by encoder, architectures.
    assert plant.loc["C3a", "n_units"] == 20 and plant.loc["C3a", "n_obs"] == 2 * 180  # pairs
    assert plant.loc["C5b", "n_units"] == 16 and plant.loc["C5b", "n_obs"] == 16 * 5
    assert plant.loc["C6b", "n_units"] == 16 and plant.loc["C6b", "n_obs"] == 16 * 20
    assert plant.loc["C7b", "n_units"] == 4
    assert plant["mde"].notna().all() and (plant["n_units"] > 0).all()


def test_architecture_shift_does_not_make_a_correlation(null, claims):
    # In the null table every architecture shifts geometry and binding together.
    details, _ = C.evaluate_claims(null, _by_id(claims, "C1"), fragility=False)
    det = details["C1"]
    assert (det["raw_r"].abs() > det["estimate"].abs()).mean() > 0.5
    assert (det["n_design_columns"] == 3).all()  # 4 architectures; input size is collinear


def test_holm_over_a_family_matches_statsmodels(planted, claims):
    details, summary = C.evaluate_claims(planted, _by_id(claims, "C1", "C3a"), fragility=False)
    for cid in ("C1", "C3a"):
        ref = multipletests(details[cid]["p"], method="holm")[1]
        assert details[cid]["p_holm"].to_numpy() == pytest.approx(ref)
    assert "decisive member" in summary.set_index("claim").loc["C1", "note"]


def test_one_encoder_that_carries_an_effect_is_flagged_fragile(claims):
    # Noise, plus one encoder far out on both axes: r = 0.94 within architecture.
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        jer, bind = rng.normal(), rng.normal()
        base = {
            "model": f"m{i}",
            "architecture": f"arch{i % 3}",
            "objective": "simclr",
            "stage": "pretrained",
            "layer": "final",
        }
        rows += [
            {
                **base,
                "dataset": "digits",
                "metric": "jacobian_effective_rank",
                "variant": "images",
                "value": jer + (8 if i == 0 else 0),
            },
            {
                **base,
                "dataset": "binding",
                "metric": "binding_knn_accuracy",
                "variant": "cosine_ood",
                "value": bind + (8 if i == 0 else 0),
            },
        ]
    _, summary = C.evaluate_claims(pd.DataFrame(rows), _by_id(claims, "C2"))
    row = summary.iloc[0]
    assert row["verdict"] == "supported"
    assert bool(row["fragile"]) and "without m0 ->" in row["note"]
    _, stable = C.evaluate_claims(_synthetic_table(plant=True), _by_id(claims, "C5b"))
    assert not bool(stable.iloc[0]["fragile"])


def test_missing_metrics_give_no_data_and_a_warning(planted, claims):
    table = planted[~planted["metric"].isin(["concept_sanity", "stitching_f1"])]
    _, summary = C.evaluate_claims(table, claims, fragility=False)
    empty = summary[summary["verdict"] == "no data"]
    assert set(empty["claim"]) == {"C3b", "C3c", "C3d", "C4a", "C4b"}
    assert (empty["n_units"] == 0).all()
    warning = C.no_data_warning(summary)
    assert warning.startswith("5 of 23 claims have no data")
    assert "C4a (a: metric concept_sanity absent" in warning
    assert C.no_data_warning(summary.drop(empty.index)) == ""


def test_a_bare_table_never_crashes(claims):
    _, summary = C.evaluate_claims(pd.DataFrame({"metric": ["x"], "value": [1.0]}), claims)
    assert (summary["verdict"] == "no data").all() and (summary["n_units"] == 0).all()
    with pytest.raises(ValueError, match="lacks columns"):
        C.evaluate_claims(pd.DataFrame({"value": [1.0]}), claims)
    with pytest.raises(ValueError, match="alpha"):
        C.evaluate_claims(pd.DataFrame({"metric": ["x"], "value": [1.0]}), claims, alpha=0.7)


def test_too_few_units_is_underpowered_with_the_reason(planted):
    claim = C.load_claims(
        {
            "claims": [
                {
                    "id": "T",
                    "paper": "p",
                    "statement": "s",
                    "unit": "model",
                    "test": "correlation",
                    "params": {
                        "x": {"metric": "probe_test_accuracy", "model": ["a0_simclr", "a1_simclr"]},
                        "y": {"metric": "binding_knn_accuracy"},
                        "units": ["model"],
                        "n_perm": 100,
                    },
                    "rule": {"kind": "direction", "expect": "positive", "text": "t" * 50},
                }
            ]
        }
    )
    _, summary = C.evaluate_claims(planted, claim)
    row = summary.iloc[0]
    assert row["verdict"] == "underpowered" and row["n_units"] == 2
    assert "at least 4" in row["note"]


def test_same_seed_same_summary_and_a_tsv_round_trip(planted, claims):
    subset = _by_id(claims, "C1", "C3b", "C4c", "C6b", "C7a")
    _, a = C.evaluate_claims(planted, subset, seed=3)
    _, b = C.evaluate_claims(planted, subset, seed=3)
    pd.testing.assert_frame_equal(a, b)
    buf = io.StringIO()
    planted.to_csv(buf, sep="\t", index=False)
    buf.seek(0)
    _, c = C.evaluate_claims(pd.read_csv(buf, sep="\t"), subset, seed=3)
    pd.testing.assert_frame_equal(a, c)


# ----------------------------------------------------------------------------- selectors


@pytest.fixture
def small():
    return Table(
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
    return table.df.index[mask(table, column, cond)].tolist()


def test_filter_values_compare_canonically(small):
    assert _rows(small, "layer", 0) == [0, 1, 4]
    assert _rows(small, "class", 3) == [0, 1]  # "3" and 3.0
    assert _rows(small, "class", [None, "all"]) == [2, 3, 4, 5]
    assert _rows(small, "dim", {"min": 100, "max": 256}) == [1, 2, 5]
    # {not: ...} keeps missing values (a hub model without an objective is not "random").
    assert _rows(small, "objective", {"not": ["a"]}) == [1, 2, 4, 5]
    assert _rows(small, "stage", "finetuned_{dataset}") == [1, 4]


def test_select_aggregates_units_and_drops_nan(small):
    out = select(small, {"metric": "x", "agg": "max"}, ["model"])
    assert out.set_index("model")["value"].to_dict() == {"m1": 5.0, "m2": 4.0}
    assert out.set_index("model")["n_rows"].to_dict() == {"m1": 3, "m2": 2}
    mean = select(small, {"metric": "x", "query": "dataset == 'd'"}, ["model"])
    assert mean.set_index("model")["value"].to_dict() == {"m1": 1.5, "m2": 3.5}


def test_table_without_a_unit_keeps_its_cached_views(small):
    small.canon("layer")
    reduced = small.without("model", "m1")
    assert reduced.df["model"].tolist() == ["m2", "m2", "m3"]
    assert _rows(reduced, "layer", "final") == [2, 5]  # original index kept


def test_select_explains_why_it_is_empty(small):
    with pytest.raises(NoData, match="metric nope absent"):
        select(small, {"metric": "nope"}, ["model"])
    with pytest.raises(NoData, match="after filter stage"):
        select(small, {"metric": "x", "stage": "finetuned_z"}, ["model"])
    with pytest.raises(NoData, match=r"column\(s\) \['model_b'\] absent"):
        select(small, {"metric": "x"}, ["model", "model_b"])
