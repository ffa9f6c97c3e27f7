"""Selectors: filter the long metrics table and aggregate it to one value per unit.

A selector is a dict of column filters plus two reserved keys:

- ``column: value`` keeps rows equal to value; a list keeps any of its values (``null`` in the
  list keeps missing values); ``{not: value-or-list}`` excludes; ``{min: a, max: b}`` keeps a
  numeric range. Values compare as canonical strings, so ``layer: 0`` matches ``"0"`` and
  ``dim: 256`` matches ``256.0``. A string with ``{column}`` is formatted per row, e.g.
  ``stage: "finetuned_{dataset}"`` keeps the fine-tuned rows of each row's own dataset.
- ``query``: an optional pandas ``DataFrame.query`` expression (e.g. ``model != model_b``);
- ``agg``: how rows that share a unit key are combined (``mean`` (default), ``median``,
  ``min``, ``max``), e.g. no layer filter + ``agg: mean`` = mean over layers.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

AGGREGATIONS = ("mean", "median", "min", "max")
_RESERVED = ("agg", "query")
_INTEGRAL_FLOAT = re.compile(r"-?\d+\.0+")


def canon(v) -> str | None:
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


class Table:
    """The metrics table with cached canonical-string views of its columns."""

    def __init__(self, df: pd.DataFrame, _canon: dict[str, pd.Series] | None = None):
        self.df = df if _canon is not None else df.reset_index(drop=True)
        self._canon: dict[str, pd.Series] = _canon or {}

    def canon(self, col: str) -> pd.Series:
        if col not in self._canon:
            self._canon[col] = self.df[col].map(canon).astype(object)
        return self._canon[col]

    def has(self, col: str) -> bool:
        return col in self.df.columns

    def without(self, column: str, value: str) -> Table:
        """The table less the rows whose ``column`` is ``value`` (cached views kept)."""
        if not self.has(column):
            return self
        keep = self.canon(column).ne(value)
        views = {c: v.loc[keep] for c, v in self._canon.items()}
        return Table(self.df.loc[keep], views)


def pool_replicates(df: pd.DataFrame) -> pd.DataFrame:
    """Seed replicates of one design cell become one unit: ``model`` (and ``model_b``) := cell.

    :func:`select` then averages the replicates' values, so seed noise shrinks the unit's
    error instead of posing as more encoders (two seeds of one recipe are not two samples of
    the recipe population). Pairs of two replicates of one cell compare seeds, not encoders:
    they are dropped. Tables without ``cell`` pass unchanged.
    """
    if "cell" not in df.columns or "model" not in df.columns:
        return df
    cell = df["cell"].where(df["cell"].notna() & df["cell"].ne(""), df["model"])
    out = df.assign(model=cell)
    if "model_b" in df.columns and "cell_b" in df.columns:
        out["model_b"] = df["cell_b"].where(df["cell_b"].notna(), df["model_b"])
        out = out.loc[~(out["model"].eq(out["model_b"]) & df["model"].ne(df["model_b"]))]
    return out


def _template_fields(text: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


def mask(table: Table, col: str, cond) -> pd.Series:
    if isinstance(cond, Mapping):
        if "not" in cond:
            return ~mask(table, col, cond["not"])
        values = pd.to_numeric(table.df[col], errors="coerce")
        m = values.notna()
        if "min" in cond:
            m &= values >= cond["min"]
        if "max" in cond:
            m &= values <= cond["max"]
        return m
    values = table.canon(col)
    m = pd.Series(False, index=table.df.index)
    for v in cond if isinstance(cond, list) else [cond]:
        if v is None:
            m |= values.isna()
        elif isinstance(v, str) and _template_fields(v):
            fields = _template_fields(v)
            parts = {f: table.canon(f) for f in fields}
            expected = [
                None
                if any(parts[f].iat[i] is None for f in fields)
                else v.format(**{f: parts[f].iat[i] for f in fields})
                for i in range(len(table.df))
            ]
            m |= values.eq(pd.Series(expected, index=values.index, dtype=object)) & values.notna()
        else:
            m |= values.eq(canon(v))
    return m.fillna(False).astype(bool)


def _columns_in(sel: Mapping) -> set[str]:
    cols = {k for k in sel if k not in _RESERVED}
    for cond in sel.values():
        for v in cond if isinstance(cond, list) else [cond]:
            if isinstance(v, str):
                cols |= set(_template_fields(v))
    return cols


class NoData(Exception):
    """A selection is empty; the message says why (never a crash for the caller)."""


def _diagnose(table: Table, filters: Mapping, query: str | None) -> str:
    if "metric" in filters and not isinstance(filters["metric"], Mapping):
        wanted = filters["metric"] if isinstance(filters["metric"], list) else [filters["metric"]]
        present = set(table.canon("metric").dropna())
        if not any(canon(w) in present for w in wanted):
            return (
                f"metric {', '.join(map(str, wanted))} absent from the metrics table "
                "(not computed in this config)"
            )
    m = pd.Series(True, index=table.df.index)
    for col, cond in filters.items():
        m &= mask(table, col, cond)
        if not m.any():
            return f"no rows left after filter {col}={cond!r} (applied after the filters before it)"
    if query:
        return f"no rows left after query {query!r}"
    return "every selected value is NaN or has a missing key"


def select(
    table: Table,
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
    Raises :class:`NoData` with the reason if nothing is selected.
    """
    filters = {k: v for k, v in sel.items() if k not in _RESERVED}
    query = sel.get("query")
    agg = sel.get("agg", "mean")
    needed = _columns_in(sel) | set(keys) | set(family_by) | {"value"}
    missing = sorted(c for c in needed if not table.has(c))
    if missing and "metric" in filters and table.has("metric"):
        reason = _diagnose(table, {"metric": filters["metric"]}, None)
        if "absent" in reason:  # the more useful message: the metric itself is not there
            raise NoData(f"{what}: {reason}")
    if missing:
        raise NoData(f"{what}: column(s) {missing} absent from the metrics table")
    m = pd.Series(True, index=table.df.index)
    for col, cond in filters.items():
        m &= mask(table, col, cond)
    df = table.df.loc[m]
    if query and not df.empty:
        try:
            df = df.query(query, engine="python")
        except Exception as err:  # a bad expression names itself; keep the reason
            raise NoData(f"{what}: query {query!r} failed: {err}") from None
    keys = [*keys, *optional_keys]
    out = pd.DataFrame({c: table.canon(c).loc[df.index] for c in [*keys, *family_by]})
    for c in [*family_by, *optional_keys]:  # e.g. no variant: the empty label
        out[c] = out[c].fillna("")
    out["value"] = pd.to_numeric(df["value"], errors="coerce").astype(np.float64)
    for c in carry:
        out[c] = df[c] if table.has(c) else np.nan
    out = out.dropna(subset=[*keys, *family_by, "value"])
    if out.empty:
        raise NoData(f"{what}: {_diagnose(table, filters, query)}")
    group = [*keys, *family_by]
    grouped = out.groupby(group, sort=True, dropna=False)
    res = grouped["value"].agg(agg).to_frame("value")
    res["n_rows"] = grouped["value"].size()
    for c in carry:
        res[c] = grouped[c].first()
    return res.reset_index()


def merged(common: Mapping | None, sel: Mapping) -> dict:
    return {**(common or {}), **sel}


def member_label(row: Mapping, family_by: Sequence[str]) -> str:
    parts = [f"{c}={row[c]}" for c in family_by if row[c] != ""]
    return ", ".join(parts) if parts else "all"


# ----------------------------------------------------------------------------- tests
