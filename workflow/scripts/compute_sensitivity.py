from _common import model_spec, start

from repaudit.io import read_dataset, write_table
from repaudit.metrics.sensitivity import sensitivity_table
from repaudit.models.device import precision_scope, resolve_device, runtime
from repaudit.models.extract import to_tensor
from repaudit.models.factory import load_encoder
from repaudit.tables import select_samples, with_keys

log = start(snakemake)
p, wc, seed = dict(snakemake.params.sensitivity), snakemake.wildcards, snakemake.params.seed
device = resolve_device(snakemake.params.device)
log.info("runtime %s", runtime(device))
data = read_dataset(snakemake.input.data, lazy=True)
encoder, _ = load_encoder(
    model_spec(snakemake),
    snakemake.input.weights or None,
    pooling=snakemake.params.pooling,
    seed=seed,
)
idx = select_samples(data.labels, data.split, p["split"], p["n_images"], seed)[: p["n_images"]]
with precision_scope(device):  # float32 Jacobians: no TF32 on CUDA
    table = sensitivity_table(
        encoder,
        to_tensor(data.images[idx]),
        k=p["k"],
        power_iters=p["power_iters"],
        n_probes=p["n_probes"],
        seed=seed,
        noise_control=p["noise_control"],
        device=device,
    )
log.info("%s", table[["metric", "variant", "value"]].to_dict("records"))
write_table(
    with_keys(table, dataset=wc.dataset, model=wc.model, stage=wc.stage), snakemake.output[0]
)
