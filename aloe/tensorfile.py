"""safetensors files: canonical bytes when we write them, checksums over their tensors, clear errors.

Bytes. ``safetensors`` orders the tensors deterministically but writes the ``__metadata__``
entries in hash-map order, which changes from process to process: two saves of the same weights
differ in their header bytes. ``save_tensors`` rewrites the header with sorted keys, so the same
tensors and metadata always give the same file.

Checksums. ``tensors_checksum`` hashes content, not bytes: for every tensor, in sorted name
order, its name, dtype, shape and data. Metadata, header layout and how the tensors are split
over files (HF shards) do not enter, so a resaved or resharded checkpoint keeps its checksum.
``state_checksum`` gives the same digest for in-memory tensors.

Errors. ``read_header`` names the file when its header is unreadable or its data is shorter than
the header says (a truncated copy).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Iterable, Mapping

import torch
from safetensors.torch import save_file

from aloe.io import atomic_path

_CHUNK = 1 << 20
DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL"}


def read_header(path: str | os.PathLike) -> tuple[dict, int]:
    """(header, offset of the data) of a safetensors file, checked against the file's size."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is not a safetensors file (only {size} bytes): truncated or empty")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise ValueError(f"{path} is truncated: its header needs {n} bytes, the file has {size - 8} after the "
                             "length field")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} has an unreadable safetensors header: {err}") from err
    ends = [info["data_offsets"][1] for name, info in header.items() if name != "__metadata__"]
    need = 8 + n + max(ends, default=0)
    if need > size:
        raise ValueError(f"{path} is truncated: its tensors need {need} bytes, the file has {size}")
    return header, 8 + n


def _canonical(path: Path) -> None:
    header, start = read_header(path)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format aligns the data to 8 bytes
    with open(path, "rb") as f:
        if f.read(start)[8:] == text:
            return
    tmp = path.with_name(path.name + ".canonical")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        dst.write(struct.pack("<Q", len(text)) + text)
        src.seek(start)
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
    os.replace(tmp, path)


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                 metadata: Mapping[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` with a sorted header, written atomically."""
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(dict(tensors), str(tmp), metadata=dict(metadata) if metadata is not None else None)
        _canonical(tmp)


def _update(digest, name: str, dtype: str, shape: Iterable[int]) -> None:
    digest.update(f"{name}|{dtype}|{list(shape)}\n".encode())


def tensors_checksum(paths: Iterable[str | os.PathLike]) -> str:
    """sha256 over the tensors of one or more safetensors files (see the module docstring)."""
    where: dict[str, tuple[Path, dict, int]] = {}
    for path in paths:
        header, start = read_header(path)
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if name in where:
                raise ValueError(f"tensor {name!r} is in both {where[name][0]} and {path}")
            where[name] = (Path(path), info, start)
    digest = hashlib.sha256()
    for name in sorted(where):
        path, info, start = where[name]
        _update(digest, name, info["dtype"], info["shape"])
        begin, end = info["data_offsets"]
        with open(path, "rb") as f:
            f.seek(start + begin)
            left = end - begin
            while left:
                chunk = f.read(min(left, _CHUNK))
                digest.update(chunk)
                left -= len(chunk)
    return digest.hexdigest()


def state_checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """The ``tensors_checksum`` of a file holding ``tensors`` (e.g. a module's state dict)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {t.dtype} has no safetensors name here")
        _update(digest, name, DTYPES[t.dtype], t.shape)
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
