from _common import start

from repaudit.io import read_features, write_table
from repaudit.metrics.geometry import geometry_table
from repaudit.tables import select_samples, subset, with_keys

log = start(snakemake)
p, wc = dict(snakemake.params.geometry), snakemake.wildcards
fs = read_features(snakemake.input[0])
idx = select_samples(
    fs.labels, fs.split, p.pop("split"), p.pop("max_samples"), snakemake.params.seed
)
p.pop("datasets"), p.pop("stages", None)
table = geometry_table(subset(fs.features, idx), seed=snakemake.params.seed, **p)
log.info("%d rows from %d samples", len(table), len(idx))
write_table(
    with_keys(table, dataset=wc.dataset, model=wc.model, stage=wc.stage), snakemake.output[0]
)
