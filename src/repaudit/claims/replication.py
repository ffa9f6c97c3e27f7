"""Replication verdicts: each claim's estimate beside the original paper's published number.

A claim's ``published`` entry in the registry carries the paper's estimate, its n (and what n
counts), its CI, p or standard error where reported, and the exact source. For each claim the
table states whether our estimate is

- ``consistent``: inside the 95 % prediction interval for a replication of the original at our
  number of units (Patil, Peng & Leek 2016), and not significantly smaller than d33;
- ``smaller than d33``: significantly smaller (one-sided, α) than the effect the original design
  had 33 % power to detect (Simonsohn 2015's small telescopes): the original's evidence could
  not have come from an effect as small as ours;
- ``inconsistent``: outside the prediction interval otherwise;
- ``cannot tell``: with why (no published number, no n or standard error to build an interval
  from, no data here).

Exact values (deterministic results such as W2 of a collapsed Gaussian) are compared within an
absolute tolerance stated with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from repaudit import stats
from repaudit.claims.procedures import raw_estimate
from repaudit.claims.registry import Claim
from repaudit.claims.selectors import NoData, Table, select

REPLICATION_VERDICTS = ("consistent", "inconsistent", "smaller than d33", "cannot tell")
COLUMNS = [
    "claim",
    "paper_value",
    "statistic",
    "paper_n",
    "paper_unit",
    "source",
    "our_value",
    "our_estimate",
    "our_n_units",
    "pi_low",
    "pi_high",
    "d33",
    "d33_p",
    "verdict",
    "why",
]


def _se_from_ci(low: float, high: float, confidence: float = 0.95) -> float:
    if not np.isfinite([low, high]).all():
        return np.nan
    return float((high - low) / (2 * sps.norm.ppf(0.5 + confidence / 2)))


def _paper_se(pub: Mapping) -> float:
    if pub.get("se") is not None:
        return float(pub["se"])
    if pub.get("ci"):
        return _se_from_ci(*map(float, pub["ci"]))
    return np.nan


def _verdict(ours: float, pi: tuple, d33: float, d33_p: float, alpha: float):
    if not np.isfinite(pi).all():
        return "cannot tell", "no n or standard error for a prediction interval"
    if np.isfinite(d33_p) and d33_p < alpha:
        return "smaller than d33", f"one-sided p = {d33_p:.2g} against d33 = {d33:.3g}"
    if pi[0] <= ours <= pi[1]:
        return "consistent", "inside the 95 % prediction interval"
    return "inconsistent", "outside the 95 % prediction interval"


def _our_row(claim: Claim, pub: Mapping, summary_row, details) -> Mapping | None:
    """The summary row, or the family member the paper's number is about (e.g. one metric)."""
    member = pub.get("member")
    if member is None or summary_row is None:
        return summary_row
    det = (details or {}).get(claim.id)
    if det is None or det.empty or member not in set(det["member"]):
        return None
    row = det[det["member"] == member].iloc[0].to_dict()
    return {**row, "n_units": row["n"], "raw_estimate": raw_estimate(row)}


