"""Checksums of saved checkpoints by their weight files (no model is built to compute one)."""

from __future__ import annotations

import os
from pathlib import Path

from transformers.utils import cached_file

from aloe.tensorfile import tensors_checksum


def checkpoint_checksum(path: str | os.PathLike) -> str:
    """sha256 over the tensors of a checkpoint's weight files (model.safetensors, or every shard),
    by name, dtype, shape and data (``aloe.tensorfile.tensors_checksum``): not over file bytes,
    which change with the header's key order and metadata while the weights do not.

    The files, not the loaded module, are hashed: a loaded HF model can hold freshly initialised
    tensors the checkpoint does not contain (e.g. an unused ViT pooler), which differ per load.
    Only the folder's own files count: a student's text tower (in its ``text`` subfolder) does not.
    """
    directory = Path(path)
    if not directory.is_dir():
        single = cached_file(str(path), "model.safetensors", _raise_exceptions_for_missing_entries=False)
        if single is None:
            raise FileNotFoundError(f"no model.safetensors found for backbone {path!r}")
        directory = Path(single).parent
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"backbone checkpoint {directory} has no .safetensors weight files")
    return tensors_checksum(files)
