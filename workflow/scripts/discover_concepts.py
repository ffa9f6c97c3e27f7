from _common import start

from repaudit.io import read_features, write_memberships, write_table
from repaudit.metrics.concepts import sampled_concepts_table
from repaudit.tables import with_keys

log = start(snakemake)
wc, seed = snakemake.wildcards, snakemake.params.seed
fs = read_features(snakemake.input[0])
table, memberships = sampled_concepts_table(
    fs.features, fs.labels, fs.split, params=snakemake.params.concepts, seed=seed
)
for method, layers in memberships.items():
    for layer, result in layers.items():
        log.info(
            "%s layer %s: %d concepts, noise %.2f, %.1f s",
            method,
            layer,
            result.n_concepts,
            result.noise_ratio,
            result.seconds,
        )
write_memberships(snakemake.output.memberships, memberships)
write_table(
    with_keys(table, dataset=wc.dataset, model=wc.model, stage=wc.stage), snakemake.output.table
)
