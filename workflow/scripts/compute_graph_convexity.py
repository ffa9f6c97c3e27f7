from _common import start

from repaudit.io import read_features, write_table
from repaudit.metrics.convexity import convexity_table
from repaudit.tables import select_samples, subset, with_keys

log = start(snakemake)
p, wc, seed = dict(snakemake.params.convexity), snakemake.wildcards, snakemake.params.seed
fs = read_features(snakemake.input[0])
idx = select_samples(fs.labels, fs.split, p["split"], p["max_samples"], seed)
table = convexity_table(
    subset(fs.features, idx),
    fs.labels[idx],
    k=p["k"],
    max_paths=p["max_paths"],
    n_permutations=p["n_permutations"],
    seed=seed,
    knn=p.get("knn", "exact"),
)
log.info(
    "layer scores: %s",
    table.query("metric == 'graph_convexity' and `class` == 'all'")[["layer", "value"]].to_dict(
        "records"
    ),
)
write_table(
    with_keys(table, dataset=wc.dataset, model=wc.model, stage=wc.stage, split=p["split"]),
    snakemake.output[0],
)
