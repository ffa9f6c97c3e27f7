rule make_dataset:
    output:
        "results/data/{dataset}.h5",
    params:
        spec=get_dataset_spec,
        seed=config["seed"],
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/make_dataset.py"
