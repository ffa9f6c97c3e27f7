"""repaudit: auditable reproduction of representation-analysis research on vision encoders.

The library holds pure functions (no Snakemake import, no file I/O outside :mod:`repaudit.io`).
Workflow scripts in ``workflow/scripts`` read inputs through :mod:`repaudit.io`, call one library
function and write its result.
"""

__version__ = "0.1.0"

import os

# numba compiles UMAP, NN-descent and HDBSCAN helpers for the host CPU by default, and UMAP's
# optimisation is chaotic: code for another instruction set (FMA, AVX-512) rounds differently
# and moves points between concepts (same data: 4 concepts with host code, 5 with generic code,
# measured here). Portable x86-64 code gives the same memberships on every such machine; it
# must be chosen before numba is first imported, so it is set here (a user's value wins).
os.environ.setdefault("NUMBA_CPU_NAME", "generic")
