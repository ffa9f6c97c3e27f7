import pandas as pd
from _common import start

from repaudit.io import write_table

log = start(snakemake)
table = pd.DataFrame(
    snakemake.params.rows,
    columns=["dataset", "model", "stage", "analysis", "metrics", "reason"],
)
for row in table.itertuples():
    log.warning("%s/%s %s skips %s (%s): %s", *row[1:])
write_table(table, snakemake.output[0])
