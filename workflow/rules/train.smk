rule pretrain_encoder:
    input:
        data=pretrain_data(),
    output:
        model="results/models/{model}/pretrained.pt",
        history="results/models/{model}/pretrain_history.tsv",
    log:
        "logs/models/{model}/pretrain.log",
    benchmark:
        "benchmarks/models/{model}/pretrain.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: job_threads("pretrain_encoder")
    resources:
        **job_resources("pretrain_encoder"),
    params:
        model=get_model_row,
        train=section_params("pretrain", drop=("checkpoint_every",)),
        seed=train_seed,
        device=config["device"],
        precision=canonical(config["precision"]),
    script:
        "../scripts/pretrain_encoder.py"


rule finetune_encoder:
    input:
        data="results/data/{dataset}.h5",
        weights=get_pretrained_weights,
    output:
        model="results/models/{model}/finetuned_{dataset}.pt",
        history="results/models/{model}/finetune_{dataset}_history.tsv",
        metrics="results/metrics/training/{dataset}/{model}/finetuned_{dataset}.tsv",
    log:
        "logs/models/{model}/finetune_{dataset}.log",
    benchmark:
        "benchmarks/models/{model}/finetune_{dataset}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: job_threads("finetune_encoder")
    resources:
        **job_resources("finetune_encoder"),
    params:
        model=get_model_row,
        train=section_params("finetune", drop=("checkpoint_every",)),
        seed=train_seed,
        device=config["device"],
        precision=canonical(config["precision"]),
    script:
        "../scripts/finetune_encoder.py"


rule linear_probe:
    input:
        features="results/features/{dataset}/{model}/pretrained.h5",
        data="results/data/{dataset}.h5",
    output:
        probe="results/models/{model}/probe_{dataset}.pt",
        metrics="results/metrics/training/{dataset}/{model}/pretrained.tsv",
        predictions="results/models/{model}/probe_{dataset}_predictions.tsv",
    log:
        "logs/models/{model}/probe_{dataset}.log",
    benchmark:
        "benchmarks/models/{model}/probe_{dataset}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: job_threads("linear_probe")
    resources:
        **job_resources("linear_probe"),
    params:
        probe=section_params("probe"),
        seed=train_seed,
        device=config["device"],
    script:
        "../scripts/linear_probe.py"
