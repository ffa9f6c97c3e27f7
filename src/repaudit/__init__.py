"""repaudit: auditable reproduction of representation-analysis research on vision encoders.

The library holds pure functions (no Snakemake import, no file I/O outside :mod:`repaudit.io`).
Workflow scripts in ``workflow/scripts`` read inputs through :mod:`repaudit.io`, call one library
function and write its result.
"""

__version__ = "0.1.0"
