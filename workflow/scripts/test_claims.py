from pathlib import Path

import yaml
from _common import start

from repaudit.claims import evaluate_claims, load_claims, no_data_warning
from repaudit.io import read_table, write_table

log = start(snakemake)
p = snakemake.params
claims = load_claims(yaml.safe_load(Path(snakemake.input.registry).read_text()), p.variables)
details, summary = evaluate_claims(
    read_table(snakemake.input.metrics),
    claims,
    alpha=p.alpha,
    seed=p.seed,
    reliability=read_table(snakemake.input.reliability),
)
for row in summary.itertuples():
    log.info(
        "%s: %s (estimate %.3g, n_units %d)", row.claim, row.verdict, row.estimate, row.n_units
    )
if warning := no_data_warning(summary):
    log.warning(warning)
write_table(summary, snakemake.output.summary)
for path in snakemake.output.details:
    write_table(details[Path(path).stem], path)
