from _common import device, model_spec, start

from repaudit.io import load_checkpoint, read_dataset, write_table
from repaudit.models.analyses import euclidean_convexity_table
from repaudit.models.factory import build_classifier, load_encoder
from repaudit.tables import select_samples, with_keys

log = start(snakemake)
p, wc, seed = dict(snakemake.params.euclidean), snakemake.wildcards, snakemake.params.seed
data = read_dataset(snakemake.input.data)
encoder, head = load_encoder(
    model_spec(snakemake),
    snakemake.input.weights or None,
    pooling=snakemake.params.pooling,
    seed=seed,
)
if wc.stage == "pretrained":  # the linear probe is the pretrained model's classifier
    head = load_checkpoint(snakemake.input.head)["head"]
idx = select_samples(data.labels, data.split, p["split"], p["max_samples"], seed)
table = euclidean_convexity_table(
    build_classifier(encoder, head),
    data.images[idx],
    data.labels[idx],
    layers=p["layers"],
    n_points=p["n_points"],
    max_pairs=p["max_pairs"],
    batch_size=p["batch_size"],
    seed=seed,
    device=device(snakemake.params.device),
)
log.info("%d rows", len(table))
write_table(
    with_keys(table, dataset=wc.dataset, model=wc.model, stage=wc.stage, split=p["split"]),
    snakemake.output[0],
)
