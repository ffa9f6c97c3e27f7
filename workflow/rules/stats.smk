from pathlib import Path

import yaml

from repaudit.claims import config_vars, load_claims

# The registry's dataset variables follow the datasets this config analyses; a bad registry
# fails here, before any job runs, with one "claims error:" line.
CLAIM_VARS = {**config_vars(config), **config["claims"]["vars"]}
load_claims(yaml.safe_load(Path(config["claims"]["registry"]).read_text()), CLAIM_VARS)


rule collect_metrics:
    input:
        metric_tables(),
    output:
        "results/tables/metrics.tsv",
    log:
        "logs/tables/collect_metrics.log",
    conda:
        "../../envs/stats.yaml"
    threads: job_threads("collect_metrics")
    resources:
        **job_resources("collect_metrics"),
    params:
        models=MODELS.to_dict(orient="records"),
    script:
        "../scripts/collect_metrics.py"


rule list_skipped:
    output:
        report(
            "results/tables/skipped.tsv",
            caption="../report/skipped.rst",
            category="Inputs",
        ),
    log:
        "logs/tables/skipped.log",
    conda:
        "../../envs/stats.yaml"
    threads: job_threads("list_skipped")
    resources:
        **job_resources("list_skipped"),
    params:
        rows=SKIPPED,
    script:
        "../scripts/list_skipped.py"


rule reliability:
    input:
        metrics="results/tables/metrics.tsv",
        registry=config["claims"]["registry"],
    output:
        report(
            "results/stats/reliability.tsv",
            caption="../report/reliability.rst",
            category="Claims",
        ),
    log:
        "logs/stats/reliability.log",
    conda:
        "../../envs/stats.yaml"
    threads: job_threads("reliability")
    resources:
        **job_resources("reliability"),
    params:
        variables=canonical(CLAIM_VARS),
        min_icc=config["claims"]["min_icc"],
    script:
        "../scripts/reliability.py"


rule plot_reliability:
    input:
        "results/stats/reliability.tsv",
    output:
        svg=report(
            "results/stats/reliability.svg",
            caption="../report/reliability_figure.rst",
            category="Claims",
        ),
        png="results/stats/reliability.png",
    log:
        "logs/stats/plot_reliability.log",
    conda:
        "../../envs/plots.yaml"
    threads: job_threads("plot_reliability")
    resources:
        **job_resources("plot_reliability"),
    params:
        min_icc=config["claims"]["min_icc"],
    script:
        "../scripts/plot_reliability.py"


rule test_claims:
    input:
        metrics="results/tables/metrics.tsv",
        reliability="results/stats/reliability.tsv",
        registry=config["claims"]["registry"],
    output:
        summary=report(
            "results/stats/claims.tsv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        details=expand("results/stats/{claim}.tsv", claim=claim_ids()),
    log:
        "logs/stats/test_claims.log",
    benchmark:
        "benchmarks/stats/test_claims.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: job_threads("test_claims")
    resources:
        **job_resources("test_claims"),
    params:
        variables=canonical(CLAIM_VARS),
        alpha=config["claims"]["alpha"],
        seed=config["seed"],
    script:
        "../scripts/test_claims.py"


rule probe_margins:
    input:
        expand(
            "results/models/{model}/probe_{{dataset}}_predictions.tsv",
            model=probe_margin_models(),
        ),
    output:
        report(
            "results/stats/probe_margins_{dataset}.tsv",
            caption="../report/probe_margins.rst",
            category="Claims",
        ),
    log:
        "logs/stats/probe_margins_{dataset}.log",
    conda:
        "../../envs/stats.yaml"
    threads: job_threads("probe_margins")
    resources:
        **job_resources("probe_margins"),
    params:
        models=probe_margin_models(),
        controls=RANDOM_CONTROLS,
        alpha=config["claims"]["alpha"],
    script:
        "../scripts/probe_margins.py"


rule plot_figure:
    input:
        metrics="results/tables/metrics.tsv",
        claims="results/stats/claims.tsv",
    output:
        svg=report(
            "results/figures/{figure}.svg",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        png="results/figures/{figure}.png",
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../envs/plots.yaml"
    threads: job_threads("plot_figure")
    resources:
        **job_resources("plot_figure"),
    params:
        figure=figure_params,
    script:
        "../scripts/plot_figure.py"


rule replication:
    input:
        summary="results/stats/claims.tsv",
        details=expand("results/stats/{claim}.tsv", claim=claim_ids()),
        metrics="results/tables/metrics.tsv",
        registry=config["claims"]["registry"],
    output:
        report(
            "results/stats/replication.tsv",
            caption="../report/replication.rst",
            category="Claims",
        ),
    log:
        "logs/stats/replication.log",
    conda:
        "../../envs/stats.yaml"
    threads: job_threads("replication")
    resources:
        **job_resources("replication"),
    params:
        variables=canonical(CLAIM_VARS),
        alpha=config["claims"]["alpha"],
    script:
        "../scripts/replication.py"


rule plot_replication:
    input:
        "results/stats/replication.tsv",
    output:
        svg=report(
            "results/stats/replication.svg",
            caption="../report/replication_figure.rst",
            category="Claims",
        ),
        png="results/stats/replication.png",
    log:
        "logs/stats/plot_replication.log",
    conda:
        "../../envs/plots.yaml"
    threads: job_threads("plot_replication")
    resources:
        **job_resources("plot_replication"),
    script:
        "../scripts/plot_replication.py"
