"""Verdicts: from a test's rows to `supported`, `not supported`, `underpowered` or `no data`.

Rules (α = the claims' alpha; "bounds" = the (1 − α) CI, "eq bounds" = the (1 − 2α) CI that
a two one-sided test (TOST; Schuirmann 1987, Lakens 2017) uses; p is Holm-adjusted over a
claim's family of members):

``direction`` (expect positive/negative, smallest effect of interest ``min_effect`` ≥ 0):
supported if p < α, the bounds exclude 0 on the expected side and the estimate reaches
``min_effect``; not supported if the effect is significant on the opposite side, or (with
``min_effect`` > 0) the eq bound on the expected side lies below ``min_effect`` (the effect
is shown to be smaller than the claim needs); underpowered otherwise.
``near_zero`` (bound δ): supported if the eq bounds lie inside (−δ, δ) for every member (an
intersection-union test: no multiplicity correction); not supported if any member has
|estimate| ≥ δ with p < α and bounds excluding 0; underpowered otherwise.
``negligible`` (bound δ, one-sided, e.g. a gain in R²): supported if the upper eq bound < δ;
not supported if the estimate ≥ δ with p < α; underpowered otherwise.

A claim is not supported if any member is, supported if every member is, and underpowered
otherwise; `no data` when its metrics are absent. Deterministic tests (one simulation, no
interval and no p) compare the estimate itself with the rule's bound.

Fragility is a leave-one-unit-out jackknife: the claim is evaluated again without each of its
units (an encoder with all its pairs, or an architecture) and is ``fragile`` when any single
unit changes the verdict (cf. the fragility index, Walsh et al. 2014).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from repaudit import stats
from repaudit.claims.procedures import TESTS, Outcome, raw_estimate
from repaudit.claims.registry import Claim, Rule
from repaudit.claims.reliability import flag_unreliable
from repaudit.claims.selectors import NoData, Table, pool_replicates

VERDICTS = ("supported", "not supported", "underpowered", "no data")
SUMMARY_COLUMNS = [
    "claim",
    "paper",
    "statement",
    "unit",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "n_units",
    "n_obs",
    "mde",
    "fragile",
    "verdict",
    "raw_estimate",
    "unreliable",
    "test",
    "rule",
    "note",
]
DETAIL_FIRST = [
    "member",
    "estimate",
    "ci_low",
    "ci_high",
    "eq_low",
    "eq_high",
    "p",
    "p_holm",
    "n",
    "n_obs",
    "mde",
    "verdict",
    "note",
]
# Which columns name a unit, for dropping it in the jackknife.
_UNIT_COLUMNS = {
    "model": ("model", "model_b"),
    "model pair": ("model", "model_b"),
    "architecture": ("architecture",),
    "simulation": (),
}


def _finite(*values) -> bool:
    return all(np.isfinite(v) for v in values)


def member_verdict(rule: Rule, row, alpha: float) -> str:
    """Verdict of one family member under ``rule`` (see the module docstring)."""
    est, p = row["estimate"], row["p_holm"]
    if not np.isfinite(est):
        return "underpowered"
    lo, hi = row["ci_low"], row["ci_high"]
    eq_lo, eq_hi = row.get("eq_low", np.nan), row.get("eq_high", np.nan)
    exact = not _finite(lo, hi) and not np.isfinite(p)  # a deterministic computation
    if exact:
        lo = hi = eq_lo = eq_hi = est
    # A bootstrap-only statistic (no p) is significant when its interval excludes 0.
    significant = exact or (p < alpha if np.isfinite(p) else (lo > 0 or hi < 0))
    if not _finite(eq_lo, eq_hi):
        eq_lo, eq_hi = lo, hi
    if rule.kind == "direction":
        s = 1.0 if rule.expect == "positive" else -1.0
        lo_s, hi_s = sorted((s * lo, s * hi))
        eq_hi_s = max(s * eq_lo, s * eq_hi)
        if exact:
            return "supported" if s * est > 0 and s * est >= rule.min_effect else "not supported"
        if significant and lo_s > 0 and s * est >= rule.min_effect:
            return "supported"
        if significant and hi_s < 0:
            return "not supported"
        if rule.min_effect > 0 and _finite(eq_hi_s) and eq_hi_s < rule.min_effect:
            return "not supported"
        return "underpowered"
    delta = rule.threshold
    if rule.kind == "near_zero":
        if _finite(eq_lo, eq_hi) and -delta < eq_lo and eq_hi < delta:
            return "supported"
        if significant and abs(est) >= delta and (lo > 0 or hi < 0 or exact):
            return "not supported"
        return "underpowered"
    if _finite(eq_hi) and eq_hi < delta:  # negligible
        return "supported"
    if significant and est >= delta:
        return "not supported"
    return "underpowered"


def _decisive(rule: Rule, det: pd.DataFrame, verdict: str) -> int:
    """Index of the member that decides (the weakest support or the strongest contradiction)."""
    cand = det[det["verdict"] == verdict]
    if np.isfinite(cand["estimate"]).any():
        cand = cand[np.isfinite(cand["estimate"])]
    if rule.kind == "direction":
        s = 1.0 if rule.expect == "positive" else -1.0
        pj = cand["p_holm"].fillna(0.0)
        key1 = pj if verdict == "not supported" else -pj
        order = cand.assign(_k1=key1, _k2=s * cand["estimate"]).sort_values(["_k1", "_k2"])
        return int(order.index[0])
    return int(cand["estimate"].abs().fillna(-1).sort_values(ascending=False).index[0])


def rule_summary(rule: Rule) -> str:
    if rule.kind == "direction":
        params = f"expect={rule.expect}, min_effect={rule.min_effect:g}"
    else:
        params = f"threshold={rule.threshold:g}"
    return f"{rule.kind} ({params}): {rule.text}"


def _run(table: Table, claim: Claim, alpha: float, seed: int) -> Outcome:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return TESTS[claim.test](table, claim.params, alpha=alpha, seed=seed)
    except NoData as err:
        return Outcome(note=f"no data: {err}")
    except (ValueError, np.linalg.LinAlgError) as err:
        return Outcome(note=f"test not run: {err}")


def _judge(claim: Claim, outcome: Outcome, alpha: float) -> tuple[pd.DataFrame, str, int | None]:
    """Member rows with Holm p and verdicts, the claim's verdict and its deciding member."""
    if not outcome.members:
        verdict = "no data" if outcome.note.startswith("no data") else "underpowered"
        return pd.DataFrame(columns=DETAIL_FIRST), verdict, None
    det = pd.DataFrame(outcome.members)
    for col in ("estimate", "ci_low", "ci_high", "p", "eq_low", "eq_high", "mde"):
        det[col] = pd.to_numeric(det[col], errors="coerce").astype(np.float64)
    det["p_holm"] = stats.holm(det["p"].to_numpy())
    det["verdict"] = [member_verdict(claim.rule, r, alpha) for r in det.to_dict("records")]
    if (det["verdict"] == "not supported").any():
        verdict = "not supported"
    elif (det["verdict"] == "supported").all():
        verdict = "supported"
    else:
        verdict = "underpowered"
    det = det[DETAIL_FIRST + [c for c in det.columns if c not in DETAIL_FIRST]]
    return det, verdict, _decisive(claim.rule, det, verdict)


