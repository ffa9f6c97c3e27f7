from _common import start

from repaudit.figures import make_figure
from repaudit.io import read_table, write_figure

log = start(snakemake)
fig = make_figure(
    snakemake.wildcards.figure,
    read_table(snakemake.input.metrics),
    read_table(snakemake.input.claims),
    snakemake.params.figure,
)
write_figure(fig, snakemake.output.svg, snakemake.output.png)
log.info("saved %s", snakemake.output.svg)
