from _common import start

from repaudit.io import read_table, write_figure
from repaudit.plots import reliability_dumbbell

log = start(snakemake)
fig = reliability_dumbbell(read_table(snakemake.input[0]), snakemake.params.min_icc)
write_figure(fig, snakemake.output.svg, snakemake.output.png)
log.info("saved %s", snakemake.output.svg)
