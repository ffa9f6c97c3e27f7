import pandas as pd
from _common import device, model_spec, start

from repaudit.io import read_dataset, read_features, write_table
from repaudit.metrics.geometry import geometry_table
from repaudit.models.analyses import alignment_table
from repaudit.models.factory import load_encoder
from repaudit.tables import select_samples, subset, with_keys

log = start(snakemake)
params, wc, seed = snakemake.params, snakemake.wildcards, snakemake.params.seed
p = dict(params.geometry)
fs = read_features(snakemake.input.features)
idx = select_samples(fs.labels, fs.split, p.pop("split"), p.pop("max_samples"), seed)
geometry = geometry_table(subset(fs.features, idx), seed=seed, **p)
# Alignment needs positive pairs, i.e. the model on two augmented views of the same images.
encoder, _ = load_encoder(
    model_spec(snakemake), snakemake.input.weights or None, pooling=params.pooling, seed=seed
)
images = read_dataset(snakemake.input.data).images[idx]
aligned = alignment_table(encoder, images, seed=seed, device=device(params.device))
table = pd.concat([geometry, aligned], ignore_index=True)
log.info("%d rows from %d samples", len(table), len(idx))
write_table(
    with_keys(table, dataset=wc.dataset, model=wc.model, stage=wc.stage), snakemake.output[0]
)
