"""Tests of repaudit.stats against scipy/statsmodels, hand-derived values and simulations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from repaudit import stats


def _exact_corr(r: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x, y whose sample Pearson correlation is exactly r."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x = (x - x.mean()) / x.std()
    e = rng.normal(size=n)
    e -= e.mean()
    e -= (e @ x) / (x @ x) * x
    e /= e.std()
    return x, r * x + np.sqrt(1 - r * r) * e


def _bivariate(rho: float, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    z = rng.normal(size=(2, n))
    return z[0], rho * z[0] + np.sqrt(1 - rho * rho) * z[1]


# ----------------------------------------------------------------------------- pearson


def test_pearson_matches_scipy_and_its_fisher_interval():
    rng = np.random.default_rng(1)
    x, y = _bivariate(0.4, 25, rng)
    res = stats.pearson(x, y)
    ref = sps.pearsonr(x, y)
    ci = ref.confidence_interval(0.95)  # scipy's interval is the Fisher-z one
    assert res.estimate == pytest.approx(ref.statistic, abs=1e-12)
    assert res.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert res.n == 25


def test_pearson_reproduces_the_papers_sanity_numbers():
    # spec binding_quality.md §1.1: r = 0.65, n = 21 -> p = 0.0014, Fisher CI [0.30, 0.84].
    x, y = _exact_corr(0.65, 21)
    res = stats.pearson(x, y)
    assert res.estimate == pytest.approx(0.65, abs=1e-12)
    assert res.p == pytest.approx(0.0014, abs=1e-4)
    assert round(res.ci_low, 2) == 0.30
    assert round(res.ci_high, 2) == 0.84


def test_pearson_perfect_line_has_degenerate_interval_at_one():
    x = np.arange(10.0)
    res = stats.pearson(x, 3 * x + 1)
    assert res.estimate == pytest.approx(1.0)
    assert res.ci_low > 0.999 and res.ci_high == pytest.approx(1.0)


def test_fisher_interval_covers_true_rho_about_95_percent():
    rng = np.random.default_rng(7)
    rho, n_sim = 0.5, 400
    hits = 0
    for _ in range(n_sim):
        res = stats.pearson(*_bivariate(rho, 30, rng))
        hits += res.ci_low <= rho <= res.ci_high
    # Binomial(400, 0.95): mean 380, sd 4.36; allow 3.5 sd.
    assert 365 <= hits <= 395


def test_fisher_z_ci_partial_uses_fewer_degrees_of_freedom():
    lo0, hi0 = stats.fisher_z_ci(0.3, 20)
    lo2, hi2 = stats.fisher_z_ci(0.3, 20, n_covariates=2)
    assert hi2 - lo2 > hi0 - lo0
    z = np.arctanh(0.3)
    half = sps.norm.ppf(0.975) / np.sqrt(17)
    assert (lo0, hi0) == pytest.approx((np.tanh(z - half), np.tanh(z + half)))


# ----------------------------------------------------------------------------- holm


def test_holm_hand_derived_and_statsmodels():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(0, 0.05, 6), rng.uniform(0, 1, 10), [0.02, 0.02]])
    ref = multipletests(p, method="holm")[1]
    assert stats.holm(p) == pytest.approx(ref, abs=1e-15)


def test_mcnemar_exact_hand_values_and_statsmodels():
    # 5 items only a gets right, none only b: p = 2 * 0.5^5; margin 5/20 with Wald half-width
    # 1.96 * sqrt(5 - 25/20) / 20.
    a = np.array([True] * 15 + [False] * 5)
    b = np.array([True] * 10 + [False] * 10)
    res = stats.mcnemar_exact(a, b)
    assert res.p == pytest.approx(2 * 0.5**5)
    assert res.estimate == pytest.approx(0.25)
    half = sps.norm.ppf(0.975) * np.sqrt(5 - 25 / 20) / 20
    assert (res.ci_low, res.ci_high) == pytest.approx((0.25 - half, 0.25 + half))
    assert (res.extras["only_a"], res.extras["only_b"], res.n) == (5, 0, 20)
    assert stats.mcnemar_exact(b, a).p == pytest.approx(res.p)  # symmetric
    assert stats.mcnemar_exact(a, a).p == 1.0  # no discordant pairs
    rng = np.random.default_rng(3)
    a, b = rng.random(300) < 0.9, rng.random(300) < 0.8
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    assert stats.mcnemar_exact(a, b).p == pytest.approx(mcnemar(table, exact=True).pvalue)
    with pytest.raises(ValueError, match="boolean"):
        stats.mcnemar_exact(a.astype(int), b)
    with pytest.raises(ValueError, match="boolean"):
        stats.mcnemar_exact(a, b[:-1])


def test_probe_margin_table_hand_values():
    n = 100
    control = np.arange(n) < 80  # 80 %
    better = control | (np.arange(n) >= 95)  # 5 images only it gets right ...
    better[:10] = False  # ... and 10 only the control gets right: 75 %
    best = np.ones(n, dtype=bool)  # 100 %: 20 only it gets right
    table = stats.probe_margin_table(
        {"a": better, "b": best, "rand": control}, {"a": "rand", "b": "rand"}, alpha=0.05
    )
    assert table["model"].tolist() == ["a", "b"]
    assert table["accuracy"].tolist() == pytest.approx([75.0, 100.0])
    assert table["margin"].tolist() == pytest.approx([-5.0, 20.0])
    assert table[["only_model", "only_control"]].values.tolist() == [[5, 10], [20, 0]]
    assert table["p"].tolist() == pytest.approx([0.30175781, 2 * 0.5**20])  # binomial, by hand
    assert table["p_holm"].tolist() == pytest.approx([0.30175781, 4 * 0.5**20])
    assert table["clear"].tolist() == [False, True]


def test_holm_passes_nan_through_and_does_not_count_it():
    out = stats.holm([0.01, np.nan, 0.04])
    assert np.isnan(out[1])
    assert out[[0, 2]] == pytest.approx([0.02, 0.04])
    assert np.all(np.isnan(stats.holm([np.nan])))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([0.5, 1.5])


# ----------------------------------------------------------------------------- regression


def _regression_data(n=40, seed=6):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "jer": rng.normal(size=n),
            "pr": rng.normal(size=n),
            "iso": rng.normal(size=n),
            "arch": rng.choice(["cnn", "vit", "mlp"], size=n),
        }
    )
    # Heteroskedastic noise so HC3 differs from the classical errors.
    y = 1 + 0.8 * X["jer"] + 0.2 * X["pr"] + rng.normal(size=n) * (1 + np.abs(X["jer"]))
    return X, y.to_numpy()


def test_ols_hc3_matches_statsmodels():
    X, y = _regression_data()
    res = stats.ols_hc3(y, X)
    design = sm.add_constant(pd.get_dummies(X, drop_first=True, dtype=float))
    ref = sm.OLS(y, design).fit(cov_type="HC3", use_t=True)
    table = res.coefficients
    assert list(table["term"]) == list(design.columns)
    assert table["coef"].to_numpy() == pytest.approx(ref.params.to_numpy(), rel=1e-9)
    assert table["se"].to_numpy() == pytest.approx(ref.bse.to_numpy(), rel=1e-9)
    assert table["p"].to_numpy() == pytest.approx(ref.pvalues.to_numpy(), rel=1e-8)
    ci = ref.conf_int().to_numpy()
    assert table["ci_low"].to_numpy() == pytest.approx(ci[:, 0], rel=1e-9)
    assert table["ci_high"].to_numpy() == pytest.approx(ci[:, 1], rel=1e-9)
    assert res.r2 == pytest.approx(ref.rsquared)
    assert res.adj_r2 == pytest.approx(ref.rsquared_adj)
    assert res.cov_hc3 == pytest.approx(np.asarray(ref.cov_params()), rel=1e-9)


def test_nested_f_test_matches_compare_f_test_anova_and_robust_wald():
    X, y = _regression_data()
    res = stats.nested_f_test(y, X[["jer"]], X[["pr", "iso", "arch"]])
    full_design = sm.add_constant(pd.get_dummies(X, drop_first=True, dtype=float))
    full = sm.OLS(y, full_design).fit()
    restricted = sm.OLS(y, sm.add_constant(X[["jer"]])).fit()
    F, p, df_diff = full.compare_f_test(restricted)
    assert res.extras["F"] == pytest.approx(F, rel=1e-9)
    assert res.p == pytest.approx(p, rel=1e-8)
    assert res.extras["df_num"] == df_diff == 4
    assert res.estimate == pytest.approx(full.rsquared - restricted.rsquared)
    table = anova_lm(restricted, full)
    assert table["F"].iloc[1] == pytest.approx(F, rel=1e-9)
    robust = sm.OLS(y, full_design).fit(cov_type="HC3", use_t=True)
    R = np.zeros((4, full_design.shape[1]))
    for i, name in enumerate(["pr", "iso", "arch_mlp", "arch_vit"]):
        R[i, list(full_design.columns).index(name)] = 1
    wald = robust.wald_test(R, use_f=True, scalar=True)
    assert res.extras["wald_hc3_F"] == pytest.approx(float(wald.statistic), rel=1e-8)
    assert res.extras["wald_hc3_p"] == pytest.approx(float(wald.pvalue), rel=1e-7)
    assert np.isnan(res.ci_low) and np.isnan(res.ci_high)


def test_nested_f_test_with_intercept_only_base_is_the_overall_f():
    X, y = _regression_data()
    res = stats.nested_f_test(y, None, X[["jer", "pr"]])
    ref = sm.OLS(y, sm.add_constant(X[["jer", "pr"]])).fit()
    assert res.extras["F"] == pytest.approx(ref.fvalue)
    assert res.p == pytest.approx(ref.f_pvalue)


def test_partial_correlation_equals_the_ols_t_test_of_x():
    X, y = _regression_data(n=30, seed=8)
    x = X["pr"].to_numpy() + 0.5 * X["jer"].to_numpy()
    cov = X[["jer", "arch"]]
    res = stats.partial_correlation(x, y, cov)
    design = sm.add_constant(
        pd.concat(
            [pd.Series(x, name="x"), pd.get_dummies(cov, drop_first=True, dtype=float)], axis=1
        )
    )
    fit = sm.OLS(y, design).fit()
    t, dof = fit.tvalues["x"], fit.df_resid
    assert res.estimate == pytest.approx(t / np.sqrt(t * t + dof), rel=1e-9)
    assert res.p == pytest.approx(fit.pvalues["x"], rel=1e-8)
    assert res.extras["df"] == dof == 30 - 2 - 3
    lo, hi = stats.fisher_z_ci(res.estimate, 30, n_covariates=3)
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi))


def test_partial_correlation_removes_a_confounder():
    rng = np.random.default_rng(9)
    z = rng.normal(size=200)
    x = z + 0.3 * rng.normal(size=200)
    y = z + 0.3 * rng.normal(size=200)
    assert stats.pearson(x, y).estimate > 0.8
    part = stats.partial_correlation(x, y, z)
    assert part.ci_low < 0 < part.ci_high


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: stats.pearson([1, 2, 3], [1, 2, 4]), "at least 4"),
        (lambda: stats.pearson([1, 1, 1, 1], [1, 2, 3, 4]), "x is constant"),
        (lambda: stats.pearson([1, 2, 3, 4], [2, 2, 2, 2]), "y is constant"),
        (lambda: stats.pearson([1, 2, np.nan, 4], [1, 2, 3, 4]), "NaN or Inf"),
        (lambda: stats.pearson([1, 2, 3, 4], [1, 2, 3]), "same length"),
        (lambda: stats.ols_hc3([1, 2, 3], [[1], [2], [3]]), "at least 4"),
        (lambda: stats.ols_hc3(np.arange(8.0), np.ones((8, 1))), "rank deficient"),
        (lambda: stats.nested_f_test(np.arange(8.0), None, np.empty((8, 0))), "no columns"),
        (
            lambda: stats.partial_correlation(np.arange(5.0), np.arange(5.0) ** 2, np.ones((5, 2))),
            "at least 6",
        ),
        (lambda: stats.pearson(np.arange(5.0), np.arange(5.0) ** 2, confidence=1.5), "confidence"),
        (lambda: stats.dyadic_mean([1.0, 2.0], ["a", "b"], ["b", "a"]), "at least 3 units"),
        (lambda: stats.adjusted_mean([1.0, 1.0, 1.0]), "same value"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- unit-level inference


def test_minimum_detectable_effects_hand_values():
    # tanh(2.80 / sqrt(n - 3)): the numbers a methods reviewer checks.
    assert stats.mde_correlation(12) == pytest.approx(0.73, abs=0.005)
    assert stats.mde_correlation(21) == pytest.approx(0.58, abs=0.005)
    assert stats.mde_correlation(43) == pytest.approx(0.42, abs=0.005)
    assert stats.mde_correlation(12, k=2) == pytest.approx(np.tanh(2.8016 / np.sqrt(7)), abs=1e-3)
    assert np.isnan(stats.mde_correlation(3))
    # Large df: (1.96 + 0.84) * se.
    assert stats.mde_t(1.0, 10_000) == pytest.approx(2.80, abs=0.01)
    assert stats.mde_t(0.5, 9) == pytest.approx((2.262 + 0.883) * 0.5, abs=1e-3)


def test_design_dummies_drop_one_level_and_collinear_factors():
    f = pd.DataFrame({"architecture": list("aabbcc"), "input_size": [48, 48, 32, 32, 32, 32]})
    Z = stats.design_dummies(f)
    assert Z.shape == (6, 2)  # input size is architecture a: no new column
    assert stats.design_dummies(None, 4).shape == (4, 0)
    assert stats.strata_codes(f).tolist() == [0, 0, 1, 1, 2, 2]


def test_stratified_correlation_is_the_partial_r_and_ignores_shared_factor_effects():
    rng = np.random.default_rng(3)
    arch = np.repeat(["a", "b", "c"], 6)
    shift = {"a": -6.0, "b": 0.0, "c": 6.0}
    x = np.array([shift[a] for a in arch]) + rng.normal(size=18)
    y = np.array([shift[a] for a in arch]) + rng.normal(size=18)
    f = pd.DataFrame({"architecture": arch})
    res = stats.stratified_correlation(x, y, f, n_perm=2000, seed=1)
    ref = stats.partial_correlation(x, y, f)
    assert res.estimate == pytest.approx(ref.estimate)
    assert res.extras["parametric_p"] == pytest.approx(ref.p)
    assert (res.ci_low, res.ci_high) == pytest.approx((ref.ci_low, ref.ci_high))
    assert res.extras["raw_r"] > 0.9 and abs(res.estimate) < 0.5
    assert res.p > 0.05 and res.extras["raw_p"] < 1e-6
    # Without factors: the plain permutation test of Pearson r (close to the t-test p).
    z = x + rng.normal(0, 6, 18)
    plain = stats.stratified_correlation(x, z, n_perm=20_000, seed=2)
    assert plain.extras["n_design_columns"] == 0 and plain.extras["n_strata"] == 1
    assert plain.estimate == pytest.approx(sps.pearsonr(x, z).statistic)
    assert plain.p == pytest.approx(sps.pearsonr(x, z).pvalue, abs=0.02)


def test_stratified_permutation_p_matches_an_exhaustive_enumeration():
    # 2 strata of 4: 4! * 4! = 576 within-strata permutations, enumerated by hand here.
    import itertools

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=8), rng.normal(size=8)
    y[:4] += x[:4]
    f = pd.DataFrame({"s": list("aaaabbbb")})
    obs = stats.stratified_correlation(x, y, f, n_perm=50_000, seed=0)
    ex = x - np.repeat([x[:4].mean(), x[4:].mean()], 4)
    ey = y - np.repeat([y[:4].mean(), y[4:].mean()], 4)
    count = total = 0
    for p1 in itertools.permutations(range(4)):
        for p2 in itertools.permutations(range(4, 8)):
            xp = ex[list(p1) + list(p2)]
            r = xp @ ey / np.sqrt((xp @ xp) * (ey @ ey))
            count += abs(r) >= abs(obs.estimate) - 1e-12
            total += 1
    assert obs.p == pytest.approx(count / total, abs=0.01)


def test_stratified_correlation_errors():
    f = pd.DataFrame({"s": list("aabb")})
    with pytest.raises(ValueError, match="at least 5 units"):
        stats.stratified_correlation([1, 2, 3, 4], [1, 3, 2, 4], f)
    f = pd.DataFrame({"s": list("aaabbb")})
    with pytest.raises(ValueError, match="does not vary within"):
        stats.stratified_correlation([1, 1, 1, 2, 2, 2], [1, 3, 2, 4, 6, 5], f)


def test_adjusted_mean_weights_strata_equally_as_ols_with_sum_coding():
    d = np.array([1.0, 2.0, 3.0, 10.0, 11.0])
    f = pd.DataFrame({"architecture": ["a", "a", "a", "b", "b"]})
    res = stats.adjusted_mean(d, f)
    assert res.estimate == pytest.approx((2.0 + 10.5) / 2)  # mean of the cell means
    assert res.extras["raw_mean"] == pytest.approx(d.mean())
    fit = smf.ols("d ~ C(arch, Sum)", pd.DataFrame({"d": d, "arch": f["architecture"]})).fit()
    assert res.estimate == pytest.approx(fit.params["Intercept"])
    assert res.p == pytest.approx(fit.pvalues["Intercept"])
    lo, hi = fit.conf_int().loc["Intercept"]
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi))
    # No factors: the one-sample t-test.
    plain = stats.adjusted_mean(d)
    assert plain.p == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    assert plain.extras["eq_low"] == pytest.approx(
        d.mean() - sps.t.ppf(0.95, 4) * d.std(ddof=1) / np.sqrt(5)
    )


def test_adjusted_difference_matches_ols_with_architecture_fixed_effects():
    rng = np.random.default_rng(2)
    arch = np.repeat(["a", "b", "c"], 6)
    g = np.tile([1, 1, 0, 0, 0, 0], 3)
    g[6] = 0  # unbalanced
    y = np.array([{"a": 5, "b": 0, "c": -5}[a] for a in arch]) + 1.0 * g + rng.normal(size=18)
    f = pd.DataFrame({"architecture": arch})
    res = stats.adjusted_difference(y, g, f, n_perm=4000, seed=0)
    fit = smf.ols("y ~ g + C(arch)", pd.DataFrame({"y": y, "g": g, "arch": arch})).fit()
    assert res.estimate == pytest.approx(fit.params["g"])
    assert res.extras["parametric_p"] == pytest.approx(fit.pvalues["g"])
    assert res.p == pytest.approx(fit.pvalues["g"], abs=0.05)
    with pytest.raises(ValueError, match="both groups"):
        stats.adjusted_difference(y, np.zeros(18), f)


def _slow_dyadic_boot(values, a, b, n_boot, seed):
    """The unit-level bootstrap by hand: draw units, list every pair among the draws."""
    units = sorted(set(a) | set(b))
    pair = {(x, y): v for x, y, v in zip(a, b, values, strict=True)}
    rng = np.random.default_rng(seed)
    draws = [np.bincount(rng.integers(0, len(units), len(units)), minlength=len(units))
             for _ in range(n_boot)]  # fmt: skip
    means = []
    for counts in draws:
        drawn = [u for u, c in zip(units, counts, strict=True) for _ in range(c)]
        got = [pair[(p, q)] for i, p in enumerate(drawn) for j, q in enumerate(drawn)
               if i != j and (p, q) in pair]  # fmt: skip
        if got:
            means.append(np.mean(got))
    return np.std(means, ddof=1)


def test_dyadic_mean_matches_a_slow_cluster_bootstrap():
    rng = np.random.default_rng(0)
    models = [f"m{i}" for i in range(6)]
    a, b = zip(*[(p, q) for p in models for q in models if p != q], strict=True)
    effect = {m: rng.normal() for m in models}
    v = np.array([effect[p] + effect[q] + rng.normal(0, 0.1) for p, q in zip(a, b, strict=True)])
    res = stats.dyadic_mean(v, a, b, n_boot=300, seed=4)
    assert res.estimate == pytest.approx(v.mean()) and res.n == 6
    assert res.extras["se"] == pytest.approx(_slow_dyadic_boot(v, a, b, 300, 4), rel=1e-9)
    # Pairs share encoders: the naive pair-level se is far too small.
    assert res.extras["se"] > 3 * v.std(ddof=1) / np.sqrt(v.size)


def test_unit_slopes_match_polyfit():
    rng = np.random.default_rng(1)
    x = np.tile(np.linspace(0, 1, 5), 3)
    u = np.repeat(["a", "b", "c"], 5)
    y = rng.normal(size=15) + 2 * x
    slopes = stats.unit_slopes(y, x, u)
    for unit in "abc":
        m = u == unit
        assert slopes[unit] == pytest.approx(np.polyfit(x[m], y[m], 1)[0])


def test_as_dict_flattens_extras():
    d = stats.adjusted_mean([1.0, 2, 4]).as_dict()
    assert {"estimate", "ci_low", "ci_high", "p", "n", "method", "raw_mean", "mde"} <= set(d)
    assert all(isinstance(d[k], float) for k in ("estimate", "ci_low", "ci_high", "p"))


def test_adjusted_mean_with_two_crossed_factors_is_the_sum_coded_intercept():
    rng = np.random.default_rng(4)
    arch = np.array(list("aaabbbbccd"))
    size = np.array([32, 48, 32, 32, 32, 48, 48, 32, 48, 32])
    d = rng.normal(size=10) + (arch == "a") * 3.0 + (size == 48) * 1.0
    f = pd.DataFrame({"architecture": arch, "input_size": size})
    res = stats.adjusted_mean(d, f)
    frame = pd.DataFrame({"d": d, "a": arch, "s": size})
    fit = smf.ols("d ~ C(a, Sum) + C(s, Sum)", frame).fit()
    assert res.estimate == pytest.approx(fit.params["Intercept"])
    assert res.p == pytest.approx(fit.pvalues["Intercept"])
    assert res.extras["n_design_columns"] == 4


# ------------------------------------------------------------------ reliability (ICC)


def _slow_icc(y, cells):
    """ICC(1) from the textbook balanced one-way ANOVA, written out loop by loop."""
    groups = {}
    for v, c in zip(y, cells, strict=True):
        groups.setdefault(c, []).append(v)
    k = len(next(iter(groups.values())))
    grand = sum(y) / len(y)
    msb = sum(k * (sum(g) / k - grand) ** 2 for g in groups.values()) / (len(groups) - 1)
    msw = sum((v - sum(g) / k) ** 2 for g in groups.values() for v in g) / (len(y) - len(groups))
    return (msb - msw) / (msb + (k - 1) * msw), msb, msw


def test_icc_matches_the_textbook_anova_and_statsmodels():
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    rng = np.random.default_rng(3)
    cells = np.repeat(np.arange(6), 3)
    y = np.repeat(rng.normal(size=6), 3) + rng.normal(scale=0.5, size=18)
    got = stats.icc_oneway(y, cells)
    icc, msb, msw = _slow_icc(y.tolist(), cells.tolist())
    assert got["icc"] == pytest.approx(icc, rel=1e-12)
    assert got["within_sd"] == pytest.approx(np.sqrt(msw), rel=1e-12)
    assert got["between_sd"] == pytest.approx(np.sqrt((msb - msw) / 3), rel=1e-12)
    table = sm.stats.anova_lm(ols("y ~ C(cell)", pd.DataFrame({"y": y, "cell": cells})).fit())
    assert table.loc["C(cell)", "mean_sq"] == pytest.approx(msb, rel=1e-10)
    assert table.loc["Residual", "mean_sq"] == pytest.approx(msw, rel=1e-10)


def test_icc_within_strata_equals_the_icc_after_removing_stratum_means():
    """Balanced nesting: within-architecture ICC = ANOVA on cells with the stratum effect
    removed, with C - A between-cell degrees of freedom."""
    rng = np.random.default_rng(4)
    arch = np.repeat(np.arange(3), 8)  # 3 architectures x 4 objectives x 2 seeds
    cells = np.repeat(np.arange(12), 2)
    y = 10 * np.repeat(rng.normal(size=3), 8) + np.repeat(rng.normal(size=12), 2)
    y = y + rng.normal(scale=0.7, size=24)
    got = stats.icc_oneway(y, cells, arch)
    means = pd.Series(y).groupby(cells).mean()
    arch_mean = pd.Series(y).groupby(arch).mean()
    msb = 2 * ((means - arch_mean.loc[np.arange(12) // 4].to_numpy()) ** 2).sum() / (12 - 3)
    msw = ((y - means.loc[cells].to_numpy()) ** 2).sum() / (24 - 12)
    assert got["icc"] == pytest.approx((msb - msw) / (msb + msw), rel=1e-12)
    assert got["n_cells"] == 12 and got["n_replicates"] == 24


def test_icc_recovers_the_simulated_truth_and_ignores_architecture_shifts():
    """Cell SD = seed SD = 1 (true ICC 0.5) under a large architecture effect: the
    within-architecture ICC recovers 0.5 (ANOVA estimates are nearly unbiased), the
    all-cell ICC is inflated by architecture — the confound the claims control."""
    rng = np.random.default_rng(5)
    arch = np.repeat(np.arange(3), 10)
    cells = np.repeat(np.arange(15), 2)
    within, overall = [], []
    for _ in range(400):
        y = 5 * np.repeat(rng.normal(size=3), 10) + np.repeat(rng.normal(size=15), 2)
        y = y + rng.normal(size=30)
        within.append(stats.icc_oneway(y, cells, arch)["icc"])
        overall.append(stats.icc_oneway(y, cells)["icc"])
    assert np.median(within) == pytest.approx(0.5, abs=0.07)
    assert np.median(overall) > 0.8


def test_icc_needs_replicates_and_nesting():
    assert np.isnan(stats.icc_oneway([1.0, 2.0, 3.0], ["a", "b", "c"])["icc"])  # no replicate
    with pytest.raises(ValueError, match="constant within each cell"):
        stats.icc_oneway([1.0, 2.0, 3.0, 4.0], ["a", "a", "b", "b"], ["x", "y", "x", "x"])
    # unbalanced: n0 between the smallest and largest cell size, ICC still in range
    got = stats.icc_oneway([1.0, 1.2, 3.0, 3.1, 2.9, 5.0, 5.2], [0, 0, 1, 1, 1, 2, 2])
    assert 0.9 < got["icc"] <= 1.0


def test_seed_blocked_icc_matches_a_two_way_anova_in_statsmodels():
    """Cells nested in strata, seeds as blocks within strata: the pooled mean squares are the
    F-test's of adding cells to y ~ stratum:seed (balanced, so the decomposition is exact)."""
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    rng = np.random.default_rng(6)
    arch = np.repeat(np.arange(3), 12)  # 3 architectures x 4 objectives x 3 seeds
    cells = np.repeat(np.arange(12), 3)
    seeds = np.tile(np.arange(3), 12)
    y = 5 * np.repeat(rng.normal(size=3), 12) + np.repeat(rng.normal(size=12), 3)
    y = y + 2 * rng.normal(size=9)[arch * 3 + seeds] + rng.normal(scale=0.5, size=36)
    got = stats.icc_seed_blocked(y, cells, seeds, arch)
    frame = pd.DataFrame({"y": y, "cell": cells, "seed": seeds, "arch": arch})
    blocks = ols("y ~ C(arch):C(seed)", frame).fit()
    full = ols("y ~ C(arch):C(seed) + C(cell)", frame).fit()
    table = sm.stats.anova_lm(blocks, full)  # cells after the seed blocks
    assert table.loc[1, "df_diff"] == 9 and full.df_resid == 18
    msc, mse = table.loc[1, "ss_diff"] / 9, full.ssr / full.df_resid
    assert got["icc"] == pytest.approx((msc - mse) / (msc + 2 * mse), rel=1e-10)
    assert got["within_sd"] == pytest.approx(np.sqrt(mse), rel=1e-10)
    assert got["between_sd"] == pytest.approx(np.sqrt((msc - mse) / 3), rel=1e-10)
    assert got["n_cells"] == 12 and got["n_replicates"] == 36