def _jackknife(table: Table, claim: Claim, units: set[str], verdict: str, alpha, seed):
    """Units whose removal alone changes the verdict, with the verdict they leave."""
    columns = _UNIT_COLUMNS[claim.unit]
    flips = []
    for unit in sorted(units):
        reduced = table
        for col in columns:
            reduced = reduced.without(col, unit)
        if reduced is table:
            continue
        _, v, _ = _judge(claim, _run(reduced, claim, alpha, seed), alpha)
        if v != verdict:
            flips.append(f"{unit} -> {v}")
    return flips


def _evaluate_one(table: Table, claim: Claim, alpha: float, seed: int, fragility: bool):
    outcome = _run(table, claim, alpha, seed)
    det, verdict, i = _judge(claim, outcome, alpha)
    row = {
        "claim": claim.id,
        "paper": claim.paper,
        "statement": claim.statement,
        "unit": claim.unit,
        "test": claim.test,
        "rule": rule_summary(claim.rule),
        "verdict": verdict,
    }
    if i is None:
        nan = np.nan
        note = "; ".join(x for x in (outcome.note, claim.notes) if x)
        row.update(
            estimate=nan, ci_low=nan, ci_high=nan, p=nan, n_units=0, n_obs=0, mde=nan,
            fragile=False, raw_estimate=nan, note=note,
        )  # fmt: skip
        return det, row
    m = len(det)
    parts = []
    if m > 1:
        counts = ", ".join(
            f"{(det['verdict'] == v).sum()} {v}" for v in VERDICTS if (det["verdict"] == v).any()
        )
        parts += [f"decisive member: {det.at[i, 'member']}", f"{m} members ({counts}); Holm"]
    mde = float(det.at[i, "mde"])
    if not np.isfinite(mde) and claim.unit == "simulation":
        mde = claim.rule.threshold or claim.rule.min_effect
        parts.append("mde = the rule's tolerance (one deterministic simulation)")
    flips: list[str] = []
    if fragility and claim.unit != "simulation":
        flips = _jackknife(table, claim, outcome.units, verdict, alpha, seed)
        if flips:
            parts.append("fragile: without " + ", ".join(flips))
    elif claim.unit == "simulation":
        parts.append("one simulation: no unit to leave out")
    for extra in (det.at[i, "note"], outcome.note, claim.notes):
        if isinstance(extra, str) and extra:
            parts.append(extra)
    row.update(
        estimate=float(det.at[i, "estimate"]),
        ci_low=float(det.at[i, "ci_low"]),
        ci_high=float(det.at[i, "ci_high"]),
        p=float(det.at[i, "p_holm"]),
        n_units=int(det.at[i, "n"]),
        n_obs=int(det.at[i, "n_obs"]),
        mde=mde,
        fragile=bool(flips),
        raw_estimate=raw_estimate(det.loc[i]),
        note="; ".join(parts),
    )
    return det, row


