from _common import device, model_spec, start

from repaudit.io import FeatureSet, config_hash, library_versions, read_dataset, write_features
from repaudit.models.extract import extract_layer_features
from repaudit.models.factory import data_config, load_encoder, state_dict_sha256

log = start(snakemake)
spec, params = model_spec(snakemake), snakemake.params
data = read_dataset(snakemake.input.data)
encoder, _ = load_encoder(
    spec, snakemake.input.weights or None, pooling=params.features["pooling"], seed=params.seed
)
features = extract_layer_features(
    encoder, data.images, batch_size=params.features["batch_size"], device=device(params.device)
)
log.info("extracted %d layers for %d images", len(features), len(data.images))
n_blocks = encoder.n_layers
provenance = {
    "model_id": spec.model_id,
    "model_tag": spec.timm_name,
    "weights": spec.weights,
    "weights_sha256": state_dict_sha256(encoder.backbone),
    "stage": snakemake.wildcards.stage,
    "dataset": snakemake.wildcards.dataset,
    "seed": params.seed,
    "versions": library_versions(),
    "config_hash": config_hash({"features": params.features, "model": params.model}),
    "preprocessing": {
        "resize": "bilinear",
        "input_size": encoder.input_size,
        "mean": encoder.mean.flatten().tolist(),
        "std": encoder.std.flatten().tolist(),
        "timm_data_config": data_config(encoder.backbone),
    },
}
layer_attrs = {
    name: {
        "layer_index": i,
        "depth": i / n_blocks,
        "pooling": encoder.layer_pooling(i) if name != "final" else "pre_logits",
    }
    for i, name in enumerate(features)
}
write_features(
    snakemake.output[0],
    FeatureSet(features, data.labels, data.ids, data.split, provenance, layer_attrs),
)
