rule make_dataset:
    output:
        "results/data/{dataset}.h5",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=get_dataset_spec,
        seed=config["seed"],
    script:
        "../scripts/make_dataset.py"
