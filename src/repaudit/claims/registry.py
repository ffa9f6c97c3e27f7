"""The claims registry: parse ``config/claims.yaml`` into :class:`Claim` objects.

The registry is checked against ``registry.schema.yaml`` (beside this module) with the same
validator as the pipeline config, after ``$name`` variables are substituted, so a bad value
fails with one line naming where it is. :func:`config_vars` derives the dataset variables from a
pipeline config, so a config that analyses its own image folder gets its claims tested on that
folder without editing ``claims.vars``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repaudit.config import ConfigError, check_schema

SCHEMA = Path(__file__).with_name("registry.schema.yaml")
RULE_KINDS = ("direction", "near_zero", "negligible")
UNITS = ("model", "model pair", "architecture", "simulation")
_VAR = re.compile(r"\$(\w+)")


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
        Smallest effect of interest on the expected side (``direction``): support needs the
        estimate to reach it, and an upper (1 − 2α) bound below it is evidence against.
    threshold : float or None
        Equivalence bound δ (``near_zero``: |effect| < δ; ``negligible``: effect < δ).
    """

    kind: str
    text: str
    expect: str | None = None
    min_effect: float = 0.0
    threshold: float | None = None


@dataclass(frozen=True)
class Claim:
    """One paper claim: its independent unit, a generic test with parameters, a verdict rule."""

    id: str
    paper: str
    statement: str
    unit: str
    test: str
    params: dict[str, Any]
    rule: Rule
    notes: str = ""
    published: dict[str, Any] | None = None  # the original paper's number, for replication


def _substitute(obj, variables: Mapping[str, Any], where: str):
    """Replace ``$name`` by registry variables, recursively (a bare ``$name`` keeps the type)."""
    if isinstance(obj, Mapping):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise ConfigError(
                f"claims error: {where}: keys {bad} are not strings (YAML 1.1 reads on/off/yes/no "
                "as booleans); quote them."
            )
        return {k: _substitute(v, variables, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, variables, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, str):
        bare = _VAR.fullmatch(obj)
        name = bare.group(1) if bare else None
        try:
            if bare:
                return variables[name]
            return string.Template(obj).substitute(variables)
        except KeyError as err:
            raise ConfigError(
                f"claims error: {where}: unknown variable ${err.args[0]}; define it in vars."
            ) from None
    return obj


def load_claims(spec: Mapping, variables: Mapping[str, Any] | None = None) -> list[Claim]:
    """Parse and validate a claims registry (the mapping loaded from ``config/claims.yaml``).

    Parameters
    ----------
    spec : mapping
        ``{"vars": {...}, "claims": [{id, paper, statement, unit, test, params, rule,
        [notes]}, ...]}``.
    variables : mapping, optional
        Overrides for ``vars`` (e.g. the datasets of a pipeline config, smaller ``n_boot``).

    Raises
    ------
    repaudit.config.ConfigError
        (a ValueError) with one line: schema violations, undefined ``$variables``, duplicate
        ids.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError("claims error: the registry must be a mapping with a 'claims' list.")
    env = dict(spec.get("vars") or {})
    env.update(variables or {})
    resolved = dict(spec)
    if isinstance(spec.get("claims"), list):
        resolved["claims"] = [
            {**raw, "params": _substitute(raw["params"], env, f"claims[{i}].params")}
            if isinstance(raw, Mapping) and isinstance(raw.get("params"), Mapping)
            else raw
            for i, raw in enumerate(spec["claims"])
        ]
    check_schema(resolved, SCHEMA, what="claims")
    claims, seen = [], set()
    for raw in resolved["claims"]:
        if raw["id"] in seen:
            raise ConfigError(f"claims error: duplicate claim id {raw['id']!r}.")
        seen.add(raw["id"])
        rule = raw["rule"]
        claims.append(
            Claim(
                id=raw["id"],
                paper=raw["paper"].strip(),
                statement=" ".join(raw["statement"].split()),
                unit=raw["unit"],
                test=raw["test"],
                params=dict(raw["params"]),
                rule=Rule(
                    kind=rule["kind"],
                    text=" ".join(rule["text"].split()),
                    expect=rule.get("expect"),
                    min_effect=float(rule.get("min_effect", 0.0)),
                    threshold=None if rule.get("threshold") is None else float(rule["threshold"]),
                ),
                notes=" ".join(raw.get("notes", "").split()),
                published=raw.get("published"),
            )
        )
    return claims


def _first(section: Mapping | None) -> str | None:
    datasets = (section or {}).get("datasets") or []
    return str(datasets[0]) if datasets else None


def config_vars(config: Mapping) -> dict[str, str]:
    """The registry's dataset variables as a pipeline config analyses them.

    ``natural_dataset`` is the first dataset of the geometry, convexity, relative or
    fine-tuning sections (in that order of preference), ``sensitivity_dataset`` the first of
    ``sensitivity.datasets``, ``binding_dataset`` the first of ``binding.datasets``. Keys a
    config does not define are left out, so the registry's own defaults apply; the config's
    ``claims.vars`` override all of these.
    """
    out: dict[str, str] = {}
    for section in ("geometry", "convexity", "relative", "finetune"):
        name = _first(config.get(section))
        if name:
            out["natural_dataset"] = name
            break
    for var, section in (("sensitivity_dataset", "sensitivity"), ("binding_dataset", "binding")):
        name = _first(config.get(section))
        if name:
            out[var] = name
    return out
