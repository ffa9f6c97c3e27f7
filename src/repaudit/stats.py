"""Statistics layer: effect sizes with confidence intervals, p-values and multiplicity control.

Every helper takes plain arrays (or pandas objects) and returns a :class:`StatResult` with an
``estimate``, a confidence interval (``ci_low``, ``ci_high``), a p-value ``p``, the sample size
``n`` and helper-specific ``extras``. Inputs that cannot support the statistic (too few
observations, NaN/Inf, constant vectors, collinear designs) raise :class:`ValueError` naming the
minimum or the problem. Stochastic helpers (bootstrap, permutation) take ``seed`` and are
bit-identical for the same seed.

Statistics: Pearson r with a Fisher-z interval, Holm correction, OLS with HC3 standard errors
and a nested F-test for a block of predictors, partial correlations, the exact McNemar test,
and unit-level inference for cross-model claims (the encoder as the unit,
design factors controlled, encoder pairs by a cluster bootstrap, minimum detectable effects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "OLSResult",
    "StatResult",
    "adjusted_difference",
    "adjusted_mean",
    "design_dummies",
    "dyadic_mean",
    "fisher_z_ci",
    "holm",
    "icc_oneway",
    "icc_seed_blocked",
    "mcnemar_exact",
    "mde_correlation",
    "mde_t",
    "nested_f_test",
    "ols_hc3",
    "partial_correlation",
    "pearson",
    "probe_margin_table",
    "replication_interval",
    "small_telescopes",
    "strata_codes",
    "stratified_correlation",
    "unit_slopes",
]

# Rows of a bootstrap / permutation matrix processed at once (bounds memory to ~16 MB per array).
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class StatResult:
    """Result of one statistical helper.

    Attributes
    ----------
    estimate, ci_low, ci_high, p : float
        Effect size, its confidence interval and the p-value (NaN where undefined).
    n : int
        Number of observations (independent units) that entered the statistic.
    method : str
        Short description of the estimator, interval and test.
    extras : dict
        Helper-specific numbers (e.g. ``df``, ``t``, ``wilcoxon_p``, ``n_groups``).
    """

    estimate: float
    ci_low: float
    ci_high: float
    p: float
    n: int
    method: str
    extras: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Flat dict: the core fields followed by the extras."""
        core = {
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p": self.p,
            "n": self.n,
            "method": self.method,
        }
        return {**core, **self.extras}


# ----------------------------------------------------------------------------- input checks


def _vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf; drop incomplete units before testing.")
    return arr


def _pair(x, y, min_n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _vector(x, "x"), _vector(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length; got {x.size} and {y.size}.")
    if x.size < min_n:
        raise ValueError(f"{what} needs at least {min_n} paired observations; got {x.size}.")
    for arr, name in ((x, "x"), (y, "y")):
        if np.ptp(arr) == 0:
            raise ValueError(f"{name} is constant; {what} is undefined for constant input.")
    return x, y


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}.")
    return float(confidence)


def _check_count(value: int, name: str, minimum: int) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}.")
    return int(value)


def _design(X, name: str, n: int) -> tuple[np.ndarray, list[str]]:
    """Numeric design matrix (n, k) and column names; categorical columns become dummies."""
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        numeric = X.select_dtypes(include=[np.number, "boolean", bool])
        categorical = X.drop(columns=numeric.columns)
        parts = [numeric.astype(np.float64)]
        if categorical.shape[1]:
            dummies = pd.get_dummies(categorical.astype(str), drop_first=True, dtype=np.float64)
            parts.append(dummies)
        frame = pd.concat(parts, axis=1)
        names = [str(c) for c in frame.columns]
        arr = frame.to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        names = [f"{name}{j}" for j in range(arr.shape[1])]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows (one per observation); got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf; drop incomplete units before testing.")
    return arr, names


def _add_intercept(arr: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(arr.shape[0]), arr])


def _check_full_rank(X: np.ndarray, what: str) -> None:
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        raise ValueError(
            f"{what} is rank deficient (rank {rank} < {X.shape[1]} columns): a predictor is "
            "constant or collinear with others; drop it or collect more units."
        )


# ----------------------------------------------------------------------------- correlations


def fisher_z_ci(r: float, n: int, confidence: float = 0.95, n_covariates: int = 0):
    """Fisher-z confidence interval of a (partial) Pearson correlation.

    z = artanh(r) is approximately normal with standard error 1/√(n − 3 − k) for a partial
    correlation controlling for k covariates (Fisher 1924); the interval is
    tanh(z ± z_{1−α/2} · se).

    Returns
    -------
    (ci_low, ci_high) as floats.
    """
    confidence = _check_confidence(confidence)
    dof = n - 3 - n_covariates
    if dof < 1:
        raise ValueError(
            f"the Fisher-z interval needs n - 3 - k >= 1; got n={n}, k={n_covariates}."
        )
    # Clip so that |r| = 1 gives a degenerate interval at ±1 instead of inf arithmetic.
    z = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
    half = sps.norm.ppf(0.5 + confidence / 2) / np.sqrt(dof)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def pearson(x, y, *, confidence: float = 0.95) -> StatResult:
    """Pearson correlation with a Fisher-z confidence interval.

    r = Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)² Σ(y−ȳ)²); p from t = r√(n−2)/√(1−r²) with n − 2 degrees of
    freedom (two-sided); CI from :func:`fisher_z_ci`. This is the statistic of Chung & Kim
    (arXiv:2602.03282, §1.6 of the pipeline spec). Needs n ≥ 4.
    """
    x, y = _pair(x, y, 4, "pearson")
    res = sps.pearsonr(x, y)
    r = float(res.statistic)
    lo, hi = fisher_z_ci(r, x.size, confidence)
    return StatResult(r, lo, hi, float(res.pvalue), int(x.size), "pearson r, Fisher-z CI, t-test p")


