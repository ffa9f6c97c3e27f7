from _common import start

from repaudit.io import atomic_path, read_table
from repaudit.plots import replication_forest

log = start(snakemake)
fig = replication_forest(read_table(snakemake.input[0]))
for path, fmt in ((snakemake.output.svg, "svg"), (snakemake.output.png, "png")):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
log.info("saved %s", snakemake.output.svg)
