import pandas as pd
from _common import start

from repaudit.io import read_table, write_table
from repaudit.tables import collect_metrics

log = start(snakemake)
table = collect_metrics(
    (read_table(p) for p in snakemake.input), pd.DataFrame(snakemake.params.models)
)
log.info(
    "%d rows, %d metrics, %d models",
    len(table),
    table["metric"].nunique(),
    table["model"].nunique(),
)
write_table(table, snakemake.output[0])
