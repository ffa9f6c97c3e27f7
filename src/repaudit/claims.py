"""Claims registry: each paper claim is a named hypothesis tested on the long metrics table.

A claim (``config/claims.yaml``) names a generic test, the data it needs as *selectors*, and a
verdict rule stated in words and as parameters. :func:`evaluate_claims` runs every claim on the
one tidy metrics table and returns per-claim details plus a summary with the effect size, its
confidence interval, p-value, n and a verdict that follows from the data by the stated rule.

Selectors
---------
A selector is a dict of column filters on the metrics table plus two reserved keys:

- ``column: value`` keeps rows equal to value; a list keeps any of its values (``null`` in the
  list keeps missing values); ``{not: value-or-list}`` excludes; ``{min: a, max: b}`` keeps a
  numeric range. Values compare as canonical strings, so ``layer: 0`` matches ``"0"`` and
  ``dim: 256`` matches ``256.0``. A string with ``{column}`` is formatted per row, e.g.
  ``stage: "finetuned_{dataset}"`` keeps the fine-tuned rows of each row's own dataset.
- ``query``: an optional pandas ``DataFrame.query`` expression (e.g. ``model != model_b``);
- ``agg``: how rows that share a unit key are combined (``mean`` (default), ``median``,
  ``min``, ``max``), e.g. no layer filter + ``agg: mean`` = mean over layers.

A test's ``units`` keys define the unit of analysis (e.g. ``[model]``); each selector is
aggregated to one value per unit (and per family member, see ``family_by``) and selectors are
inner-joined on the unit keys. ``common`` holds filters shared by every selector of a claim.
``$name`` in any string is replaced by a registry variable (``vars:`` in the YAML, overridable).

Tests
-----
``correlation`` (x vs y across units; a family of x metrics is Holm-corrected),
``paired_difference`` (a − b on the same units), ``threshold`` (value − reference, e.g. chance),
``trend`` (value vs depth within models: mixed model or per-model Spearman),
``mixed_slope`` (y on x with random intercepts, e.g. classes nested in models),
``ordinal_association`` (ordered group level vs value, Spearman),
``group_difference`` (two groups, Welch), ``nested_regression`` (ΔR² of a predictor block),
``spread_contrast`` (normalised spread of two metrics over a factor; synthetic studies).

Verdict rules
-------------
``direction`` (expect ``positive``/``negative``, optional ``min_effect`` ≥ 0):
supported if, for every family member, the CI excludes 0 on the expected side, the
(Holm-adjusted) p < α and the estimate reaches ``min_effect`` on that side; not supported if any
member is significant on the opposite side (CI excludes 0 that way and p < α), or its whole CI
falls short of ``min_effect``; inconclusive otherwise. ``near_zero`` (``threshold`` δ):
supported if every member's CI lies inside (−δ, δ) (an intersection-union test, no
multiplicity adjustment needed); not supported if any member has |estimate| ≥ δ, a CI that
excludes 0 and a Holm-adjusted p < α; inconclusive otherwise. ``negligible`` (``threshold`` δ,
one-sided, for ΔR²-type effects without a CI): supported if estimate < δ and p ≥ α; not
supported if estimate ≥ δ and p < α; inconclusive otherwise. Where a statistic has no CI
(NaN) the estimate stands in for both bounds; where it has no p the p condition is dropped.
"""

from __future__ import annotations

import math
import re
import string
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from repaudit import stats

__all__ = [
    "RULE_KINDS",
    "SUMMARY_COLUMNS",
    "TESTS",
    "VERDICTS",
    "Claim",
    "Rule",
    "evaluate_claims",
    "load_claims",
]

SUMMARY_COLUMNS = [
    "claim",
    "paper",
    "statement",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "n",
    "verdict",
    "test",
    "rule",
    "note",
]
VERDICTS = ("supported", "not supported", "inconclusive")
RULE_KINDS = ("direction", "near_zero", "negligible")
AGGREGATIONS = ("mean", "median", "min", "max")
_RESERVED = ("agg", "query")
_VAR = re.compile(r"\$(\w+)")
_INTEGRAL_FLOAT = re.compile(r"-?\d+\.0+")


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Rule:
    """Verdict rule of a claim: the words shown in reports and the parameters that decide.

    Attributes
    ----------
    kind : {"direction", "near_zero", "negligible"}
    text : str
        The rule in words.
    expect : {"positive", "negative"} or None
        Expected sign of the estimate (``direction`` rules).
    min_effect : float
        Smallest effect, on the expected side, that counts as support (``direction``).
    threshold : float or None
        Equivalence bound δ (``near_zero``, ``negligible``).
    """

    kind: str
    text: str
    expect: str | None = None
    min_effect: float = 0.0
    threshold: float | None = None


@dataclass(frozen=True)
class Claim:
    """One paper claim: a generic test with its parameters and a verdict rule."""

    id: str
    paper: str
    statement: str
    test: str
    params: dict[str, Any]
    rule: Rule
    notes: str = ""


