from _common import start

from repaudit.io import read_stage_features, write_table
from repaudit.metrics.relative import relative_table
from repaudit.tables import with_keys

log = start(snakemake)
p, wc = dict(snakemake.params.relative), snakemake.wildcards
features, labels, split = read_stage_features(snakemake.input, snakemake.params.models, p["layers"])
table = relative_table(
    features,
    labels,
    split,
    layers=p["layers"],
    n_anchors=p["n_anchors"],
    anchor_method=p["anchor_method"],
    center=p["center"],
    k=p["k"],
    mutual_k=p["mutual_k"],
    seed=snakemake.params.seed,
)
log.info("%d rows over %d models", len(table), len(features))
write_table(with_keys(table, dataset=wc.dataset, stage=wc.stage), snakemake.output[0])
