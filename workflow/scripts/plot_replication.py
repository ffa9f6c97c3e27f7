from _common import start

from repaudit.io import read_table, write_figure
from repaudit.plots import replication_forest

log = start(snakemake)
fig = replication_forest(read_table(snakemake.input[0]))
write_figure(fig, snakemake.output.svg, snakemake.output.png)
log.info("saved %s", snakemake.output.svg)
