"""Generators: the local GGUF model behind txtai's LLM pipeline, and a scripted one for tests.

A generator is anything with ``name``, ``stream(messages, max_tokens)`` and
``count_tokens(text)``. :func:`load_generator` resolves ``PUBMED_RAG_LLM``: a registered scheme
(``scripted:…``), the bundled SmolLM2 in offline mode, a local ``.gguf`` file, or a hub file
``org/repo/file.gguf`` fetched once into ``<data_dir>/models/``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from indexing.settings import OFFLINE_LLM_FILE, Settings, offline_llm_path
from rag.errors import GenerationError, GeneratorUnavailableError
from rag.prompts import STOP_STRINGS, Message, estimate_tokens
from rag.settings import RagSettings

log = logging.getLogger(__name__)

OFFLINE_LLM_NAME = f"offline:{OFFLINE_LLM_FILE}"
# Small models loop on long contexts ("The risks are ... The risks are ..."); a mild penalty
# stops that without hurting the PMID tags, which repeat by design.
REPEAT_PENALTY = 1.1


class Generator(Protocol):
    """What the answer service needs from a text generator."""

    name: str

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        """Yield the answer's text pieces as they are generated."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this generator's context window."""
        ...


class LlamaGenerator:
    """A GGUF model run by llama.cpp through ``txtai.pipeline.LLM``."""

    def __init__(
        self,
        path: Path,
        name: str,
        n_ctx: int,
        gpu_layers: int = -1,
        threads: int | None = None,
        temperature: float = 0.1,
    ) -> None:
        """Load the model (seconds to a minute, depending on its size and the disk).

        Raises:
            GeneratorUnavailableError: llama.cpp cannot load the file.
        """
        from txtai.pipeline import LLM

        self.name = name
        self.path = path
        self.n_ctx = n_ctx
        self.temperature = temperature
        try:
            self.llm = LLM(
                str(path),
                n_ctx=n_ctx,
                n_gpu_layers=gpu_layers,
                n_threads=threads or os.cpu_count() or 1,
                verbose=False,
            )
        except Exception as exc:  # llama.cpp raises ValueError/RuntimeError for bad files
            raise GeneratorUnavailableError(f"cannot load the generator {path}: {exc}") from exc
        # The llama_cpp.Llama instance under txtai, for its tokenizer.
        self._llama: Any = getattr(getattr(self.llm, "generator", None), "llm", None)

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        """Stream the chat completion of ``messages``.

        Raises:
            GenerationError: llama.cpp failed while generating.
        """
        try:
            yield from self.llm(
                list(messages),
                maxlength=max_tokens,
                stream=True,
                temperature=self.temperature,
                repeat_penalty=REPEAT_PENALTY,
                stop=list(STOP_STRINGS),
            )
        except GenerationError:
            raise
        except Exception as exc:
            raise GenerationError(f"the generator {self.name} failed: {exc}") from exc

    def count_tokens(self, text: str) -> int:
        """Exact count with the model's own tokenizer (estimate if it is not reachable)."""
        if self._llama is None:
            return estimate_tokens(text)
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


_PMID_TAG = re.compile(r"\[PMID:(\d+)\]")


@dataclass
class ScriptedGenerator:
    """A generator that replies with a script: for tests, demos and the app's AppTest.

    ``script`` is either a callable ``messages -> str`` or a text in which ``{pmid1}``,
    ``{pmid2}``… are replaced by the PMIDs of the passages in the prompt, in order. The reply
    is streamed in pieces of ``chunk`` characters; every call is recorded in ``calls``.
    """

    script: str | Callable[[Sequence[Message]], str]
    name: str = "scripted"
    chunk: int = 3
    calls: list[list[Message]] = field(default_factory=list)
    fail_after: int | None = None  # raise GenerationError after this many pieces

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        """Yield the scripted reply in small pieces."""
        self.calls.append(list(messages))
        reply = self.script(messages) if callable(self.script) else self._fill(messages)
        for number, start in enumerate(range(0, len(reply), self.chunk)):
            if self.fail_after is not None and number >= self.fail_after:
                raise GenerationError("scripted failure")
            yield reply[start : start + self.chunk]

    def count_tokens(self, text: str) -> int:
        """A cautious estimate (see :func:`rag.prompts.estimate_tokens`)."""
        return estimate_tokens(text)

    def _fill(self, messages: Sequence[Message]) -> str:
        assert isinstance(self.script, str)
        # Passages are in the last (user) message, before the question and its instructions.
        prompt = messages[-1]["content"] if messages else ""
        pmids = list(dict.fromkeys(_PMID_TAG.findall(prompt.split("Question:")[0])))
        reply = self.script
        for number, pmid in enumerate(pmids, start=1):
            reply = reply.replace(f"{{pmid{number}}}", pmid)
        return reply