def _substitute(obj, variables: Mapping[str, Any], where: str):
    """Replace ``$name`` by registry variables, recursively (a bare ``$name`` keeps the type)."""
    if isinstance(obj, Mapping):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise ValueError(
                f"{where}: keys {bad} are not strings (YAML 1.1 reads on/off/yes/no as "
                "booleans); quote them or use the documented name."
            )
    if isinstance(obj, str):
        bare = _VAR.fullmatch(obj)
        if bare:
            if bare.group(1) not in variables:
                raise ValueError(f"{where}: unknown variable ${bare.group(1)}; define it in vars.")
            return variables[bare.group(1)]
        try:
            return string.Template(obj).substitute(variables)
        except KeyError as err:
            raise ValueError(
                f"{where}: unknown variable ${err.args[0]}; define it in vars."
            ) from None
    if isinstance(obj, Mapping):
        return {k: _substitute(v, variables, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, variables, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def _check_selector(sel, where: str) -> None:
    if not isinstance(sel, Mapping):
        raise ValueError(f"{where} must be a mapping of column filters; got {type(sel).__name__}.")
    for key, cond in sel.items():
        if key == "agg":
            if cond not in AGGREGATIONS:
                raise ValueError(f"{where}.agg must be one of {AGGREGATIONS}; got {cond!r}.")
        elif key == "query":
            if not isinstance(cond, str):
                raise ValueError(f"{where}.query must be a string expression.")
        elif isinstance(cond, Mapping):
            if set(cond) == {"not"}:
                _check_scalar_or_list(cond["not"], f"{where}.{key}.not")
            elif cond and set(cond) <= {"min", "max"}:
                for bound in cond.values():
                    if not isinstance(bound, int | float) or isinstance(bound, bool):
                        raise ValueError(f"{where}.{key}: min/max must be numbers; got {bound!r}.")
            else:
                raise ValueError(
                    f"{where}.{key}: a mapping filter must be {{not: ...}} or {{min/max: ...}}; "
                    f"got keys {sorted(cond)}."
                )
        else:
            _check_scalar_or_list(cond, f"{where}.{key}")


def _check_scalar_or_list(cond, where: str) -> None:
    values = cond if isinstance(cond, list) else [cond]
    for v in values:
        if not (v is None or isinstance(v, str | int | float | bool)):
            raise ValueError(f"{where}: filter values must be scalars or lists; got {v!r}.")


def _check_keys(value, where: str) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a non-empty list of column names; got {value!r}.")


# Test name -> (required params, optional params, selector params, key-list params).
_SPEC: dict[str, tuple[set, set, set, set]] = {
    "correlation": (
        {"x", "y", "units"},
        {"family_by", "method", "p_value", "n_boot", "n_perm", "control_for", "common"},
        {"x", "y"},
        {"units", "family_by", "control_for"},
    ),
    "paired_difference": (
        {"a", "b", "units"},
        {"family_by", "p_value", "common"},
        {"a", "b"},
        {"units", "family_by"},
    ),
    "threshold": (
        {"value", "reference", "units"},
        {"family_by", "common"},
        {"value"},
        {"units", "family_by"},
    ),
    "trend": (
        {"value", "units"},
        {"x", "family_by", "method", "n_boot", "common"},
        {"value"},
        {"units", "family_by"},
    ),
    "mixed_slope": ({"x", "y", "units", "groups"}, {"common"}, {"x", "y"}, {"units", "groups"}),
    "ordinal_association": (
        {"value", "levels", "units"},
        {"family_by", "p_value", "n_boot", "n_perm", "common"},
        {"value"},
        {"units", "family_by"},
    ),
    "group_difference": (
        {"value", "groups", "units"},
        {"family_by", "common"},
        {"value"},
        {"units", "family_by"},
    ),
    "nested_regression": (
        {"y", "block", "units"},
        {"base", "effect", "common"},
        {"y", "block", "base"},
        {"units"},
    ),
    "spread_contrast": (
        {"select", "a", "b", "over"},
        {"at_max", "replicate", "n_boot"},
        {"select"},
        set(),
    ),
}


def _validate_params(test: str, params: dict, where: str) -> None:
    required, optional, selectors, key_lists = _SPEC[test]
    missing = sorted(required - set(params))
    if missing:
        raise ValueError(f"{where}: test {test!r} needs params {missing}.")
    unknown = sorted(set(params) - required - optional)
    if unknown:
        raise ValueError(
            f"{where}: unknown params {unknown} for test {test!r}; allowed: "
            f"{sorted(required | optional)}."
        )
    for name in selectors & set(params):
        if not (name == "base" and params[name] is None):
            _check_selector(params[name], f"{where}.{name}")
    if "common" in params:
        _check_selector(params["common"], f"{where}.common")
    for name in key_lists & set(params):
        if name == "family_by" and params[name] == []:
            continue
        _check_keys(params[name], f"{where}.{name}")
    if "groups" in params and test == "mixed_slope":
        extra = set(params["groups"]) - set(params["units"])
        if extra:
            raise ValueError(f"{where}.groups must be a subset of units; {sorted(extra)} are not.")
    choices = {
        "method": ("pearson", "spearman") if test == "correlation" else ("mixed", "spearman"),
        "p_value": ("t", "wilcoxon")
        if test == "paired_difference"
        else ("parametric", "permutation"),
        "effect": ("delta_r2", "delta_adj_r2"),
    }
    for name, allowed in choices.items():
        if name in params and params[name] not in allowed:
            raise ValueError(f"{where}.{name} must be one of {allowed}; got {params[name]!r}.")
    if test == "threshold":
        ref = params["reference"]
        ok = isinstance(ref, int | float) and not isinstance(ref, bool)
        if isinstance(ref, Mapping) and set(ref) <= {"chance_from_classes", "scale"}:
            ok = "chance_from_classes" in ref
            _check_selector(ref["chance_from_classes"], f"{where}.reference.chance_from_classes")
            if "dataset" not in params["units"]:
                raise ValueError(
                    f"{where}: reference chance_from_classes needs 'dataset' in units."
                )
        if not ok:
            raise ValueError(
                f"{where}.reference must be a number or {{chance_from_classes: selector, "
                f"scale: number}}; got {ref!r}."
            )
    if test == "ordinal_association":
        lv = params["levels"]
        if not (isinstance(lv, Mapping) and set(lv) == {"columns", "map"}):
            raise ValueError(f"{where}.levels must have keys 'columns' (list) and 'map' (dict).")
        _check_keys(lv["columns"], f"{where}.levels.columns")
        if not isinstance(lv["map"], Mapping) or not all(
            isinstance(v, int | float) for v in lv["map"].values()
        ):
            raise ValueError(f"{where}.levels.map must map values to numeric levels.")
    if test == "group_difference":
        gr = params["groups"]
        if not (isinstance(gr, Mapping) and set(gr) == {"columns", "a", "b"}):
            raise ValueError(f"{where}.groups must have keys 'columns', 'a' and 'b'.")
        _check_keys(gr["columns"], f"{where}.groups.columns")
    if test == "spread_contrast":
        for side in ("a", "b"):
            spec = params[side]
            if not (isinstance(spec, Mapping) and set(spec) == {"metric", "scale"}):
                raise ValueError(f"{where}.{side} must be {{metric: name, scale: number > 0}}.")
            _check_keys(_as_list(spec["metric"]), f"{where}.{side}.metric")
            if not isinstance(spec["scale"], int | float) or spec["scale"] <= 0:
                raise ValueError(f"{where}.{side}.scale must be a positive number.")


def _parse_rule(raw, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}.rule must be a mapping with 'kind' and 'text'.")
    for key in ("kind", "text"):
        if key not in raw:
            raise ValueError(f"{where}.rule is missing field {key!r}.")
    unknown = sorted(set(raw) - {"kind", "text", "expect", "min_effect", "threshold"})
    if unknown:
        raise ValueError(f"{where}.rule has unknown fields {unknown}.")
    kind = raw["kind"]
    if kind not in RULE_KINDS:
        raise ValueError(f"{where}.rule.kind must be one of {RULE_KINDS}; got {kind!r}.")
    expect = raw.get("expect")
    threshold = raw.get("threshold")
    min_effect = float(raw.get("min_effect", 0.0))
    if kind == "direction" and expect not in ("positive", "negative"):
        raise ValueError(f"{where}.rule.expect must be 'positive' or 'negative'; got {expect!r}.")
    if kind == "direction" and min_effect < 0:
        raise ValueError(
            f"{where}.rule.min_effect must be >= 0 (it is taken on the expected side)."
        )
    if kind in ("near_zero", "negligible") and not (
        isinstance(threshold, int | float) and threshold > 0
    ):
        raise ValueError(f"{where}.rule.threshold must be a positive number for kind {kind!r}.")
    return Rule(
        kind=kind,
        text=str(raw["text"]).strip(),
        expect=expect,
        min_effect=min_effect,
        threshold=None if threshold is None else float(threshold),
    )


def load_claims(spec: Mapping, variables: Mapping[str, Any] | None = None) -> list[Claim]:
    """Parse and validate a claims registry (the mapping loaded from ``config/claims.yaml``).

    Parameters
    ----------
    spec : mapping
        ``{"vars": {...}, "claims": [{id, paper, statement, test, params, rule, [notes]}, ...]}``.
    variables : mapping, optional
        Overrides for ``vars`` (e.g. the natural-image dataset of a paper config, or smaller
        ``n_boot`` in tests).

    Returns
    -------
    list of :class:`Claim`, in registry order.

    Raises
    ------
    ValueError
        Missing or unknown fields, unknown test or rule kind, bad selectors, duplicate ids,
        undefined ``$variables``.
    """
    if not isinstance(spec, Mapping) or "claims" not in spec:
        raise ValueError("the claims registry must be a mapping with a 'claims' list.")
    unknown_top = sorted(set(spec) - {"vars", "claims"})
    if unknown_top:
        raise ValueError(f"unknown top-level keys {unknown_top} in the claims registry.")
    env = dict(spec.get("vars") or {})
    env.update(variables or {})
    raw_claims = spec["claims"]
    if not isinstance(raw_claims, list) or not raw_claims:
        raise ValueError("'claims' must be a non-empty list.")
    claims, seen = [], set()
    for i, raw in enumerate(raw_claims):
        where = f"claims[{i}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} must be a mapping.")
        if "id" in raw:
            where = f"claim {raw['id']}"
        for key in ("id", "paper", "statement", "test", "params", "rule"):
            if key not in raw:
                raise ValueError(f"{where} is missing field {key!r}.")
        unknown = sorted(set(raw) - {"id", "paper", "statement", "test", "params", "rule", "notes"})
        if unknown:
            raise ValueError(f"{where} has unknown fields {unknown}.")
        cid = str(raw["id"])
        if cid in seen:
            raise ValueError(f"duplicate claim id {cid!r}.")
        seen.add(cid)
        test = raw["test"]
        if test not in TESTS:
            raise ValueError(f"{where}: unknown test {test!r}; known tests: {sorted(TESTS)}.")
        if not isinstance(raw["params"], Mapping):
            raise ValueError(f"{where}.params must be a mapping.")
        params = _substitute(dict(raw["params"]), env, f"{where}.params")
        _validate_params(test, params, where)
        claims.append(
            Claim(
                id=cid,
                paper=str(raw["paper"]).strip(),
                statement=" ".join(str(raw["statement"]).split()),
                test=test,
                params=params,
                rule=_parse_rule(raw["rule"], where),
                notes=" ".join(str(raw.get("notes", "")).split()),
            )
        )
    return claims


# ----------------------------------------------------------------------------- selection


def _canon(v) -> str | None:
    """Canonical string of a cell or filter value (None for missing)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return None
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    text = str(v)
    # "3.0" written for a float class label by a TSV round trip is the label "3".
    return text[: text.index(".")] if _INTEGRAL_FLOAT.fullmatch(text) else text


class _Table:
    """The metrics table with cached canonical-string views of its columns."""

    def __init__(self, df: pd.DataFrame):
        self.df = df.reset_index(drop=True)
        self._canon: dict[str, pd.Series] = {}

    def canon(self, col: str) -> pd.Series:
        if col not in self._canon:
            self._canon[col] = self.df[col].map(_canon).astype(object)
        return self._canon[col]

    def has(self, col: str) -> bool:
        return col in self.df.columns


def _template_fields(text: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


def _mask(table: _Table, col: str, cond) -> pd.Series:
    if isinstance(cond, Mapping):
        if "not" in cond:
            return ~_mask(table, col, cond["not"])
        values = pd.to_numeric(table.df[col], errors="coerce")
        m = values.notna()
        if "min" in cond:
            m &= values >= cond["min"]
        if "max" in cond:
            m &= values <= cond["max"]
        return m
    canon = table.canon(col)
    m = pd.Series(False, index=table.df.index)
    for v in cond if isinstance(cond, list) else [cond]:
        if v is None:
            m |= canon.isna()
        elif isinstance(v, str) and _template_fields(v):
            fields = _template_fields(v)
            parts = {f: table.canon(f) for f in fields}
            expected = [
                None
                if any(parts[f].iat[i] is None for f in fields)
                else v.format(**{f: parts[f].iat[i] for f in fields})
                for i in range(len(table.df))
            ]
            m |= canon.eq(pd.Series(expected, index=canon.index, dtype=object)) & canon.notna()
        else:
            m |= canon.eq(_canon(v))
    return m.fillna(False).astype(bool)


def _columns_in(sel: Mapping) -> set[str]:
    cols = {k for k in sel if k not in _RESERVED}
    for cond in sel.values():
        for v in cond if isinstance(cond, list) else [cond]:
            if isinstance(v, str):
                cols |= set(_template_fields(v))
    return cols


class _NoData(Exception):
    """A selection is empty; the message says why (never a crash for the caller)."""


def _diagnose(table: _Table, filters: Mapping, query: str | None) -> str:
    if "metric" in filters and not isinstance(filters["metric"], Mapping):
        wanted = filters["metric"] if isinstance(filters["metric"], list) else [filters["metric"]]
        present = set(table.canon("metric").dropna())
        if not any(_canon(w) in present for w in wanted):
            return (
                f"metric {', '.join(map(str, wanted))} absent from the metrics table "
                "(not computed in this config)"
            )
    m = pd.Series(True, index=table.df.index)
    for col, cond in filters.items():
        m &= _mask(table, col, cond)
        if not m.any():
            return f"no rows left after filter {col}={cond!r} (applied after the filters before it)"
    if query:
        return f"no rows left after query {query!r}"
    return "every selected value is NaN or has a missing key"


def _select(
    table: _Table,
    sel: Mapping,
    keys: Sequence[str],
    *,
    family_by: Sequence[str] = (),
    carry: Sequence[str] = (),
    optional_keys: Sequence[str] = (),
    what: str = "selector",
) -> pd.DataFrame:
    """Filter, then aggregate ``value`` to one row per (keys, family_by).

    Key and family columns come back as canonical strings; rows with a missing key are
    dropped, except that missing ``family_by`` and ``optional_keys`` values become "" (one
    group). ``carry`` columns keep their first value per group (NaN if the column is
    absent); ``n_rows`` counts aggregated rows.
    Raises :class:`_NoData` with the reason if nothing is selected.
    """
    filters = {k: v for k, v in sel.items() if k not in _RESERVED}
    query = sel.get("query")
    agg = sel.get("agg", "mean")
    needed = _columns_in(sel) | set(keys) | set(family_by) | {"value"}
    missing = sorted(c for c in needed if not table.has(c))
    if missing and "metric" in filters and table.has("metric"):
        reason = _diagnose(table, {"metric": filters["metric"]}, None)
        if "absent" in reason:  # the more useful message: the metric itself is not there
            raise _NoData(f"{what}: {reason}")
    if missing:
        raise _NoData(f"{what}: column(s) {missing} absent from the metrics table")
    m = pd.Series(True, index=table.df.index)
    for col, cond in filters.items():
        m &= _mask(table, col, cond)
    df = table.df.loc[m]
    if query and not df.empty:
        try:
            df = df.query(query, engine="python")
        except Exception as err:  # a bad expression names itself; keep the reason
            raise _NoData(f"{what}: query {query!r} failed: {err}") from None
    keys = [*keys, *optional_keys]
    out = pd.DataFrame({c: table.canon(c).loc[df.index] for c in [*keys, *family_by]})
    for c in [*family_by, *optional_keys]:  # e.g. no variant: the empty label
        out[c] = out[c].fillna("")
    out["value"] = pd.to_numeric(df["value"], errors="coerce").astype(np.float64)
    for c in carry:
        out[c] = df[c] if table.has(c) else np.nan
    out = out.dropna(subset=[*keys, *family_by, "value"])
    if out.empty:
        raise _NoData(f"{what}: {_diagnose(table, filters, query)}")
    group = [*keys, *family_by]
    grouped = out.groupby(group, sort=True, dropna=False)
    res = grouped["value"].agg(agg).to_frame("value")
    res["n_rows"] = grouped["value"].size()
    for c in carry:
        res[c] = grouped[c].first()
    return res.reset_index()


def _merged(common: Mapping | None, sel: Mapping) -> dict:
    return {**(common or {}), **sel}


def _member_label(row: Mapping, family_by: Sequence[str]) -> str:
    parts = [f"{c}={row[c]}" for c in family_by if row[c] != ""]
    return ", ".join(parts) if parts else "all"


# ----------------------------------------------------------------------------- tests


@dataclass
class _Outcome:
    members: list[dict] = field(default_factory=list)
    note: str = ""


def _failed(member: str, n: int, err: Exception | str) -> dict:
    return {
        "member": member,
        "estimate": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "n": int(n),
        "note": str(err),
    }


def _from_result(member: str, res: stats.StatResult, note: str = "") -> dict:
    return {"member": member, **res.as_dict(), "note": note}


def _family_groups(df: pd.DataFrame, family_by: Sequence[str]):
    if not family_by:
        yield "all", df
        return
    for vals, sub in df.groupby(list(family_by), sort=True):
        vals = vals if isinstance(vals, tuple) else (vals,)
        yield _member_label(dict(zip(family_by, vals, strict=True)), family_by), sub


def _test_correlation(table: _Table, p: Mapping, *, alpha: float, seed: int) -> _Outcome:
    """Correlation of x (a family of metrics) with y across units (e.g. models)."""
    on, family_by = p["units"], p.get("family_by", ["metric", "variant"])
    control = p.get("control_for", [])
    method, p_value = p.get("method", "pearson"), p.get("p_value", "parametric")
    n_boot, n_perm = int(p.get("n_boot", 10_000)), int(p.get("n_perm", 10_000))
    x = _select(
        table, _merged(p.get("common"), p["x"]), on, family_by=family_by, carry=control, what="x"
    )
    y = _select(table, _merged(p.get("common"), p["y"]), on, what="y")
    data = x.merge(y[[*on, "value"]], on=on, suffixes=("_x", "_y"))
    if data.empty:
        raise _NoData(f"x and y share no units on {on}")
    confidence = 1 - alpha
    out = _Outcome()
    for member, sub in _family_groups(data, family_by):
        xv, yv = sub["value_x"].to_numpy(), sub["value_y"].to_numpy()
        main_fn = stats.pearson if method == "pearson" else stats.spearman
        kwargs = {} if method == "pearson" else {"n_boot": n_boot, "seed": seed}
        try:
            main = main_fn(xv, yv, confidence=confidence, **kwargs)
        except ValueError as err:
            out.members.append(_failed(member, len(sub), err))
            continue
        row = {
            "member": member,
            "estimate": main.estimate,
            "ci_low": main.ci_low,
            "ci_high": main.ci_high,
            "p": main.p,
            "n": main.n,
            "note": "",
        }
        # The companion statistics of spec §1.6 (details only; a failure is noted, not fatal).
        companions = {
            "pearson": partial(stats.pearson, xv, yv, confidence=confidence),
            "spearman": partial(
                stats.spearman, xv, yv, n_boot=n_boot, confidence=confidence, seed=seed
            ),
            "permutation": partial(
                stats.permutation_pvalue, xv, yv, method=method, n_perm=n_perm, seed=seed
            ),
        }
        for name, fn in companions.items():
            try:
                res = fn()
            except ValueError as err:
                row[f"{name}_note"] = str(err)
                continue
            if name == "permutation":
                row.update(permutation_p=res.p, n_perm=n_perm)
                if p_value == "permutation":
                    row["p"] = res.p
            else:
                label = "pearson_r" if name == "pearson" else "spearman_rho"
                row.update(
                    {
                        label: res.estimate,
                        f"{name}_ci_low": res.ci_low,
                        f"{name}_ci_high": res.ci_high,
                        f"{name}_p": res.p,
                    }
                )
        if p_value == "permutation" and "permutation_p" not in row:
            row["p"] = np.nan
            row["note"] = f"no permutation p: {row['permutation_note']}"
        if control:
            try:
                part = stats.partial_correlation(xv, yv, sub[control], confidence=confidence)
                row.update(
                    partial_r=part.estimate,
                    partial_ci_low=part.ci_low,
                    partial_ci_high=part.ci_high,
                    partial_p=part.p,
                    partial_controls=",".join(control),
                )
            except ValueError as err:
                row["partial_note"] = str(err)
        out.members.append(row)
    return out


def _paired_frame(table: _Table, p: Mapping) -> tuple[pd.DataFrame, list[str]]:
    on, family_by = p["units"], p.get("family_by", [])
    a = _select(table, _merged(p.get("common"), p["a"]), on, family_by=family_by, what="a")
    b = _select(table, _merged(p.get("common"), p["b"]), on, family_by=family_by, what="b")
    data = a.merge(b, on=[*on, *family_by], suffixes=("_a", "_b"))
    if data.empty:
        raise _NoData(f"a and b share no units on {[*on, *family_by]}")
    return data, family_by


def _test_paired_difference(table: _Table, p: Mapping, *, alpha: float, seed: int) -> _Outcome:
    """Mean paired difference a − b over units (paired t CI; Wilcoxon in the details)."""
    data, family_by = _paired_frame(table, p)
    out = _Outcome()
    for member, sub in _family_groups(data, family_by):
        try:
            res = stats.paired_difference(
                sub["value_a"].to_numpy(), sub["value_b"].to_numpy(), confidence=1 - alpha
            )
        except ValueError as err:
            out.members.append(_failed(member, len(sub), err))
            continue
        row = _from_result(member, res)
        if p.get("p_value", "t") == "wilcoxon":
            row["p"] = res.extras["wilcoxon_p"]
        out.members.append(row)
    return out


def _chance_levels(table: _Table, ref: Mapping) -> pd.Series:
    """Per dataset: scale / (number of distinct class labels other than "all")."""
    sel = ref["chance_from_classes"]
    rows = _select(table, sel, ["dataset", "class"], what="reference.chance_from_classes")
    rows = rows[rows["class"] != "all"]
    counts = rows.groupby("dataset")["class"].nunique()
    if counts.empty:
        raise _NoData("reference: no per-class rows to count classes for the chance level")
    return float(ref.get("scale", 1.0)) / counts


def _test_threshold(table: _Table, p: Mapping, *, alpha: float, seed: int) -> _Outcome:
    """Mean of value − reference over units (one-sample t), e.g. stitching F1 above chance."""
    on, family_by = p["units"], p.get("family_by", [])
    data = _select(
        table, _merged(p.get("common"), p["value"]), on, family_by=family_by, what="value"
    )
    ref = p["reference"]
    if isinstance(ref, Mapping):
        chance = _chance_levels(table, ref)
        data["reference"] = data["dataset"].map(chance)
        data = data.dropna(subset=["reference"])
        if data.empty:
            raise _NoData("reference: no chance level for the selected datasets")
    else:
        data["reference"] = float(ref)
    out = _Outcome()
    for member, sub in _family_groups(data, family_by):
        try:
            res = stats.paired_difference(
                sub["value"].to_numpy(), sub["reference"].to_numpy(), confidence=1 - alpha
            )
        except ValueError as err:
            out.members.append(_failed(member, len(sub), err))
            continue
        row = _from_result(member, res)
        row["mean_value"] = row.pop("mean_a")
        row["mean_reference"] = row.pop("mean_b")
        out.members.append(row)
    return out


def _test_trend(table: _Table, p: Mapping, *, alpha: float, seed: int) -> _Outcome:
    """Value vs depth within units (``units``, e.g. models): mixed-model slope or mean Spearman."""
    on, family_by = p["units"], p.get("family_by", [])
    xcol, method = p.get("x", "depth"), p.get("method", "mixed")
    n_boot = int(p.get("n_boot", 10_000))
    data = _select(
        table,
        _merged(p.get("common"), p["value"]),
        [*on, "layer"],
        family_by=family_by,
        carry=[xcol],
        what="value",
    )
    data[xcol] = pd.to_numeric(data[xcol], errors="coerce")
    data = data.dropna(subset=[xcol])
    if data.empty:
        raise _NoData(f"value: column {xcol!r} is missing for every selected row")
    groups = data[on].astype(str).agg("|".join, axis=1)
    out = _Outcome()
    for member, sub in _family_groups(data, family_by):
        g = groups.loc[sub.index]
        try:
            if method == "mixed":
                res = stats.mixed_slope(
                    sub["value"].to_numpy(),
                    sub[xcol].to_numpy(),
                    g.to_numpy(),
                    confidence=1 - alpha,
                )
                row = _from_result(member, res, note=_mixed_note(res))
            else:
                rhos = []
                for _, unit in sub.groupby(g):
                    if len(unit) >= 3 and unit["value"].nunique() > 1 and unit[xcol].nunique() > 1:
                        rhos.append(stats.spearman_rho(unit[xcol], unit["value"]))
                res = stats.bootstrap_mean(
                    np.asarray(rhos), n_boot=n_boot, confidence=1 - alpha, seed=seed
                )
                row = _from_result(member, res)
                row.update(mean_rho=res.estimate, n_units_with_trend=len(rhos))
        except ValueError as err:
            out.members.append(_failed(member, g.nunique(), err))
            continue
        out.members.append(row)
    return out


def _mixed_note(res: stats.StatResult) -> str:
    note = f"n = observations in {res.extras['n_groups']} groups"
    if res.extras.get("warnings"):
        note += f"; fit warnings: {res.extras['warnings']}"
    return note


def _test_mixed_slope(table: _Table, p: Mapping, *, alpha: float, seed: int) -> _Outcome:
    """Slope of y on x with a random intercept per group (e.g. classes nested in models)."""
    on, groups = p["units"], p["groups"]
    x = _select(table, _merged(p.get("common"), p["x"]), on, what="x")
    y = _select(table, _merged(p.get("common"), p["y"]), on, what="y")
    data = x.merge(y, on=on, suffixes=("_x", "_y"))
    if data.empty:
        raise _NoData(f"x and y share no units on {on}")
    g = data[groups].astype(str).agg("|".join, axis=1).to_numpy()
    try:
        res = stats.mixed_slope(
            data["value_y"].to_numpy(), data["value_x"].to_numpy(), g, confidence=1 - alpha
        )
    except ValueError as err:
        return _Outcome([_failed("all", len(data), err)])
    row = _from_result("all", res, note=_mixed_note(res))
    try:  # pooled Pearson/Spearman as in the paper's per-class scatter (details only)
        pr = stats.pearson(data["value_x"], data["value_y"], confidence=1 - alpha)
        row.update(pooled_pearson_r=pr.estimate, pooled_pearson_p=pr.p)
        row["pooled_spearman_rho"] = stats.spearman_rho(data["value_x"], data["value_y"])
    except ValueError as err:
        row["pooled_note"] = str(err)
    return _Outcome([row])


def _levels(data: pd.DataFrame, levels: Mapping) -> pd.Series:
    mapping = {_canon(k): float(v) for k, v in levels["map"].items()}
    level = pd.Series(np.nan, index=data.index)
    for col in levels["columns"]:
        looked = data[col].map(lambda v: mapping.get(_canon(v), np.nan))
        level = level.fillna(looked)
    return level


def _test_ordinal_association(table: _Table, p: Mapping, *, alpha: float, seed: int) -> _Outcome:
    """Spearman association between an ordered level (e.g. supervision) and a value."""
    on, family_by = p["units"], p.get("family_by", [])
    cols = p["levels"]["columns"]
    data = _select(
        table,
        _merged(p.get("common"), p["value"]),
        on,
        family_by=family_by,
        carry=cols,
        what="value",
    )
    data["level"] = _levels(data, p["levels"])
    unmapped = int(data["level"].isna().sum())
    data = data.dropna(subset=["level"])
    if data.empty:
        raise _NoData(f"no selected unit has a level in {cols} listed in levels.map")
    n_boot, n_perm = int(p.get("n_boot", 10_000)), int(p.get("n_perm", 10_000))
    out = _Outcome(note=f"{unmapped} unit(s) without a level were dropped" if unmapped else "")
    for member, sub in _family_groups(data, family_by):
        lv, val = sub["level"].to_numpy(), sub["value"].to_numpy()
        try:
            res = stats.spearman(lv, val, n_boot=n_boot, confidence=1 - alpha, seed=seed)
            perm = stats.permutation_pvalue(lv, val, method="spearman", n_perm=n_perm, seed=seed)
        except ValueError as err:
            out.members.append(_failed(member, len(sub), err))
            continue
        row = _from_result(member, res)
        row["permutation_p"] = perm.p
        if p.get("p_value", "parametric") == "permutation":
            row["p"] = perm.p
        for lvl, grp in sub.groupby("level"):
            row[f"mean_at_level_{lvl:g}"] = float(grp["value"].mean())
            row[f"n_at_level_{lvl:g}"] = len(grp)
        out.members.append(row)
    return out


def _test_group_difference(table: _Table, p: Mapping, *, alpha: float, seed: int) -> _Outcome:
    """Welch difference of means between two groups of units (group a − group b)."""
    on, family_by, gr = p["units"], p.get("family_by", []), p["groups"]
    data = _select(
        table,
        _merged(p.get("common"), p["value"]),
        on,
        family_by=family_by,
        carry=gr["columns"],
        what="value",
    )
    label = pd.Series(None, index=data.index, dtype=object)
    for col in gr["columns"]:
        canon = data[col].map(_canon)
        for side in ("a", "b"):
            vals = gr[side] if isinstance(gr[side], list) else [gr[side]]
            hit = label.isna() & canon.isin([_canon(v) for v in vals])
            label[hit] = side
    data["group"] = label
    data = data.dropna(subset=["group"])
    if data.empty:
        raise _NoData(f"no selected unit falls in group a or b by {gr['columns']}")
    out = _Outcome()
    for member, sub in _family_groups(data, family_by):
        a = sub.loc[sub["group"] == "a", "value"].to_numpy()
        b = sub.loc[sub["group"] == "b", "value"].to_numpy()
        try:
            res = stats.welch_difference(a, b, confidence=1 - alpha)
        except ValueError as err:
            out.members.append(_failed(member, len(sub), err))
            continue
        out.members.append(_from_result(member, res))
    return out


def _wide(table: _Table, sel: Mapping, on: Sequence[str], what: str) -> pd.DataFrame:
    long = _select(table, sel, on, family_by=["metric", "variant"], what=what)
    long["term"] = long["metric"] + np.where(long["variant"] != "", "[" + long["variant"] + "]", "")
    return long.pivot_table(index=list(on), columns="term", values="value").reset_index()


def _test_nested_regression(table: _Table, p: Mapping, *, alpha: float, seed: int) -> _Outcome:
    """ΔR² of a predictor block over a base model (nested OLS F-test; HC3 Wald in details)."""
    on, common = p["units"], p.get("common")
    y = _select(table, _merged(common, p["y"]), on, what="y")[[*on, "value"]]
    block = _wide(table, _merged(common, p["block"]), on, "block")
    block_terms = [c for c in block.columns if c not in on]
    data = y.merge(block, on=on)
    base_terms: list[str] = []
    if p.get("base") is not None:
        base = _wide(table, _merged(common, p["base"]), on, "base")
        base_terms = [c for c in base.columns if c not in on]
        data = data.merge(base, on=on)
    n_all = len(data)
    data = data.dropna()
    note = (
        f"{n_all - len(data)} unit(s) with a missing predictor dropped" if len(data) < n_all else ""
    )
    if data.empty:
        raise _NoData("no unit has y and every predictor")
    try:
        res = stats.nested_f_test(
            data["value"].to_numpy(),
            data[base_terms] if base_terms else None,
            data[block_terms],
        )
    except ValueError as err:
        return _Outcome([_failed("all", len(data), err)])
    row = _from_result("all", res, note=note)
    row["delta_r2"] = res.estimate
    # Adjusted ΔR²: the raw ΔR² of q noise predictors is ≈ q/(n−k) > 0 by construction.
    n, k_base = res.n, len(base_terms) + 1
    adj_base = 1 - (1 - res.extras["r2_base"]) * (n - 1) / (n - k_base)
    row["delta_adj_r2"] = res.extras["adj_r2_full"] - adj_base
    if p.get("effect", "delta_adj_r2") == "delta_adj_r2":
        row["estimate"] = row["delta_adj_r2"]
    return _Outcome([row])


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def _test_spread_contrast(table: _Table, p: Mapping, *, alpha: float, seed: int) -> _Outcome:
    """Normalised spread of metric a over a factor minus that of metric b (e.g. W2 vs −L_U).

    spread = max − min over the levels of ``over`` of the per-level mean (over replicates),
    divided by the metric's ``scale`` (its full range); at the largest ``at_max`` if given.
    With ≥ 2 replicates per level (``replicate`` column) the CI is a percentile bootstrap that
    resamples replicates within each level (the same draw for both metrics, which share
    samples); otherwise the statistic is descriptive (CI NaN). There is no p-value.
    """
    over, at_max, rep = p["over"], p.get("at_max"), p.get("replicate")
    if rep is not None and not table.has(rep):
        rep = None
    names = {side: _as_list(p[side]["metric"]) for side in ("a", "b")}
    keys = [over, *([at_max] if at_max else [])]
    data = _select(
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
            raise _NoData(f"select: metric {' / '.join(names[side])} absent from the selection")
        chosen[side] = present[0]
    metric_a, metric_b = chosen["a"], chosen["b"]
    data = data[data["metric"].isin([metric_a, metric_b])]
    note = ""
    if at_max:
        dims = pd.to_numeric(data[at_max], errors="coerce")
        common_max = min(dims[data["metric"] == m].max() for m in (metric_a, metric_b))
        data = data[dims == common_max]
    if rep is None:
        rep = "_replicate"
        data[rep] = "0"
    # values[level, replicate] per metric, on the (level, replicate) cells both metrics have.
    wide = data.pivot_table(index=[over, rep], columns="metric", values="value").dropna()
    wide = wide.reset_index()
    wide[over] = pd.to_numeric(wide[over], errors="coerce")
    levels = np.sort(wide[over].dropna().unique())
    if levels.size < 2:
        return _Outcome([_failed("all", len(wide), f"'{over}' has fewer than 2 levels")])
    scale_a, scale_b = float(p["a"]["scale"]), float(p["b"]["scale"])
    cells = [wide[wide[over] == lvl] for lvl in levels]

    def contrast(means_a: np.ndarray, means_b: np.ndarray):
        spread_a = (means_a.max(axis=-1) - means_a.min(axis=-1)) / scale_a
        spread_b = (means_b.max(axis=-1) - means_b.min(axis=-1)) / scale_b
        return spread_a - spread_b, spread_a, spread_b

    mean_a = np.array([c[metric_a].mean() for c in cells])
    mean_b = np.array([c[metric_b].mean() for c in cells])
    est, sa, sb = contrast(mean_a, mean_b)
    n_reps = min(len(c) for c in cells)
    ci = (np.nan, np.nan)
    if n_reps >= 2:
        rng = np.random.default_rng(seed)
        n_boot = int(p.get("n_boot", 2_000))
        boot_a = np.empty((n_boot, levels.size))
        boot_b = np.empty((n_boot, levels.size))
        for j, c in enumerate(cells):
            idx = rng.integers(0, len(c), size=(n_boot, len(c)))
            boot_a[:, j] = c[metric_a].to_numpy()[idx].mean(axis=1)
            boot_b[:, j] = c[metric_b].to_numpy()[idx].mean(axis=1)
        ci = tuple(np.quantile(contrast(boot_a, boot_b)[0], [alpha / 2, 1 - alpha / 2]))
    else:
        note = "one replicate per level: descriptive, no CI"
    row = {
        "member": "all",
        "estimate": float(est),
        "ci_low": float(ci[0]),
        "ci_high": float(ci[1]),
        "p": np.nan,
        "n": len(wide),
        "note": note,
        "spread_a": float(sa),
        "spread_b": float(sb),
        "n_levels": int(levels.size),
        "min_replicates": int(n_reps),
        "at_max_value": float(pd.to_numeric(data[at_max]).iloc[0]) if at_max else np.nan,
        "metric_a": metric_a,
        "metric_b": metric_b,
    }
    return _Outcome([row])


TESTS: dict[str, Callable[..., _Outcome]] = {
    "correlation": _test_correlation,
    "paired_difference": _test_paired_difference,
    "threshold": _test_threshold,
    "trend": _test_trend,
    "mixed_slope": _test_mixed_slope,
    "ordinal_association": _test_ordinal_association,
    "group_difference": _test_group_difference,
    "nested_regression": _test_nested_regression,
    "spread_contrast": _test_spread_contrast,
}


# ----------------------------------------------------------------------------- verdicts


def _bounds(row: Mapping) -> tuple[float, float]:
    lo, hi = row["ci_low"], row["ci_high"]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return row["estimate"], row["estimate"]
    return lo, hi


def _member_verdict(rule: Rule, row: Mapping, alpha: float) -> str:
    est, p = row["estimate"], row["p_holm"]
    if not np.isfinite(est):
        return "inconclusive"
    lo, hi = _bounds(row)
    has_p = np.isfinite(p)
    significant = (not has_p) or p < alpha
    if rule.kind == "direction":
        s = 1.0 if rule.expect == "positive" else -1.0
        lo_s, hi_s = sorted((s * lo, s * hi))
        if lo_s > 0 and significant and s * est >= rule.min_effect:
            return "supported"
        if hi_s < 0 and significant:
            return "not supported"
        if rule.min_effect > 0 and hi_s < rule.min_effect:
            return "not supported"
        return "inconclusive"
    delta = rule.threshold
    if rule.kind == "near_zero":
        if -delta < lo and hi < delta:
            return "supported"
        if abs(est) >= delta and (lo > 0 or hi < 0) and significant:
            return "not supported"
        return "inconclusive"
    # negligible (one-sided, for ΔR²-type effects)
    if est < delta and (not has_p or p >= alpha):
        return "supported"
    if est >= delta and significant:
        return "not supported"
    return "inconclusive"


def _decisive(rule: Rule, det: pd.DataFrame, verdict: str) -> int:
    """Index of the member that decides (the weakest support or the strongest contradiction)."""
    cand = det[det["verdict"] == verdict]
    cand = cand[np.isfinite(cand["estimate"])] if np.isfinite(cand["estimate"]).any() else cand
    if rule.kind == "direction":
        s = 1.0 if rule.expect == "positive" else -1.0
        pj = cand["p_holm"].fillna(0.0)
        if verdict == "not supported":
            order = cand.assign(_k1=pj, _k2=s * cand["estimate"]).sort_values(["_k1", "_k2"])
        else:
            order = cand.assign(_k1=-pj, _k2=s * cand["estimate"]).sort_values(["_k1", "_k2"])
        return int(order.index[0])
    return int(cand["estimate"].abs().fillna(-1).sort_values(ascending=False).index[0])


def _rule_summary(rule: Rule) -> str:
    if rule.kind == "direction":
        params = f"expect={rule.expect}, min_effect={rule.min_effect:g}"
    else:
        params = f"threshold={rule.threshold:g}"
    return f"{rule.kind} ({params}): {rule.text}"


def _evaluate_one(table: _Table, claim: Claim, alpha: float, seed: int):
    base = {
        "claim": claim.id,
        "paper": claim.paper,
        "statement": claim.statement,
        "test": claim.test,
        "rule": _rule_summary(claim.rule),
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            outcome = TESTS[claim.test](table, claim.params, alpha=alpha, seed=seed)
    except _NoData as err:
        outcome = _Outcome(note=f"no data: {err}")
    except (ValueError, np.linalg.LinAlgError) as err:
        outcome = _Outcome(note=f"test not run: {err}")
    if not outcome.members:
        det = pd.DataFrame(
            columns=[
                "member",
                "estimate",
                "ci_low",
                "ci_high",
                "p",
                "p_holm",
                "n",
                "verdict",
                "note",
            ]
        )
        row = {
            **base,
            "estimate": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "p": np.nan,
            "n": 0,
            "verdict": "inconclusive",
            "note": outcome.note,
        }
        return det, row
    det = pd.DataFrame(outcome.members)
    for col in ("estimate", "ci_low", "ci_high", "p"):
        det[col] = pd.to_numeric(det[col], errors="coerce").astype(np.float64)
    det["p_holm"] = stats.holm(det["p"].to_numpy())
    det["verdict"] = [_member_verdict(claim.rule, r, alpha) for r in det.to_dict("records")]
    if (det["verdict"] == "not supported").any():
        verdict = "not supported"
    elif (det["verdict"] == "supported").all():
        verdict = "supported"
    else:
        verdict = "inconclusive"
    i = _decisive(claim.rule, det, verdict)
    m = len(det)
    counts = ", ".join(
        f"{(det['verdict'] == v).sum()} {v}" for v in VERDICTS if (det["verdict"] == v).any()
    )
    parts = [f"decisive member: {det.at[i, 'member']}"] if m > 1 else []
    if m > 1:
        parts.append(f"{m} members ({counts}); p Holm-adjusted over {m}")
    for extra in (det.at[i, "note"], outcome.note, claim.notes):
        if isinstance(extra, str) and extra:
            parts.append(extra)
    first = ["member", "estimate", "ci_low", "ci_high", "p", "p_holm", "n", "verdict", "note"]
    det = det[first + [c for c in det.columns if c not in first]]
    row = {
        **base,
        "estimate": float(det.at[i, "estimate"]),
        "ci_low": float(det.at[i, "ci_low"]),
        "ci_high": float(det.at[i, "ci_high"]),
        "p": float(det.at[i, "p_holm"]),
        "n": int(det.at[i, "n"]),
        "verdict": verdict,
        "note": "; ".join(parts),
    }
    return det, row


def evaluate_claims(
    metrics: pd.DataFrame, claims: Sequence[Claim], *, alpha: float = 0.05, seed: int = 0
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Test every claim on the long metrics table.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The tidy table of ``collect_metrics`` (needs at least ``metric`` and ``value``).
    claims : sequence of :class:`Claim`
        From :func:`load_claims`.
    alpha : float
        Significance level; intervals are (1 − alpha) confidence intervals.
    seed : int
        Seed of every bootstrap and permutation (same seed, same table, same output).

    Returns
    -------
    details : dict claim id -> DataFrame
        One row per family member: ``member``, ``estimate``, ``ci_low``, ``ci_high``, ``p``,
        ``p_holm``, ``n``, ``verdict``, ``note`` and test-specific columns.
    summary : DataFrame
        One row per claim with columns :data:`SUMMARY_COLUMNS`. ``p`` is Holm-adjusted over
        the claim's family; a claim whose data is absent is ``inconclusive`` with ``n = 0``
        and the reason in ``note``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}.")
    missing = [c for c in ("metric", "value") if c not in metrics.columns]
    if missing:
        raise ValueError(f"the metrics table lacks columns {missing}; pass collect_metrics output.")
    table = _Table(metrics)
    details, rows = {}, []
    for claim in claims:
        det, row = _evaluate_one(table, claim, alpha, seed)
        details[claim.id] = det
        rows.append(row)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    summary["n"] = summary["n"].astype(int)
    return details, summary
