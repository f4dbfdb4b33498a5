"""aloe.study: the workflow's plan (alignment runs and their arguments, baselines, the records of
every table and plot) as plain functions of the resolved presets, without Snakemake."""

from __future__ import annotations

from pathlib import Path

import pytest

from aloe.config import load_config
from aloe.registry import TABLE_NAMES
from aloe.study import alignment_plan as ap
from aloe.study import canonical
from aloe.study import layout
from aloe.study import table_plans as tp

ROOT = Path(__file__).resolve().parents[2]
RESOLVED = load_config(ROOT / "config.yaml")
PAPER, DEMO, TINY = (canonical(RESOLVED[p]) for p in ("paper", "demo", "tiny"))


def runs(study):
    return [(t, name, lr) for name, s in ap.alignment_settings(study).items() for t in s["teachers"] for lr in s["lrs"]]


def test_paper_main_runs_are_8_teachers_at_3_lrs_and_the_ablations_one_lr_each():
    settings = ap.alignment_settings(PAPER)
    assert settings["main"] == {"teachers": PAPER["alignment"]["teachers"], "lrs": [3e-3, 1e-3, 5e-4], "overrides": {}}
    assert len(settings["main"]["teachers"]) * len(settings["main"]["lrs"]) == 24
    assert list(settings) == ["main", "depths-2L3-L", "depths-L", "depths-L3-2L3-L", "depths-all", "depths-pool",
                              "loss-mse", "loss-cosine", "loss-siglip", "loss-infonce",
                              "data-0.001", "data-0.01", "data-0.1", "data-1"]
    assert settings["depths-pool"] == {"teachers": ["siglip2_b16"], "lrs": [1e-3],
                                       "overrides": {"depths": [], "total_steps": 20000}}
    assert settings["data-0.01"]["overrides"] == {"fraction": 0.01, "total_steps": 20000}
    assert settings["loss-mse"]["teachers"] == ["vit_b16_sup", "siglip2_b16", "dinov3_b16"]
    assert len(runs(PAPER)) == 24 + 5 + 12 + 8 == 49
    assert len(runs(DEMO)) == 3 + 5 + 4 + 2 == 14 and len(runs(TINY)) == 3 + 2 + 2 + 2 == 9
    assert list(ap.alignment_settings(TINY)) == ["main", "depths-L3-2L3-L", "depths-pool", "loss-cosine", "loss-mse",
                                                 "data-0.5", "data-1"]


def test_main_run_kwargs_of_a_paper_teacher():
    kwargs = ap.run_kwargs(PAPER, "dinov3_l16", "main", "0.0005")
    train = kwargs.pop("train")
    assert kwargs == dict(teacher="facebook/dinov3-vitl16-pretrain-lvd1689m", teacher_depth=24, b=2, stem="linear",
                          depths="default", shards="results/alignment_sets/yfcc15m/shards",
                          heldout_shards="results/alignment_sets/yfcc15m/subset_val",
                          train_keys="results/alignment_sets/yfcc15m/splits/train_1.txt")
    assert list(train) == [*ap.TRAINING_KEYS, "objective", "seed", "progress", "lr"]  # the order params are compared in
    assert train["lr"] == 5e-4 and train["objective"] == "aloe" and train["total_steps"] == 60000
    assert train["schedule"] == "constant_cosine" and train["lambda_layers"] == 1.0 and train["progress"] is False


def test_pool_is_the_global_term_alone_and_the_other_depth_settings_pass_their_symbols():
    assert ap.global_only([]) and not ap.global_only(["L"]) and not ap.global_only("default")
    pool = ap.run_kwargs(PAPER, "siglip2_b16", "depths-pool", "0.001")
    assert pool["depths"] == "default" and pool["train"]["lambda_layers"] == 0.0
    assert pool["train"]["total_steps"] == 20000 and pool["train"]["lr"] == 1e-3
    third = ap.run_kwargs(PAPER, "siglip2_b16", "depths-2L3-L", "0.001")
    assert third["depths"] == ["2L/3", "L"] and third["train"]["lambda_layers"] == 1.0