def evaluate_claims(
    metrics: pd.DataFrame,
    claims: Sequence[Claim],
    *,
    alpha: float = 0.05,
    seed: int = 0,
    fragility: bool = True,
    reliability: pd.DataFrame | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Test every claim on the long metrics table.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The tidy table of ``collect_metrics`` (needs at least ``metric`` and ``value``).
    claims : sequence of Claim
        From :func:`repaudit.claims.load_claims`.
    alpha : float
        Significance level; intervals are (1 − alpha) CIs, equivalence bounds (1 − 2 alpha).
    seed : int
        Seed of every bootstrap and permutation (same seed, same table, same output).
    fragility : bool
        Run the leave-one-unit-out jackknife (``fragile``); off for quick simulations.
    reliability : DataFrame, optional
        :func:`repaudit.claims.reliability.reliability_table` of the same run: ``unreliable``
        then names the measures a claim uses that seeds blur within architecture.

    Returns
    -------
    details : dict claim id -> DataFrame
        One row per family member (columns ``DETAIL_FIRST`` then test-specific ones).
    summary : DataFrame
        One row per claim with :data:`SUMMARY_COLUMNS`: the deciding member's estimate, CI,
        Holm-adjusted p, ``n_units`` (independent units), ``n_obs`` (table rows), ``mde``
        (minimum detectable effect at 80 % power), ``fragile``, ``verdict``, the
        uncontrolled ``raw_estimate`` where the test controls design factors, the
        ``unreliable`` measures it uses, and a note. Seed replicates of one design cell are
        one unit (their mean; :func:`~repaudit.claims.selectors.pool_replicates`).
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5); got {alpha}.")
    missing = [c for c in ("metric", "value") if c not in metrics.columns]
    if missing:
        raise ValueError(f"the metrics table lacks columns {missing}; pass collect_metrics output.")
    table = Table(pool_replicates(metrics))
    details, rows = {}, []
    for claim in claims:
        det, row = _evaluate_one(table, claim, alpha, seed, fragility)
        details[claim.id] = det
        rows.append(row)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    summary[["n_units", "n_obs"]] = summary[["n_units", "n_obs"]].astype(int)
    summary["unreliable"] = "" if reliability is None else flag_unreliable(summary, reliability)
    return details, summary


def no_data_warning(summary: pd.DataFrame) -> str:
    """One line naming the claims without data and why, or "" when every claim has data."""
    empty = summary[summary["verdict"] == "no data"]
    if empty.empty:
        return ""
    reasons = "; ".join(
        f"{r.claim} ({r.note.removeprefix('no data: ')})" for r in empty.itertuples()
    )
    return f"{len(empty)} of {len(summary)} claims have no data in this config: {reasons}"
