rule extract_features:
    input:
        data="results/data/{dataset}.h5",
        weights=get_stage_weights,
    output:
        "results/features/{dataset}/{model}/{stage}.h5",
    log:
        "logs/features/{dataset}/{model}/{stage}.log",
    benchmark:
        "benchmarks/features/{dataset}/{model}/{stage}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        model=get_model_row,
        features=config["features"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/extract_features.py"
