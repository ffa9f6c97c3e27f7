from _common import start

from repaudit.io import read_features, write_table
from repaudit.metrics.relative import stitching_table
from repaudit.tables import with_keys

log = start(snakemake)
rel, wc = snakemake.params.relative, snakemake.wildcards
p = {k: v for k, v in snakemake.params.stitching.items() if k not in ("datasets", "stages")}
sets = {
    m: read_features(path, layers=rel["layers"])
    for m, path in zip(snakemake.params.models, snakemake.input, strict=True)
}
first = next(iter(sets.values()))
table = stitching_table(
    {m: fs.features for m, fs in sets.items()},
    first.labels,
    first.split,
    layers=rel["layers"],
    n_anchors=rel["n_anchors"],
    anchor_method=rel["anchor_method"],
    center=rel["center"],
    seed=snakemake.params.seed,
    **p,
)
log.info("%d rows over %d models", len(table), len(sets))
write_table(with_keys(table, dataset=wc.dataset, stage=wc.stage), snakemake.output[0])
