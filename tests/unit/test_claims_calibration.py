"""Calibration of the claims engine on simulated metrics tables where the truth is known.

For each test kind the registry uses, tables in the metrics-table format are simulated under
(a) no effect, (b) an effect shared only through a design factor (the architecture, or for
classes and encoder pairs the shared class / encoder), and (c) a true within-factor effect.
A confident verdict that asserts the effect must occur at a rate ≤ α + 3 Monte-Carlo SE under
(a) and (b), and at a rate ≥ 0.8 under (c). The zoo is 3 architectures × 4 objectives × 2
seeds (24 encoders, the replicated default design); the registry claims are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from repaudit import claims as C

REGISTRY = Path(__file__).resolve().parents[2] / "config" / "claims.yaml"
ALPHA = 0.05
N_SIM = 120
LIMIT = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / N_SIM)  # 0.110
ARCHS = ["resnet", "convnext", "vit"]
OBJECTIVES = ["supervised", "simclr", "vicreg", "simclr_w2"]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def registry():
    claims = C.load_claims(yaml.safe_load(REGISTRY.read_text()), {"n_perm": 199, "n_boot": 200})
    return {c.id: c for c in claims}


def _zoo():
    return [
        {
            "model": f"{a}_{o}_s{s}",
            "architecture": a,
            "input_size": 32,
            "objective": o,
            "family": "cnn",
            "seed": s,
        }
        for a in ARCHS
        for o in OBJECTIVES
        for s in SEEDS
    ]


def _arch_effect(scale: float) -> dict[str, float]:
    """Architecture effects that sum to zero (the zoo's mean is the estimand)."""
    return dict(zip(ARCHS, (scale, -scale, 0.0), strict=True))


BASE = {"stage": "pretrained", "layer": "final", "variant": ""}


def _correlation(rng, scenario):
    """C2: JER vs binding. (b) both shift by architecture; (c) r ≈ 0.75 within architecture."""
    shift = {a: rng.normal(0, 3) for a in ARCHS} if scenario != "a" else dict.fromkeys(ARCHS, 0)
    rows = []
    for m in _zoo():
        x = shift[m["architecture"]] + rng.normal()
        y = (
            shift[m["architecture"]]
            + (1.1 * (x - shift[m["architecture"]]) if scenario == "c" else 0)
            + rng.normal()
        )
        rows += [
            {
                **m,
                **BASE,
                "dataset": "digits",
                "metric": "jacobian_effective_rank",
                "variant": "images",
                "value": x,
            },
            {
                **m,
                **BASE,
                "dataset": "binding",
                "metric": "binding_knn_accuracy",
                "variant": "cosine_ood",
                "value": y,
            },
            {**m, **BASE, "dataset": "digits", "metric": "global_isotropy", "value": x},
        ]
    return pd.DataFrame(rows)


def _group(rng, scenario):
    """C2c: VICReg vs others. (b) VICReg sits mostly in the best-binding architecture."""
    arch = _arch_effect(2.0 if scenario != "a" else 0.0)
    rows = []
    for m in _zoo():
        obj = m["objective"]
        if scenario == "b":  # an unbalanced zoo: objective labels follow the architecture
            obj = "vicreg" if (m["architecture"] == "resnet") != (obj == "simclr") else "simclr"
        y = arch[m["architecture"]] + (2.0 if scenario == "c" and obj == "vicreg" else 0)
        rows.append(
            {
                **m,
                **BASE,
                "objective": obj,
                "dataset": "binding",
                "metric": "binding_knn_accuracy",
                "variant": "cosine_ood",
                "value": y + rng.normal(),
            }
        )
    return pd.DataFrame(rows)


def _paired(rng, scenario):
    """C5c: fine-tuned − pretrained convexity. (b) architecture-specific changes, mean 0."""
    arch = _arch_effect(3.0 if scenario == "b" else 0.0)
    rows = []
    for m in _zoo():
        pre = 30 + rng.normal(0, 5)
        post = pre + arch[m["architecture"]] + (1.5 if scenario == "c" else 0) + rng.normal(0, 2)
        meta = {
            **m,
            "dataset": "digits",
            "layer": "final",
            "class": "all",
            "metric": "graph_convexity",
        }
        rows += [
            {**meta, "stage": "pretrained", "value": pre},
            {**meta, "stage": "finetuned_digits", "value": post},
        ]
    return pd.DataFrame(rows)


def _trend(rng, scenario):
    """C5b: convexity vs depth. Layers share a per-encoder wobble; (b) slopes by architecture."""
    arch = _arch_effect(15.0 if scenario == "b" else 0.0)
    rows = []
    for m in _zoo():
        slope = arch[m["architecture"]] + (6.0 if scenario == "c" else 0) + rng.normal(0, 8)
        level = rng.normal(30, 5)
        for li in range(6):
            depth = li / 5
            rows.append(
                {
                    **m,
                    "dataset": "digits",
                    "stage": "pretrained",
                    "layer": str(li),
                    "depth": depth,
                    "class": "all",
                    "metric": "graph_convexity",
                    "value": level + slope * depth + rng.normal(0, 3),
                }
            )
    return pd.DataFrame(rows)


def _nested(rng, scenario):
    """C6b: class convexity vs class recall. (b) classes easy for every encoder on both axes."""
    classes = range(10)
    easy = {k: rng.normal(0, 10) if scenario == "b" else 0.0 for k in classes}
    rows = []
    for m in _zoo():
        model_eff = rng.normal(0, 5)
        for k in classes:
            conv = 30 + model_eff + easy[k] + rng.normal(0, 5)
            own = conv - 30 - model_eff - easy[k]
            recall = 0.8 + 0.01 * easy[k] + (0.004 * own if scenario == "c" else 0)
            meta = {**m, "dataset": "digits", "layer": "final", "class": str(k)}
            rows += [
                {**meta, "stage": "pretrained", "metric": "graph_convexity", "value": conv},
                {
                    **meta,
                    "stage": "finetuned_digits",
                    "metric": "finetune_class_recall",
                    "value": recall + rng.normal(0, 0.03),
                },
            ]
    return pd.DataFrame(rows)


def _dyadic(rng, scenario):
    """C3b: stitched F1 − chance over encoder pairs. (b) strong encoder effects, mean 0."""
    models = _zoo()[::2]  # 12 encoders, 132 ordered pairs
    scale = 6.0 if scenario == "b" else 0.0
    dec = {m["model"]: rng.normal(0, scale) for m in models}
    enc = {m["model"]: rng.normal(0, scale) for m in models}
    centre = np.mean(list(dec.values())) + np.mean(list(enc.values()))  # null holds in-sample
    rows = [
        {
            **m,
            "dataset": "digits",
            "layer": "final",
            "stage": "pretrained",
            "metric": "probe_class_recall",
            "class": str(k),
            "value": 0.9,
        }
        for m in models[:1]
        for k in range(10)
    ]
    for a in models:
        for b in models:
            if a is b:
                continue
            value = 10 + dec[a["model"]] + enc[b["model"]] - centre + rng.normal(0, 2)
            value += 3.0 if scenario == "c" else 0.0
            rows.append(
                {
                    **a,
                    "model_b": b["model"],
                    "dataset": "digits",
                    "layer": "final",
                    "stage": "pretrained",
                    "metric": "stitching_f1",
                    "variant": "relative",
                    "value": value,
                }
            )
    return pd.DataFrame(rows)


# (simulator, claim, verdict that asserts the effect)
KINDS = {
    "correlation": (_correlation, "C2", "supported"),
    "near_zero": (_correlation, "C1", "not supported"),
    "group_difference": (_group, "C2c", "supported"),
    "paired_difference": (_paired, "C5c", "supported"),
    "trend": (_trend, "C5b", "supported"),
    "nested_slope": (_nested, "C6b", "supported"),
    "dyadic_threshold": (_dyadic, "C3b", "supported"),
}


def confident_rate(registry, kind: str, scenario: str, n_sim: int = N_SIM, seed: int = 0):
    simulate, cid, asserting = KINDS[kind]
    claim = registry[cid]
    if kind == "dyadic_threshold":  # min_effect 10 points; the simulation plants 3
        claim = C.Claim(**{**claim.__dict__, "rule": C.Rule("direction", "t", expect="positive")})
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(n_sim):
        table = simulate(rng, scenario)
        _, summary = C.evaluate_claims(table, [claim], alpha=ALPHA, seed=i, fragility=False)
        assert summary.iloc[0]["verdict"] != "no data", summary.iloc[0]["note"]
        hits += summary.iloc[0]["verdict"] == asserting
    return hits / n_sim


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("scenario", ["a", "b"])
def test_no_effect_and_design_shared_effect_are_calibrated(registry, kind, scenario):
    assert confident_rate(registry, kind, scenario) <= LIMIT


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_true_within_factor_effect_is_found(registry, kind):
    assert confident_rate(registry, kind, "c", n_sim=60) >= 0.8
