from _common import model_spec, resume_settings, start

from repaudit.io import read_dataset, save_checkpoint, write_table
from repaudit.models.device import resolve_device, runtime
from repaudit.models.zoo import finetune_stage

log = start(snakemake)
spec, params, wc = model_spec(snakemake), snakemake.params, snakemake.wildcards
data = read_dataset(snakemake.input.data, lazy=True)
device = resolve_device(params.device)
log.info("runtime %s", runtime(device, params.precision))
resume, train = resume_settings(snakemake, "finetune")
payload, history, table = finetune_stage(
    spec,
    snakemake.input.weights or None,
    data,
    train,
    seed=params.seed,
    device=device,
    precision=params.precision,
    resume_path=str(resume),
)
log.info("test accuracy %.4f", table["value"].iloc[0])
save_checkpoint(snakemake.output.model, payload)
write_table(history, snakemake.output.history)
write_table(
    table.assign(dataset=wc.dataset, model=wc.model, stage=f"finetuned_{wc.dataset}"),
    snakemake.output.metrics,
)
resume.unlink(missing_ok=True)
