"""One summary line per finished stage, for its rule log.

``SUMMARIES`` maps a stage function's name (``params.fn`` of its rule, without the module) to a
function of (the value it returned, its keyword arguments) that says what it produced, e.g.
``top-1 71.50 at lr 0.025, 12.5k it``. A stage without an entry is summarised by its records (a
returned metric record or list of them) or else by the files it wrote. Nothing but the standard
library is imported here (no torch).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from aloe.progress import count

Summary = Callable[[Any, Mapping[str, Any]], str]


def _value(rec: Mapping[str, Any]) -> str:
    if rec.get("status") == "unavailable":
        return f"unavailable ({rec.get('reason', 'no reason given')})"
    value = rec["value"]
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"


def _first(result: Any) -> Mapping[str, Any]:
    return result[0] if isinstance(result, list) else result


def linear_probe(result: Any, kwargs: Mapping[str, Any]) -> str:
    rec = _first(result)
    p = rec["params"]
    if p.get("protocol") == "aloe_code":
        return f"top-1 {_value(rec)} ({p['head']} head, best epoch {p['best_epoch']}, lr {p['best_lr']:g})"
    return f"top-1 {_value(rec)} at lr {p['best_lr']:g}, {count(p['iterations'])} it"


def knn(result: Any, kwargs: Mapping[str, Any]) -> str:
    rec = _first(result)
    return f"top-1 {_value(rec)} (k={rec['params']['k']})"


def zero_shot(result: Any, kwargs: Mapping[str, Any]) -> str:
    rec = _first(result)
    p = rec["params"]
    return f"top-1 {_value(rec)} on {p['num_images']} images, {p['num_templates']} template(s)"


def gridpg(result: Any, kwargs: Mapping[str, Any]) -> str:
    rec = _first(result)
    p = rec["params"]
    return f"{p['method']} score {_value(rec)} on {p['num_grids']} grid(s), protocol {p['protocols']['gridpg']}"


def deletion(result: Any, kwargs: Mapping[str, Any]) -> str:
    rec = _first(result)
    return f"{rec['params']['method']} deletion area {_value(rec)} on {rec['params']['num_images']} images"


def records(result: Any, kwargs: Mapping[str, Any]) -> str:
    recs = result if isinstance(result, list) else [result]
    return ", ".join(f"{r['metric']} {_value(r)}" for r in recs)


def safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read from its JSON header (no torch needed)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size)).get("__metadata__", {})


def features(result: Any, kwargs: Mapping[str, Any]) -> str:
    parts = []
    for split, key in (("train", "train_out"), ("test", "test_out")):
        meta = safetensors_metadata(kwargs[key])
        parts.append(f"{split} {meta.get('num_samples', '?')} samples")
    spec = _first(list(result.values()))["feature_spec"]
    blocks = f", patch blocks {spec['patch_blocks']}" if spec["patch_blocks"] else ""
    return f"cached {', '.join(parts)} (last {spec['last_n']} block(s){', avgpool' if spec['avgpool'] else ''}{blocks})"


def teacher(result: Any, kwargs: Mapping[str, Any]) -> str:
    text = (f"{result['family']} teacher {result['source']}: {result['num_layers']} blocks, width "
            f"{result['hidden_size']}, {result['image_size']} px, patch {result['patch_size']}")
    trained = result.get("training")
    if trained:
        text += f"; trained {trained['steps']} steps, final train loss {trained['final_train_loss']:.4g}"
    return text


def alignment_run(result: Any, kwargs: Mapping[str, Any]) -> str:
    best = result.get("best_heldout")
    held = "no held-out loss" if best is None else f"best held-out loss {best:.5g}"
    return f"{result['step']} steps{' (stopped early)' if result.get('stopped_early') else ''}, {held}"


def select_alignment(result: Any, kwargs: Mapping[str, Any]) -> str:
    return (f"selected lr {result['selected_lr']:g} (held-out loss {result['selected_heldout_loss']:.5g}) "
            f"of {len(kwargs.get('run_results', []))} run(s): {result['selected']}")


def install_baseline(result: Any, kwargs: Mapping[str, Any]) -> str:
    return f"installed {result['selected']}"


def download(result: Any, kwargs: Mapping[str, Any]) -> str:
    return (f"{result['successes']}/{result['count']} images ({result['success_rate']:.1%}) in "
            f"{len(result['shards'])} shard(s); failures by reason: {result['failures_by_reason'] or 'none'}")


def alignment_splits(result: Any, kwargs: Mapping[str, Any]) -> str:
    subsets = ", ".join(f"{name} {s['num_keys']}" for name, s in result["subsets"].items())
    return f"{result['num_keys']} keys: val {result['val']['num_keys']}, {subsets}"


def alignment_subset(result: Any, kwargs: Mapping[str, Any]) -> str:
    return (f"{result['written']} of {result['requested']} samples written, {result['not_in_shards']} "
            "listed key(s) in no shard")


def eval_dataset(result: Any, kwargs: Mapping[str, Any]) -> str:
    sizes = ", ".join(f"{split} {s['num_samples']}" for split, s in result["splits"].items())
    classes = f", {len(result['class_names'])} classes" if result.get("class_names") else ""
    return f"{result['name']} ({result['task']}{classes}): {sizes} samples"


def synthetic_world(result: Any, kwargs: Mapping[str, Any]) -> str:
    return (f"{result['image_size']} px world: classification {', '.join(result['classification'])}, dense "
            f"{', '.join(result['dense'])}, caption set {result['caption_set']['counts']}")


def data_quality(result: Any, kwargs: Mapping[str, Any]) -> str:
    return f"{len(result)} row(s); {wrote(kwargs_outputs(kwargs))}"


SUMMARIES: dict[str, Summary] = {
    "run_linear_probe": linear_probe, "run_knn": knn, "run_zero_shot": zero_shot, "run_gridpg": gridpg,
    "run_deletion": deletion, "run_dense_probe": records, "run_features": features, "run_teacher": teacher,
    "run_align_run": alignment_run, "run_baseline_run": alignment_run, "run_select_alignment": select_alignment,
    "run_install_baseline": install_baseline, "run_download_alignment_set": download,
    "run_alignment_splits": alignment_splits, "run_alignment_subset": alignment_subset,
    "run_prepare_eval_dataset": eval_dataset, "run_synthetic_world": synthetic_world,
    "run_data_quality": data_quality,
}


def _size(path: Path) -> str:
    if path.is_dir():
        n = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    else:
        n = path.stat().st_size
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def kwargs_outputs(kwargs: Mapping[str, Any]) -> list[str]:
    """The keyword arguments that name output files, by the rules' convention (``out``, ``*_out``)."""
    return [str(v) for k, v in kwargs.items() if (k == "out" or k.startswith("out_") or k.endswith("_out"))
            and isinstance(v, (str, os.PathLike))]


def wrote(outputs: Sequence[str]) -> str:
    present = [Path(o) for o in outputs if Path(o).exists()]
    if not present:
        return "done"
    return "wrote " + ", ".join(f"{p} ({_size(p)})" for p in present)


def summarize(fn: str, result: Any, kwargs: Mapping[str, Any], outputs: Sequence[str] = ()) -> str:
    """The summary of stage ``fn`` ("module:function") that returned ``result``; a summariser that
    fails on an unexpected result falls back to the generic summary, never failing the stage."""
    name = fn.rpartition(":")[2]
    try:
        if name in SUMMARIES:
            return SUMMARIES[name](result, kwargs)
        if isinstance(_first(result), Mapping) and {"metric", "value"} <= set(_first(result)):
            return records(result, kwargs)
    except (KeyError, TypeError, ValueError, IndexError, OSError, struct.error) as err:
        return f"{wrote(outputs or kwargs_outputs(kwargs))} (no summary: {type(err).__name__}: {err})"
    return wrote(outputs or kwargs_outputs(kwargs))
