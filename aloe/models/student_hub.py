"""Where a student comes from and goes to: a local directory or a Hugging Face hub id.

Hub ids are fetched into the cache with ``huggingface_hub.snapshot_download`` (only the student's
own files); with ``HF_HUB_OFFLINE=1`` (or ``local_files_only=True``) nothing is downloaded and a
student not in the cache raises ``FileNotFoundError`` saying so. Uploads send a saved directory
as it is (``upload_folder``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from huggingface_hub import constants as hf_constants
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from aloe.models.teacher import _offline

STUDENT_PATTERNS = ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "text/*")
# arguments transformers' AutoModel (or a caller written for PreTrainedModel) passes that change nothing here
IGNORED_KWARGS = frozenset({"_from_auto", "_from_pipeline", "trust_remote_code", "adapter_kwargs", "proxies",
                            "use_safetensors", "low_cpu_mem_usage", "code_revision"})
# save_pretrained options of transformers that a single canonical safetensors file makes moot
SAVE_IGNORED = frozenset({"max_shard_size", "safe_serialization", "is_main_process", "variant", "save_peft_format",
                          "tags"})
HUB_ARGUMENTS = ("repo_id", "commit_message", "private", "token", "revision", "create_pr")


def _is_repo_id(name: str) -> bool:
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve_student_dir(name_or_path: str | os.PathLike, *, cache_dir: Optional[str | os.PathLike] = None,
                        revision: Optional[str] = None, token: Optional[str | bool] = None,
                        local_files_only: bool = False, force_download: bool = False, subfolder: str = "") -> Path:
    """The local directory holding the student ``name_or_path`` (downloaded first for a hub id)."""
    path = Path(name_or_path)
    if path.exists() or not _is_repo_id(str(name_or_path)):
        return path / subfolder if subfolder else path
    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    offline = local_files_only or _offline()
    try:
        folder = snapshot_download(repo_id=str(name_or_path), revision=revision, cache_dir=cache_dir, token=token,
                                   local_files_only=offline, force_download=force_download,
                                   allow_patterns=[prefix + p for p in STUDENT_PATTERNS])
    except Exception as err:  # offline and not cached, no such repo, gated, no network
        cache = cache_dir or hf_constants.HF_HUB_CACHE
        raise FileNotFoundError(
            f"cannot load student {str(name_or_path)!r}: it is neither a local directory nor a hub id whose files "
            f"are in the Hugging Face cache {cache} (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}); "
            f"pre-download it where there is network: `hf download {name_or_path} --cache-dir {cache}` "
            f"({type(err).__name__}: {err})") from err
    return Path(folder) / prefix if prefix else Path(folder)


def upload_folder(folder: str | os.PathLike, repo_id: str, *, commit_message: Optional[str] = None,
                  private: Optional[bool] = None, token: Optional[str | bool] = None, revision: Optional[str] = None,
                  create_pr: bool = False) -> Any:
    """Create the hub repo if needed and upload ``folder`` as it is (the student's own model card included)."""
    api = HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo.repo_id, folder_path=str(folder), commit_message=commit_message or
                             "Upload B-cos student", revision=revision, create_pr=create_pr)
