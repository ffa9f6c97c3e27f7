"""Seed replicates: pooling per design cell in the claims, reliability (ICC) of the measures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repaudit.claims import Claim, Rule
from repaudit.claims.reliability import claim_metrics, flag_unreliable, reliability_table
from repaudit.claims.selectors import pool_replicates

ARCHS, OBJECTIVES, SEEDS = ["a", "b", "c"], ["sup", "ssl", "w2", "vicreg"], [0, 1]


def claim(cid: str, *metrics: str) -> Claim:
    params = {"x": {"metric": list(metrics)}, "y": {"metric": "binding", "stage": "pretrained"}}
    return Claim(cid, "paper", "statement", "model", "correlation", params, Rule("direction", ""))


def zoo_table(
    rng, *, objective_sd: float, seed_sd: float, metric: str, shared_seed_sd: float = 0.0
) -> pd.DataFrame:
    """One value per replicate at the final layer, plus a shallower layer that must be ignored.
    ``shared_seed_sd``: a seed effect common to all objectives of an architecture (the zoo's
    shared initialisation)."""
    rows = []
    for arch_effect, arch in zip(rng.normal(scale=10, size=3), ARCHS, strict=True):
        shared = dict(zip(SEEDS, rng.normal(scale=shared_seed_sd, size=len(SEEDS)), strict=True))
        for obj in OBJECTIVES:
            cell_mean = arch_effect + rng.normal(scale=objective_sd)
            for seed in SEEDS:
                value = cell_mean + shared[seed] + rng.normal(scale=seed_sd)
                for layer, index, v in (("0", 0, rng.normal()), ("final", 1, value)):
                    rows.append(
                        {
                            "dataset": "digits",
                            "model": f"{arch}_{obj}_s{seed}",
                            "cell": f"{arch}_{obj}",
                            "architecture": arch,
                            "objective": obj,
                            "seed": str(seed),
                            "stage": "pretrained",
                            "layer": layer,
                            "layer_index": index,
                            "metric": metric,
                            "variant": "",
                            "value": v,
                        }
                    )
    return pd.DataFrame(rows)


def test_reliability_separates_a_discriminative_measure_from_seed_noise():
    rng = np.random.default_rng(0)
    table = pd.concat(
        [
            zoo_table(rng, objective_sd=1.0, seed_sd=0.1, metric="good"),
            zoo_table(rng, objective_sd=0.0, seed_sd=1.0, metric="noise"),
            zoo_table(rng, objective_sd=1.0, seed_sd=0.1, metric="unused"),
        ]
    )
    rel = reliability_table(table, [claim("C1", "good", "noise")]).set_index("metric")
    assert set(rel.index) == {"good", "noise"}  # only the measures claims use
    assert rel.loc["good", "icc_within_architecture"] > 0.9
    assert rel.loc["noise", "icc_within_architecture"] < 0.5
    # the all-cell ICC is high for both: architecture differences dominate it
    assert rel.loc["noise", "icc"] > 0.9
    assert rel.loc["good", "n_cells"] == 12 and rel.loc["good", "n_replicates"] == 24
    assert rel.loc["good", "layer"] == "final"  # the deepest layer only
    assert rel.loc["noise", "within_sd"] == pytest.approx(1.0, abs=0.35)
    assert rel.loc["good", "reliable"] and not rel.loc["noise", "reliable"]
    assert rel.loc["good", "used_by"] == "C1"
    summary = pd.DataFrame({"claim": ["C1", "C9"]})
    flags = flag_unreliable(summary, rel.reset_index())
    assert flags.iloc[0].startswith("noise@pretrained (ICC ") and flags.iloc[1] == ""


def test_a_seed_effect_shared_by_an_architectures_objectives_is_not_noise():
    """Seeds paired across objectives (same initialisation): a large shared seed effect drags
    the one-way ICC down, but cancels from within-architecture comparisons of cell means, so
    the seed-blocked ICC still sees objectives that differ by 1 against 0.2 of seed noise."""
    rng = np.random.default_rng(2)
    SEEDS[:] = [0, 1, 2]
    try:
        table = zoo_table(rng, objective_sd=1.0, seed_sd=0.2, metric="m", shared_seed_sd=3.0)
    finally:
        SEEDS[:] = [0, 1]
    row = reliability_table(table, [claim("C1", "m")]).iloc[0]
    assert row["icc_within_architecture"] > 0.9 and row["reliable"]
    assert row["icc_within_architecture_unpaired"] < 0.5
    assert row["shared_seed_sd"] == pytest.approx(3.0, rel=0.6)
    assert row["within_sd_within_architecture"] == pytest.approx(0.2, rel=0.5)


def test_unreplicated_zoos_give_no_icc():
    rng = np.random.default_rng(1)
    table = zoo_table(rng, objective_sd=1.0, seed_sd=0.1, metric="good")
    one_seed = table[table["seed"] == "0"]
    rel = reliability_table(one_seed, [claim("C1", "good")])
    assert np.isnan(rel.loc[0, "icc"]) and rel.loc[0, "reliable"] is pd.NA
    assert flag_unreliable(pd.DataFrame({"claim": ["C1"]}), rel).tolist() == [""]


def test_claim_metrics_walks_nested_selectors():
    c = claim("C2", "a", "b")
    assert claim_metrics([c, claim("C3", "a")]) == {
        "a": ["C2", "C3"],
        "b": ["C2"],
        "binding": ["C2", "C3"],
    }


def test_pooling_makes_replicates_one_unit_and_drops_seed_pairs():
    table = pd.DataFrame(
        {
            "model": ["m_s0", "m_s1", "n_s0", "m_s0", "m_s0", "hub"],
            "cell": ["m", "m", "n", "m", "m", "hub"],
            "model_b": [None, None, None, "n_s0", "m_s1", "m_s0"],
            "cell_b": [None, None, None, "n", "m", "m"],
            "value": [1.0, 3.0, 5.0, 0.5, 0.9, 0.1],
        }
    )
    pooled = pool_replicates(table)
    assert pooled["model"].tolist() == ["m", "m", "n", "m", "hub"]
    assert pooled["model_b"].tolist()[3:] == ["n", "m"]  # m_s0 vs m_s1 compared seeds: dropped
    # tables without replicates pass unchanged
    assert pool_replicates(table.drop(columns="cell")).equals(table.drop(columns="cell"))


def test_random_init_controls_are_not_in_the_population():
    rng = np.random.default_rng(2)
    table = zoo_table(rng, objective_sd=0.0, seed_sd=1.0, metric="noise")
    control = table[table["objective"] == "sup"].assign(
        objective="random", value=lambda d: d["value"] + 100.0, cell=lambda d: d["cell"] + "_r"
    )
    with_control = pd.concat([table, control])
    rel = reliability_table(with_control, [claim("C1", "noise")])
    assert rel.loc[0, "n_cells"] == 12  # the 3 random cells are left out
    inflated = reliability_table(with_control, [claim("C1", "noise")], exclude_objectives=())
    assert inflated.loc[0, "icc_within_architecture"] > 0.9 > rel.loc[0, "icc_within_architecture"]


def test_reliability_figure_marks_the_measures_below_the_bound():
    from matplotlib.colors import same_color

    from repaudit import plots

    rng = np.random.default_rng(0)  # the first test's zoo: noise below the bound
    table = pd.concat(
        [
            zoo_table(rng, objective_sd=1.0, seed_sd=0.1, metric="good"),
            zoo_table(rng, objective_sd=0.0, seed_sd=1.0, metric="noise"),
        ]
    )
    rel = reliability_table(table, [claim("C1", "good", "noise")])
    fig = plots.reliability_dumbbell(rel, min_icc=0.5)
    (ax,) = fig.axes  # one stage, one panel
    assert [t.get_text() for t in ax.get_yticklabels()] == ["good", "noise"]  # best first
    dots = [
        line
        for line in ax.get_lines()
        if line.get_marker() == "o" and line.get_markerfacecolor() != "none"
    ]
    below = [d for d in dots if same_color(d.get_color(), plots.PALETTE[3])]
    assert len(dots) == 2 and len(below) == 1 and below[0].get_ydata()[0] == 1
    empty = plots.reliability_dumbbell(rel.iloc[:0], min_icc=0.5)  # no replicates: a note
    assert "train_seeds" in " ".join(t.get_text() for a in empty.axes for t in a.texts)
