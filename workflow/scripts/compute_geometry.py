from _common import model_spec, start

from repaudit.io import read_dataset, read_features, write_table
from repaudit.models.analyses import geometry_alignment_table
from repaudit.models.device import resolve_device, runtime
from repaudit.models.factory import load_encoder
from repaudit.tables import with_keys

log = start(snakemake)
params, wc, seed = snakemake.params, snakemake.wildcards, snakemake.params.seed
device = resolve_device(params.device)
log.info("runtime %s", runtime(device))
fs = read_features(snakemake.input.features)
encoder = images = None  # embeddings models: no network, geometry without alignment
if snakemake.input.data:
    encoder, _ = load_encoder(
        model_spec(snakemake), snakemake.input.weights or None, pooling=params.pooling, seed=seed
    )
    images = read_dataset(snakemake.input.data, lazy=True).images
table = geometry_alignment_table(
    fs.features,
    fs.labels,
    fs.split,
    encoder,
    images,
    params=params.geometry,
    seed=seed,
    device=device,
)
log.info("%d rows", len(table))
write_table(
    with_keys(table, dataset=wc.dataset, model=wc.model, stage=wc.stage), snakemake.output[0]
)
