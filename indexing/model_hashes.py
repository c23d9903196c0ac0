"""Which model files made an answer: sha256 of a GGUF, or of an embedder folder's files.

Hashes are computed once per (path, size, mtime) and kept in memory and, given a cache file,
on disk, so saving an answer bundle does not read a 1 GB model again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from indexing.models import ModelUnavailableError, locate_model

log = logging.getLogger(__name__)

# What identifies an embedder folder's model: its weights, configuration and vocabulary (a
# README or a download lock changes nothing the model computes).
MODEL_FILE_SUFFIXES = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".onnx", ".gguf", ".json", ".txt", ".model"}
)
_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path, cache_file: Path | None = None) -> str:
    """sha256 of a file, computed once per (path, size, mtime) and kept in ``cache_file``.

    Raises:
        OSError: the file cannot be read.
    """
    path = path.resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _HASHES:
        return _HASHES[key]
    stored = _read_cache(cache_file)
    entry = stored.get(key[0])
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [key[1], key[2]]:
        _HASHES[key] = str(entry[2])
        return _HASHES[key]
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    _HASHES[key] = digest.hexdigest()
    if cache_file is not None:
        stored[key[0]] = [key[1], key[2], _HASHES[key]]
        _write_cache(cache_file, stored)
    return _HASHES[key]


def model_sha256(path: Path, cache_file: Path | None = None) -> str:
    """sha256 of a model file, or for a folder a hash over its weight and config files.

    A folder's hash covers each file's relative path and sha256, in name order, so a changed,
    added or renamed weight or tokenizer file changes it.

    Raises:
        OSError: the model cannot be read.
    """
    if not path.is_dir():
        return file_sha256(path, cache_file)
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        relative = item.relative_to(path)
        if item.suffix not in MODEL_FILE_SUFFIXES or not item.is_file():
            continue
        if any(part.startswith(".") for part in relative.parts):  # .cache/, .git/
            continue
        digest.update(f"{relative.as_posix()}\0{file_sha256(item, cache_file)}\n".encode())
    return digest.hexdigest()


def embedder_sha256(name: str, cache_file: Path | None = None) -> str | None:
    """:func:`model_sha256` of the embedder ``name``, or None where it is not on disk."""
    try:
        return model_sha256(Path(locate_model(name, allow_download=False)), cache_file)
    except (ModelUnavailableError, OSError):
        return None


def _read_cache(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is None:
        return {}
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a missing or damaged cache costs one more read of the files, nothing else
    return data if isinstance(data, dict) else {}


def _write_cache(cache_file: Path, data: dict[str, Any]) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
        partial.replace(cache_file)
    except OSError as exc:
        log.warning("could not keep model hashes in %s: %s", cache_file, exc)