GeneratorFactory = Callable[[str, RagSettings, Settings], Generator]
_FACTORIES: dict[str, GeneratorFactory] = {}


def register_generator(scheme: str, factory: GeneratorFactory) -> None:
    """Make ``PUBMED_RAG_LLM=<scheme>:<spec>`` build ``factory(spec, rag_settings, settings)``."""
    _FACTORIES[scheme] = factory


register_generator("scripted", lambda spec, rag, settings: ScriptedGenerator(spec))


def _scheme(llm: str) -> str | None:
    """The registered scheme ``llm`` names (``scripted:…``), or None for a GGUF file."""
    scheme, _, spec = llm.partition(":")
    return scheme if spec and scheme in _FACTORIES and "/" not in scheme else None


def generator_name(rag: RagSettings, settings: Settings) -> str:
    """The name the generator will have once loaded, without loading or downloading it."""
    scheme = _scheme(rag.llm)
    if scheme is not None:
        return scheme
    return OFFLINE_LLM_NAME if settings.offline else rag.llm


def load_generator(rag: RagSettings, settings: Settings) -> Generator:
    """The generator ``rag.llm`` names, honouring offline mode; downloads on first use.

    Raises:
        GeneratorUnavailableError: the model cannot be found, downloaded or loaded.
    """
    scheme = _scheme(rag.llm)
    if scheme is not None:
        return _FACTORIES[scheme](rag.llm.partition(":")[2], rag, settings)
    name, path = resolve_llm(rag.llm, settings)
    return LlamaGenerator(
        path,
        name,
        n_ctx=rag.n_ctx,
        gpu_layers=rag.gpu_layers,
        threads=rag.llm_threads,
        temperature=rag.temperature,
    )


def resolve_llm(llm: str, settings: Settings) -> tuple[str, Path]:
    """``(name, local path)`` of the generator GGUF; fetches a hub file once.

    Raises:
        GeneratorUnavailableError: not on disk and the download failed.
    """
    if settings.offline:
        path = offline_llm_path()
        if not path.is_file():
            raise GeneratorUnavailableError(
                f"the offline generator {path} is missing; run `make install`"
            )
        return OFFLINE_LLM_NAME, path
    local = Path(llm).expanduser()
    if local.is_file():
        return local.name, local
    parts = llm.split("/")
    if len(parts) < 3 or local.is_absolute() or llm.startswith("."):
        raise GeneratorUnavailableError(
            f"PUBMED_RAG_LLM={llm!r}: no such file, and not a hub file 'org/repo/file.gguf'"
        )
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    target_dir = settings.models_dir / parts[0] / parts[1]
    target = target_dir / filename
    if target.is_file():
        return llm, target
    log.warning("downloading the generator %s into %s (once)...", llm, target_dir)
    try:
        from huggingface_hub import hf_hub_download

        fetched = hf_hub_download(repo_id=repo_id, filename=filename, local_dir=target_dir)
    except Exception as exc:
        raise GeneratorUnavailableError(
            f"could not download {filename} from the Hugging Face repo {repo_id} ({exc}). "
            f"Put the file at {target} yourself, point PUBMED_RAG_LLM at a local .gguf file, "
            "or set PUBMED_RAG_OFFLINE=1 to use the bundled SmolLM2-135M"
        ) from exc
    return llm, Path(fetched)
