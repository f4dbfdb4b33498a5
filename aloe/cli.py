"""The ``aloe`` command: explain images, embed a folder, describe a student.

    aloe explain IMAGE... --model DIR|HUB_ID [--head FILE] [--target CLASS | --prompt TEXT] -o OUT/
    aloe embed FOLDER --model DIR|HUB_ID -o features.safetensors [--batch-size N]
    aloe info DIR|HUB_ID

``explain`` writes, per image, ``OUT/<name>.png``: the input as the student sees it beside its
B-cos explanation W(x)·x (``aloe.bcos.render``), and ``OUT/<name>.rgba.png``, the explanation
alone with its alpha. The target is a class of a linear-probe head (``--head``; default: the
predicted class) or a text prompt (``--prompt``: SigLIP students saved with their teacher's text
tower); one of the two is required. Errors name the file or argument and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _fail(message: str) -> None:
    print(f"aloe: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _load(model: str, head: str | None = None):
    from aloe.models import BcosStudent

    try:
        return BcosStudent.from_pretrained(model, head=head)
    except (OSError, ValueError) as err:
        _fail(f"--model {model}: {err}")


def _images(paths: Sequence[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if not p.is_file():
            _fail(f"image {p} does not exist")
        out.append(p)
    return out


def cmd_explain(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from aloe.bcos.render import save_rgba_png

    if args.target is not None and args.prompt is not None:
        _fail("give --target or --prompt, not both")
    if args.prompt is None and args.head is None:
        _fail("--head FILE is needed to explain a class (or give --prompt TEXT for a SigLIP student)")
    student = _load(args.model, args.head)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in _images(args.images):
        try:
            image = Image.open(path)
            image.load()
        except OSError as err:
            _fail(f"image {path} cannot be read: {err}")
        pixels = student.image_processor(image)["pixel_values"].to(student.weight_dtype)
        if args.prompt is not None:
            target = args.prompt
        elif args.target is not None:
            target = args.target
        else:
            with torch.no_grad():
                target = int(student.probe_head.logits(student(pixels).pooler_output).argmax(1)[0])
        try:
            e = student.explain(pixels, target)
        except (ValueError, TypeError) as err:
            _fail(f"{path}: {err}")
        rgba = e.rgba[0]
        shown = (pixels[0].permute(1, 2, 0).float().numpy() * 255).round().astype(np.uint8)
        over_black = (rgba[..., :3] * rgba[..., 3:] * 255).round().astype(np.uint8)
        Image.fromarray(np.concatenate([shown, over_black], axis=1)).save(out / f"{path.stem}.png")
        save_rgba_png(rgba, out / f"{path.stem}.rgba.png")
        what = f"prompt {target!r}" if isinstance(target, str) else f"class {_class_name(student, target)}"
        print(f"{path} -> {out / (path.stem + '.png')}: {what}, score {float(e.target[0]):.4g}")


def _class_name(student, index: int) -> str:
    names = student.probe_head.classes if student.probe_head is not None else None
    return f"{index} ({names[index]})" if names else str(index)


def cmd_embed(args: argparse.Namespace) -> None:
    import json

    import torch
    from PIL import Image
    from tqdm import tqdm

    from aloe.tensorfile import save_tensors

    folder = Path(args.folder)
    if not folder.is_dir():
        _fail(f"folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        _fail(f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    student = _load(args.model)
    chunks = []
    with torch.no_grad():
        for start in tqdm(range(0, len(files), args.batch_size), desc="embed", unit="batch", file=sys.stderr):
            batch = files[start:start + args.batch_size]
            images = []
            for p in batch:
                try:
                    images.append(Image.open(p).convert("RGB"))
                except OSError as err:
                    _fail(f"image {p} cannot be read: {err}")
            pixels = student.image_processor(images)["pixel_values"].to(student.weight_dtype)
            chunks.append(student(pixels).pooler_output.float())
    features = torch.cat(chunks)
    names = [p.relative_to(folder).as_posix() for p in files]
    save_tensors(args.out, {"features": features.contiguous()},
                 metadata={"files": json.dumps(names), "model": str(args.model)})
    print(f"{len(files)} images -> {args.out}: features {tuple(features.shape)}")


def cmd_info(args: argparse.Namespace) -> None:
    student = _load(args.model)
    cfg = student.config
    print(f"{args.model}: B-cos student (B={cfg.b:g}, {cfg.bcos_form} form, {cfg.stem} stem) of a {cfg.family} "
          "teacher")
    print(f"  teacher: {getattr(cfg, 'teacher', None) or 'unknown'}")
    print(f"  {cfg.num_layers} blocks, width {cfg.hidden_size}, {cfg.num_heads} heads, patch {cfg.patch_size}, "
          f"trained at {cfg.image_size} px, {cfg.position} positions, pooling {cfg.pooling}")
    n = sum(p.numel() for p in student.parameters())
    print(f"  {n / 1e6:.2f} M parameters, {student.weight_dtype}")
    for key in ("alignment", "results"):
        value = getattr(cfg, key, None)
        if value:
            print(f"  {key}: {value}")
    if student.text_tower is not None:
        print("  text tower: yes (explain --prompt)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aloe", description="ALOE B-cos students: explanations from the model itself.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("explain", help="write explanation PNGs of images")
    e.add_argument("images", nargs="+", metavar="IMAGE")
    e.add_argument("--model", required=True, help="a student directory or Hugging Face hub id")
    e.add_argument("--head", help="a linear-probe head file (.head.safetensors) whose classes --target names")
    e.add_argument("--target", type=int, help="class index of the head (default: the predicted class)")
    e.add_argument("--prompt", help="explain the similarity to this text (SigLIP students with a text tower)")
    e.add_argument("-o", "--out", required=True, help="output folder")
    e.set_defaults(run=cmd_explain)
    m = sub.add_parser("embed", help="embed a folder of images")
    m.add_argument("folder")
    m.add_argument("--model", required=True)
    m.add_argument("-o", "--out", required=True, help="a .safetensors file: features (N, D), metadata files")
    m.add_argument("--batch-size", type=int, default=32)
    m.set_defaults(run=cmd_embed)
    i = sub.add_parser("info", help="describe a student")
    i.add_argument("model")
    i.set_defaults(run=cmd_info)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if getattr(args, "batch_size", 1) < 1:
        _fail(f"--batch-size must be >= 1, got {args.batch_size}")
    args.run(args)


if __name__ == "__main__":
    main()
