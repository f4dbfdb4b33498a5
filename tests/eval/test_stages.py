"""End to end on the synthetic world: teacher and B-cos student through every evaluation stage."""

import pytest
import torch

from aloe import bcosify
from aloe.data.zero_shot import load_templates
from aloe.eval.classifier import load_head
from aloe.eval.features import ProvenanceMismatchError, load_features, read_metadata, read_provenance
from aloe.eval.probe_stages import run_knn, run_linear_probe
from aloe.eval.stages import run_deletion, run_dense_probe, run_extract_train_test, run_gridpg, run_zeroshot
from aloe.records import RECORD_KEYS, read_records

from eval_helpers import save_tiny_teacher


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    teacher_dir = save_tiny_teacher(root / "teacher", "vit")
    from aloe import load_teacher

    student = bcosify(load_teacher(str(teacher_dir)))
    student.save_pretrained(root / "student")
    return root, teacher_dir, root / "student"


def _features(root, backbone_dir, kind, world, dataset, **kw):
    paths = {split: root / f"{kind}_{dataset}_{split}.safetensors" for split in ("train", "test")}
    run_extract_train_test(str(paths["train"]), str(paths["test"]), backbone_path=str(backbone_dir), backbone_kind=kind,
                           dataset_dir=str(world / dataset), dataset=dataset, batch_size=16, **kw)
    return paths


def test_aloe_code_protocols_through_the_stages(dirs, world):
    """protocol aloe_code: a B-cos head on the student and a linear head on the teacher, recorded
    in the head file that the explanation stages read; k-NN without a temperature."""
    from aloe.eval.classifier import ProbedClassifier
    from aloe.models.backbones import load_backbone

    root, teacher_dir, student_dir = dirs
    common = dict(backbone="tiny-vit", dataset="shapes")
    settings = {"epochs": 3, "batch_size": 16, "lrs": [1e-2, 1e-3], "weight_decay": 1e-4}
    (root / "ac").mkdir(exist_ok=True)
    for kind, path, variant, head in (("teacher", teacher_dir, "teacher", "linear"),
                                      ("student", student_dir, "aloe", "bcos")):
        f = _features(root / "ac", path, kind, world, "shapes")
        head_file = root / "ac" / f"{kind}_head.safetensors"
        lp = run_linear_probe(root / "ac" / f"{kind}_lp.json", train_features=str(f["train"]),
                              test_features=str(f["test"]), head_out=str(head_file), protocol="aloe_code",
                              aloe_code=settings, variant=variant, **common)
        assert lp["params"]["protocol"] == "aloe_code" and lp["params"]["head"] == head
        assert lp["params"]["selected_on"] == "test" and 1 <= lp["params"]["best_epoch"] <= 3
        weight, bias, kind_read = load_head(head_file, path)
        assert kind_read == head
        clf = ProbedClassifier(load_backbone(str(path), kind), weight, bias, kind_read).eval()
        assert (clf.bcos_head is not None) == (head == "bcos")
        knn = run_knn(root / "ac" / f"{kind}_knn.json", train_features=str(f["train"]), test_features=str(f["test"]),
                      k=5, protocol="aloe_code", variant=variant, **common)
        assert knn["params"]["protocol"] == "aloe_code" and "temperature" not in knn["params"]
        # the protocols the tables print in their captions
        assert lp["params"]["protocols"] == {"linear_probe": "aloe_code", "eval_transform": "center_crop"}
        assert knn["params"]["protocols"] == {"knn": "aloe_code", "eval_transform": "center_crop"}
    # GridPG, the ALOE authors' protocol: the B-cos-head student (sigmoid) gated by its linear-head teacher
    # (softmax); the records' params say how, whether these 3-epoch probes classify enough test images or not
    gate = [{"variant": "teacher", "backbone_path": str(teacher_dir), "backbone_kind": "teacher",
             "head_path": str(root / "ac" / "teacher_head.safetensors")}]
    g = dict(backbone_path=str(student_dir), backbone_kind="student", method="bcos", num_grids=1, variant="aloe",
             head_path=str(root / "ac" / "student_head.safetensors"), gate=gate, dataset_dir=str(world / "shapes"),
             split="test", **common)
    sw = run_gridpg(root / "ac" / "gridpg_sw.json", protocol="sliding_window", threshold=0.0, **g)
    rs = run_gridpg(root / "ac" / "gridpg_rs.json", threshold=0.0, **g)
    for rec, protocol, confidence in ((sw, "sliding_window", {"aloe": "sigmoid", "teacher": "softmax"}),
                                      (rs, "resize", {"aloe": "softmax", "teacher": "softmax"})):
        p = rec["params"]
        assert p["protocols"] == {"gridpg": protocol} and p["confidence"] == confidence and p["gated_by"] == ["teacher"]
        assert p["threshold"] == 0.0 and rec["status"] in ("ok", "unavailable")
    with pytest.raises(ValueError, match="protocol must be one of"):
        run_gridpg(root / "ac" / "gridpg_bad.json", protocol="sliding", **g)


