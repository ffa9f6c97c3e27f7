from _common import start

from repaudit.data.embeddings import embeddings_feature_set, scan_embeddings
from repaudit.io import write_features

log = start(snakemake)
spec, wc = snakemake.params.spec, snakemake.wildcards
source = scan_embeddings(spec["root"], spec.get("format", "auto"))
feature_set = embeddings_feature_set(source, wc.model, dataset=wc.dataset)
for name, attrs in feature_set.layer_attrs.items():
    log.info("layer %s <- %s %s", name, attrs["source_name"], feature_set.features[name].shape)
write_features(snakemake.output[0], feature_set)
