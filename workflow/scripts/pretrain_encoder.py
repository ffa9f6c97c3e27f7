from _common import model_spec, resume_settings, start

from repaudit.io import read_dataset, save_checkpoint, write_table
from repaudit.models.device import resolve_device, runtime
from repaudit.models.zoo import pretrain_zoo

log = start(snakemake)
spec, params = model_spec(snakemake), snakemake.params
data = read_dataset(snakemake.input.data, lazy=True)
device = resolve_device(params.device)
log.info("runtime %s", runtime(device, params.precision))
log.info(
    "pretraining %s (%s, %s) on %d images",
    spec.model_id,
    spec.architecture,
    spec.objective,
    int((data.split == "train").sum()),
)
resume, train = resume_settings(snakemake, "pretrain")
payload, history = pretrain_zoo(
    spec,
    data,
    train,
    seed=params.seed,
    device=device,
    precision=params.precision,
    resume_path=str(resume),
)
save_checkpoint(snakemake.output.model, payload)
write_table(history, snakemake.output.history)
resume.unlink(missing_ok=True)
