"""Stand-in alignment sets: a folder of JPEGs to serve on 127.0.0.1 and img2dataset url lists.

``write_url_lists(root, names, port=...)`` writes, deterministically from ``seed``::

    root/served/<set>/images/000000.jpg ...          JPEG images (coloured shapes, varied widths)
    root/served/<set>/broken/not_image_<j>.jpg       non-image bytes (img2dataset: failed to resize)
    root/served/<set>/broken/empty_<j>.jpg           empty files (failed to resize)
    root/url_lists/<set>.parquet                     columns url, caption (the CC3M / CC12M /
                                                     YFCC15M layout the paper preset reads)
    root/web.json                                    written last: port, paths and expected counts

Each url list also holds ``broken`` URLs of each kind in ``BROKEN_KINDS``: "missing" ones point
at files that do not exist (HTTP 404), so failure accounting runs like on the real web. URLs
name ``http://127.0.0.1:<port>/<set>/...``: the port is fixed when the lists are written, and
``aloe.rehearsal.serve`` serves ``root/served`` on that port while the study runs. Each call
rewrites ``root/served`` whole (with the sets in ``names`` only).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from aloe.data.shards import encode_jpeg
from aloe.data.synthetic_images import shape_classes
from aloe.data.synthetic_world import BROKEN_KINDS, caption_sample
from aloe.io import atomic_dir, atomic_path, write_json
from aloe.rehearsal.class_images import name_stream

ALIGNMENT_SETS = ("cc3m", "cc12m", "yfcc15m")
WEB_INDEX_FILE = "web.json"
CAPTION_CLASSES = 24  # every (colour, shape) pair of aloe.data.synthetic_images
NOT_AN_IMAGE = b"<html><body>this is not an image</body></html>\n" * 8


def _write_served_set(folder: Path, name: str, *, seed: int, num_images: int, broken: int, image_size: int):
    """Write one set's files into ``folder``; return rows (path relative to the served root, caption, kind)."""
    classes = shape_classes(CAPTION_CLASSES)
    stream = name_stream("web", name)
    (folder / "images").mkdir(parents=True)
    (folder / "broken").mkdir()
    rows = []
    for i in range(num_images):
        img, caption = caption_sample(seed, stream, i, classes, image_size, max_aspect=1.5)
        (folder / "images" / f"{i:06d}.jpg").write_bytes(encode_jpeg(Image.fromarray(img), quality=90))
        rows.append((f"{name}/images/{i:06d}.jpg", caption, "ok"))
    for j in range(broken):
        (folder / "broken" / f"not_image_{j}.jpg").write_bytes(NOT_AN_IMAGE)
        (folder / "broken" / f"empty_{j}.jpg").write_bytes(b"")
        rows.append((f"{name}/missing/{j}.jpg", "a photo of nothing", "missing"))
        rows.append((f"{name}/broken/not_image_{j}.jpg", "a photo of a web page", "not_image"))
        rows.append((f"{name}/broken/empty_{j}.jpg", "a photo of a void", "empty"))
    order = np.random.default_rng([seed, stream]).permutation(len(rows))
    return [rows[k] for k in order]


def write_url_lists(
    root: str | os.PathLike,
    names: tuple[str, ...] = ALIGNMENT_SETS,
    *,
    port: int,
    num_images: int = 64,
    broken: int = 2,
    image_size: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the served folder and one parquet url list per set in ``names``; return ``web.json``:
    {"port", "base_url", "serve_root", "url_lists": {set: path}, "counts": {set: {kind: n}}}
    (absolute paths). ``broken`` = URLs per broken kind per set."""
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be in [1, 65535], got {port}")
    if int(num_images) < 1 or int(broken) < 0 or int(image_size) < 8:
        raise ValueError(f"need num_images >= 1, broken >= 0 and image_size >= 8, got {num_images}, {broken} and "
                         f"{image_size}")
    if not names or len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
        raise ValueError(f"names must be distinct alignment-set names (letters, digits, _), got {names!r}")
    root = Path(root).resolve()
    (root / WEB_INDEX_FILE).unlink(missing_ok=True)
    base_url = f"http://127.0.0.1:{int(port)}"
    url_lists, counts = {}, {}
    with atomic_dir(root / "served") as served:
        for name in names:
            rows = _write_served_set(served / name, name, seed=seed, num_images=num_images, broken=broken,
                                     image_size=image_size)
            frame = pd.DataFrame({"url": [f"{base_url}/{path}" for path, _, _ in rows],
                                  "caption": [caption for _, caption, _ in rows]})
            url_lists[name] = root / "url_lists" / f"{name}.parquet"
            with atomic_path(url_lists[name], suffix=".parquet") as tmp:
                frame.to_parquet(tmp, index=False)
            kinds = [kind for _, _, kind in rows]
            counts[name] = {kind: kinds.count(kind) for kind in ("ok", *BROKEN_KINDS)}
    web = {"port": int(port), "base_url": base_url, "serve_root": str(root / "served"),
           "url_lists": {n: str(p) for n, p in url_lists.items()}, "counts": counts}
    write_json(root / WEB_INDEX_FILE, web)
    return web
