rule make_dataset:
    output:
        "results/data/{dataset}.h5",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: job_threads("make_dataset")
    resources:
        **job_resources("make_dataset"),
    params:
        spec=get_dataset_spec,
        seed=config["seed"],
    script:
        "../scripts/make_dataset.py"