def _rank_rows(a: np.ndarray) -> np.ndarray:
    return sps.rankdata(a, axis=-1, method="average")


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of matching rows of a and b; NaN for constant rows."""
    ac = a - a.mean(axis=-1, keepdims=True)
    bc = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt(np.sum(ac * ac, axis=-1) * np.sum(bc * bc, axis=-1))
    num = np.sum(ac * bc, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    # Near-zero denominators are rounding noise of constant rows.
    out[den <= 1e-12 * np.maximum(1.0, np.abs(num))] = np.nan
    return np.clip(out, -1.0, 1.0)


def holm(pvalues) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values controlling the family-wise error rate.

    With the m finite p-values sorted ascending, p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)).
    NaN entries (tests that could not be run) are passed through and do not count towards m.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional; got shape {p.shape}.")
    valid = ~np.isnan(p)
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise ValueError("pvalues must lie in [0, 1].")
    out = np.full(p.shape, np.nan)
    pv = p[valid]
    m = pv.size
    if m == 0:
        return out
    order = np.argsort(pv, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * pv[order]))
    res = np.empty(m)
    res[order] = adjusted
    out[valid] = res
    return out


def partial_correlation(x, y, covariates, *, confidence: float = 0.95) -> StatResult:
    """Partial Pearson correlation of x and y controlling for covariates.

    x and y are residualised on [1, Z] by least squares (categorical columns of a DataFrame
    become drop-first dummies), then r = corr(e_x, e_y). With k covariate columns,
    t = r √(n−2−k) / √(1−r²) on n − 2 − k degrees of freedom (identical to the t-test of x's
    coefficient in the OLS of y on [1, x, Z]); the CI is Fisher-z with se = 1/√(n−3−k).
    Needs n ≥ k + 4.
    """
    x, y = _pair(x, y, 4, "partial_correlation")
    n = x.size
    Z, _ = _design(covariates, "covariates", n)
    k = Z.shape[1]
    if n < k + 4:
        raise ValueError(
            f"partial_correlation with {k} covariate columns needs at least {k + 4} "
            f"observations; got {n}."
        )
    Zi = _add_intercept(Z)
    _check_full_rank(Zi, "the covariate matrix [1, Z]")
    coef_x, *_ = np.linalg.lstsq(Zi, x, rcond=None)
    coef_y, *_ = np.linalg.lstsq(Zi, y, rcond=None)
    ex, ey = x - Zi @ coef_x, y - Zi @ coef_y
    scale = max(np.abs(x).max(), np.abs(y).max(), 1.0)
    if np.ptp(ex) <= 1e-12 * scale or np.ptp(ey) <= 1e-12 * scale:
        raise ValueError("x or y is fully explained by the covariates; the partial r is undefined.")
    r = float(_row_corr(ex[None, :], ey[None, :])[0])
    dof = n - 2 - k
    t = r * np.sqrt(dof / max(1.0 - r * r, 1e-300))
    p = float(2 * sps.t.sf(abs(t), dof))
    lo, hi = fisher_z_ci(r, n, confidence, n_covariates=k)
    return StatResult(
        r,
        lo,
        hi,
        p,
        int(n),
        "partial pearson r, Fisher-z CI, t-test p",
        {"df": dof, "t": float(t), "n_covariates": k},
    )


# ----------------------------------------------------------------------------- differences


def _t_interval(mean: float, se: float, dof: float, confidence: float):
    half = sps.t.ppf(0.5 + confidence / 2, dof) * se
    return float(mean - half), float(mean + half)


def mcnemar_exact(correct_a, correct_b, *, confidence: float = 0.95) -> StatResult:
    """Accuracy difference of two classifiers on the same test items, with McNemar's exact test.

    Estimate: acc_a − acc_b = (n_ab̄ − n_āb) / n, where n_ab̄ counts items only a gets right and
    n_āb items only b gets right. CI: Wald interval of a paired difference of proportions,
    ± z √(n_ab̄ + n_āb − (n_ab̄ − n_āb)² / n) / n. p: two-sided exact binomial test of
    n_ab̄ among the n_ab̄ + n_āb discordant items at 1/2 (1 when there are none).
    """
    confidence = _check_confidence(confidence)
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.dtype != bool or b.dtype != bool or a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            "correct_a and correct_b must be boolean vectors of one length; "
            f"got {a.dtype} {a.shape} and {b.dtype} {b.shape}."
        )
    n = a.size
    if n < 1:
        raise ValueError("mcnemar_exact needs at least 1 paired item.")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    diff = (only_a - only_b) / n
    half = sps.norm.ppf(0.5 + confidence / 2) * np.sqrt(discordant - (only_a - only_b) ** 2 / n) / n
    p = float(sps.binomtest(only_a, discordant, 0.5).pvalue) if discordant else 1.0
    return StatResult(
        float(diff),
        float(diff - half),
        float(diff + half),
        p,
        int(n),
        "accuracy difference a-b, Wald CI, exact McNemar p",
        {
            "accuracy_a": float(a.mean()),
            "accuracy_b": float(b.mean()),
            "only_a": only_a,
            "only_b": only_b,
        },
    )


def probe_margin_table(correct: dict, controls: dict, alpha: float = 0.05) -> pd.DataFrame:
    """Accuracy of each model against its control on the same test items (:func:`mcnemar_exact`).

    ``correct`` maps model → boolean vector of per-item correctness (one item order for all);
    ``controls`` maps model → control. One row per model: both accuracies (%), the margin in
    points with its Wald interval, the items only one of the two gets right, the exact McNemar
    p, its Holm adjustment over the table, and ``clear`` (positive margin, Holm p < ``alpha``).
    """
    columns = ["model", "control", "accuracy", "control_accuracy", "margin", "ci_low",
               "ci_high", "only_model", "only_control", "n", "p"]  # fmt: skip
    rows = []
    for model, control in controls.items():
        res = mcnemar_exact(correct[model], correct[control])
        rows.append([
            model, control, 100 * res.extras["accuracy_a"], 100 * res.extras["accuracy_b"],
            100 * res.estimate, 100 * res.ci_low, 100 * res.ci_high,
            res.extras["only_a"], res.extras["only_b"], res.n, res.p,
        ])  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    table["p_holm"] = holm(table["p"].to_numpy(dtype=np.float64))
    table["clear"] = (table["margin"] > 0) & (table["p_holm"] < alpha)
    return table


# ----------------------------------------------------------------------------- regression


@dataclass(frozen=True)
class OLSResult:
    """OLS fit with heteroskedasticity-consistent (HC3) standard errors.

    Attributes
    ----------
    coefficients : pandas.DataFrame
        One row per term (``const`` first): ``term``, ``coef``, ``se``, ``t``, ``p``,
        ``ci_low``, ``ci_high`` (HC3 covariance; t distribution with n − k df).
    r2, adj_r2 : float
        Coefficient of determination and its adjusted version 1 − (1−R²)(n−1)/(n−k).
    rss : float
        Residual sum of squares.
    n, df_resid : int
        Observations and residual degrees of freedom n − k.
    cov_hc3 : numpy.ndarray
        HC3 covariance of the coefficients (k, k).
    """

    coefficients: pd.DataFrame
    r2: float
    adj_r2: float
    rss: float
    n: int
    df_resid: int
    cov_hc3: np.ndarray


def _ols_fit(y: np.ndarray, X: np.ndarray):
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    return coef, resid


def ols_hc3(y, X, *, confidence: float = 0.95) -> OLSResult:
    """Ordinary least squares of y on [1, X] with HC3 robust standard errors.

    β̂ = (XᵀX)⁻¹Xᵀy; HC3 covariance (MacKinnon & White 1985)
    V = (XᵀX)⁻¹ Xᵀ diag(e_i² / (1 − h_ii)²) X (XᵀX)⁻¹ with h_ii the leverages. t statistics
    and intervals use n − k degrees of freedom (equal to statsmodels
    ``OLS(...).fit(cov_type="HC3", use_t=True)``). X may be a DataFrame (categorical columns
    become drop-first dummies). Needs n ≥ k + 2 with k the number of columns including the
    intercept, and a full-rank design.
    """
    confidence = _check_confidence(confidence)
    y = _vector(y, "y")
    n = y.size
    Xa, names = _design(X, "X", n)
    Xi = _add_intercept(Xa)
    k = Xi.shape[1]
    if n < k + 2:
        raise ValueError(
            f"ols_hc3 with {k} coefficients needs at least {k + 2} observations; got {n}."
        )
    if np.ptp(y) == 0:
        raise ValueError("y is constant; the regression is undefined.")
    _check_full_rank(Xi, "the design matrix [1, X]")
    coef, resid = _ols_fit(y, Xi)
    xtx_inv = np.linalg.inv(Xi.T @ Xi)
    leverage = np.einsum("ij,jk,ik->i", Xi, xtx_inv, Xi)
    if np.any(leverage > 1 - 1e-10):
        raise ValueError(
            "an observation has leverage 1 (it alone determines a coefficient); HC3 is undefined."
        )
    omega = resid**2 / (1.0 - leverage) ** 2
    cov = xtx_inv @ (Xi.T * omega) @ Xi @ xtx_inv
    se = np.sqrt(np.diag(cov))
    dof = n - k
    t = coef / se
    p = 2 * sps.t.sf(np.abs(t), dof)
    half = sps.t.ppf(0.5 + confidence / 2, dof) * se
    rss = float(resid @ resid)
    tss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - rss / tss
    table = pd.DataFrame(
        {
            "term": ["const", *names],
            "coef": coef,
            "se": se,
            "t": t,
            "p": p,
            "ci_low": coef - half,
            "ci_high": coef + half,
        }
    )
    return OLSResult(
        table,
        float(r2),
        float(1.0 - (1.0 - r2) * (n - 1) / dof),
        rss,
        int(n),
        int(dof),
        cov,
    )


def nested_f_test(y, X_base, X_block) -> StatResult:
    """Does a block of predictors add explained variance? Nested OLS F-test and ΔR².

    Restricted model y ~ 1 + X_base, full model y ~ 1 + X_base + X_block (q block columns, k
    coefficients in the full model): F = ((RSS_r − RSS_f)/q) / (RSS_f/(n − k)) on (q, n − k)
    df (statsmodels ``compare_f_test`` / ``anova_lm``). The estimate is ΔR² = R²_f − R²_r (no
    interval: ``ci_low``/``ci_high`` are NaN). ``extras`` add R² of both models, the adjusted
    R² of the full model, and an HC3-robust Wald F-test of the same block (``wald_hc3_F``,
    ``wald_hc3_p``) that does not assume homoskedastic errors. ``X_base`` may be None
    (intercept only). Needs n ≥ k + 2.
    """
    y = _vector(y, "y")
    n = y.size
    Xb, base_names = (np.empty((n, 0)), []) if X_base is None else _design(X_base, "X_base", n)
    Xk, block_names = _design(X_block, "X_block", n)
    q = Xk.shape[1]
    if q == 0:
        raise ValueError("X_block has no columns; give at least one predictor to test.")
    full = ols_hc3(y, np.column_stack([Xb, Xk]))
    Xr = _add_intercept(Xb)
    _, resid_r = _ols_fit(y, Xr)
    rss_r = float(resid_r @ resid_r)
    tss = float(np.sum((y - y.mean()) ** 2))
    r2_r = 1.0 - rss_r / tss
    dof = full.df_resid
    F = ((rss_r - full.rss) / q) / (full.rss / dof)
    p = float(sps.f.sf(F, q, dof))
    # HC3 Wald test of the block coefficients (the last q of the full model).
    beta = full.coefficients["coef"].to_numpy()[-q:]
    V = full.cov_hc3[-q:, -q:]
    wald_F = float(beta @ np.linalg.solve(V, beta) / q)
    return StatResult(
        float(full.r2 - r2_r),
        float("nan"),
        float("nan"),
        p,
        int(n),
        "delta R2 of the block, nested OLS F-test p",
        {
            "F": float(F),
            "df_num": q,
            "df_den": dof,
            "r2_base": float(r2_r),
            "r2_full": full.r2,
            "adj_r2_full": full.adj_r2,
            "wald_hc3_F": wald_F,
            "wald_hc3_p": float(sps.f.sf(wald_F, q, dof)),
            "base_terms": ",".join(base_names),
            "block_terms": ",".join(block_names),
        },
    )


# ----------------------------------------------------------------------------- unit-level inference
# Cross-model claims (arXiv:2602.03282 and friends) compare encoders; the encoder is the
# independent unit and the zoo's design factors (architecture, input size) confound any metric
# that differs by architecture. These helpers take one row per unit and a frame of design
# factors; they test the association *within* the factors' strata (Barr et al. 2013; Judd,
# Westfall & Kenny 2012 for the dyadic case), give the minimum detectable effect at 80 % power
# and the (1 − 2α) interval that an equivalence test (TOST, Schuirmann 1987; Lakens 2017) needs.

_Z_POWER = 0.8416212335729143  # z_{0.8}: 80 % power


def design_dummies(factors, n: int | None = None, *, coding: str = "dummy") -> np.ndarray:
    """Columns coding categorical design factors, collinear columns removed.

    ``factors`` is a DataFrame (one column per factor, one row per unit) or None. ``coding``
    ``"dummy"`` gives drop-first indicators; ``"effect"`` gives sum-to-zero codes (level minus
    first level), with which an OLS intercept is the unweighted mean over each factor's levels.
    Factors with one level add nothing; a column that is a linear combination of earlier ones
    (e.g. input size when every architecture has its own size) is dropped, so the result has
    full column rank together with an intercept. ``n`` sizes the empty result when ``factors``
    is None.
    """
    if coding not in ("dummy", "effect"):
        raise ValueError(f"coding must be 'dummy' or 'effect'; got {coding!r}.")
    if factors is None or len(getattr(factors, "columns", [])) == 0:
        return np.empty((n if factors is None else len(factors), 0))
    cols: list[np.ndarray] = []
    n = len(factors)
    base = np.ones((n, 1))
    for name in factors.columns:
        codes = pd.Series(factors[name]).astype(str).to_numpy()
        levels = np.unique(codes)
        for level in levels[1:]:
            cand = (codes == level).astype(np.float64)
            if coding == "effect":
                cand -= codes == levels[0]
            trial = np.column_stack([base, *cols, cand])
            if np.linalg.matrix_rank(trial) == trial.shape[1]:
                cols.append(cand)
    return np.column_stack(cols) if cols else np.empty((n, 0))


def strata_codes(factors) -> np.ndarray:
    """One integer code per unit for the cell of the design factors it belongs to."""
    if factors is None or len(getattr(factors, "columns", [])) == 0:
        return np.zeros(0 if factors is None else len(factors), dtype=np.int64)
    keys = pd.DataFrame(factors).astype(str).agg("|".join, axis=1)
    return pd.factorize(keys, sort=True)[0].astype(np.int64)


def _residualise(v: np.ndarray, Z: np.ndarray) -> np.ndarray:
    Zi = _add_intercept(Z)
    coef, *_ = np.linalg.lstsq(Zi, v, rcond=None)
    return v - Zi @ coef


def _permute_within(rng: np.random.Generator, v: np.ndarray, strata: np.ndarray, rows: int):
    """``rows`` copies of v, each permuted within strata (the same strata every row)."""
    out = np.broadcast_to(v, (rows, v.size)).copy()
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        if idx.size > 1:
            out[:, idx] = rng.permuted(out[:, idx], axis=1)
    return out


def mde_correlation(n: int, k: int = 0, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest |r| a two-sided test at ``alpha`` detects with ``power`` (Fisher z).

    r_mde = tanh((z_{1−α/2} + z_power) / √(n − 3 − k)); n = 12 → 0.73, n = 21 → 0.58.
    NaN where n − 3 − k < 1.
    """
    dof = n - 3 - k
    if dof < 1:
        return float("nan")
    return float(np.tanh((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) / np.sqrt(dof)))


