from _common import start

from repaudit.io import read_table, write_table
from repaudit.stats import probe_margin_table

log = start(snakemake)
params = snakemake.params
correct, ids = {}, None
for model, path in zip(params.models, snakemake.input, strict=True):
    predictions = read_table(path)
    if ids is None:
        ids = predictions["id"].tolist()
    elif predictions["id"].tolist() != ids:  # a paired test needs the same images in one order
        raise ValueError(f"{path}: test images differ from {snakemake.input[0]}")
    correct[model] = predictions["correct"].to_numpy(dtype=bool)
table = probe_margin_table(correct, params.controls, alpha=params.alpha)
log.info("clear margins: %d of %d\n%s", table["clear"].sum(), len(table), table.to_string())
write_table(table.assign(dataset=snakemake.wildcards.dataset), snakemake.output[0])
