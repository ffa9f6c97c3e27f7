from _common import start

from repaudit.io import write_table
from repaudit.metrics.uniformity import collapse_study
from repaudit.tables import with_keys

log = start(snakemake)
study = collapse_study(seed=snakemake.params.seed, **snakemake.params.study)
log.info("%d rows", len(study))
study = study.assign(layer="none", variant="")
write_table(with_keys(study, dataset="synthetic", model="none", stage="none"), snakemake.output[0])