def mde_t(se: float, dof: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable mean (or coefficient) of a two-sided t-test: (t_{1−α/2} + t_power)·se."""
    if not (np.isfinite(se) and dof >= 1):
        return float("nan")
    return float((sps.t.ppf(1 - alpha / 2, dof) + sps.t.ppf(power, dof)) * se)


def stratified_correlation(
    x,
    y,
    factors=None,
    *,
    method: str = "pearson",
    n_perm: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> StatResult:
    """Correlation of x and y across units *within* the strata of design factors.

    x and y (ranks for Spearman) are residualised on drop-first dummies of ``factors`` (k
    columns); the estimate is the partial correlation r of the residuals. Its CI is Fisher-z
    with se = 1/√(n − 3 − k); p is a two-sided permutation p where x is permuted within the
    strata (the factors' cells), so a link that runs only through the factors (x = a_arch + e1,
    y = a_arch + e2) is not an association. ``extras``: the raw r (no control) and its t-test
    p, the parametric partial p, k, the number of strata, the (1 − 2α) interval for TOST
    (``eq_low``, ``eq_high``) and the minimum detectable r (``mde``). Needs n ≥ k + 4.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman'; got {method!r}.")
    x, y = _pair(x, y, 4, "stratified_correlation")
    confidence = _check_confidence(confidence)
    n_perm = _check_count(n_perm, "n_perm", 1)
    n = x.size
    if factors is not None and len(factors) != n:
        raise ValueError(f"factors has {len(factors)} rows for {n} units.")
    if method == "spearman":
        x, y = _rank_rows(x), _rank_rows(y)
    raw = float(_row_corr(x[None, :], y[None, :])[0])
    Z = design_dummies(factors, n)
    k = Z.shape[1]
    if n < k + 4:
        raise ValueError(
            f"a correlation controlling {k} design column(s) needs at least {k + 4} units; got {n}."
        )
    ex, ey = _residualise(x, Z), _residualise(y, Z)
    scale = max(np.abs(x).max(), np.abs(y).max(), 1.0)
    if np.ptp(ex) <= 1e-12 * scale or np.ptp(ey) <= 1e-12 * scale:
        raise ValueError(
            "x or y does not vary within the design strata; a within-factor correlation is "
            "undefined (every unit of a stratum has the same value)."
        )
    r = float(_row_corr(ex[None, :], ey[None, :])[0])
    dof = n - 2 - k
    t = r * np.sqrt(dof / max(1.0 - r * r, 1e-300))
    strata = strata_codes(factors) if k else np.zeros(n, dtype=np.int64)
    # Permuting x within strata leaves its stratum means, so its residual is permuted alike.
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    count = 0
    for start in range(0, n_perm, chunk):
        rows = min(chunk, n_perm - start)
        perm = _permute_within(rng, ex, strata, rows)
        rp = _row_corr(perm, np.broadcast_to(ey, (rows, n)))
        count += int(np.sum(np.abs(rp) >= abs(r) - 1e-12))
    lo, hi = fisher_z_ci(r, n, confidence, n_covariates=k)
    eq_lo, eq_hi = fisher_z_ci(r, n, 1 - 2 * (1 - confidence), n_covariates=k)
    raw_t = raw * np.sqrt((n - 2) / max(1.0 - raw * raw, 1e-300))
    return StatResult(
        r,
        lo,
        hi,
        float((count + 1) / (n_perm + 1)),
        int(n),
        f"{method} r within design strata (partial), Fisher-z CI, stratified permutation p",
        {
            "raw_r": raw,
            "raw_p": float(2 * sps.t.sf(abs(raw_t), n - 2)),
            "parametric_p": float(2 * sps.t.sf(abs(t), dof)),
            "n_design_columns": k,
            "n_strata": int(np.unique(strata).size),
            "n_perm": n_perm,
            "eq_low": eq_lo,
            "eq_high": eq_hi,
            "mde": mde_correlation(n, k, 1 - confidence),
        },
    )


def adjusted_mean(d, factors=None, *, confidence: float = 0.95) -> StatResult:
    """Mean of a per-unit quantity with every design level weighted equally, t interval.

    OLS of d on an intercept and sum-to-zero (effect) codes of the design factors; the
    estimate is the intercept: for one factor the unweighted mean of its level means, for
    several the same in the additive model, so an unbalanced zoo does not let its largest
    architecture decide. Without
    factors it is the one-sample t-test. ``extras``: the raw mean, df, se, (1 − 2α) interval
    (``eq_low``, ``eq_high``) and ``mde``. Needs n ≥ k + 2 units.
    """
    confidence = _check_confidence(confidence)
    d = _vector(d, "d")
    n = d.size
    # Effect codes: the intercept is the unweighted mean over each factor's levels.
    Z = design_dummies(factors, n, coding="effect")
    k = Z.shape[1]
    dof = n - 1 - k
    if dof < 1:
        raise ValueError(
            f"a mean controlling {k} design column(s) needs at least {k + 2} units; got {n}."
        )
    if np.ptp(d) == 0:
        raise ValueError("every unit has the same value; the t-test is undefined.")
    Xi = _add_intercept(Z)
    coef, resid = _ols_fit(d, Xi)
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.inv(Xi.T @ Xi)
    est, se = float(coef[0]), float(np.sqrt(cov[0, 0]))
    if se == 0:
        raise ValueError("the per-unit values have no residual variance; the t-test is undefined.")
    t = est / se
    lo, hi = _t_interval(est, se, dof, confidence)
    eq_lo, eq_hi = _t_interval(est, se, dof, 1 - 2 * (1 - confidence))
    return StatResult(
        est,
        lo,
        hi,
        float(2 * sps.t.sf(abs(t), dof)),
        int(n),
        "mean over units, design strata weighted equally, t CI and p",
        {
            "raw_mean": float(d.mean()),
            "df": int(dof),
            "se": se,
            "n_design_columns": k,
            "eq_low": eq_lo,
            "eq_high": eq_hi,
            "mde": mde_t(se, dof, 1 - confidence),
        },
    )


def adjusted_difference(
    y, group, factors=None, *, n_perm: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> StatResult:
    """Difference between two groups of units (group 1 − group 0) within design strata.

    OLS of y on [1, group, dummies of the factors]: the estimate is the group coefficient with
    a t interval; p is a two-sided permutation p with the group labels permuted within strata
    (so a difference between architectures is not a difference between objectives).
    ``extras``: the raw difference of means, eq bounds and ``mde``. Needs both groups and
    n ≥ k + 3.
    """
    confidence = _check_confidence(confidence)
    y = _vector(y, "y")
    g = np.asarray(group, dtype=np.float64)
    if g.shape != y.shape or not set(np.unique(g)) <= {0.0, 1.0}:
        raise ValueError("group must be 0/1 with one entry per unit.")
    if g.sum() == 0 or g.sum() == g.size:
        raise ValueError("both groups need at least one unit.")
    n_perm = _check_count(n_perm, "n_perm", 1)
    n = y.size
    Z = design_dummies(factors, n)
    k = Z.shape[1]
    dof = n - 2 - k
    if dof < 1:
        raise ValueError(f"a group difference with {k} design column(s) needs {k + 3} units.")
    gz = _residualise(g, Z)
    if np.ptp(gz) <= 1e-12:
        raise ValueError("group does not vary within any design stratum; no within comparison.")
    X = _add_intercept(np.column_stack([g, Z]))
    coef, resid = _ols_fit(y, X)
    sigma2 = float(resid @ resid) / dof
    se = float(np.sqrt(sigma2 * np.linalg.inv(X.T @ X)[1, 1]))
    est = float(coef[1])
    lo, hi = _t_interval(est, se, dof, confidence)
    eq_lo, eq_hi = _t_interval(est, se, dof, 1 - 2 * (1 - confidence))
    # Permutation: the coefficient is Σ gz·ey / Σ gz², with ey = y residualised on Z.
    ey = _residualise(y, Z)
    strata = strata_codes(factors) if k else np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    count = 0
    for start in range(0, n_perm, chunk):
        rows = min(chunk, n_perm - start)
        # Fitted values on [1, Z] are constant within strata, so a within-strata permutation
        # of g has the residual permuted(g) − fitted(g).
        gp = _permute_within(rng, g, strata, rows) - (g - gz)
        bp = (gp @ ey) / np.maximum(np.sum(gp * gp, axis=1), 1e-300)
        count += int(np.sum(np.abs(bp) >= abs(est) - 1e-12))
    return StatResult(
        est,
        lo,
        hi,
        float((count + 1) / (n_perm + 1)),
        int(n),
        "group difference within design strata (OLS coefficient), t CI, stratified permutation p",
        {
            "raw_difference": float(y[g == 1].mean() - y[g == 0].mean()),
            "n_group_1": int(g.sum()),
            "n_group_0": int(n - g.sum()),
            "df": int(dof),
            "se": se,
            "parametric_p": float(2 * sps.t.sf(abs(est / se), dof)),
            "eq_low": eq_lo,
            "eq_high": eq_hi,
            "mde": mde_t(se, dof, 1 - confidence),
        },
    )


def dyadic_mean(
    values, unit_a, unit_b, *, n_boot: int = 2_000, confidence: float = 0.95, seed: int = 0
) -> StatResult:
    """Mean over ordered pairs of units (e.g. encoder pairs) with a unit-level bootstrap.

    Pairs that share an encoder are not independent (Moschella-style all-pairs tables), so
    the standard error comes from a cluster bootstrap of *units*: draw the units with
    replacement and keep every pair among the drawn units, a pair counted once per draw of
    each of its members (Davison & Hinkley 1997, §3.8). The interval and p use a t
    distribution on m − 1 df (m = units), which is better calibrated than percentiles at
    the 10-20 units of a zoo. ``n`` is m; ``extras['n_pairs']`` counts pairs.
    """
    confidence = _check_confidence(confidence)
    v = _vector(values, "values")
    a, b = np.asarray(unit_a).astype(str), np.asarray(unit_b).astype(str)
    if not (a.shape == b.shape == v.shape):
        raise ValueError("values, unit_a and unit_b must have one entry per pair.")
    n_boot = _check_count(n_boot, "n_boot", 100)
    units, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    m = units.size
    if m < 3:
        raise ValueError(f"a dyadic mean needs pairs among at least 3 units; got {m}.")
    ia, ib = codes[: v.size], codes[v.size :]
    V = np.zeros((m, m))
    M = np.zeros((m, m))
    np.add.at(V, (ia, ib), v)
    np.add.at(M, (ia, ib), 1.0)
    est = float(v.mean())
    rng = np.random.default_rng(seed)
    C = np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(n_boot)])
    C = C.astype(np.float64)
    num = np.einsum("bi,ij,bj->b", C, V, C)
    den = np.einsum("bi,ij,bj->b", C, M, C)
    boot = num[den > 0] / den[den > 0]
    if boot.size < 0.5 * n_boot:
        raise ValueError("too few bootstrap draws kept any pair; add units.")
    se = float(boot.std(ddof=1))
    dof = m - 1
    if se == 0:
        raise ValueError("every pair has the same value; the interval is undefined.")
    lo, hi = _t_interval(est, se, dof, confidence)
    eq_lo, eq_hi = _t_interval(est, se, dof, 1 - 2 * (1 - confidence))
    return StatResult(
        est,
        lo,
        hi,
        float(2 * sps.t.sf(abs(est / se), dof)),
        int(m),
        "mean over pairs, unit-level cluster bootstrap se, t CI and p on units - 1 df",
        {
            "n_pairs": int(v.size),
            "se": se,
            "df": int(dof),
            "n_boot": n_boot,
            "eq_low": eq_lo,
            "eq_high": eq_hi,
            "mde": mde_t(se, dof, 1 - confidence),
        },
    )