def test_ablation_runs_override_their_one_setting():
    mse = ap.run_kwargs(PAPER, "vit_b16_sup", "loss-mse", "0.001")
    assert mse["train"]["loss"] == "mse" and mse["train"]["total_steps"] == 20000 and mse["depths"] == "default"
    data = ap.run_kwargs(PAPER, "dinov3_b16", "data-0.01", "0.001")
    assert data["shards"] == "results/alignment_sets/yfcc15m/subset_0.01" and data["train_keys"] is None
    assert ap.run_inputs(PAPER, "dinov3_b16", "data-0.01") == [
        "results/teachers/dinov3_b16/teacher.json", "results/alignment_sets/yfcc15m/shards/summary.json",
        "results/alignment_sets/yfcc15m/subset_val/subset.json",
        "results/alignment_sets/yfcc15m/subset_0.01/subset.json"]
    assert ap.run_inputs(PAPER, "dinov3_b16", "data-1") == ap.run_inputs(PAPER, "dinov3_b16", "main")[:3]
    demo = ap.run_kwargs(DEMO, "demo_vit", "main", "0.001")
    assert demo["teacher"] == "results/teachers/demo_vit/model" and demo["teacher_depth"] == 4
    assert demo["shards"] == "results/alignment_sets/synthetic/shards"


def test_baseline_objective_per_family():
    assert ap.baseline_objective("vit") == ap.baseline_objective("dinov3") == "supervised"
    assert ap.baseline_objective("siglip") == "global_distill"
    with pytest.raises(ValueError, match="'clip'"):
        ap.baseline_objective("clip")


def test_baseline_kwargs_supervised_for_the_vit_and_distillation_for_siglip():
    vit = ap.baseline_kwargs(PAPER, "vit_b16_sup")
    train = vit.pop("train")
    assert vit == dict(teacher="google/vit-base-patch16-224", teacher_depth=12, b=2, stem="linear",
                       bcos_form="cosine", shards="results/eval_data/imagenet1k/train")
    assert train == dict(loss="cosine", lambda_global=1.0, lambda_layers=1.0, alpha=0.0, total_steps=30000,
                         warmup_steps=1000, schedule="cosine", tail_steps=0, global_batch=1024, micro_batch=128,
                         eval_every=0, eval_samples=30000, patience=0, ckpt_every=1000, num_workers=8,
                         max_corrupt_share=0.05, objective="supervised", seed=0, progress=False, lr=1e-4,
                         num_classes=1000)
    siglip = ap.baseline_kwargs(PAPER, "siglip2_b16")
    assert siglip["train"]["objective"] == "global_distill" and siglip["train"]["lambda_layers"] == 0.0
    assert "num_classes" not in siglip["train"] and siglip["shards"] == "results/alignment_sets/yfcc15m/shards"
    assert siglip["train_keys"] == "results/alignment_sets/yfcc15m/splits/train_1.txt"
    assert ap.baseline_inputs(PAPER, "siglip2_b16") == [
        "results/teachers/siglip2_b16/teacher.json", "results/alignment_sets/yfcc15m/shards/summary.json",
        "results/alignment_sets/yfcc15m/splits/splits.json"]
    assert ap.baseline_inputs(PAPER, "dinov3_b16") == ["results/teachers/dinov3_b16/teacher.json",
                                                       "results/eval_data/imagenet1k/meta.json"]
    code = dict(PAPER, baselines={**PAPER["baselines"], "bcos_form": "bcosification_code"})
    assert ap.baseline_kwargs(code, "siglip2_b16")["bcos_form"] == "bcosification_code"
    assert "bcos_form" not in ap.run_kwargs(code, "siglip2_b16", "main", "1e-3")  # ALOE runs keep the default
    demo = ap.baseline_kwargs(DEMO, "demo_dinov3")
    assert demo["shards"] == "results/world/shapes/train" and demo["train"]["num_classes"] == 8
    assert ap.baseline_inputs(DEMO, "demo_dinov3")[1] == "results/world/world.json"


def test_layout_names():
    assert layout.record_variant("aloe_loss-mse") == "aloe:loss=mse" and layout.record_variant("aloe") == "aloe"
    assert layout.record_variant("aloe_depths-2L3-L") == "aloe:depths=2L3-L"
    assert layout.variant_setting("aloe") == "main" and layout.variant_setting("aloe_data-0.1") == "data-0.1"
    assert layout.backbone(PAPER, "vit_b16_sup", "teacher") == ("google/vit-base-patch16-224", "teacher")
    assert layout.backbone(PAPER, "vit_b16_sup", "aloe") == ("results/backbones/vit_b16_sup/aloe", "student")
    assert layout.eval_dataset_dir(DEMO, "shapes") == "results/world/shapes"
    assert layout.eval_dataset_dir(PAPER, "cifar10") == "results/eval_data/cifar10"
    assert layout.canonical({"b": [{"d": 1, "c": 2}], "a": 0}) == {"a": 0, "b": [{"c": 2, "d": 1}]}
    assert list(layout.canonical({"b": 1, "a": 2})) == ["a", "b"]