def _claim_row(claim: Claim, pub: Mapping, summary_row: Mapping | None, alpha: float) -> dict:
    row = dict.fromkeys(COLUMNS, np.nan)
    row.update(
        claim=claim.id,
        paper_value=pub.get("value"),
        statistic=pub.get("statistic", ""),
        paper_n=pub.get("n"),
        paper_unit=pub.get("unit", ""),
        source=pub.get("source", ""),
    )
    if pub.get("value") is None:
        row.update(verdict="cannot tell", why=f"no published number: {pub.get('note', '')}")
        return row
    if summary_row is None or not np.isfinite(summary_row["estimate"]):
        what = f" for {pub['member']}" if pub.get("member") else ""
        row.update(verdict="cannot tell", why=f"no estimate{what} in this run")
        return row
    # The papers report uncontrolled cross-model figures: compare like with like.
    raw = summary_row.get("raw_estimate", np.nan)
    ours = float(raw) if raw is not None and np.isfinite(raw) else float(summary_row["estimate"])
    n_ours = int(summary_row["n_units"])
    statistic = pub.get("statistic", "other")
    value = float(pub["value"])
    kw = {
        "statistic": statistic,
        "n_original": pub.get("n"),
        "n_ours": n_ours,
        "se_original": _paper_se(pub),
        "se_ours": _se_from_ci(summary_row["ci_low"], summary_row["ci_high"], 1 - alpha),
    }
    if statistic == "exact_value":  # deterministic: a stated tolerance, no sampling model
        tol = float(pub["tolerance"])
        ok = abs(ours - value) <= tol
        row.update(
            our_value=ours,
            our_estimate=float(summary_row["estimate"]),
            our_n_units=n_ours,
            pi_low=value - tol,
            pi_high=value + tol,
            verdict="consistent" if ok else "inconsistent",
            why=f"|ours - paper| {'<=' if ok else '>'} {tol:g} ({pub['tolerance_reason']})",
        )
        return row
    pi = stats.replication_interval(value, ours, **kw, confidence=0.95)
    d33, d33_p = stats.small_telescopes(value, ours, **kw, alpha=alpha)
    if claim.rule.kind != "direction":  # an original "no effect" has no d33 to fall short of
        d33 = d33_p = np.nan
    verdict, why = _verdict(ours, pi, d33, d33_p, alpha)
    if pub.get("note"):
        why += f"; {pub['note']}"
    row.update(
        our_value=ours,
        our_estimate=float(summary_row["estimate"]),
        our_n_units=n_ours,
        pi_low=pi[0],
        pi_high=pi[1],
        d33=d33,
        d33_p=d33_p,
        verdict=verdict,
        why=why,
    )
    return row


def _exact_rows(claim: Claim, pub: Mapping, table: Table) -> list[dict]:
    """One row per published exact value, e.g. W2 of a collapsed Gaussian at a given eta."""
    rows = []
    for i, ex in enumerate(pub.get("exact_values") or []):
        try:  # the registry's own filters: "dim: 32" matches 32.0, eta compares canonically
            found = select(table, ex["where"], ["metric"], what="exact value")["value"]
        except NoData:
            found = pd.Series(dtype=np.float64)
        where = ", ".join(f"{k}={v}" for k, v in ex["where"].items())
        row = dict.fromkeys(COLUMNS, np.nan)
        row.update(
            claim=f"{claim.id}.{i + 1}",
            paper_value=float(ex["value"]),
            statistic="exact_value",
            paper_n=np.nan,
            paper_unit="",
            source=pub.get("source", ""),
        )
        if found.empty:
            row.update(verdict="cannot tell", why=f"no row with {where} in this run")
        else:
            ours = float(found.mean())
            tol = float(ex["tolerance"])
            ok = abs(ours - float(ex["value"])) <= tol
            row.update(
                our_value=ours,
                our_estimate=ours,
                our_n_units=1,
                pi_low=float(ex["value"]) - tol,
                pi_high=float(ex["value"]) + tol,
                verdict="consistent" if ok else "inconsistent",
                why=f"{where}: |ours - paper| {'<=' if ok else '>'} {tol:g} ({ex['reason']})",
            )
        rows.append(row)
    return rows


def replication_table(
    summary: pd.DataFrame,
    claims: Sequence[Claim],
    metrics: pd.DataFrame | None = None,
    details: Mapping[str, pd.DataFrame] | None = None,
    *,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per claim (and per published exact value): paper vs ours, and a verdict.

    Parameters
    ----------
    summary : the claims summary of :func:`repaudit.claims.evaluate_claims`.
    claims : the registry's claims, in order; each claim's ``published`` entry is the paper's
        number (a claim without one gets a ``cannot tell`` row that says so).
    metrics : the metrics table, for exact-value checks (optional).
    details : claim id -> per-member details, for a published number about one member of a
        family (``published.member``, e.g. one geometry metric of C1).
    alpha : level of the small-telescopes test.
    """
    by_id = {r["claim"]: r for r in summary.to_dict("records")}
    table = Table(metrics) if metrics is not None else None
    rows = []
    for claim in claims:
        pub = claim.published or {"value": None, "note": "none recorded in the registry"}
        ours = _our_row(claim, pub, by_id.get(claim.id), details)
        rows.append(_claim_row(claim, pub, ours, alpha))
        if table is not None:
            rows += _exact_rows(claim, pub, table)
    return pd.DataFrame(rows, columns=COLUMNS)
