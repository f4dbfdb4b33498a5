"""GPU-hours of the paper study per stage, from measured throughput scaled by model FLOPs.

The estimate and its anchor (750 img/s for the B-cos ViT-B/16 alignment step on one H100,
benchmarks/README.md) live in ``aloe.launch.estimate``, which ``python -m aloe.launch plan`` also
uses per job. Probes (LP, k-NN) are measured at seconds per job and are listed as such. An
estimate for planning and for asking an allocation, not a measurement of the whole study.

    python3 benchmarks/paper_gpu_hours.py            # markdown table for the README
"""

from __future__ import annotations

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aloe.config import load_config
from aloe.launch.estimate import estimate, step_img_s


def main() -> None:
    paper = load_config(Path(__file__).resolve().parents[1] / "config.yaml")["paper"]
    rows = estimate(paper)
    print("| stage | jobs | GPU-hours (H100, estimate) |\n|---|---|---|")
    for name, jobs, hours in rows:
        print(f"| {name} | {jobs} | {hours:,.0f} |")
    print(f"| total of these | {sum(r[1] for r in rows)} | {sum(r[2] for r in rows):,.0f} |")
    print("\nPer alignment run at the paper's 60k steps x 1024 images (img/s on one H100, estimated):")
    for name, t in paper["teachers"].items():
        img_s = step_img_s(t["source"])
        print(f"- {name}: {img_s:,.0f} img/s, {60000 * 1024 / img_s / 3600:,.0f} GPU-hours")


if __name__ == "__main__":
    main()
