from _common import start

from repaudit.io import atomic_path, read_table
from repaudit.plots import reliability_dumbbell

log = start(snakemake)
fig = reliability_dumbbell(read_table(snakemake.input[0]), snakemake.params.min_icc)
for path, fmt in ((snakemake.output.svg, "svg"), (snakemake.output.png, "png")):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
log.info("saved %s", snakemake.output.svg)