def unit_slopes(y, x, units) -> pd.Series:
    """OLS slope of y on x within each unit (e.g. convexity on depth per model).

    The summary-statistics route to a random-slope model: each unit contributes one slope, and
    the slopes are then tested across units. Units with fewer than 2 distinct x are dropped.
    """
    frame = pd.DataFrame({"y": _vector(y, "y"), "x": _vector(x, "x"), "u": np.asarray(units)})
    out = {}
    for u, sub in frame.groupby("u", sort=True):
        xc = sub["x"] - sub["x"].mean()
        ss = float(xc @ xc)
        if sub["x"].nunique() >= 2 and ss > 0:
            out[u] = float(xc @ (sub["y"] - sub["y"].mean()) / ss)
    return pd.Series(out, dtype=np.float64)


# ----------------------------------------------------------------------------- replication
# Is a reproduction's estimate consistent with the original's? Two complementary checks:
# the prediction interval for a replication at the new n (Patil, Peng & Leek 2016, Perspect.
# Psychol. Sci. 11:539), and Simonsohn's (2015, Psychol. Sci. 26:559) small-telescopes test,
# whether the new data reject d33, the effect the original study had 33 % power to detect.

_CORRELATIONS = ("pearson_r", "spearman_rho", "r2")


def _z_of(value: float, statistic: str) -> float:
    r = np.sqrt(max(value, 0.0)) if statistic == "r2" else value
    return float(np.arctanh(np.clip(r, -1 + 1e-12, 1 - 1e-12)))


