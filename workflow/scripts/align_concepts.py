from _common import start

from repaudit.io import read_memberships, write_table
from repaudit.metrics.concepts import cross_model_gri_table
from repaudit.tables import with_keys

log = start(snakemake)
p, wc = snakemake.params.concepts, snakemake.wildcards
memberships = {
    m: read_memberships(path)
    for m, path in zip(snakemake.params.models, snakemake.input, strict=True)
}
table = cross_model_gri_table(memberships, p["cross_model_layers"], seed=snakemake.params.seed)
log.info("%d cross-model GRI rows", len(table))
write_table(with_keys(table, dataset=wc.dataset, stage=wc.stage), snakemake.output[0])