def test_seed_blocked_icc_recovers_the_simulated_truth():
    """Objective SD = interaction SD = 1 (true ICC 0.5) under a seed effect of SD 3 shared by
    an architecture's objectives: the blocked ICC recovers 0.5 and the shared SD, the one-way
    ICC drowns in the shared effect (1 / (1 + 1 + 9) = 0.09). Without a shared effect both
    estimate the same truth."""
    rng = np.random.default_rng(7)
    arch = np.repeat(np.arange(3), 15)  # 3 architectures x 5 objectives x 3 seeds
    cells = np.repeat(np.arange(15), 3)
    seeds = np.tile(np.arange(3), 15)
    blocked, oneway, shared, free = [], [], [], []
    for _ in range(400):
        base = 5 * np.repeat(rng.normal(size=3), 15) + np.repeat(rng.normal(size=15), 3)
        noise = rng.normal(size=45)
        y = base + 3 * rng.normal(size=9)[arch * 3 + seeds] + noise
        got = stats.icc_seed_blocked(y, cells, seeds, arch)
        blocked.append(got["icc"])
        shared.append(got["block_sd"])
        oneway.append(stats.icc_oneway(y, cells, arch)["icc"])
        free.append(stats.icc_seed_blocked(base + noise, cells, seeds, arch)["icc"])
    assert np.median(blocked) == pytest.approx(0.5, abs=0.08)
    assert np.median(free) == pytest.approx(0.5, abs=0.08)
    assert np.median(shared) == pytest.approx(3.0, abs=0.6)
    assert np.median(oneway) < 0.2


def test_seed_blocked_icc_uses_the_seeds_every_cell_has():
    y = [1.0, 2.0, 3.0, 1.5, 2.4, 9.0]  # b has seeds 0 and 1 only: a's 2 and 3 are left out
    got = stats.icc_seed_blocked(y, list("aaabba"), [0, 1, 2, 0, 1, 3], ["x"] * 6)
    assert got["n_cells"] == 2 and got["n_replicates"] == 4
    assert np.isnan(stats.icc_seed_blocked([1.0, 2.0], ["a", "b"], [0, 0], ["x", "x"])["icc"])
    with pytest.raises(ValueError, match="one value per"):
        stats.icc_seed_blocked([1.0, 2.0], ["a", "a"], [0, 0], ["x", "x"])
