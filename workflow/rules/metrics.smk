rule compute_geometry:
    input:
        features="results/features/{dataset}/{model}/{stage}.h5",
        data=image_data,
        weights=get_stage_weights,
    output:
        "results/metrics/geometry/{dataset}/{model}/{stage}.tsv",
    log:
        "logs/metrics/geometry/{dataset}/{model}/{stage}.log",
    benchmark:
        "benchmarks/metrics/geometry/{dataset}/{model}/{stage}.tsv"
    conda:
        "../../envs/metrics.yaml"
    threads: job_threads("compute_geometry")
    resources:
        **job_resources("compute_geometry"),
    params:
        model=get_model_row,
        geometry=section_params("geometry"),
        pooling=config["features"]["pooling"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/compute_geometry.py"


rule uniformity_study:
    output:
        "results/metrics/uniformity/synthetic.tsv",
    log:
        "logs/metrics/uniformity_study.log",
    benchmark:
        "benchmarks/metrics/uniformity_study.tsv"
    conda:
        "../../envs/metrics.yaml"
    threads: job_threads("uniformity_study")
    resources:
        **job_resources("uniformity_study"),
    params:
        study=section_params("uniformity_study"),
        seed=config["seed"],
    script:
        "../scripts/uniformity_study.py"


rule compute_graph_convexity:
    input:
        "results/features/{dataset}/{model}/{stage}.h5",
    output:
        "results/metrics/convexity/{dataset}/{model}/{stage}.tsv",
    log:
        "logs/metrics/convexity/{dataset}/{model}/{stage}.log",
    benchmark:
        "benchmarks/metrics/convexity/{dataset}/{model}/{stage}.tsv"
    conda:
        "../../envs/metrics.yaml"
    threads: job_threads("compute_graph_convexity")
    resources:
        **job_resources("compute_graph_convexity"),
    params:
        convexity=section_params("convexity"),
        seed=config["seed"],
    script:
        "../scripts/compute_graph_convexity.py"


rule compute_euclidean_convexity:
    input:
        data="results/data/{dataset}.h5",
        weights=get_stage_weights,
        head=get_stage_head,
    output:
        "results/metrics/euclidean_convexity/{dataset}/{model}/{stage}.tsv",
    log:
        "logs/metrics/euclidean_convexity/{dataset}/{model}/{stage}.log",
    benchmark:
        "benchmarks/metrics/euclidean_convexity/{dataset}/{model}/{stage}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: job_threads("compute_euclidean_convexity")
    resources:
        **job_resources("compute_euclidean_convexity"),
    params:
        model=get_model_row,
        euclidean=section_params("euclidean_convexity"),
        pooling=config["features"]["pooling"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/compute_euclidean_convexity.py"


rule compute_sensitivity:
    input:
        data="results/data/{dataset}.h5",
        weights=get_stage_weights,
    output:
        "results/metrics/sensitivity/{dataset}/{model}/{stage}.tsv",
    log:
        "logs/metrics/sensitivity/{dataset}/{model}/{stage}.log",
    benchmark:
        "benchmarks/metrics/sensitivity/{dataset}/{model}/{stage}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: job_threads("compute_sensitivity")
    resources:
        **job_resources("compute_sensitivity"),
    params:
        model=get_model_row,
        sensitivity=section_params("sensitivity"),
        pooling=config["features"]["pooling"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/compute_sensitivity.py"


rule probe_binding:
    input:
        data="results/data/{dataset}.h5",
        features="results/features/{dataset}/{model}/{stage}.h5",
    output:
        "results/metrics/binding/{dataset}/{model}/{stage}.tsv",
    log:
        "logs/metrics/binding/{dataset}/{model}/{stage}.log",
    benchmark:
        "benchmarks/metrics/binding/{dataset}/{model}/{stage}.tsv"
    conda:
        "../../envs/metrics.yaml"
    threads: job_threads("probe_binding")
    resources:
        **job_resources("probe_binding"),
    params:
        binding=section_params("binding"),
        seed=config["seed"],
    script:
        "../scripts/probe_binding.py"


rule compare_relative:
    input:
        stage_features("relative"),
    output:
        "results/metrics/relative/{dataset}/{stage}.tsv",
    log:
        "logs/metrics/relative/{dataset}/{stage}.log",
    benchmark:
        "benchmarks/metrics/relative/{dataset}/{stage}.tsv"
    conda:
        "../../envs/metrics.yaml"
    threads: job_threads("compare_relative")
    resources:
        **job_resources("compare_relative"),
    params:
        models=section_models_on("relative"),
        relative=section_params("relative"),
        seed=config["seed"],
    script:
        "../scripts/compare_relative.py"


rule stitch_encoders:
    input:
        stage_features("stitching"),
    output:
        "results/metrics/stitching/{dataset}/{stage}.tsv",
    log:
        "logs/metrics/stitching/{dataset}/{stage}.log",
    benchmark:
        "benchmarks/metrics/stitching/{dataset}/{stage}.tsv"
    conda:
        "../../envs/metrics.yaml"
    threads: job_threads("stitch_encoders")
    resources:
        **job_resources("stitch_encoders"),
    params:
        models=section_models_on("stitching"),
        relative=section_params(
            "relative", keys=("layers", "n_anchors", "anchor_method", "center")
        ),
        stitching=section_params("stitching"),
        seed=config["seed"],
    script:
        "../scripts/stitch_encoders.py"


rule discover_concepts:
    input:
        "results/features/{dataset}/{model}/{stage}.h5",
    output:
        table="results/metrics/concepts/{dataset}/{model}/{stage}.tsv",
        memberships="results/concepts/{dataset}/{model}/{stage}.h5",
    log:
        "logs/metrics/concepts/{dataset}/{model}/{stage}.log",
    benchmark:
        "benchmarks/metrics/concepts/{dataset}/{model}/{stage}.tsv"
    conda:
        "../../envs/concepts.yaml"
    threads: job_threads("discover_concepts")
    resources:
        **job_resources("discover_concepts"),
    params:
        concepts=section_params("concepts", drop=("cross_model_layers",)),
        seed=config["seed"],
    script:
        "../scripts/discover_concepts.py"


rule align_concepts:
    input:
        get_stage_memberships,
    output:
        "results/metrics/concept_alignment/{dataset}/{stage}.tsv",
    log:
        "logs/metrics/concept_alignment/{dataset}/{stage}.log",
    benchmark:
        "benchmarks/metrics/concept_alignment/{dataset}/{stage}.tsv"
    conda:
        "../../envs/concepts.yaml"
    threads: job_threads("align_concepts")
    resources:
        **job_resources("align_concepts"),
    params:
        models=section_models_on("concepts"),
        concepts=section_params("concepts", keys=("cross_model_layers",)),
        seed=config["seed"],
    script:
        "../scripts/align_concepts.py"
