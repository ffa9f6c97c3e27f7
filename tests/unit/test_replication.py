"""Replication verdicts: prediction intervals and small telescopes against hand values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from repaudit import claims as C
from repaudit import stats
from repaudit.claims.replication import COLUMNS, _verdict

REGISTRY = Path(__file__).resolve().parents[2] / "config" / "claims.yaml"


def test_prediction_interval_for_a_correlation_hand_values():
    # z = atanh(0.65) = 0.775299; se = sqrt(1/18 + 1/9) = 0.408248; half = 1.959964 * se
    # = 0.800152; tanh(0.775299 -+ 0.800152) = (-0.024848, 0.917888).
    lo, hi = stats.replication_interval(0.65, 0.1, statistic="pearson_r", n_original=21, n_ours=12)
    assert (lo, hi) == pytest.approx((-0.024848, 0.917888), abs=1e-5)
    # R² through R = sqrt(R²): z = atanh(0.860233) = 1.294238; n 21 and 21: half = 1.959964 *
    # sqrt(2/18) = 0.653321; tanh(0.640917)² = 0.319817, tanh(1.947560)² = 0.921848.
    lo, hi = stats.replication_interval(0.74, 0.5, statistic="r2", n_original=21, n_ours=21)
    assert (lo, hi) == pytest.approx((0.319817, 0.921848), abs=1e-5)
    assert np.isnan(stats.replication_interval(0.5, 0.1, statistic="pearson_r", n_ours=12)[0])


def test_prediction_interval_for_a_difference_hand_values():
    # 10 -+ 1.959964 * sqrt(2² + 1²) = 10 -+ 4.382613
    lo, hi = stats.replication_interval(
        10.0, 4.0, statistic="mean_difference", se_original=2.0, se_ours=1.0
    )
    assert (lo, hi) == pytest.approx((5.617387, 14.382613), abs=1e-5)


def test_small_telescopes_hand_values():
    # r33 = tanh((1.959964 - 0.430727) / sqrt(18)) = tanh(0.360443) = 0.345605; our r = 0.1 at
    # n = 12: z = (atanh(0.1) - 0.360443) * 3 = -0.780324, p = Phi(-0.780324) = 0.217600.
    d33, p = stats.small_telescopes(0.65, 0.1, statistic="pearson_r", n_original=21, n_ours=12)
    assert d33 == pytest.approx(0.345605, abs=1e-5) and p == pytest.approx(0.217600, abs=1e-5)
    # A clearly smaller (opposite) effect with many units rejects d33.
    _, p = stats.small_telescopes(0.65, -0.3, statistic="pearson_r", n_original=21, n_ours=80)
    assert p < 1e-4
    # Negative originals: d33 keeps their sign.
    d33, _ = stats.small_telescopes(-0.65, -0.6, statistic="pearson_r", n_original=21, n_ours=30)
    assert d33 == pytest.approx(-0.345605, abs=1e-5)
    # Differences: d33 = 1.529237 * se = 3.058474; p = Phi((4 - 3.058474) / 1) = 0.826782.
    d33, p = stats.small_telescopes(
        10.0, 4.0, statistic="mean_difference", se_original=2.0, se_ours=1.0
    )
    assert d33 == pytest.approx(3.058474, abs=1e-5) and p == pytest.approx(0.826782, abs=1e-5)


def test_verdict_words():
    assert _verdict(0.5, (0.1, 0.9), 0.3, 0.6, 0.05)[0] == "consistent"
    assert _verdict(0.95, (0.1, 0.9), 0.3, 0.99, 0.05)[0] == "inconsistent"
    assert _verdict(-0.2, (-0.3, 0.9), 0.3, 0.001, 0.05)[0] == "smaller than d33"
    assert _verdict(0.5, (np.nan, np.nan), np.nan, np.nan, 0.05)[0] == "cannot tell"


def test_a_true_replication_is_consistent_at_the_nominal_rate():
    """Original and replication both sample rho = 0.5 (n = 21 and 24): >= 90 % consistent."""
    rng = np.random.default_rng(0)
    rho, n_o, n_r, sims = 0.5, 21, 24, 2000
    cov = [[1, rho], [rho, 1]]

    def draw(n):
        xy = rng.multivariate_normal([0, 0], cov, size=n)
        return float(np.corrcoef(xy.T)[0, 1])

    verdicts = []
    for _ in range(sims):
        r_o, r_r = draw(n_o), draw(n_r)
        kw = {"statistic": "pearson_r", "n_original": n_o, "n_ours": n_r}
        pi = stats.replication_interval(r_o, r_r, **kw)
        d33, p = stats.small_telescopes(r_o, r_r, **kw)
        verdicts.append(_verdict(r_r, pi, d33, p, 0.05)[0])
    rate = np.mean(np.array(verdicts) == "consistent")
    assert rate >= 0.9 - 3 * np.sqrt(0.9 * 0.1 / sims)
    # ... and the interval alone covers at the nominal 95 %.
    assert rate <= 0.96


@pytest.fixture(scope="module")
def registry_claims():
    return C.load_claims(yaml.safe_load(REGISTRY.read_text()), {"n_boot": 200, "n_perm": 200})


def test_replication_table_rows_sources_and_exact_values(registry_claims):
    published = [c for c in registry_claims if c.published and c.published["value"] is not None]
    assert len(published) >= 7 and all(c.published["source"] for c in published)
    ids = [c.id for c in registry_claims]
    summary = pd.DataFrame(
        {
            "claim": ids,
            "estimate": 0.3,
            "raw_estimate": 0.4,
            "ci_low": 0.1,
            "ci_high": 0.5,
            "n_units": 12,
        }
    )
    w2 = "wasserstein_uniformity"
    exact = [
        {"dataset": "synthetic", "study": "collapse", "dim": dim, "eta": eta, "metric": w2,
         "value": np.sqrt(2 - 2 * np.sqrt(1 - eta))}
        for eta in (0.0, 0.25, 0.5, 0.75) for dim in (32, 256, 2048)
    ]  # fmt: skip
    table = C.replication_table(summary, registry_claims, pd.DataFrame(exact))
    assert list(table.columns) == COLUMNS
    assert set(table["verdict"]) <= set(C.REPLICATION_VERDICTS)
    main = table[~table["claim"].str.contains(r"\.")]
    assert main["claim"].tolist() == ids
    c2 = main.set_index("claim").loc["C2"]
    assert c2["our_value"] == 0.4  # the uncontrolled figure, as the paper reports it
    assert c2["paper_value"] == pytest.approx(0.65) and c2["paper_n"] == 21
    # A claim without a published number says so.
    none = main[main["paper_value"].isna()]
    assert (none["verdict"] == "cannot tell").all()
    assert none["why"].str.startswith("no published number").all()
    # W2's exact collapse values, computed here from the closed form, are consistent.
    rows = table[table["claim"].str.startswith("C7a.")]
    assert len(rows) == 6 and (rows["verdict"] == "consistent").all()
    assert table["paper_value"].notna().sum() >= 8 and table["source"].ne("").all()
    # C7d's published zero is an exact value: our 0.3 is far outside its 1e-6 tolerance.
    assert main.set_index("claim").loc["C7d", "verdict"] == "inconsistent"


def test_replication_figure(tmp_path):
    from repaudit import plots

    table = pd.DataFrame(
        {
            "claim": ["C2", "C2b", "C5a", "C9", "C7a.1"],
            "statistic": ["pearson_r", "r2", "mean_difference", None, "exact_value"],
            "paper_value": [0.65, 0.74, 20.0, np.nan, 0.5176],
            "our_value": [0.1, 0.2, 25.0, np.nan, 0.5175],
            "pi_low": [-0.02, 0.3, 10.0, np.nan, 0.5076],
            "pi_high": [0.92, 0.95, 30.0, np.nan, 0.5276],
            "verdict": ["consistent", "inconsistent", "consistent", "cannot tell", "consistent"],
        }
    )
    fig = plots.replication_forest(table)
    fig.savefig(tmp_path / "r.svg")
    texts = " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
    assert "no published number: C9" in texts and "inconsistent" in texts
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 4  # one panel per statistic


def test_a_published_number_about_one_member_is_compared_with_that_member(registry_claims):
    c1 = [c for c in registry_claims if c.id == "C1"]
    assert c1[0].published["member"] == "metric=participation_ratio_normalised"
    summary = pd.DataFrame(
        {"claim": ["C1"], "estimate": [0.6], "raw_estimate": [0.8], "ci_low": [0.2],
         "ci_high": [0.9], "n_units": [12]}
    )  # fmt: skip
    details = {
        "C1": pd.DataFrame(
            {"member": ["metric=alpha_req", "metric=participation_ratio_normalised"],
             "estimate": [0.6, 0.05], "raw_r": [0.8, 0.1], "ci_low": [0.2, -0.5],
             "ci_high": [0.9, 0.6], "n": [12, 12]}
        )
    }  # fmt: skip
    row = C.replication_table(summary, c1, details=details).iloc[0]
    assert row["our_value"] == 0.1 and row["verdict"] == "consistent"
    missing = C.replication_table(summary, c1, details={}).iloc[0]
    assert (
        missing["verdict"] == "cannot tell" and "participation_ratio_normalised" in missing["why"]
    )
