"""Claims engine: each paper claim is a named hypothesis tested on the long metrics table.

A claim (``config/claims.yaml``) names its independent unit (an encoder, a pair of encoders,
an architecture or a simulation), a generic test, the data it needs as selectors, and a
verdict rule stated in words and as parameters. :func:`evaluate_claims` runs every claim and
returns per-claim details plus a summary with the effect, its interval, p, ``n_units`` and
``n_obs``, the minimum detectable effect, a jackknife fragility flag and a verdict:
``supported``, ``not supported``, ``underpowered`` or ``no data``.

Modules: :mod:`~repaudit.claims.registry` (parsing, schema, variables from a config),
:mod:`~repaudit.claims.selectors` (filters on the table), :mod:`~repaudit.claims.procedures`
(the tests; statistics in :mod:`repaudit.stats`), :mod:`~repaudit.claims.verdicts` (rules,
fragility, evaluation), :mod:`~repaudit.claims.replication` (our estimate beside the paper's).
"""

from repaudit.claims.procedures import TESTS
from repaudit.claims.registry import RULE_KINDS, UNITS, Claim, Rule, config_vars, load_claims
from repaudit.claims.replication import REPLICATION_VERDICTS, replication_table
from repaudit.claims.verdicts import (
    SUMMARY_COLUMNS,
    VERDICTS,
    evaluate_claims,
    member_verdict,
    no_data_warning,
)

__all__ = [
    "REPLICATION_VERDICTS",
    "RULE_KINDS",
    "SUMMARY_COLUMNS",
    "TESTS",
    "UNITS",
    "VERDICTS",
    "Claim",
    "Rule",
    "config_vars",
    "evaluate_claims",
    "load_claims",
    "member_verdict",
    "no_data_warning",
    "replication_table",
]
