from _common import start

from repaudit.io import read_dataset, read_features, save_checkpoint, write_table
from repaudit.models.device import resolve_device, runtime
from repaudit.models.zoo import probe_stage

log = start(snakemake)
wc, params = snakemake.wildcards, snakemake.params
device = resolve_device(params.device)
log.info("runtime %s", {**runtime(device), "precision": "float64"})
fs = read_features(snakemake.input.features, layers=["final"])
class_names = read_dataset(snakemake.input.data, lazy=True).class_names
payload, table, predictions = probe_stage(
    fs.features,
    fs.labels,
    fs.ids,
    fs.split,
    class_names,
    dict(params.probe),
    seed=params.seed,
    device=device,
)
log.info("probe test accuracy %.4f", table["value"].iloc[0])
save_checkpoint(snakemake.output.probe, payload)
write_table(
    table.assign(dataset=wc.dataset, model=wc.model, stage="pretrained"), snakemake.output.metrics
)
write_table(predictions, snakemake.output.predictions)
