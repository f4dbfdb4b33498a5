# Data stages (aloe.data): the synthetic world, alignment sets via img2dataset, key splits and
# subsets, and the evaluation datasets in the common on-disk format.


rule synthetic_world:
    output:
        "results/world/world.json",
    log:
        "results/logs/data/synthetic_world.log",
    benchmark:
        "results/benchmarks/data/synthetic_world.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.data.stages:run_synthetic_world",
        kwargs=lambda w: dict(
            out_dir="results/world", seed=STUDY["seed"], **STUDY["synthetic_world"]
        ),
    script:
        STAGE


rule download_alignment_set:
    input:
        lambda w: (
            ["results/world/world.json"]
            if STUDY["alignment_sets"][w.aset]["url_list"] == "synthetic"
            # a url list that is not there yet is reported by the stage (naming the config key), so
            # that the study can still be planned on a machine without the data
            else [
                p
                for p in [STUDY["alignment_sets"][w.aset]["url_list"]]
                if os.path.exists(p)
            ]
        ),
    output:
        "results/alignment_sets/{aset}/shards/summary.json",
    log:
        "results/logs/data/download_{aset}.log",
    benchmark:
        "results/benchmarks/data/download_{aset}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("data"),
    params:
        fn="aloe.data.stages:run_download_alignment_set",
        kwargs=lambda w: alignment_set_options(w.aset),
        launch=launch_block("data"),
    script:
        STAGE


rule alignment_splits:
    input:
        "results/alignment_sets/{aset}/shards/summary.json",
    output:
        "results/alignment_sets/{aset}/splits/splits.json",
    log:
        "results/logs/data/splits_{aset}.log",
    benchmark:
        "results/benchmarks/data/splits_{aset}.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.data.stages:run_alignment_splits",
        kwargs=lambda w: dict(
            shard_dir=f"results/alignment_sets/{w.aset}/shards",
            out_dir=f"results/alignment_sets/{w.aset}/splits",
            fractions=STUDY["splits"]["fractions"],
            val_size=STUDY["splits"]["heldout"],
            seed=STUDY["splits"]["seed"],
        ),
    script:
        STAGE


rule alignment_subset:
    input:
        "results/alignment_sets/{aset}/splits/splits.json",
    output:
        "results/alignment_sets/{aset}/subset_{subset}/subset.json",
    log:
        "results/logs/data/subset_{aset}_{subset}.log",
    benchmark:
        "results/benchmarks/data/subset_{aset}_{subset}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("data"),
    params:
        fn="aloe.data.stages:run_alignment_subset",
        kwargs=lambda w: dict(
            shards=f"results/alignment_sets/{w.aset}/shards",
            keys_file=subset_keys_file(w.aset, w.subset),
            out_dir=f"results/alignment_sets/{w.aset}/subset_{w.subset}",
            samples_per_shard=STUDY["splits"]["samples_per_shard"],
        ),
        launch=launch_block("data"),
    script:
        STAGE


rule prepare_eval_dataset:
    output:
        "results/eval_data/{dataset}/meta.json",
    log:
        "results/logs/data/eval_{dataset}.log",
    benchmark:
        "results/benchmarks/data/eval_{dataset}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources_by(eval_dataset_block),
    params:
        fn="aloe.data.stages:run_prepare_eval_dataset",
        kwargs=lambda w: dict(
            name=w.dataset,
            out_dir=f"results/eval_data/{w.dataset}",
            source=EVAL["datasets"][w.dataset]["source"],
            download_root="data/downloads",
            manual_path=EVAL["datasets"][w.dataset].get("path"),
            config_key=f"{config['preset']}.evaluation.datasets.{w.dataset}.path",
            seed=STUDY["seed"],
        ),
        launch=lambda w: launch_block(eval_dataset_block(w)),
    script:
        STAGE
