from pathlib import Path

import yaml
from _common import start

from repaudit.claims import load_claims
from repaudit.claims.reliability import reliability_table
from repaudit.io import read_table, write_table

log = start(snakemake)
p = snakemake.params
claims = load_claims(yaml.safe_load(Path(snakemake.input.registry).read_text()), p.variables)
table = reliability_table(read_table(snakemake.input.metrics), claims, min_icc=p.min_icc)
for row in table.itertuples():
    log.info(
        "%s/%s %s@%s: ICC %.2f, within architecture %.2f seed-blocked, %.2f unpaired"
        " (%d cells, %d replicates)",
        row.dataset,
        row.metric,
        row.variant,
        row.stage,
        row.icc,
        row.icc_within_architecture,
        row.icc_within_architecture_unpaired,
        row.n_cells,
        row.n_replicates,
    )
if table.empty:
    log.warning("no replicated encoders: set train_seeds to two or more seeds to measure noise")
write_table(table, snakemake.output[0])
