from pathlib import Path

import yaml
from _common import start

from repaudit.claims import load_claims, replication_table
from repaudit.io import read_table, write_table

log = start(snakemake)
p = snakemake.params
claims = load_claims(yaml.safe_load(Path(snakemake.input.registry).read_text()), p.variables)
details = {Path(path).stem: read_table(path) for path in snakemake.input.details}
table = replication_table(
    read_table(snakemake.input.summary),
    claims,
    read_table(snakemake.input.metrics),
    details,
    alpha=p.alpha,
)
for row in table.itertuples():
    log.info("%s: %s (%s)", row.claim, row.verdict, row.why)
write_table(table, snakemake.output[0])
