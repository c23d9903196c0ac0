"""The default models, fetched for real: PubMedBERT and the generator GGUF from a stand-in hub.

``testkit.hub_server`` speaks the hub's download protocol; ``HF_ENDPOINT`` points the real
``huggingface_hub`` client at it, in a subprocess with its own empty cache (``HF_HOME``), as a
user's first run would. It serves a tiny BERT sentence-transformers model built here (random
weights, the real MiniLM tokenizer) under PubMedBERT's name, and the bundled SmolLM2 GGUF
under the default generator's name (the smallest real GGUF on this machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexing.settings import DEFAULT_EMBEDDINGS, offline_llm_path
from rag.settings import DEFAULT_LLM
from testkit.hub_server import HubServer
from tests.conftest import METAPUB_PMIDS, ROOT, needs_shared_data

LLM_REPO = "/".join(DEFAULT_LLM.split("/")[:2])
LLM_FILE = "/".join(DEFAULT_LLM.split("/")[2:])
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def tiny_pubmedbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers folder shaped like PubMedBERT's: BERT + mean pooling, ~17 MB.

    The weights are larger than huggingface_hub's 10 MiB download chunk, so that a download
    stopped after 12 MB has written one chunk to its ``.incomplete`` file and can resume.
    """
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from indexing.settings import offline_embeddings_path

    root = tmp_path_factory.mktemp("tiny-pubmedbert")
    tokenizer = BertTokenizerFast.from_pretrained(str(offline_embeddings_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=256,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    transformer = models.Transformer(str(root / "bert"), max_seq_length=256)
    pooling = models.Pooling(config.hidden_size, pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling]).save(str(root / "repo"))
    assert (root / "repo" / WEIGHTS).stat().st_size > 12_000_000
    return root / "repo"


@pytest.fixture
def hub(tiny_pubmedbert: Path, tmp_path: Path) -> HubServer:
    llm = tmp_path / "llm-repo"
    llm.mkdir()
    (llm / LLM_FILE).symlink_to(offline_llm_path())
    with HubServer({DEFAULT_EMBEDDINGS: tiny_pubmedbert, LLM_REPO: llm}) as server:
        yield server


def hub_env(hub_url: str, home: Path, **extra: str) -> dict[str, str]:
    """A user's environment: real defaults (no offline mode), the hub at ``hub_url``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PUBMED_RAG_", "HF_")) and k != "TRANSFORMERS_OFFLINE"
    }
    env.update(
        HF_ENDPOINT=hub_url,
        HF_HOME=str(home / "hf"),
        PUBMED_RAG_DATA_DIR=str(home / "data"),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in the repository, as a user's shell would run it."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(env, "-c", code)


LOCATE = (
    "import sys; from indexing.models import locate_model; "
    f"print(locate_model({DEFAULT_EMBEDDINGS!r}, allow_download=sys.argv[-1] == 'download'))"
)
RESOLVE_LLM = (
    "from indexing.settings import Settings; from rag.generation import resolve_llm; "
    f"print(resolve_llm({DEFAULT_LLM!r}, Settings())[1])"
)


def locate(env: dict[str, str], download: bool = True) -> subprocess.CompletedProcess[str]:
    return run(env, "-c", LOCATE, "download" if download else "cached")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gets(hub: HubServer, path: str) -> list[str]:
    """The Range headers of each GET of one file ('' for a whole-file request)."""
    return [request.range for request in hub.downloads(path)]


@needs_shared_data(METAPUB_PMIDS)
def test_first_use_downloads_pubmedbert_builds_with_it_and_then_needs_no_hub(
    hub: HubServer, tmp_path: Path
) -> None:
    env = hub_env(hub.url, tmp_path)
    records = sorted(METAPUB_PMIDS.glob("*.xml"))[:3]
    ingest = run(env, "-m", "indexing", "ingest", *(f"--xml={p}" for p in records))
    assert ingest.returncode == 0, ingest.stderr
    assert "offline embedder" not in ingest.stderr  # no fallback
    assert gets(hub, WEIGHTS) == [""]  # fetched once, whole
    cached = next((tmp_path / "hf").rglob(WEIGHTS))
    assert sha256(cached) == hub.repos[DEFAULT_EMBEDDINGS].files[WEIGHTS].sha256

    hub.faults.down = True  # the hub is gone: readers and later runs use the cache
    before = len(hub.requests)
    info = run(env, "-m", "indexing", "info", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["embeddings_model"] == DEFAULT_EMBEDDINGS
    search = run(env, "-m", "rag", "search", "cancer", "--json")
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)["sources"]
    assert locate(env, download=False).returncode == 0
    assert len(hub.requests) == before  # nothing asked of the hub once cached


def test_a_dropped_connection_restarts_or_resumes_and_the_file_is_whole(
    hub: HubServer, tmp_path: Path
) -> None:
    env = hub_env(hub.url, tmp_path)
    hub.faults.cut_after[WEIGHTS] = 3_000_000
    result = locate(env)
    assert result.returncode == 0, result.stderr
    assert len(gets(hub, WEIGHTS)) == 2  # cut, then fetched again in the same run
    snapshot = Path(result.stdout.strip())
    assert sha256(snapshot / WEIGHTS) == hub.repos[DEFAULT_EMBEDDINGS].files[WEIGHTS].sha256


def _kill_during_download(
    hub: HubServer, env: dict[str, str], code: str, path: str, partial: Path
) -> None:
    """Start a download, wait until part of ``path`` is on disk, then ``kill -9`` it."""
    hub.faults.stall_after[path] = 12_000_000
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "download"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        parts = list(partial.rglob("*.incomplete")) if partial.exists() else []
        if parts and parts[0].stat().st_size > 0:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the download never wrote a partial file")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    hub.faults.release.set()


def _age(partials: list[Path]) -> None:
    """Make partial files look like a run killed an hour ago (no writes since)."""
    assert partials
    for part in partials:
        os.utime(part, (time.time() - 3600, time.time() - 3600))


def test_a_killed_download_is_never_loaded_and_the_next_run_restarts_it_cleanly(
    hub: HubServer, tmp_path: Path
) -> None:
    env = hub_env(hub.url, tmp_path)
    _kill_during_download(hub, env, LOCATE, WEIGHTS, tmp_path / "hf")
    partials = list((tmp_path / "hf").rglob("*.incomplete"))

    cached = locate(env, download=False)
    assert cached.returncode != 0
    assert "not in the local cache" in cached.stderr
    # Nothing with the weights' name exists yet: only the .incomplete part.
    assert not [p for p in (tmp_path / "hf").rglob(WEIGHTS) if p.exists()]

    _age(partials)
    again = locate(env)
    assert again.returncode == 0, again.stderr
    assert len(gets(hub, WEIGHTS)) == 2
    snapshot = Path(again.stdout.strip())
    assert sha256(snapshot / WEIGHTS) == hub.repos[DEFAULT_EMBEDDINGS].files[WEIGHTS].sha256
    assert not list((tmp_path / "hf").rglob("*.incomplete"))  # the killed run's part is gone


def test_a_download_with_the_wrong_checksum_is_refused_and_deleted(
    hub: HubServer, tmp_path: Path
) -> None:
    env = hub_env(hub.url, tmp_path)
    hub.faults.tampered.add(WEIGHTS)
    refused = locate(env)
    assert refused.returncode != 0
    assert "does not match the checksum" in refused.stderr
    assert not [p for p in (tmp_path / "hf").rglob(WEIGHTS) if p.exists()]
    assert locate(env, download=False).returncode != 0  # the damaged file is not cached

    hub.faults.tampered.clear()
    fixed = locate(env)
    assert fixed.returncode == 0, fixed.stderr
    assert len(gets(hub, WEIGHTS)) == 2


def test_an_unreachable_hub_falls_back_loudly_to_the_offline_embedder(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = hub_env(closed, tmp_path)
    result = python(
        "from indexing.models import resolve_embeddings; from indexing.settings import Settings;"
        "print(resolve_embeddings(Settings()).name)",
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("offline:")
    assert "WARNING" in result.stderr and "!!!!" in result.stderr
    assert f"could not be downloaded from {closed}" in result.stderr
    assert "Set PUBMED_RAG_OFFLINE=1" in result.stderr

    llm = python(RESOLVE_LLM, env)
    assert llm.returncode != 0
    assert "could not download" in llm.stderr and "PUBMED_RAG_OFFLINE=1" in llm.stderr


def test_the_generator_gguf_is_fetched_once_checked_and_loads(
    hub: HubServer, tmp_path: Path
) -> None:
    env = hub_env(hub.url, tmp_path)
    target = tmp_path / "data" / "models" / DEFAULT_LLM
    fetched = python(
        "from indexing.settings import Settings; from rag.generation import resolve_llm, LlamaGenerator;"
        f"path = resolve_llm({DEFAULT_LLM!r}, Settings())[1]; print(path);"
        "LlamaGenerator(path, 'fetched', n_ctx=1024)",
        env,
    )
    assert fetched.returncode == 0, fetched.stderr
    assert Path(fetched.stdout.strip().splitlines()[-1]) == target
    assert sha256(target) == sha256(offline_llm_path())
    assert not list((target.parent / ".download").rglob("*.gguf"))  # moved, not copied

    again = python(RESOLVE_LLM, env)
    assert again.returncode == 0, again.stderr
    assert len(gets(hub, LLM_FILE)) == 1  # cached: no second download


def test_a_killed_or_damaged_gguf_download_never_becomes_the_generator(
    hub: HubServer, tmp_path: Path
) -> None:
    env = hub_env(hub.url, tmp_path)
    target = tmp_path / "data" / "models" / DEFAULT_LLM
    _kill_during_download(hub, env, RESOLVE_LLM, LLM_FILE, target.parent)
    assert not target.exists()
    _age(list(target.parent.rglob("*.incomplete")))

    hub.faults.tampered.add(LLM_FILE)
    refused = python(RESOLVE_LLM, env)
    assert refused.returncode != 0
    assert "does not match the checksum" in refused.stderr
    assert not target.exists()
    assert not list(target.parent.rglob("*.gguf"))

    hub.faults.tampered.clear()
    fixed = python(RESOLVE_LLM, env)
    assert fixed.returncode == 0, fixed.stderr
    assert sha256(target) == sha256(offline_llm_path())
    assert not list(target.parent.rglob("*.incomplete"))
