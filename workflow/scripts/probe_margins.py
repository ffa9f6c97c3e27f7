from _common import start

from repaudit.io import read_table, write_table
from repaudit.stats import probe_margin_table
from repaudit.tables import paired_correct

log = start(snakemake)
params = snakemake.params
predictions = {m: read_table(p) for m, p in zip(params.models, snakemake.input, strict=True)}
table = probe_margin_table(paired_correct(predictions), params.controls, alpha=params.alpha)
log.info("clear margins: %d of %d\n%s", table["clear"].sum(), len(table), table.to_string())
write_table(table.assign(dataset=snakemake.wildcards.dataset), snakemake.output[0])
