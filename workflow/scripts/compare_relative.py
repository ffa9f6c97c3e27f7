from _common import start

from repaudit.io import read_features, write_table
from repaudit.metrics.relative import relative_table
from repaudit.tables import with_keys

log = start(snakemake)
p, wc = dict(snakemake.params.relative), snakemake.wildcards
sets = {
    m: read_features(path, layers=p["layers"])
    for m, path in zip(snakemake.params.models, snakemake.input, strict=True)
}
first = next(iter(sets.values()))
table = relative_table(
    {m: fs.features for m, fs in sets.items()},
    first.labels,
    first.split,
    layers=p["layers"],
    n_anchors=p["n_anchors"],
    anchor_method=p["anchor_method"],
    center=p["center"],
    k=p["k"],
    mutual_k=p["mutual_k"],
    seed=snakemake.params.seed,
)
log.info("%d rows over %d models", len(table), len(sets))
write_table(with_keys(table, dataset=wc.dataset, stage=wc.stage), snakemake.output[0])