def _from_z(z: float, statistic: str) -> float:
    r = float(np.tanh(z))
    return r * r * np.sign(r) if statistic == "r2" else r


def _can_compare(statistic, n_original, n_ours, se_original, se_ours) -> bool:
    """Correlations need both n (> 3); other statistics both standard errors."""
    if statistic in _CORRELATIONS:
        return bool(n_original and n_ours and n_original > 3 and n_ours > 3)
    return (
        se_original is not None
        and se_ours is not None
        and np.isfinite([se_original, se_ours]).all()
    )


def replication_interval(
    original: float,
    ours: float,
    *,
    statistic: str,
    n_original: int | None = None,
    n_ours: int | None = None,
    se_original: float | None = None,
    se_ours: float | None = None,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Prediction interval for a replication's estimate, given the original (Patil et al. 2016).

    Correlations (and R², through R = √R²) on the Fisher-z scale:
    z_orig ± z_{1−α/2} √(1/(n_orig − 3) + 1/(n_ours − 3)); other statistics on their own scale:
    orig ± z_{1−α/2} √(se_orig² + se_ours²). Both sampling errors count: the original was also
    a draw. Returns (low, high); NaN where the inputs needed are missing.
    """
    q = sps.norm.ppf(0.5 + _check_confidence(confidence) / 2)
    if not _can_compare(statistic, n_original, n_ours, se_original, se_ours):
        return float("nan"), float("nan")
    if statistic in _CORRELATIONS:
        half = q * np.sqrt(1 / (n_original - 3) + 1 / (n_ours - 3))
        z = _z_of(original, statistic)
        return _from_z(z - half, statistic), _from_z(z + half, statistic)
    half = q * np.sqrt(se_original**2 + se_ours**2)
    return float(original - half), float(original + half)


def small_telescopes(
    original: float,
    ours: float,
    *,
    statistic: str,
    n_original: int | None = None,
    n_ours: int | None = None,
    se_original: float | None = None,
    se_ours: float | None = None,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Simonsohn's d33 and the one-sided p that our effect is smaller than it.

    d33 is the effect a two-sided α test of the original design detects with power 1/3: for a
    correlation r33 = tanh((z_{1−α/2} + z_{1/3}) / √(n_orig − 3)), otherwise
    (z_{1−α/2} + z_{1/3}) · se_orig, in the original effect's direction. The test is
    one-sided, H0: effect = d33 against effect < d33, with our estimate's standard error
    (Fisher z for correlations). Returns (d33, p); NaN where inputs are missing.
    """
    k = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(1 / 3)  # 1.96 − 0.43 = 1.53
    sign = 1.0 if original >= 0 else -1.0
    if not _can_compare(statistic, n_original, n_ours, se_original, se_ours):
        return float("nan"), float("nan")
    if statistic in _CORRELATIONS:
        z33 = k / np.sqrt(n_original - 3)
        d33 = _from_z(sign * z33, statistic)
        stat = (sign * _z_of(ours, statistic) - z33) * np.sqrt(n_ours - 3)
        return float(d33), float(sps.norm.cdf(stat))
    d33 = sign * k * se_original
    return float(d33), float(sps.norm.cdf((sign * ours - abs(d33)) / se_ours))


def _nested_frame(y: np.ndarray, cells, strata, **columns) -> pd.DataFrame:
    """One row per replicate (y, cell, stratum and ``columns``); cells must nest in strata."""
    cells = np.asarray(cells)
    if len(cells) != len(y):
        raise ValueError(f"cells has {len(cells)} entries for {len(y)} values")
    df = pd.DataFrame({"y": y, "cell": cells, **{k: np.asarray(v) for k, v in columns.items()}})
    df["stratum"] = 0 if strata is None else np.asarray(strata)
    if df.groupby("cell")["stratum"].nunique().max() > 1:
        raise ValueError("strata must be constant within each cell (cells nested in strata)")
    return df


def icc_oneway(values, cells, strata=None) -> dict[str, float]:
    """ICC(1) of replicates within cells from a one-way ANOVA (Shrout & Fleiss 1979, ICC(1,1)).

    ``values``: one measurement per replicate (e.g. a metric per training seed); ``cells``:
    the design cell of each (e.g. architecture × objective). With ``strata`` (a factor
    constant within cells, e.g. architecture) cell means are compared with their stratum's
    mean instead of the grand mean: cells nested in strata, the between-cell variance is that
    *within* strata, the quantity a test controlling the strata can use.

    Returns ``icc`` = (MSB − MSW) / (MSB + (n0 − 1) MSW) (may be negative: cells differ less
    than replicates), ``between_sd`` = sqrt(max(0, (MSB − MSW) / n0)) (the SD of true cell
    means), ``within_sd`` = sqrt(MSW) (the replicate SD), ``n_cells`` and ``n_replicates``;
    ``n0`` is the ANOVA's effective replicates per cell (Snedecor & Cochran, unbalanced).
    NaN where fewer than two replicated cells (or strata with two cells) exist.
    """
    df = _nested_frame(_vector(values, "values"), cells, strata)
    n = df.groupby("cell")["y"].size()
    mean = df.groupby("cell")["y"].mean()
    stratum = df.groupby("cell")["stratum"].first()
    n_total, n_cells, n_strata = len(df), len(n), stratum.nunique()
    out = {"n_cells": float(n_cells), "n_replicates": float(n_total)}
    df_between, df_within = n_cells - n_strata, n_total - n_cells
    if df_between < 1 or df_within < 1:
        return {**out, "icc": np.nan, "between_sd": np.nan, "within_sd": np.nan}
    ss_within = float(((df["y"] - df["cell"].map(mean)) ** 2).sum())
    weighted = (mean * n).groupby(stratum).sum() / n.groupby(stratum).sum()
    ss_between = float((n * (mean - stratum.map(weighted)) ** 2).sum())
    msw, msb = ss_within / df_within, ss_between / df_between
    # effective replicates per cell: sum over strata of (N_s - sum n_c^2 / N_s), per df
    n_stratum = n.groupby(stratum).sum()
    n0 = float((n_stratum - (n**2).groupby(stratum).sum() / n_stratum).sum() / df_between)
    denominator = msb + (n0 - 1) * msw
    icc = (msb - msw) / denominator if denominator > 0 else np.nan
    return {
        **out,
        "icc": float(icc),
        "between_sd": float(np.sqrt(max(0.0, (msb - msw) / n0))),
        "within_sd": float(np.sqrt(msw)),
    }


def icc_seed_blocked(values, cells, seeds, strata) -> dict[str, float]:
    """ICC of cells within strata when replicates are paired by seed (randomised blocks).

    The zoo starts every objective of an architecture from the same seeded initialisation, so
    seed *s* is a block shared by all cells of a stratum (architecture): its effect shifts every
    objective's replicate alike and cancels from any comparison of the stratum's cell means over
    the same seeds, which is what a claim controlling architecture makes. A one-way ANOVA
    (:func:`icc_oneway`) counts that shared shift as noise; here a two-way ANOVA per stratum
    (cells × seeds, one value each, on the seeds every cell of the stratum has) separates it,
    and the noise is the cell × seed interaction. Sums of squares are pooled over strata.

    Returns ``icc`` = (MSC − MSE) / (MSC + (b0 − 1) MSE), the consistency ICC(C,1) of McGraw &
    Wong (1996) with seeds as the raters; ``between_sd`` = sqrt(max(0, (MSC − MSE) / b0)) (SD of
    true cell effects within strata); ``within_sd`` = sqrt(MSE) (seed noise of a cell relative
    to its stratum's seed block); ``block_sd`` = sqrt(max(0, (MSB − MSE) / c0)) (SD of the seed
    effect the cells of a stratum share); ``n_cells`` and ``n_replicates`` used. ``b0``/``c0``:
    seeds/cells per stratum, averaged with the degrees-of-freedom weights. NaN where no stratum
    has two cells sharing two seeds.
    """
    df = _nested_frame(_vector(values, "values"), cells, strata, seed=seeds)
    if df.duplicated(["cell", "seed"]).any():
        raise ValueError("one value per (cell, seed) expected")
    ss = dict.fromkeys(["cell", "seed", "error", "df_cell", "df_seed", "df_error"], 0.0)
    b_weighted = c_weighted = 0.0
    n_cells = n_replicates = 0
    for _, part in df.groupby("stratum"):
        table = part.pivot(index="cell", columns="seed", values="y").dropna(axis=1)
        c, b = table.shape
        if c < 2 or b < 2:
            continue
        Y = table.to_numpy(dtype=float)
        grand, rows, cols = Y.mean(), Y.mean(axis=1), Y.mean(axis=0)
        ss["cell"] += b * float(((rows - grand) ** 2).sum())
        ss["seed"] += c * float(((cols - grand) ** 2).sum())
        ss["error"] += float(((Y - rows[:, None] - cols[None, :] + grand) ** 2).sum())
        ss["df_cell"], ss["df_seed"] = ss["df_cell"] + c - 1, ss["df_seed"] + b - 1
        ss["df_error"] += (c - 1) * (b - 1)
        b_weighted, c_weighted = b_weighted + b * (c - 1), c_weighted + c * (b - 1)
        n_cells, n_replicates = n_cells + c, n_replicates + c * b
    out = {"n_cells": float(n_cells), "n_replicates": float(n_replicates)}
    if ss["df_error"] < 1:
        nan = {"icc": np.nan, "between_sd": np.nan, "within_sd": np.nan, "block_sd": np.nan}
        return {**out, **nan}
    msc, msb = ss["cell"] / ss["df_cell"], ss["seed"] / ss["df_seed"]
    mse = ss["error"] / ss["df_error"]
    b0, c0 = b_weighted / ss["df_cell"], c_weighted / ss["df_seed"]
    denominator = msc + (b0 - 1) * mse
    return {
        **out,
        "icc": float((msc - mse) / denominator) if denominator > 0 else np.nan,
        "between_sd": float(np.sqrt(max(0.0, (msc - mse) / b0))),
        "within_sd": float(np.sqrt(mse)),
        "block_sd": float(np.sqrt(max(0.0, (msb - mse) / c0))),
    }
