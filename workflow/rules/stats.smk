rule collect_metrics:
    input:
        metric_tables(),
    output:
        "results/tables/metrics.tsv",
    params:
        models=MODELS.to_dict(orient="records"),
    log:
        "logs/tables/collect_metrics.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../scripts/collect_metrics.py"
