from _common import model_spec, start

from repaudit.io import load_checkpoint, read_dataset, write_table
from repaudit.models.analyses import euclidean_convexity_on_split, stage_classifier
from repaudit.models.device import resolve_device, runtime
from repaudit.models.factory import load_encoder
from repaudit.tables import with_keys

log = start(snakemake)
p, wc, seed = snakemake.params.euclidean, snakemake.wildcards, snakemake.params.seed
device = resolve_device(snakemake.params.device)
log.info("runtime %s", runtime(device))
data = read_dataset(snakemake.input.data, lazy=True)
encoder, head = load_encoder(
    model_spec(snakemake),
    snakemake.input.weights or None,
    pooling=snakemake.params.pooling,
    seed=seed,
)
# the rule's input names the linear probe for the pretrained stage only
probe = load_checkpoint(snakemake.input.head)["head"] if snakemake.input.head else None
table = euclidean_convexity_on_split(
    stage_classifier(encoder, head, probe),
    data.images,
    data.labels,
    data.split,
    params=p,
    seed=seed,
    device=device,
)
log.info("%d rows", len(table))
write_table(
    with_keys(table, dataset=wc.dataset, model=wc.model, stage=wc.stage, split=p["split"]),
    snakemake.output[0],
)
