"""The generic tests a claim can name; each respects its claim's independent unit.

Every test aggregates the metrics table to one value per unit (an encoder, a pair of
encoders, an architecture or a simulation replicate) before any inference: layers, classes and
pairs are never treated as independent rows. Cross-model tests control the zoo's design
factors (``control_for``, default architecture and input size): the verdict comes from the
association *within* those factors, and the raw cross-model figure stays in the details.

``correlation``         x vs y across units: partial r within design strata, stratified
                        permutation p (a family of x metrics is Holm-corrected).
``paired_difference``   a − b on the same units: design-balanced mean (t), or for pairs of
                        encoders a unit-level cluster bootstrap.
``threshold``           value − reference (e.g. chance), same inference as paired_difference.
``trend``               value vs depth: one OLS slope per unit, slopes tested across units.
``nested_slope``        y on x for observations nested in units (classes in models), centred on
                        the ``crossed`` items (classes shared by every model): one slope per
                        unit, tested across units.
``ordinal_association`` Spearman of an ordered level (e.g. supervision) with a value, within
                        design strata.
``group_difference``    group a − group b within design strata, stratified permutation p.
``nested_regression``   partial R² of a predictor block beyond base + design factors, nested
                        F-test, unit-level bootstrap interval.
``spread_contrast``     normalised spread of two metrics over a factor (synthetic studies).
``property_change``     normalised change of a metric over a factor (synthetic studies).

Each returns an :class:`Outcome`: one row per family member with ``estimate``, ``ci_low``,
``ci_high`` (1 − α), ``eq_low``, ``eq_high`` (1 − 2α, for equivalence tests), ``p``, ``n``
(independent units), ``n_obs`` (table rows), ``mde`` and test-specific extras.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from repaudit import stats
from repaudit.claims.selectors import NoData, Table, canon, member_label, merged, select


@dataclass
class Outcome:
    """Rows of a test (one per family member), a note, and the unit ids that entered it."""

    members: list[dict] = field(default_factory=list)
    note: str = ""
    units: set[str] = field(default_factory=set)


# Extras that hold a test's uncontrolled cross-model figure (the papers' statistic).
RAW_COLUMNS = ("raw_r", "raw_mean", "raw_difference", "raw_r2")


def raw_estimate(row: Mapping) -> float:
    """The uncontrolled figure of a member row (NaN if its test has none)."""
    return next((float(row[c]) for c in RAW_COLUMNS if c in row), np.nan)


def _failed(member: str, n: int, n_obs: int, err: Exception | str) -> dict:
    nan = np.nan
    return {
        "member": member,
        "estimate": nan,
        "ci_low": nan,
        "ci_high": nan,
        "p": nan,
        "n": int(n),
        "n_obs": int(n_obs),
        "eq_low": nan,
        "eq_high": nan,
        "mde": nan,
        "note": f"not testable: {err}",
    }


def _row(member: str, res: stats.StatResult, n_obs: int, note: str = "") -> dict:
    extras = dict(res.extras)
    return {
        "member": member,
        "estimate": res.estimate,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "p": res.p,
        "n": res.n,
        "n_obs": int(n_obs),
        "eq_low": extras.pop("eq_low", np.nan),
        "eq_high": extras.pop("eq_high", np.nan),
        "mde": extras.pop("mde", np.nan),
        "note": note,
        "method": res.method,
        **extras,
    }


def _families(df: pd.DataFrame, family_by: Sequence[str]):
    if not family_by:
        yield "all", df
        return
    for vals, sub in df.groupby(list(family_by), sort=True):
        vals = vals if isinstance(vals, tuple) else (vals,)
        yield member_label(dict(zip(family_by, vals, strict=True)), family_by), sub


def _per_member(data, family_by, n_obs, test, extras=None) -> list[dict]:
    """One row per family member: ``test(sub)`` -> StatResult (plus ``extras(sub)`` columns),
    or the reason it could not run."""
    rows = []
    for member, sub in _families(data, family_by):
        try:
            res = test(sub)
        except ValueError as err:
            rows.append(_failed(member, _count_units(sub), n_obs(sub), err))
            continue
        rows.append({**_row(member, res, n_obs(sub)), **(extras(sub) if extras else {})})
    return rows


def _count_units(sub: pd.DataFrame) -> int:
    if "model_b" in sub.columns:
        return len(set(sub["model"]) | set(sub["model_b"]))
    return len(sub)


def _unit_ids(df: pd.DataFrame) -> set[str]:
    ids: set[str] = set()
    for col in ("model", "model_b", "architecture"):
        if col in df.columns:
            ids |= {str(v) for v in df[col].dropna().unique()}
    return ids


def _factors(df: pd.DataFrame, control: Sequence[str]) -> pd.DataFrame | None:
    """Design factors present with more than one level (missing values are one level)."""
    cols = [c for c in control if c in df.columns and df[c].astype(str).nunique() > 1]
    return df[cols].astype(str).reset_index(drop=True) if cols else None


def _carry(table: Table, control: Sequence[str]) -> list[str]:
    return [c for c in control if table.has(c)]


def _rows_1(sub: pd.DataFrame) -> int:
    return int(sub["n_rows"].sum())


def _rows_xy(sub: pd.DataFrame) -> int:
    return int(sub["n_rows_x"].sum() + sub["n_rows_y"].sum())


def _is_dyadic(units: Sequence[str]) -> bool:
    return "model_b" in units


# ----------------------------------------------------------------------------- tests


def correlation(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Correlation of x (a family of metrics) with y across units, within design strata."""
    on, family_by = p["units"], p.get("family_by", ["metric", "variant"])
    control = _carry(table, p.get("control_for", []))
    x = select(
        table, merged(p.get("common"), p["x"]), on, family_by=family_by, carry=control, what="x"
    )
    y = select(table, merged(p.get("common"), p["y"]), on, what="y")
    data = x.merge(y[[*on, "value", "n_rows"]], on=on, suffixes=("_x", "_y"))
    if data.empty:
        raise NoData(f"x and y share no units on {on}")

    def test(sub):
        return stats.stratified_correlation(
            sub["value_x"].to_numpy(),
            sub["value_y"].to_numpy(),
            _factors(sub, control),
            method=p.get("method", "pearson"),
            n_perm=int(p.get("n_perm", 10_000)),
            confidence=1 - alpha,
            seed=seed,
        )

    rows = _per_member(data, family_by, _rows_xy, test)
    return Outcome(rows, units=_unit_ids(data))


