from _common import start

from repaudit.figures import make_figure
from repaudit.io import atomic_path, read_table

log = start(snakemake)
fig = make_figure(
    snakemake.wildcards.figure,
    read_table(snakemake.input.metrics),
    read_table(snakemake.input.claims),
    snakemake.params.figure,
)
for path, fmt in ((snakemake.output.svg, "svg"), (snakemake.output.png, "png")):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
log.info("saved %s", snakemake.output.svg)
