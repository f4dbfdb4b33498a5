# Evaluation stages (aloe.eval): feature cache, linear probe, k-NN, zero-shot, dense probes,
# GridPG and pixel deletion, each writing one result-record file for the tables; and the panels
# of the report's explanation grid (images, maps, predictions) for its plot.


rule features:
    input:
        backbone_input,
        lambda w: eval_dataset_input(w.dataset),
    output:
        train_out="results/features/{teacher}/{variant}/{dataset}/train.safetensors",
        test_out="results/features/{teacher}/{variant}/{dataset}/test.safetensors",
    log:
        "results/logs/eval/features/{teacher}/{variant}/{dataset}.log",
    benchmark:
        "results/benchmarks/eval/features/{teacher}/{variant}/{dataset}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("features"),
    params:
        fn="aloe.eval.stages:run_features",
        kwargs=lambda w: dict(
            backbone_path=backbone(w.teacher, w.variant)[0],
            backbone_kind=backbone(w.teacher, w.variant)[1],
            dataset_dir=eval_dataset_dir(w.dataset),
            dataset=w.dataset,
            batch_size=EVAL["features"]["batch_size"],
            # the layouts the linear probe reads, and the view of the images
            **eval_plan.feature_layout(EVAL["linear_probe"]),
            transform=EVAL["transform"],
            patch_blocks=(
                dense_blocks(w.teacher)
                if w.dataset == EVAL["dense"]["dataset"]
                else []
            ),
            device="auto",
        ),
        launch=launch_block("features"),
    script:
        STAGE


rule linear_probe:
    input:
        train_features=lambda w: feature_file(w.teacher, w.variant, w.dataset, "train"),
        test_features=lambda w: feature_file(w.teacher, w.variant, w.dataset, "test"),
    output:
        out="results/metrics/linear_probe/{teacher}/{variant}/{dataset}.json",
        head_out="results/metrics/linear_probe/{teacher}/{variant}/{dataset}.head.safetensors",
    log:
        "results/logs/eval/linear_probe/{teacher}/{variant}/{dataset}.log",
    benchmark:
        "results/benchmarks/eval/linear_probe/{teacher}/{variant}/{dataset}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("probe"),
    params:
        fn="aloe.eval.probe_stages:run_linear_probe",
        kwargs=lambda w: dict(
            backbone=w.teacher,
            variant=record_variant(w.variant),
            dataset=w.dataset,
            # the keys the protocol reads (dinov2: a named LR grid or a list, the probe resolves it)
            **eval_plan.linear_probe_kwargs(EVAL["linear_probe"]),
        ),
        launch=launch_block("probe"),
    script:
        STAGE


rule knn:
    input:
        train_features=lambda w: feature_file(w.teacher, w.variant, w.dataset, "train"),
        test_features=lambda w: feature_file(w.teacher, w.variant, w.dataset, "test"),
    output:
        out="results/metrics/knn/{teacher}/{variant}/{dataset}.json",
    log:
        "results/logs/eval/knn/{teacher}/{variant}/{dataset}.log",
    benchmark:
        "results/benchmarks/eval/knn/{teacher}/{variant}/{dataset}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("probe"),
    params:
        fn="aloe.eval.probe_stages:run_knn",
        kwargs=lambda w: dict(
            backbone=w.teacher,
            variant=record_variant(w.variant),
            dataset=w.dataset,
            **eval_plan.knn_kwargs(EVAL["knn"]),
        ),
        launch=launch_block("probe"),
    script:
        STAGE


rule zero_shot:
    input:
        backbone_input,
        lambda w: f"results/teachers/{w.teacher}/teacher.json",
        lambda w: eval_dataset_input(w.dataset),
    output:
        out="results/metrics/zero_shot/{teacher}/{variant}/{dataset}/{templates}.json",
    log:
        "results/logs/eval/zero_shot/{teacher}/{variant}/{dataset}/{templates}.log",
    benchmark:
        "results/benchmarks/eval/zero_shot/{teacher}/{variant}/{dataset}/{templates}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("probe"),
    params:
        fn="aloe.eval.stages:run_zero_shot",
        kwargs=lambda w: dict(
            text_model_path=teacher_source(w.teacher),
            image_encoder_path=backbone(w.teacher, w.variant)[0],
            image_encoder_kind=backbone(w.teacher, w.variant)[1],
            dataset_dir=eval_dataset_dir(w.dataset),
            dataset=w.dataset,
            split="test",
            templates=zero_shot_templates(w.templates),
            template_set=w.templates,
            backbone=w.teacher,
            variant=record_variant(w.variant),
            batch_size=EVAL["zero_shot"]["batch_size"],
            transform=EVAL["transform"],
            device="auto",
        ),
        launch=launch_block("probe"),
    script:
        STAGE


