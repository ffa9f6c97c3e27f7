from _common import start

from repaudit.data.binding import swap_pairs_from_extras
from repaudit.io import read_dataset, read_features, write_table
from repaudit.metrics.binding import binding_table
from repaudit.tables import with_keys

log = start(snakemake)
p, wc = dict(snakemake.params.binding), snakemake.wildcards
data = read_dataset(snakemake.input.data, lazy=True)
fs = read_features(snakemake.input.features, layers=p["layers"])
if list(fs.ids) != list(data.ids):
    raise ValueError("features and dataset rows differ; re-run extract_features")
pairs, same = swap_pairs_from_extras(data.extras)
table = binding_table(
    fs.features,
    fs.labels,
    fs.split,
    layers=p["layers"],
    swap_pairs=pairs,
    swap_same=same,
    probe_mask=data.extras["role"] == "probe",
    c_grid=p["c_grid"],
    cv=p["cv"],
    knn_k=p["knn_k"],
    seed=snakemake.params.seed,
)
log.info("%s", table[["layer", "metric", "variant", "value"]].to_dict("records"))
write_table(
    with_keys(table, dataset=wc.dataset, model=wc.model, stage=wc.stage), snakemake.output[0]
)