def test_classification_stages(dirs, world):
    root, teacher_dir, student_dir = dirs
    common = dict(backbone="tiny-vit", dataset="shapes")
    for kind, path, variant in (("teacher", teacher_dir, "teacher"), ("student", student_dir, "bcosified")):
        f = _features(root, path, kind, world, "shapes")
        feats = load_features(f["train"], {"dataset": "shapes", "split": "train"})
        assert feats["global"].shape == (48, 32) and feats["labels"].bincount().tolist() == [12] * 4
        assert read_metadata(f["train"])["num_samples"] == "48"
        with pytest.raises(ProvenanceMismatchError):
            load_features(f["train"], {"dataset": "textures"})
        head = root / f"{kind}_head.safetensors"
        lp = run_linear_probe(root / f"{kind}_lp.json", train_features=str(f["train"]), test_features=str(f["test"]),
                              head_out=str(head), iterations=300, batch_size=16, lrs=(0.1, 1.0, 10.0), variant=variant,
                              **common)
        knn = run_knn(root / f"{kind}_knn.json", train_features=str(f["train"]), test_features=str(f["test"]),
                      k=5, variant=variant, **common)
        for rec, metric in ((lp, "lp_top1"), (knn, "knn_top1")):
            assert set(rec) == {*RECORD_KEYS, "status"} and rec["metric"] == metric and 0.0 <= rec["value"] <= 100.0
            assert rec["value"] * 24 / 100 == pytest.approx(round(rec["value"] * 24 / 100))  # a count of 24 tests
            assert rec["params"]["num_test"] == 24  # the tables' bold needs the test-set size
        assert read_records(root / f"{kind}_lp.json") == [lp]
        from aloe.models import load_head as read_head

        assert read_head(head).classes == ["red circle", "green square", "blue triangle", "yellow star"]
        assert lp["value"] > 25.0  # better than chance on 4 shape classes
    # a head is bound to its backbone
    with pytest.raises(ValueError, match="another backbone"):
        load_head(root / "student_head.safetensors", teacher_dir)
    # train and test from different backbones are refused
    with pytest.raises(ProvenanceMismatchError, match="backbone_checksum"):
        run_knn(root / "bad.json", train_features=str(root / "teacher_shapes_train.safetensors"),
                test_features=str(root / "student_shapes_test.safetensors"), variant="x", **common)
    assert not (root / "bad.json").exists()

    explained = dict(dataset_dir=str(world / "shapes"), split="test", dataset="shapes", backbone="tiny-vit")
    g = run_gridpg(root / "gridpg_bcos.json", backbone_path=str(student_dir), backbone_kind="student",
                   head_path=str(root / "student_head.safetensors"), method="bcos", threshold=0.0, num_grids=3,
                   variant="bcosified", **explained)
    assert 0.0 <= g["value"] <= 1.0 and g["params"]["cells_scored"] == 12 and g["params"]["cells_zero_mass"] <= 12
    assert g["params"]["protocols"] == {"gridpg": "resize"}
    assert (g["params"]["grid_size"], g["params"]["windows_per_cell"]) == (32, 1)
    sw = run_gridpg(root / "gridpg_bcos_sw.json", backbone_path=str(student_dir), backbone_kind="student",
                    head_path=str(root / "student_head.safetensors"), method="bcos", threshold=0.0, num_grids=3,
                    variant="bcosified", protocol="sliding_window", **explained)
    p = sw["params"]  # 32 px cells at native resolution: 64 px grids, 9 windows of 32 px per cell
    assert 0.0 <= sw["value"] <= 1.0 and p["cells_scored"] == 12 and (p["grid_size"], p["windows_per_cell"]) == (64, 9)
    assert p["protocols"] == {"gridpg": "sliding_window"} and p["confidence"] == {"bcosified": "softmax"}  # linear head
    assert p["threshold"] == 0.0 and p["grid_set"] != g["params"]["grid_set"]
    g_ig = run_gridpg(root / "gridpg_ig.json", backbone_path=str(teacher_dir), backbone_kind="teacher",
                      head_path=str(root / "teacher_head.safetensors"), method="ig", threshold=0.0, num_grids=2,
                      method_options={"n_steps": 8}, variant="teacher", **explained)
    assert 0.0 <= g_ig["value"] <= 1.0
    g_cam = run_gridpg(root / "gridpg_cam.json", backbone_path=str(teacher_dir), backbone_kind="teacher",
                       head_path=str(root / "teacher_head.safetensors"), method="chefercam", threshold=0.0,
                       num_grids=2, variant="teacher", **explained)
    assert 0.0 <= g_cam["value"] <= 1.0 and g_cam["params"]["method"] == "chefercam"
    # no test image reaches probability > 1: GridPG is unavailable, and the record says why
    na = run_gridpg(root / "gridpg_na.json", backbone_path=str(student_dir), backbone_kind="student",
                    head_path=str(root / "student_head.safetensors"), method="bcos", threshold=1.01, num_grids=3,
                    variant="aloe", **explained)
    assert read_records(root / "gridpg_na.json") == [na]
    assert na["value"] is None and na["status"] == "unavailable" and "found 0 class(es) among 24 images" in na["reason"]
    assert na["counts"]["confident_per_class"] == {"0": 0, "1": 0, "2": 0, "3": 0}
    assert na["counts"]["classes_needed"] == 4 and na["counts"]["threshold"] == 1.01
    assert na["params"]["method"] == "bcos" and na["params"]["num_images"] == 24
    with pytest.raises(ValueError, match="not a multiple of the LIME block"):  # a genuine error still fails
        run_gridpg(root / "gridpg_lime.json", backbone_path=str(teacher_dir), backbone_kind="teacher",
                   head_path=str(root / "teacher_head.safetensors"), method="lime", threshold=0.0, num_grids=1,
                   method_options={"block": 7}, variant="teacher", **explained)
    assert not (root / "gridpg_lime.json").exists()
    d = run_deletion(root / "del.json", backbone_path=str(student_dir), backbone_kind="student",
                     head_path=str(root / "student_head.safetensors"), method="bcos", block=8, steps=5, max_images=6,
                     variant="bcosified", **explained)
    curve = d["params"]["curve"]
    assert len(curve) == 5 and all(0 <= c <= 1 for c in curve)
    area = torch.trapezoid(torch.tensor(curve), torch.tensor([0, 0.2, 0.4, 0.6, 0.8]))
    assert d["value"] == pytest.approx(float(area))