rule dense_probe:
    input:
        train_features=lambda w: feature_file(
            w.teacher, w.variant, EVAL["dense"]["dataset"], "train"
        ),
        test_features=lambda w: feature_file(
            w.teacher, w.variant, EVAL["dense"]["dataset"], "test"
        ),
    output:
        out="results/metrics/dense/{teacher}/{variant}/{task}.json",
    log:
        "results/logs/eval/dense/{teacher}/{variant}/{task}.log",
    benchmark:
        "results/benchmarks/eval/dense/{teacher}/{variant}/{task}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("probe"),
    params:
        fn="aloe.eval.stages:run_dense_probe",
        kwargs=lambda w: dict(
            task=w.task,
            backbone=w.teacher,
            variant=record_variant(w.variant),
            dataset=EVAL["dense"]["dataset"],
            head=EVAL["dense"]["head"],
            epochs=EVAL["dense"]["epochs"],
            batch_size=EVAL["dense"]["batch_size"],
            lr=EVAL["dense"]["lr"],
            seed=STUDY["seed"],
        ),
        launch=launch_block("probe"),
    script:
        STAGE


rule gridpg:
    input:
        gridpg_inputs,
    output:
        out="results/metrics/gridpg/{teacher}/{variant}/{method}.json",
    log:
        "results/logs/eval/gridpg/{teacher}/{variant}/{method}.log",
    benchmark:
        "results/benchmarks/eval/gridpg/{teacher}/{variant}/{method}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("explain"),
    params:
        fn="aloe.eval.stages:run_gridpg",
        kwargs=lambda w: dict(
            explained_kwargs(w, EVAL["gridpg"]["dataset"]),
            # the protocol and the threshold it reads
            **eval_plan.gridpg_kwargs(EVAL["gridpg"]),
            seed=STUDY["seed"],
            gate=gridpg_gate(w),
        ),
        launch=launch_block("explain"),
    script:
        STAGE


rule deletion:
    input:
        lambda w: explained_inputs(w, EVAL["deletion"]["dataset"]),
    output:
        out="results/metrics/deletion/{teacher}/{variant}/{method}.json",
    log:
        "results/logs/eval/deletion/{teacher}/{variant}/{method}.log",
    benchmark:
        "results/benchmarks/eval/deletion/{teacher}/{variant}/{method}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("explain"),
    params:
        fn="aloe.eval.stages:run_deletion",
        kwargs=lambda w: dict(
            explained_kwargs(w, EVAL["deletion"]["dataset"]),
            block=EVAL["deletion"]["block"],
            max_fraction=EVAL["deletion"]["max_fraction"],
            steps=EVAL["deletion"]["steps"],
            max_images=EVAL["deletion"]["num_images"],
        ),
        launch=launch_block("explain"),
    script:
        STAGE


rule explanation_panels:
    input:
        explanation_inputs(FIRST[0]),
    output:
        out=PANELS_RECORD,
        panels_out=PANELS_TENSORS,
    log:
        "results/logs/eval/explanation_panels.log",
    benchmark:
        "results/benchmarks/eval/explanation_panels.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("explain"),
    params:
        fn="aloe.eval.stages:run_explanation_panels",
        kwargs=dict(
            backbones=explanation_backbones(FIRST[0]),
            dataset_dir=eval_dataset_dir(FIRST[0]),
            dataset=FIRST[0],
            split="test",
            num_images=4,
            seed=STUDY["seed"],
            methods=EXPLAIN_METHODS,
            device="auto",
        ),
        launch=launch_block("explain"),
    script:
        STAGE
