from _common import model_spec, start

from repaudit.io import read_dataset, write_features
from repaudit.models.device import resolve_device, runtime
from repaudit.models.extract import extract_feature_set
from repaudit.models.factory import load_encoder

log = start(snakemake)
spec, params, wc = model_spec(snakemake), snakemake.params, snakemake.wildcards
data = read_dataset(snakemake.input.data, lazy=True)
device = resolve_device(params.device)
log.info("runtime %s", runtime(device, params.precision))
encoder, _ = load_encoder(
    spec, snakemake.input.weights or None, pooling=params.features["pooling"], seed=params.seed
)
feature_set = extract_feature_set(
    encoder,
    spec,
    data,
    features=params.features,
    model=params.model,
    stage=wc.stage,
    dataset=wc.dataset,
    seed=params.seed,
    device=device,
    precision=params.precision,
)
log.info("extracted %d layers for %d images", len(feature_set.features), len(data.images))
write_features(snakemake.output[0], feature_set)
