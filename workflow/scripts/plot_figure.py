from _common import start

from repaudit.figures import figure_config, make_figure
from repaudit.io import atomic_path, read_table

log = start(snakemake)
name, params = snakemake.wildcards.figure, snakemake.params
# TRANSITION: drop the fallback once workflow/rules/stats.smk passes figure=figure_params
shown = params.figure if hasattr(params, "figure") else figure_config(name, params.config)
fig = make_figure(
    name, read_table(snakemake.input.metrics), read_table(snakemake.input.claims), shown
)
for path, fmt in ((snakemake.output.svg, "svg"), (snakemake.output.png, "png")):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
log.info("saved %s", snakemake.output.svg)