def test_dense_stage(dirs, world):
    root, teacher_dir, _ = dirs
    f = _features(root, teacher_dir, "teacher", world, "depth", patch_blocks=[0, 1])
    tr = load_features(f["train"], {})
    assert tr["block0"].shape == (8, 32, 4, 4) and tr["depth"].shape == (8, 1, 32, 32) and tr["normal"].shape[1] == 3
    recs = run_dense_probe(root / "depth.json", train_features=str(f["train"]), test_features=str(f["test"]),
                           task="depth", backbone="tiny-vit", variant="teacher", dataset="depth", epochs=2)
    assert [r["metric"] for r in recs] == [f"depth_{k}_{m}" for k in ("abs", "rel")
                                           for m in ("delta1", "delta2", "delta3", "rmse")]
    normals = run_dense_probe(root / "normals.json", train_features=str(f["train"]), test_features=str(f["test"]),
                              task="normals", blocks=[1], backbone="tiny-vit", variant="teacher", dataset="depth",
                              epochs=2)
    assert normals[-1]["metric"] == "normals_rmse_deg" and 0 < normals[-1]["value"] < 180
    with pytest.raises(ValueError, match="blocks"):
        run_dense_probe(root / "x.json", train_features=str(f["train"]), test_features=str(f["test"]), task="depth",
                        blocks=[5], backbone="b", variant="v", dataset="depth")