def test_paper_table_plans_list_every_record():
    sizes = {t: len(tp.table_plan(PAPER, t)[0]) for t in TABLE_NAMES}
    # Table 2 / 3a: 3 main teachers x (teacher, B-cosification, ALOE) x 10 datasets; B1 / B2: 8 teachers,
    # 8 students, 3 baselines; Table 4: 5 depth settings x 10 datasets; B6: LP and k-NN of teacher and
    # student on IN1k and GridPG (6 post-hoc methods, 5 on SigLIP, + bcos)
    assert sizes == {"table2": 90, "table3a": 90, "table3b": 3, "table4": 50, "tableB1": 190, "tableB2": 190,
                     "tableB3": 9, "tableB4": 3, "tableB5": 3, "tableB6": 6 + 6 + 7 + 6 + 7, "tableB8": 12}
    files, kwargs = tp.table_plan(PAPER, "table2")
    assert kwargs == {"backbones": ["vit_b16_sup", "siglip2_b16", "dinov3_b16"],
                      "datasets": PAPER["evaluation"]["classification"]}
    assert files[:2] == ["results/metrics/linear_probe/vit_b16_sup/teacher/imagenet1k.json",
                         "results/metrics/linear_probe/vit_b16_sup/teacher/caltech101.json"]
    assert files[10] == "results/metrics/linear_probe/vit_b16_sup/bcosification/imagenet1k.json"
    assert len(set(files)) == 90
    files, kwargs = tp.table_plan(PAPER, "tableB3")
    assert kwargs == {"backbones": ["siglip2_b16", "siglip2_l16", "siglip2_so400m16", "siglip2_so400m16_384"],
                      "select": {"template_set": "openclip_imagenet"}}
    assert files[:2] == ["results/metrics/zero_shot/siglip2_b16/teacher/imagenet1k/openclip_imagenet.json",
                         "results/metrics/zero_shot/siglip2_b16/bcosification/imagenet1k/openclip_imagenet.json"]
    table4 = tp.table_plan(PAPER, "table4")[0]
    assert table4[0] == "results/metrics/linear_probe/siglip2_b16/aloe_depths-2L3-L/imagenet1k.json"
    assert tp.table_plan(PAPER, "tableB4")[0] == [f"results/metrics/dense/dinov3_b16/{v}/depth.json"
                                                  for v in ("teacher", "bcosification", "aloe")]


def test_gridpg_has_no_cls_method_on_siglip():
    post_hoc = ["cp_lrp", "attnlrp", "ig", "lime", "legrad", "chefercam"]
    assert tp.explain_methods(PAPER) == post_hoc
    assert tp.teacher_methods(PAPER, "siglip2_b16") == post_hoc[:-1]
    assert tp.gridpg_files(PAPER, ["siglip2_b16"]) == [
        f"results/metrics/gridpg/siglip2_b16/teacher/{m}.json" for m in post_hoc[:-1]] + [
        "results/metrics/gridpg/siglip2_b16/aloe/bcos.json"]
    rows = tp.explanation_backbones(PAPER, "imagenet1k")
    assert [(r["name"], r["methods"]) for r in rows] == [("vit_b16_sup", post_hoc), ("siglip2_b16", post_hoc[:-1]),
                                                          ("dinov3_b16", post_hoc)]
    assert rows[0]["student_head"] == "results/metrics/linear_probe/vit_b16_sup/aloe/imagenet1k.head.safetensors"
    inputs = tp.explanation_inputs(PAPER, "imagenet1k")
    assert len(inputs) == 1 + 3 * 4 and inputs[:3] == ["results/eval_data/imagenet1k/meta.json",
                                                       "results/teachers/vit_b16_sup/teacher.json",
                                                       "results/backbones/vit_b16_sup/aloe"]


