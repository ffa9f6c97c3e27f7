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
    wildcard_constraints:
        dataset=one_of(d for d in DATASETS if d not in EMBEDDINGS),
    conda:
        "../../envs/torch.yaml"
    threads: job_threads("extract_features")
    resources:
        **job_resources("extract_features"),
    params:
        model=get_model_row,
        features=section_params("features"),
        seed=config["seed"],
        device=config["device"],
        precision=canonical(config["precision"]),
    script:
        "../scripts/extract_features.py"


# Embeddings computed elsewhere become feature files of the same layout (stage pretrained).
rule import_embeddings:
    input:
        embeddings_files,
    output:
        "results/features/{dataset}/{model}/pretrained.h5",
    log:
        "logs/features/{dataset}/{model}/pretrained.log",
    benchmark:
        "benchmarks/features/{dataset}/{model}/pretrained.tsv"
    wildcard_constraints:
        dataset=one_of(EMBEDDINGS),
    conda:
        "../../envs/stats.yaml"
    threads: job_threads("import_embeddings")
    resources:
        **job_resources("import_embeddings"),
    params:
        spec=get_dataset_spec,
    script:
        "../scripts/import_embeddings.py"
