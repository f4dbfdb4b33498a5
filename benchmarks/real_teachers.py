"""The conversion checks of tests/models/test_real_architectures.py on the LARGE paper teachers.

For each hub id: build the published architecture with random weights
(``aloe.models.hub_teachers``), zero the vision biases and perturb its norm scales, save it into a
temporary Hugging Face cache under its real hub id, load it with ``load_teacher(hub_id,
cache_dir=...)`` offline, cast the vision tower to float64 and measure

- the B = 1 error: max |teacher - bcosify(teacher, b=1)| over all hidden states and the pooled output;
- the completeness error of ``explain`` on the B = 2 student: max |image.sum + constant - target| / |target|.

One image at the published resolution, batch 1. Prints a markdown table and writes it, with the
command, date, commit and machine, into benchmarks/README.md between the markers below.

    nice python3 benchmarks/real_teachers.py [--teachers ID ...] [--device cpu] [--no-readme]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's aloe (the commit recorded below)

import torch
import transformers

from aloe import load_teacher
from aloe.models.conversion_check import b1_error, completeness_error, perturb_scales_, zero_biases_
from aloe.models.hub_teachers import HUB_TEACHERS, build_teacher_model, save_to_hub_cache, vision_tower
from readme_section import commit, write_section

LARGE = ["facebook/dinov3-vitl16-pretrain-lvd1689m", "google/siglip2-large-patch16-256",
         "google/siglip2-so400m-patch16-256", "google/siglip2-so400m-patch16-384"]
BEGIN, END = "<!-- real_teachers:begin -->", "<!-- real_teachers:end -->"


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def check(hub_id: str, cache: Path, device: str) -> dict:
    times, started = {}, time.perf_counter()
    model = build_teacher_model(hub_id)
    params = sum(p.numel() for p in model.parameters())
    vision_params = sum(p.numel() for p in vision_tower(model).parameters())
    zero_biases_(vision_tower(model))
    perturb_scales_(vision_tower(model))
    times["build"] = time.perf_counter() - started
    t = time.perf_counter()
    save_to_hub_cache(model, hub_id, cache)
    del model
    gc.collect()
    times["save"] = time.perf_counter() - t
    t = time.perf_counter()
    teacher = load_teacher(hub_id, cache_dir=cache).to(device)
    teacher.vision.double()
    times["load"] = time.perf_counter() - t
    size = teacher.image_size
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    t = time.perf_counter()
    b1 = b1_error(teacher, x)
    times["b1"] = time.perf_counter() - t
    t = time.perf_counter()
    complete = completeness_error(teacher, x)
    times["completeness"] = time.perf_counter() - t
    row = {"hub_id": hub_id, "params": params, "vision_params": vision_params, "image_size": size,
           "tokens": (size // teacher.patch_size) ** 2 + teacher.num_prefix_tokens, "b1": b1, "completeness": complete,
           "seconds": time.perf_counter() - started, "times": times, "peak_rss_gb": _peak_rss_gb()}
    del teacher
    gc.collect()
    return row


def table(rows: list[dict]) -> str:
    lines = ["| hub id | params (vision) | image, tokens | B=1 max abs error | completeness error | seconds "
             "(build / save / load / B=1 / completeness) | peak RSS so far |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['hub_id']} | | | not run: {r['error']} | | | |")
            continue
        t = r["times"]
        parts = " / ".join(f"{t[k]:.0f}" for k in ("build", "save", "load", "b1", "completeness"))
        lines.append(f"| {r['hub_id']} | {r['params'] / 1e6:.1f}M ({r['vision_params'] / 1e6:.1f}M) | "
                     f"{r['image_size']} px, {r['tokens']} | {r['b1']:.2e} | {r['completeness']:.2e} | "
                     f"{r['seconds']:.0f} ({parts}) | {r['peak_rss_gb']:.1f} GB |")
    return "\n".join(lines)


def _machine(device: str) -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = f", {torch.cuda.get_device_name()}" if device.startswith("cuda") else ", no GPU used"
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, {mem:.0f} GB RAM{gpu}; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, Python "
            f"{platform.python_version()}; load average at the end {os.getloadavg()[0]:.1f}")


def section(rows: list[dict], command: str, started: str, commit: str, device: str) -> str:
    return "\n".join([
        BEGIN, "## Large paper teachers at published size (issue 12)", "",
        "`benchmarks/real_teachers.py` (generated by it): each teacher is built with random weights from",
        "its published configuration (`aloe.models.hub_teachers`), vision biases zeroed and norm scales",
        "perturbed, saved into a temporary Hugging Face cache under its real hub id, loaded with",
        "`load_teacher(hub_id, cache_dir=...)` offline and its vision tower cast to float64; one image at",
        "the published resolution. B=1 error: max |teacher - `bcosify(teacher, b=1)`| over every hidden",
        "state and the pooled output. Completeness error: max |image.sum + constant - target| / |target|",
        "of `explain` on the B=2 student for a random read-out of the pooled output. The base-size",
        "teachers run the same checks in `tests/models/test_real_architectures.py`.", "",
        f"Command: `{command}`  ", f"Date: {started}  ", f"Commit: {commit}  ", f"Machine: {_machine(device)}", "",
        table(rows), "", END,
    ])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teachers", nargs="+", default=LARGE, choices=sorted(HUB_TEACHERS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache", type=Path, default=None, help="where the temporary hub cache goes (default: $TMPDIR)")
    p.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    args = p.parse_args(argv)
    started, revision = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), commit()  # of the code that runs
    command = " ".join(["nice python3 benchmarks/real_teachers.py", *(sys.argv[1:] if argv is None else argv)])
    rows = []
    for hub_id in args.teachers:
        cache = Path(tempfile.mkdtemp(prefix="aloe-hub-", dir=args.cache))
        try:
            rows.append(check(hub_id, cache, args.device))
        except (MemoryError, RuntimeError) as err:  # e.g. out of memory: say so in the table
            rows.append({"hub_id": hub_id, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"})
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = section(rows, command, started, revision, args.device)
    print(text)
    if not args.no_readme:
        write_section(text, BEGIN, END)


if __name__ == "__main__":
    main()
