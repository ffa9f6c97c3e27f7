from _common import start

from repaudit.data.registry import build_dataset
from repaudit.io import write_dataset

log = start(snakemake)
data = build_dataset(dict(snakemake.params.spec), seed=snakemake.params.seed)
log.info(
    "%s: %d images %s, %d classes",
    snakemake.wildcards.dataset,
    len(data.images),
    data.images.shape[1:],
    len(data.class_names),
)
write_dataset(snakemake.output[0], data)
