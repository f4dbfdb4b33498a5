# Table stages (aloe.tables): each paper table is its own target and needs only its own records.


rule table:
    input:
        record_paths=lambda w: table_plan(w.table)[0],
    output:
        out_csv="results/tables/{table}.csv",
        out_tex="results/tables/{table}.tex",
        out_md="results/tables/{table}.md",
    log:
        "results/logs/tables/{table}.log",
    benchmark:
        "results/benchmarks/tables/{table}.tsv"
    wildcard_constraints:
        table="|".join(TABLES),
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.tables.stages:run_table",
        kwargs=lambda w: dict(name=w.table, **table_plan(w.table)[1]),
    script:
        STAGE


rule plot_data_efficiency:
    input:
        record_paths=fig9_records(),
    output:
        out_png=report(
            "results/plots/fig9_data_efficiency.png",
            caption="../report/fig9.rst",
            category="Plots",
        ),
    log:
        "results/logs/tables/fig9.log",
    benchmark:
        "results/benchmarks/tables/fig9.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.tables.stages:run_plot_data_efficiency",
        kwargs=dict(
            metric_name="lp_top1",
            dataset=FIRST[0],
            backbones=ABLATIONS["fractions"]["teachers"],
        ),
    script:
        STAGE


rule plot_gridpg_vs_accuracy:
    input:
        record_paths=fig1_records(),
    output:
        out_png=report(
            "results/plots/fig1_gridpg_vs_accuracy.png",
            caption="../report/fig1.rst",
            category="Plots",
        ),
    log:
        "results/logs/tables/fig1.log",
    benchmark:
        "results/benchmarks/tables/fig1.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.tables.stages:run_plot_gridpg_vs_accuracy",
        kwargs=dict(
            metric_name="lp_top1", dataset=FIRST[0], backbones=STUDY["tables"]["main"]
        ),
    script:
        STAGE


rule plot_deletion_curves:
    input:
        record_paths=figB3_records(),
    output:
        out_png=report(
            "results/plots/figB3_deletion.png",
            caption="../report/figB3.rst",
            category="Plots",
        ),
    log:
        "results/logs/tables/figB3.log",
    benchmark:
        "results/benchmarks/tables/figB3.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.tables.stages:run_plot_deletion_curves",
        kwargs=dict(backbones=STUDY["tables"]["main"]),
    script:
        STAGE


rule table_html:
    input:
        in_csv="results/tables/{table}.csv",
    output:
        out_html=report(
            "results/tables/{table}.html",
            caption=f"{REPORT}/table.rst",
            category="Tables",
            subcategory="{table}",
            labels={"table": "{table}", "format": "HTML"},
        ),
    log:
        "results/logs/tables/{table}.html.log",
    benchmark:
        "results/benchmarks/tables/{table}.html.tsv"
    wildcard_constraints:
        table="|".join(TABLES),
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.tables.stages:run_table_html",
        kwargs={},
    script:
        STAGE


rule explanation_grid:
    input:
        record=PANELS_RECORD,
        panels=PANELS_TENSORS,
    output:
        out_png=report(
            "results/plots/explanations.png",
            caption=f"{REPORT}/explanations.rst",
            category="Explanations",
        ),
    log:
        "results/logs/tables/explanations.log",
    benchmark:
        "results/benchmarks/tables/explanations.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.tables.stages:run_explanation_grid",
        kwargs={},
    script:
        STAGE


rule pca_view:
    input:
        record=PANELS_RECORD,
        panels=PANELS_TENSORS,
    output:
        out_png=report(
            "results/plots/fig1_pca.png",
            caption=f"{REPORT}/fig1_pca.rst",
            category="Explanations",
        ),
    log:
        "results/logs/tables/fig1_pca.log",
    benchmark:
        "results/benchmarks/tables/fig1_pca.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.tables.stages:run_pca_view",
        kwargs={},
    script:
        STAGE


rule zero_shot_explanations:
    input:
        record=PANELS_RECORD,
        panels=PANELS_TENSORS,
    output:
        out_png=report(
            "results/plots/zero_shot_explanations.png",
            caption=f"{REPORT}/zero_shot_explanations.rst",
            category="Explanations",
        ),
    log:
        "results/logs/tables/zero_shot_explanations.log",
    benchmark:
        "results/benchmarks/tables/zero_shot_explanations.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.tables.stages:run_zero_shot_explanations",
        kwargs={},
    script:
        STAGE


rule data_quality:
    input:
        **data_quality_records(),
    output:
        out_csv=report(
            "results/tables/data_quality.csv",
            caption=f"{REPORT}/data_quality.rst",
            category="Data quality",
            labels={"table": "data_quality", "format": "CSV"},
        ),
        out_html=report(
            "results/tables/data_quality.html",
            caption=f"{REPORT}/data_quality.rst",
            category="Data quality",
            labels={"table": "data_quality", "format": "HTML"},
        ),
    log:
        "results/logs/tables/data_quality.log",
    benchmark:
        "results/benchmarks/tables/data_quality.tsv"
    conda:
        "../../envs/aloe.yaml"
    params:
        fn="aloe.tables.stages:run_data_quality",
        kwargs={},
    script:
        STAGE
