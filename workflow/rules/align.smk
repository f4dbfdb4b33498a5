# Alignment stages (aloe.align): the ALOE runs (LR sweep and ablations), LR selection, and the
# B-cosification baselines. Training jobs are checkpointable: SLURM requeues them on preemption.


rule align_run:
    input:
        run_inputs,
    output:
        result="results/align/{teacher}/{setting}/lr{lr}/result.json",
    log:
        "results/logs/align/{teacher}/{setting}/lr{lr}.log",
    benchmark:
        "results/benchmarks/align/{teacher}/{setting}/lr{lr}.tsv"
    wildcard_constraints:
        setting="main|[a-z]+-[A-Za-z0-9_.-]+",
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("align"),
    params:
        fn="aloe.align.stages:run_align_run",
        kwargs=run_kwargs,
        launch=dict(launch_block("align"), checkpointable=True),
    script:
        STAGE


rule select_alignment:
    input:
        run_results=lambda w: [
            f"results/align/{w.teacher}/{variant_setting(w.variant)}/lr{lr:g}/result.json"
            for lr in SETTINGS[variant_setting(w.variant)]["lrs"]
        ],
    output:
        out_dir=directory("results/backbones/{teacher}/{variant}"),
    log:
        "results/logs/align/select_{teacher}_{variant}.log",
    benchmark:
        "results/benchmarks/align/select_{teacher}_{variant}.tsv"
    wildcard_constraints:
        variant="aloe|aloe_[A-Za-z0-9_.-]+",
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.align.stages:run_select_alignment",
        kwargs={},
    script:
        STAGE


rule baseline_run:
    input:
        baseline_inputs,
    output:
        result="results/align/{teacher}/bcosification/result.json",
    log:
        "results/logs/align/{teacher}/bcosification.log",
    benchmark:
        "results/benchmarks/align/{teacher}/bcosification.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("align"),
    params:
        fn="aloe.align.stages:run_baseline_run",
        kwargs=baseline_kwargs,
        launch=dict(launch_block("align"), checkpointable=True),
    script:
        STAGE


rule install_baseline:
    input:
        run_result="results/align/{teacher}/bcosification/result.json",
    output:
        out_dir=directory("results/backbones/{teacher}/bcosification"),
    log:
        "results/logs/align/install_{teacher}_bcosification.log",
    benchmark:
        "results/benchmarks/align/install_{teacher}_bcosification.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.align.stages:run_install_baseline",
        kwargs={},
    script:
        STAGE
