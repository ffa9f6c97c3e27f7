"""Names of the pretraining objectives, in one torch-free place.

``repaudit.config`` (which must not import torch) checks the ``objective`` column of zoo models
against these names, and ``repaudit.models.objectives`` builds the objectives they name.
"""

from __future__ import annotations

__all__ = ["OBJECTIVES", "OBJECTIVE_ALIASES", "canonical_objective"]

#: Objective names accepted by ``objectives.build_objective`` and ``training.pretrain``.
OBJECTIVES = (
    "random",
    "supervised",
    "simclr",
    "simclr_w2",
    "moco_v2",
    "moco_v2_w2",
    "byol",
    "byol_w2",
    "barlow_twins",
    "vicreg",
)
#: Accepted short names (config/models.tsv uses ``barlow``).
OBJECTIVE_ALIASES = {"barlow": "barlow_twins"}


def canonical_objective(name: str) -> str:
    """The name in :data:`OBJECTIVES` for ``name`` or one of its aliases; ValueError otherwise."""
    name = OBJECTIVE_ALIASES.get(name, name)
    if name not in OBJECTIVES:
        valid = OBJECTIVES + tuple(OBJECTIVE_ALIASES)
        raise ValueError(f"unknown objective {name!r}; choose one of {valid}")
    return name
