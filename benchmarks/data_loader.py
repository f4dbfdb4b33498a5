"""Alignment loader throughput vs bare PIL decoding of the same files, single core, interleaved.

Writes img2dataset-like shards (JPEG q95, square, at the given resolutions) of synthetic images,
then alternates, for several rounds: (a) bare decode = read the same tar files with tarfile and
``PIL.Image.open(...).convert("RGB")`` every JPEG; (b) ``AlignmentLoader`` with num_workers=0
(tar read + shuffle buffer + decode + RandomResizedCrop + flip + batch), once returning uint8
batches (float conversion left to the GPU) and once float32 batches in [0, 1]. Ratios are
per round (same-round baseline), medians over rounds.
Both run in this one process with torch limited to one thread and are timed by process CPU
time (``time.process_time``), so img/s is per core and other load on a shared machine changes
the figures less than wall-clock timing would.

    python benchmarks/data_loader.py --sizes 224 64 --images 512 --rounds 5
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from aloe.data.align_loader import AlignmentLoader
from aloe.data.shards import encode_jpeg, write_split
from aloe.data.synthetic_images import shape_classes, shape_image


def write_jpeg_shards(root: Path, size: int, n: int) -> list[str]:
    classes = shape_classes(8)
    samples = ({"jpg": encode_jpeg(Image.fromarray(shape_image(0, 1, i, *classes[i % 8], size, size)), 95),
                "txt": b"a photo of a shape"} for i in range(n))
    entry = write_split(root, "bench", samples, samples_per_shard=128)
    return [str(root / s) for s in entry["shards"]]


def bare_decode(shards: list[str]) -> int:
    count = 0
    for shard in shards:
        with tarfile.open(shard, "r|") as tar:
            for member in tar:
                if member.name.endswith(".jpg"):
                    Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                    count += 1
    return count


def loader_pass(shards: list[str], size: int, epoch: int, dtype: str) -> int:
    loader = AlignmentLoader(shards, image_size=size, batch_size=64, seed=0, num_workers=0, shuffle_buffer=1000,
                             pixels_dtype=dtype)
    return sum(batch.pixels.shape[0] for batch in loader.iterate(epoch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 64])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"torch {torch.__version__}, Pillow {Image.__version__}")
    print("| image size | bare PIL decode (img/s/core) | loader, uint8 out (img/s/core) | ratio | "
          "loader, float32 out (img/s/core) | ratio |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            shards = write_jpeg_shards(Path(tmp) / str(size), size, args.images)
            bare_decode(shards), loader_pass(shards, size, 0, "uint8")  # warm the page cache and imports
            rates: dict[str, list[float]] = {"bare": [], "uint8": [], "float32": []}
            for r in range(args.rounds):
                for name in rates:
                    t = time.process_time()
                    n = bare_decode(shards) if name == "bare" else loader_pass(shards, size, r, name)
                    rates[name].append(n / (time.process_time() - t))
            cells = [f"{statistics.median(rates['bare']):.0f}"]
            for name in ("uint8", "float32"):
                ratios = [o / b for o, b in zip(rates[name], rates["bare"])]
                cells += [f"{statistics.median(rates[name]):.0f}",
                          f"{statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})"]
            print(f"| {size} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
