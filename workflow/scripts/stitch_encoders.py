from _common import start

from repaudit.io import read_stage_features, write_table
from repaudit.metrics.relative import stitching_table
from repaudit.tables import with_keys

log = start(snakemake)
rel, wc = snakemake.params.relative, snakemake.wildcards
features, labels, split = read_stage_features(
    snakemake.input, snakemake.params.models, rel["layers"]
)
table = stitching_table(
    features,
    labels,
    split,
    layers=rel["layers"],
    n_anchors=rel["n_anchors"],
    anchor_method=rel["anchor_method"],
    center=rel["center"],
    seed=snakemake.params.seed,
    **snakemake.params.stitching,
)
log.info("%d rows over %d models", len(table), len(features))
write_table(with_keys(table, dataset=wc.dataset, stage=wc.stage), snakemake.output[0])