def test_zeroshot_stage(tmp_path, world):
    siglip_dir = save_tiny_teacher(tmp_path / "siglip", "siglip")
    rec = run_zeroshot(tmp_path / "zs.json", text_model_path=str(siglip_dir), image_encoder_path=str(siglip_dir),
                       image_encoder_kind="teacher", dataset_dir=str(world / "shapes"), dataset="shapes",
                       split="test", templates=load_templates("single"), template_set="single",
                       backbone="tiny-siglip", variant="teacher")
    assert rec["metric"] == "zeroshot_top1" and rec["params"]["num_images"] == 24
    prep = rec["params"]["preprocessing"]
    assert prep["crop"].startswith("none") and prep["resize"].startswith("bicubic")
    assert rec["params"]["protocols"] == {"zero_shot_text": "siglip canonicalized", "zero_shot_image": "resize"}
    # SigLIP feature caches: the whole image on classification data, the centred square on dense data
    for dataset, crop in (("shapes", "none (whole image, aspect ratio not kept)"), ("depth", "largest centred square")):
        f = _features(tmp_path, siglip_dir, "teacher", world, dataset)
        assert read_provenance(f["train"])["preprocessing"]["crop"] == crop
    assert rec["value"] * 24 / 100 == pytest.approx(round(rec["value"] * 24 / 100))


def test_dinov2_layout_grid_through_the_stages_on_a_shallow_backbone(dirs, world):
    """The cache for DINOv2's grid (4 last blocks + mean patch token) on a 2-block student: it holds
    the 2 blocks there are, the LP searches the layouts that exist, k-NN reads pooler_output."""
    from aloe.eval.features import read_provenance

    root, _, student_dir = dirs
    (root / "grid").mkdir(exist_ok=True)
    f = _features(root / "grid", student_dir, "student", world, "shapes", last_n=4, avgpool=True)
    spec = read_provenance(f["train"])["feature_spec"]
    assert (spec["last_n"], spec["avgpool"]) == (2, True)
    common = dict(train_features=str(f["train"]), test_features=str(f["test"]), backbone="tiny-vit", variant="aloe",
                  dataset="shapes")
    lp = run_linear_probe(root / "grid" / "lp.json", iterations=20, batch_size=16, **common)
    assert lp["params"]["layouts"] == ["last1", "last1+avgpool"]  # n_last_blocks 4 > 2 blocks: not a layout here
    assert lp["params"]["head_file"]["layout"] == "last1"
    knn = run_knn(root / "grid" / "knn.json", k=5, **common)
    assert 0.0 <= knn["value"] <= 100.0


def test_probe_stages_import_no_model_stack():
    """A linear-probe or k-NN job starts by importing its stage module: torch and the probes only."""
    import subprocess
    import sys

    code = ("import sys, aloe.eval.probe_stages\n"
            "print(sorted(m for m in ('transformers', 'torchvision', 'aloe.data.eval_loader', 'aloe.models.student')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