def test_figure_records():
    fig9 = tp.fig9_records(PAPER)
    assert fig9[:2] == ["results/metrics/linear_probe/siglip2_b16/aloe_data-0.001/imagenet1k.json",
                        "results/metrics/linear_probe/siglip2_b16/aloe_data-0.01/imagenet1k.json"]
    assert len(fig9) == 2 * 4 + 2 * 2 and fig9[8:10] == [  # the teacher and B-cosification reference lines
        "results/metrics/linear_probe/siglip2_b16/teacher/imagenet1k.json",
        "results/metrics/linear_probe/siglip2_b16/bcosification/imagenet1k.json"]
    fig1 = tp.fig1_records(PAPER)
    assert len(fig1) == 3 * 2 + 20 and fig1[0] == "results/metrics/linear_probe/vit_b16_sup/teacher/imagenet1k.json"
    assert tp.fig9_records(TINY) == ["results/metrics/linear_probe/demo_siglip/aloe_data-0.5/shapes.json",
                                     "results/metrics/linear_probe/demo_siglip/aloe_data-1/shapes.json",
                                     "results/metrics/linear_probe/demo_siglip/teacher/shapes.json",
                                     "results/metrics/linear_probe/demo_siglip/bcosification/shapes.json"]


def test_data_quality_reads_every_run_and_subset_the_tables_depend_on():
    paper = tp.data_quality_records(PAPER)
    assert paper["downloads"] == ["results/alignment_sets/yfcc15m/shards/summary.json"]
    assert paper["subsets"] == [f"results/alignment_sets/yfcc15m/subset_{s}/subset.json"
                                for s in ("val", "0.001", "0.01", "0.1")]
    assert len(paper["runs"]) == 49 + 3  # every alignment run and the three baselines
    assert "results/align/siglip2_b16/depths-pool/lr0.001/result.json" in paper["runs"]
    assert "results/align/vit_b16_sup/bcosification/result.json" in paper["runs"]
    assert len(paper["features"]) == 2 * 263 and paper["features"] == sorted(paper["features"])
    # train and test of all 263 feature jobs of the paper DAG; GridPG reads those of its dataset (IN1k)
    assert "results/features/siglip2_b16/aloe/imagenet1k/train.safetensors" in paper["features"]
    tiny = tp.data_quality_records(TINY)
    assert tiny["subsets"] == ["results/alignment_sets/synthetic/subset_val/subset.json",
                               "results/alignment_sets/synthetic/subset_0.5/subset.json"]
    assert len(tiny["runs"]) == 9 + 3


def test_eval_protocol_kwargs_carry_exactly_the_keys_each_protocol_reads():
    from aloe.study import eval_plan

    knn = PAPER["evaluation"]["knn"]
    assert eval_plan.knn_kwargs(knn) == dict(protocol="dinov2", k=20, query_chunk=1024, temperature=0.07)
    assert eval_plan.knn_kwargs({**knn, "protocol": "aloe_code"}) == dict(protocol="aloe_code", k=20, query_chunk=1024)
    lp = PAPER["evaluation"]["linear_probe"]
    assert eval_plan.linear_probe_kwargs(lp) == dict(protocol="dinov2", iterations=12500, batch_size=1024,
                                                     lrs="dinov2", val_fraction=0.1, n_last_blocks=[1, 4],
                                                     avgpool=[False, True], seed=0)
    # GridPG reads the threshold of its protocol only
    gp = PAPER["evaluation"]["gridpg"]
    assert eval_plan.gridpg_kwargs(gp) == dict(protocol="resize", threshold=0.5, num_grids=500)
    assert eval_plan.gridpg_kwargs({**gp, "protocol": "sliding_window"}) == dict(
        protocol="sliding_window", threshold=0.95, num_grids=500)
    # the caches hold the grid's largest layout for dinov2, pooler_output alone for aloe_code
    assert eval_plan.feature_layout(lp) == {"last_n": 4, "avgpool": True}
    assert eval_plan.feature_layout({**lp, "protocol": "aloe_code"}) == {"last_n": 1, "avgpool": False}
    assert eval_plan.linear_probe_kwargs({**lp, "protocol": "aloe_code"}) == dict(
        protocol="aloe_code", seed=0, aloe_code=dict(epochs=50, batch_size=8192, lrs=[1e-2, 3e-3, 1e-3],
                                                     weight_decay=1e-4))
