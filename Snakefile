# repaudit: auditable reproduction of representation-analysis research on vision encoders.
#
# results/data/{dataset}.h5                         images, labels, split
# results/models/{model}/{stage}.pt                 zoo pretraining / fine-tuning checkpoints
# results/features/{dataset}/{model}/{stage}.h5     per-layer pooled features
# results/metrics/{family}/{dataset}/{model}/{stage}.tsv   one tidy table per metric job
# results/tables/metrics.tsv                        every metric, one long table
# results/stats/claims.tsv                          every paper claim with its verdict
# results/stats/replication.tsv                     every claim beside the paper's published number
# results/figures/*.svg                             figures (also in the report)
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names another (a replacement, not a merge).
if not config:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/stats.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