def _difference(sub: pd.DataFrame, diff: np.ndarray, on, control, p, alpha, seed):
    if _is_dyadic(on):
        return stats.dyadic_mean(
            diff,
            sub["model"].to_numpy(),
            sub["model_b"].to_numpy(),
            n_boot=int(p.get("n_boot", 2_000)),
            confidence=1 - alpha,
            seed=seed,
        )
    return stats.adjusted_mean(diff, _factors(sub, control), confidence=1 - alpha)


def paired_difference(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Mean of a − b over units (design-balanced), or over encoder pairs (cluster bootstrap)."""
    on, family_by = p["units"], p.get("family_by", [])
    control = _carry(table, p.get("control_for", []))
    a = select(
        table, merged(p.get("common"), p["a"]), on, family_by=family_by, carry=control, what="a"
    )
    b = select(table, merged(p.get("common"), p["b"]), on, family_by=family_by, what="b")
    data = a.merge(b[[*on, *family_by, "value", "n_rows"]], on=[*on, *family_by])
    data = data.rename(columns={"value_x": "value_a", "value_y": "value_b"})
    if data.empty:
        raise NoData(f"a and b share no units on {[*on, *family_by]}")

    def test(sub):
        diff = sub["value_a"].to_numpy() - sub["value_b"].to_numpy()
        return _difference(sub, diff, on, control, p, alpha, seed)

    def means(sub):
        return {"mean_a": float(sub["value_a"].mean()), "mean_b": float(sub["value_b"].mean())}

    rows = _per_member(data, family_by, _rows_xy, test, means)
    return Outcome(rows, units=_unit_ids(data))


def _chance_levels(table: Table, ref: Mapping) -> pd.Series:
    """Per dataset: scale / (number of distinct class labels other than "all")."""
    sel = ref["chance_from_classes"]
    rows = select(table, sel, ["dataset", "class"], what="reference.chance_from_classes")
    rows = rows[rows["class"] != "all"]
    counts = rows.groupby("dataset")["class"].nunique()
    if counts.empty:
        raise NoData("reference: no per-class rows to count classes for the chance level")
    return float(ref.get("scale", 1.0)) / counts


def threshold(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Mean of value − reference over units (e.g. stitching F1 above chance)."""
    on, family_by = p["units"], p.get("family_by", [])
    control = _carry(table, p.get("control_for", []))
    data = select(
        table,
        merged(p.get("common"), p["value"]),
        on,
        family_by=family_by,
        carry=control,
        what="value",
    )
    ref = p["reference"]
    if isinstance(ref, Mapping):
        data["reference"] = data["dataset"].map(_chance_levels(table, ref))
        data = data.dropna(subset=["reference"])
        if data.empty:
            raise NoData("reference: no chance level for the selected datasets")
    else:
        data["reference"] = float(ref)

    def test(sub):
        diff = sub["value"].to_numpy() - sub["reference"].to_numpy()
        return _difference(sub, diff, on, control, p, alpha, seed)

    def means(sub):
        return {
            "mean_value": float(sub["value"].mean()),
            "mean_reference": float(sub["reference"].mean()),
        }

    rows = _per_member(data, family_by, _rows_1, test, means)
    return Outcome(rows, units=_unit_ids(data))


def _slopes_test(per_unit: pd.DataFrame, control, alpha, n_obs, member, note=""):
    """One slope per unit (column ``slope``), tested across units with design balance."""
    try:
        res = stats.adjusted_mean(
            per_unit["slope"].to_numpy(), _factors(per_unit, control), confidence=1 - alpha
        )
    except ValueError as err:
        return _failed(member, len(per_unit), n_obs, err)
    row = _row(member, res, n_obs, note)
    row["n_units_positive"] = int((per_unit["slope"] > 0).sum())
    return row


def trend(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Value vs depth: one OLS slope per unit (a random-slope summary), tested across units."""
    on, family_by = p["units"], p.get("family_by", [])
    xcol = p.get("x", "depth")
    control = _carry(table, p.get("control_for", []))
    data = select(
        table,
        merged(p.get("common"), p["value"]),
        [*on, "layer"],
        family_by=family_by,
        carry=[xcol, *control],
        what="value",
    )
    data[xcol] = pd.to_numeric(data[xcol], errors="coerce")
    data = data.dropna(subset=[xcol])
    if data.empty:
        raise NoData(f"value: column {xcol!r} is missing for every selected row")
    data["_unit"] = data[on].astype(str).agg("|".join, axis=1)
    out = Outcome(units=_unit_ids(data))
    for member, sub in _families(data, family_by):
        slopes = stats.unit_slopes(sub["value"], sub[xcol], sub["_unit"])
        per_unit = sub.groupby("_unit")[control].first().loc[slopes.index]
        per_unit["slope"] = slopes.to_numpy()
        out.members.append(_slopes_test(per_unit, control, alpha, int(sub["n_rows"].sum()), member))
    return out


def nested_slope(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Slope of y on x for observations nested ``within`` units, centred on ``crossed`` items.

    Classes are shared by every model (crossed random effects, Baayen et al. 2008): x and y are
    centred on each item's mean over units first, so an item that is easy for every model does
    not make a slope. Each unit then gives one OLS slope; the slopes are tested across units.
    """
    on, within, crossed = p["units"], p["within"], p.get("crossed", [])
    control = _carry(table, p.get("control_for", []))
    x = select(table, merged(p.get("common"), p["x"]), on, carry=control, what="x")
    y = select(table, merged(p.get("common"), p["y"]), on, what="y")
    data = x.merge(y[[*on, "value", "n_rows"]], on=on, suffixes=("_x", "_y"))
    if data.empty:
        raise NoData(f"x and y share no units on {on}")
    for col in ("value_x", "value_y"):
        if crossed:
            data[col] = data[col] - data.groupby(crossed)[col].transform("mean")
    data["_unit"] = data[within].astype(str).agg("|".join, axis=1)
    slopes = stats.unit_slopes(data["value_y"], data["value_x"], data["_unit"])
    per_unit = data.groupby("_unit")[control].first().loc[slopes.index]
    per_unit["slope"] = slopes.to_numpy()
    n_obs = int(data["n_rows_x"].sum() + data["n_rows_y"].sum())
    note = f"{len(data)} observations in {data['_unit'].nunique()} units"
    if crossed:
        note += f", centred on {'/'.join(crossed)}"
    row = _slopes_test(per_unit, control, alpha, n_obs, "all", note)
    return Outcome([row], units=_unit_ids(data))


def _levels(data: pd.DataFrame, levels: Mapping) -> pd.Series:
    mapping = {canon(k): float(v) for k, v in levels["map"].items()}
    level = pd.Series(np.nan, index=data.index)
    for col in levels["columns"]:
        level = level.fillna(data[col].map(lambda v: mapping.get(canon(v), np.nan)))
    return level


def ordinal_association(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Spearman association of an ordered level (e.g. supervision) with a value, within strata."""
    on, family_by = p["units"], p.get("family_by", [])
    cols = p["levels"]["columns"]
    control = _carry(table, p.get("control_for", []))
    data = select(
        table,
        merged(p.get("common"), p["value"]),
        on,
        family_by=family_by,
        carry=[*cols, *control],
        what="value",
    )
    data["level"] = _levels(data, p["levels"])
    unmapped = int(data["level"].isna().sum())
    data = data.dropna(subset=["level"])
    if data.empty:
        raise NoData(f"no selected unit has a level in {cols} listed in levels.map")
    note = f"{unmapped} unit(s) without a level were dropped" if unmapped else ""

    def test(sub):
        return stats.stratified_correlation(
            sub["level"].to_numpy(),
            sub["value"].to_numpy(),
            _factors(sub, control),
            method="spearman",
            n_perm=int(p.get("n_perm", 10_000)),
            confidence=1 - alpha,
            seed=seed,
        )

    def level_means(sub):
        out = {}
        for lvl, grp in sub.groupby("level"):
            out[f"mean_at_level_{lvl:g}"] = float(grp["value"].mean())
            out[f"n_at_level_{lvl:g}"] = len(grp)
        return out

    rows = _per_member(data, family_by, _rows_1, test, level_means)
    return Outcome(rows, note=note, units=_unit_ids(data))


def group_difference(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Group a − group b of units within design strata (stratified permutation p)."""
    on, family_by, gr = p["units"], p.get("family_by", []), p["groups"]
    control = _carry(table, p.get("control_for", []))
    data = select(
        table,
        merged(p.get("common"), p["value"]),
        on,
        family_by=family_by,
        carry=[*gr["columns"], *control],
        what="value",
    )
    label = pd.Series(np.nan, index=data.index)
    for col in gr["columns"]:
        values = data[col].map(canon)
        for side, code in (("a", 1.0), ("b", 0.0)):
            wanted = gr[side] if isinstance(gr[side], list) else [gr[side]]
            label[label.isna() & values.isin([canon(v) for v in wanted])] = code
    data["group"] = label
    data = data.dropna(subset=["group"])
    if data.empty:
        raise NoData(f"no selected unit falls in group a or b by {gr['columns']}")

    def test(sub):
        return stats.adjusted_difference(
            sub["value"].to_numpy(),
            sub["group"].to_numpy(),
            _factors(sub, control),
            n_perm=int(p.get("n_perm", 10_000)),
            confidence=1 - alpha,
            seed=seed,
        )

    return Outcome(_per_member(data, family_by, _rows_1, test), units=_unit_ids(data))


def _wide(table: Table, sel: Mapping, on: Sequence[str], what: str) -> pd.DataFrame:
    long = select(table, sel, on, family_by=["metric", "variant"], what=what)
    long["term"] = long["metric"] + np.where(long["variant"] != "", "[" + long["variant"] + "]", "")
    wide = long.pivot_table(index=list(on), columns="term", values="value").reset_index()
    n_rows = long.groupby(list(on))["n_rows"].sum().rename("n_rows").reset_index()
    return wide.merge(n_rows, on=list(on))


def _partial_r2(y: np.ndarray, base: np.ndarray, block: np.ndarray) -> float:
    """Share of the variance [1, base] leaves that the block explains: 1 − RSS_full / RSS_base.

    On the scale of the F-test and of its minimum detectable effect; unlike a gain in total
    R², it is not made small by design factors that already explain most of y.
    """
    n = y.size

    def rss(X: np.ndarray) -> float:
        Xi = np.column_stack([np.ones(n), X])
        coef, *_ = np.linalg.lstsq(Xi, y, rcond=None)
        return float(np.sum((y - Xi @ coef) ** 2))

    base_rss = rss(base)
    return 1.0 - rss(np.column_stack([base, block])) / base_rss if base_rss > 0 else np.nan


def _mde_partial_r2(q: int, dof: int, alpha: float, power: float = 0.8) -> float:
    """Smallest partial R² of a q-column block that an F-test on (q, dof) df detects."""
    if dof < 1:
        return np.nan
    crit = sps.f.ppf(1 - alpha, q, dof)
    lo, hi = 0.0, 1e4
    for _ in range(200):  # bisection on Cohen's f², noncentrality λ = f²·(q + dof + 1)
        mid = (lo + hi) / 2
        if sps.ncf.sf(crit, q, dof, mid * (q + dof + 1)) < power:
            lo = mid
        else:
            hi = mid
    return float(hi / (1 + hi))


def nested_regression(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Partial R² of a predictor block beyond base predictors and design factors.

    The estimate is the share of the variance left by [1, base, design] that the block
    explains; the nested F-test gives p; a unit-level bootstrap gives the (1 − α) and (1 − 2α)
    percentile intervals; ``mde`` is the smallest partial R² the F-test detects with 80 %
    power at this n. With few residual df the partial R² is biased upward (conservative for a
    "negligible" claim; a "direction" claim also needs the F-test's p). ``raw_r2`` is the R² of
    base + block alone, the figure the papers report.
    """
    on, common = p["units"], p.get("common")
    control = _carry(table, p.get("control_for", []))
    y = select(table, merged(common, p["y"]), on, carry=control, what="y")
    y = y[[*on, "value", "n_rows", *control]].rename(columns={"n_rows": "n_rows_y"})
    block = _wide(table, merged(common, p["block"]), on, "block")
    block_terms = [c for c in block.columns if c not in [*on, "n_rows"]]
    data = y.merge(block.rename(columns={"n_rows": "n_rows_block"}), on=on)
    base_terms: list[str] = []
    if p.get("base") is not None:
        base = _wide(table, merged(common, p["base"]), on, "base")
        base_terms = [c for c in base.columns if c not in [*on, "n_rows"]]
        data = data.merge(base.rename(columns={"n_rows": "n_rows_base"}), on=on)
    n_all = len(data)
    data = data.dropna(subset=["value", *block_terms, *base_terms]).reset_index(drop=True)
    if data.empty:
        raise NoData("no unit has y and every predictor")
    note = (
        f"{n_all - len(data)} unit(s) with a missing predictor dropped" if n_all > len(data) else ""
    )
    n_obs = int(data.filter(like="n_rows").sum().sum())
    design = stats.design_dummies(_factors(data, control), len(data))
    X_base = np.column_stack([data[base_terms].to_numpy(), design]) if base_terms else design
    X_block = data[block_terms].to_numpy()
    out = Outcome(note=note, units=_unit_ids(data))
    yv = data["value"].to_numpy()
    try:
        res = stats.nested_f_test(yv, X_base if X_base.shape[1] else None, X_block)
    except ValueError as err:
        out.members.append(_failed("all", len(data), n_obs, err))
        return out
    est = _partial_r2(yv, X_base, X_block)
    # The papers report the R² of their predictors alone (no design factors): the raw figure.
    raw_X = np.column_stack([data[base_terms].to_numpy(), X_block]) if base_terms else X_block
    try:
        raw_r2 = stats.ols_hc3(yv, raw_X).r2
    except ValueError:  # too few units or a collinear block: no raw figure
        raw_r2 = np.nan
    rng = np.random.default_rng(seed)
    n = yv.size
    boots = []
    for _ in range(int(p.get("n_boot", 2_000))):
        idx = rng.integers(0, n, n)
        if np.ptp(yv[idx]) > 0:
            boots.append(_partial_r2(yv[idx], X_base[idx], X_block[idx]))
    q, dof = X_block.shape[1], int(res.extras["df_den"])
    row = {
        "member": "all",
        "estimate": est,
        "ci_low": float(np.quantile(boots, alpha / 2)),
        "ci_high": float(np.quantile(boots, 1 - alpha / 2)),
        "p": res.p,
        "n": res.n,
        "n_obs": n_obs,
        "eq_low": float(np.quantile(boots, alpha)),
        "eq_high": float(np.quantile(boots, 1 - alpha)),
        "mde": _mde_partial_r2(q, dof, alpha),
        "note": note,
        "method": "partial R2 of the block, nested F-test p, unit bootstrap CI",
        "delta_r2": res.estimate,
        "raw_r2": raw_r2,
        "r2_full": res.extras["r2_full"],
        "adj_r2_full": res.extras["adj_r2_full"],
        "df_den": dof,
        "base_terms": ",".join(base_terms),
        "design_columns": design.shape[1],
        "block_terms": ",".join(block_terms),
    }
    out.members.append(row)
    return out


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def spread_contrast(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Normalised spread of metric a over a factor minus that of metric b (e.g. W2 vs −L_U).

    spread = max − min over the levels of ``over`` of the per-level mean (over replicates),
    divided by the metric's ``scale``; at the largest ``at_max`` if given. The unit is the
    simulation replicate (``replicate`` column): with ≥ 2 per level the CI resamples them
    within each level; with one, the statistic is exact for that simulation (CI NaN).
    """
    over, at_max, rep = p["over"], p.get("at_max"), p.get("replicate")
    if rep is not None and not table.has(rep):
        rep = None
    names = {side: _as_list(p[side]["metric"]) for side in ("a", "b")}
    keys = [over, *([at_max] if at_max else [])]
    data = select(
        table,
        {**p["select"], "metric": names["a"] + names["b"]},
        keys,
        family_by=["metric"],
        optional_keys=[rep] if rep else [],
        what="select",
    )
    chosen = {}
    for side in ("a", "b"):  # the first listed name that is present (e.g. L_U or -L_U)
        present = [m for m in names[side] if m in set(data["metric"])]
        if not present:
            raise NoData(f"select: metric {' / '.join(names[side])} absent from the selection")
        chosen[side] = present[0]
    metric_a, metric_b = chosen["a"], chosen["b"]
    data = data[data["metric"].isin([metric_a, metric_b])]
    if at_max:
        dims = pd.to_numeric(data[at_max], errors="coerce")
        common_max = min(dims[data["metric"] == m].max() for m in (metric_a, metric_b))
        data = data[dims == common_max]
    if rep is None:
        rep = "_replicate"
        data = data.assign(**{rep: "0"})
    wide = data.pivot_table(index=[over, rep], columns="metric", values="value").dropna()
    wide = wide.reset_index()
    wide[over] = pd.to_numeric(wide[over], errors="coerce")
    levels = np.sort(wide[over].dropna().unique())
    n_reps = int(wide[rep].nunique())
    if levels.size < 2:
        return Outcome([_failed("all", n_reps, len(data), f"'{over}' has fewer than 2 levels")])
    scale_a, scale_b = float(p["a"]["scale"]), float(p["b"]["scale"])
    cells = [wide[wide[over] == lvl] for lvl in levels]

    def contrast(means_a: np.ndarray, means_b: np.ndarray):
        spread_a = (means_a.max(axis=-1) - means_a.min(axis=-1)) / scale_a
        spread_b = (means_b.max(axis=-1) - means_b.min(axis=-1)) / scale_b
        return spread_a - spread_b, spread_a, spread_b

    est, sa, sb = contrast(
        np.array([c[metric_a].mean() for c in cells]), np.array([c[metric_b].mean() for c in cells])
    )
    ci = eq = (np.nan, np.nan)
    mde = np.nan
    note = "one simulation replicate: the contrast is exact for it (no sampling interval)"
    if min(len(c) for c in cells) >= 2:
        rng = np.random.default_rng(seed)
        n_boot = int(p.get("n_boot", 2_000))
        boot_a = np.empty((n_boot, levels.size))
        boot_b = np.empty((n_boot, levels.size))
        for j, c in enumerate(cells):
            idx = rng.integers(0, len(c), size=(n_boot, len(c)))
            boot_a[:, j] = c[metric_a].to_numpy()[idx].mean(axis=1)
            boot_b[:, j] = c[metric_b].to_numpy()[idx].mean(axis=1)
        boot = contrast(boot_a, boot_b)[0]
        ci = tuple(np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
        eq = tuple(np.quantile(boot, [alpha, 1 - alpha]))
        mde = stats.mde_t(float(boot.std(ddof=1)), n_reps - 1, alpha)
        note = ""
    row = {
        "member": "all",
        "estimate": float(est),
        "ci_low": float(ci[0]),
        "ci_high": float(ci[1]),
        "p": np.nan,
        "n": n_reps,
        "n_obs": len(data),
        "eq_low": float(eq[0]),
        "eq_high": float(eq[1]),
        "mde": mde,
        "note": note,
        "spread_a": float(sa),
        "spread_b": float(sb),
        "n_levels": int(levels.size),
        "at_max_value": float(pd.to_numeric(data[at_max]).iloc[0]) if at_max else np.nan,
        "metric_a": metric_a,
        "metric_b": metric_b,
    }
    return Outcome([row])


def property_change(table: Table, p: Mapping, *, alpha: float, seed: int) -> Outcome:
    """Change of a metric from the lowest to the highest level of ``over``, over ``scale``.

    For Fang et al.'s properties of a uniformity metric (arXiv:2403.00642, §3): instance
    cloning, feature cloning and feature baby (zero padding) change the data by a known
    transformation of n copies; the estimate is (value at the largest n − value at n = 1) /
    scale, averaged over the other levels (e.g. collapse degrees). One deterministic simulation:
    no sampling interval.
    """
    over, family_by = p["over"], p.get("family_by", [])
    data = select(table, p["select"], [over], family_by=family_by, what="select")
    data[over] = pd.to_numeric(data[over], errors="coerce")
    out = Outcome()
    for member, sub in _families(data, family_by):
        lo, hi = sub[over].min(), sub[over].max()
        if lo == hi:
            out.members.append(_failed(member, 1, len(sub), f"'{over}' has one level"))
            continue
        change = sub.loc[sub[over] == hi, "value"].mean() - sub.loc[sub[over] == lo, "value"].mean()
        out.members.append(
            {
                "member": member,
                "estimate": float(change / float(p["scale"])),
                "ci_low": np.nan,
                "ci_high": np.nan,
                "p": np.nan,
                "n": 1,
                "n_obs": int(sub["n_rows"].sum()),
                "eq_low": np.nan,
                "eq_high": np.nan,
                "mde": np.nan,
                "note": "one deterministic simulation: exact for it (no sampling interval)",
                f"value_at_{over}_{lo:g}": float(sub.loc[sub[over] == lo, "value"].mean()),
                f"value_at_{over}_{hi:g}": float(sub.loc[sub[over] == hi, "value"].mean()),
            }
        )
    return out


TESTS: dict[str, Callable[..., Outcome]] = {
    "correlation": correlation,
    "paired_difference": paired_difference,
    "threshold": threshold,
    "trend": trend,
    "nested_slope": nested_slope,
    "ordinal_association": ordinal_association,
    "group_difference": group_difference,
    "nested_regression": nested_regression,
    "spread_contrast": spread_contrast,
    "property_change": property_change,
}
