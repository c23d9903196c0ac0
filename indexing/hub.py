"""Model files from the Hugging Face hub: fetched once, checked against the hub, never half-used.

``huggingface_hub`` writes each download to a temporary ``*.incomplete`` file of its own and
renames it only when all its bytes are there; a dropped connection is retried in the same run
(from the last whole chunk). It checks the size but not the content, and a killed run's partial
file is never reused nor removed. So here, every freshly downloaded file is also checked
against the hashes the hub lists (``HfApi.verify_repo_checksums``: sha256 for LFS weights, the
git blob id for the rest) — a file that fails is deleted before the error is raised, so that
nothing ever loads it and the next run fetches it again — and partial files that no process has
written to for :data:`STALE_PARTIAL_S` seconds are removed before a download starts.
``HF_ENDPOINT`` points all of this at a mirror.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from indexing.errors import UserError

log = logging.getLogger(__name__)

# A partial download untouched this long belongs to a run that was killed (a live one writes
# every chunk); it is deleted before the next download of the same repo.
STALE_PARTIAL_S = 60.0


class ChecksumError(UserError, RuntimeError):
    """A downloaded file's content is not what the hub lists for it (deleted, not loaded)."""


def cached_snapshot(repo_id: str) -> str:
    """The local snapshot folder of a repo, without any network access.

    Raises:
        Exception: (from huggingface_hub) it is not cached, or only partly.
    """
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, local_files_only=True)


def download_snapshot(repo_id: str) -> str:
    """Fetch a whole repo into the hub cache and check every file against the hub's hashes.

    Raises:
        ChecksumError: a file differs from the hub's hash; it was removed from the cache.
        Exception: (from huggingface_hub) the hub cannot be reached or has no such repo.
    """
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.file_download import repo_folder_name

    sweep_partials(
        Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")
    )
    log.info("downloading the model %s from %s (once)...", repo_id, endpoint())
    folder = Path(snapshot_download(repo_id))
    result = HfApi().verify_repo_checksums(repo_id, revision=folder.name)
    if result.mismatches:
        for mismatch in result.mismatches:
            _remove_cached(folder / mismatch["path"])
        raise ChecksumError(_mismatch_message(repo_id, [m["path"] for m in result.mismatches]))
    return str(folder)


def download_file(repo_id: str, filename: str, target: Path) -> Path:
    """Fetch one file of a repo to ``target``, which appears only once the file is checked.

    The download goes to ``<target's folder>/.download`` first and is moved to ``target``
    only after its hash matched the hub's, so ``target`` is never a partial or damaged file.

    Raises:
        ChecksumError: the file differs from the hub's hash; it was deleted.
        Exception: (from huggingface_hub) the hub cannot be reached or has no such file.
    """
    from huggingface_hub import HfApi, hf_hub_download

    staging = target.parent / ".download"
    sweep_partials(staging)
    log.info(
        "downloading %s of %s from %s into %s (once)...",
        filename,
        repo_id,
        endpoint(),
        target.parent,
    )
    fetched = Path(hf_hub_download(repo_id=repo_id, filename=filename, local_dir=staging))
    result = HfApi().verify_repo_checksums(repo_id, local_dir=staging)
    bad = [m for m in result.mismatches if m["path"] == filename]
    if bad or filename in result.missing_paths:
        fetched.unlink(missing_ok=True)
        raise ChecksumError(_mismatch_message(repo_id, [filename]))
    fetched.replace(target)
    return target


def sweep_partials(folder: Path) -> list[Path]:
    """Delete the partial downloads under ``folder`` that no process is still writing."""
    removed: list[Path] = []
    now = time.time()
    for part in folder.rglob("*.incomplete") if folder.is_dir() else ():
        try:
            if now - part.stat().st_mtime > STALE_PARTIAL_S:
                part.unlink()
                removed.append(part)
        except FileNotFoundError:
            continue
    if removed:
        log.info("removed %d partial download(s) left by an interrupted run", len(removed))
    return removed


def _remove_cached(link: Path) -> None:
    """Delete a cached file: the blob a snapshot entry points to, then the entry itself."""
    blob = link.resolve()
    blob.unlink(missing_ok=True)
    link.unlink(missing_ok=True)


def _mismatch_message(repo_id: str, paths: list[str]) -> str:
    names = ", ".join(paths)
    return (
        f"the download of {names} from {repo_id} does not match the checksum the hub lists for "
        "it; the file was deleted and nothing loaded it. Try again; if it keeps failing, the "
        f"mirror or proxy at {endpoint()} is serving damaged files"
    )


def endpoint() -> str:
    """The hub this process downloads from (``HF_ENDPOINT``, else huggingface.co)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def reason(exc: BaseException) -> str:
    """One line saying why a download failed (huggingface_hub's messages run to paragraphs)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text.removeprefix("Got: ")
