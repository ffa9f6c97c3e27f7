from _common import start

from repaudit.io import read_features, write_memberships, write_table
from repaudit.metrics.concepts import concepts_table
from repaudit.tables import select_samples, subset, with_keys

log = start(snakemake)
p, wc, seed = dict(snakemake.params.concepts), snakemake.wildcards, snakemake.params.seed
fs = read_features(snakemake.input[0])
idx = select_samples(fs.labels, fs.split, p.pop("split"), p.pop("max_samples"), seed)
table, memberships = concepts_table(subset(fs.features, idx), fs.labels[idx], seed=seed, **p)
for method, layers in memberships.items():
    for layer, result in layers.items():
        result.sample_index = idx[result.sample_index] if result.sample_index is not None else idx
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
