# Model stages (aloe.models): make each teacher loadable (train the demo teachers) and record it.


rule teacher:
    output:
        out="results/teachers/{teacher}/teacher.json",
    log:
        "results/logs/models/teacher_{teacher}.log",
    benchmark:
        "results/benchmarks/models/teacher_{teacher}.tsv"
    conda:
        "../../envs/aloe.yaml"
    resources:
        **job_resources("teacher"),
    params:
        fn="aloe.models.stages:run_teacher",
        kwargs=lambda w: dict(
            name=w.teacher,
            family=TEACHERS[w.teacher]["family"],
            depth=TEACHERS[w.teacher]["depth"],
            source=TEACHERS[w.teacher]["source"],
            training=TEACHERS[w.teacher].get("training"),
            seed=STUDY["seed"],
            world=(
                {k: STUDY["synthetic_world"][k] for k in ("image_size", "num_classes")}
                if TEACHERS[w.teacher]["source"] == "demo"
                else None
            ),
        ),
        launch=launch_block("teacher"),
    script:
        STAGE
