import pandas as pd
from _common import start

from repaudit.io import read_memberships, write_table
from repaudit.metrics.concepts import cross_model_gri
from repaudit.tables import with_keys

log = start(snakemake)
p, wc, seed = snakemake.params.concepts, snakemake.wildcards, snakemake.params.seed
layers = set(p["cross_model_layers"])
sets = {
    m: {
        method: {lay: r for lay, r in by_layer.items() if lay in layers}
        for method, by_layer in read_memberships(path).items()
    }
    for m, path in zip(snakemake.params.models, snakemake.input, strict=True)
}
frames = [
    with_keys(cross_model_gri(sets[a], sets[b], model_b=b, seed=seed), model=a)
    for a in sets
    for b in sets
]
table = pd.concat(frames, ignore_index=True)
log.info("%d cross-model GRI rows", len(table))
write_table(with_keys(table, dataset=wc.dataset, stage=wc.stage), snakemake.output[0])
