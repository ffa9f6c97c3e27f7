from pathlib import Path

import yaml
from _common import start

from repaudit.claims import evaluate_claims, load_claims
from repaudit.io import read_table, write_table

log = start(snakemake)
p = snakemake.params.claims
claims = load_claims(yaml.safe_load(Path(snakemake.input.registry).read_text()), p["vars"])
details, summary = evaluate_claims(
    read_table(snakemake.input.metrics), claims, alpha=p["alpha"], seed=snakemake.params.seed
)
for row in summary.itertuples():
    log.info("%s: %s (estimate %.3g, n %d)", row.claim, row.verdict, row.estimate, row.n)
write_table(summary, snakemake.output.summary)
for path in snakemake.output.details:
    write_table(details[Path(path).stem], path)
