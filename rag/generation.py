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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from indexing import hub
from indexing.settings import OFFLINE_LLM_FILE, Settings, offline_llm_path
from rag.constraints import CitationConstraint
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

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int,
        constraint: CitationConstraint | None = None,
    ) -> Iterator[str]:
        """Yield the answer's text pieces as they are generated.

        A generator that can constrain its decoding honours ``constraint`` (every sentence
        cited, only the PMIDs it names); one that cannot ignores it, and the answer service
        holds its text to the same shape afterwards.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this generator's context window."""
        ...


# The chat template of models whose GGUF carries none (ChatML, as Qwen and SmolLM2 use).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Stand-ins for the messages' text while the chat template is rendered: control characters
# that no template emits, so the rendered markup can be cut apart around them.
_SLOT = "\x1e{}\x1f"
_SLOTS = re.compile("\x1e(\\d+)\x1f")


class LlamaGenerator:
    """A GGUF model run by llama.cpp, loaded through ``txtai.pipeline.LLM``.

    Generation calls llama.cpp itself rather than txtai's chat call, for two things txtai's
    pipeline does not offer: the prompt is tokenized so that text from abstracts and users
    can never become a control token (only the chat template's own markers are special), and
    decoding can be constrained by a grammar (see :mod:`rag.constraints`).
    """

    def __init__(
        self,
        path: Path,
        name: str,
        n_ctx: int,
        gpu_layers: int = -1,
        threads: int | None = None,
        temperature: float = 0.1,
        flash_attention: bool = True,
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
                flash_attn=flash_attention,
                verbose=False,
            )
        except Exception as exc:  # llama.cpp raises ValueError/RuntimeError for bad files
            raise GeneratorUnavailableError(f"cannot load the generator {path}: {exc}") from exc
        # The llama_cpp.Llama instance under txtai.
        self._llama: Any = getattr(getattr(self.llm, "generator", None), "llm", None)
        if self._llama is None:
            raise GeneratorUnavailableError(f"{path} did not load as a llama.cpp model")
        self._template = self._chat_formatter()
        self._grammars: dict[CitationConstraint, Any] = {}
        # llama.cpp's own timings of the last completion (see :meth:`perf`).
        self.last_perf: dict[str, float] | None = None

    def _chat_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = self._llama
        model = llama._model

        def text(token: int) -> str:
            return str(model.token_get_text(token)) if token != -1 else ""

        self.eos_text = text(llama.token_eos())
        self.bos_text = text(llama.token_bos())
        template = llama.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
        return Jinja2ChatFormatter(template, eos_token=self.eos_text, bos_token=self.bos_text)

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The chat prompt as token ids: template markup special, message text plain.

        An abstract that contains ``<|im_start|>assistant`` is tokenized as those characters,
        not as the control token, so no text of a record or a question can end a turn or
        start one.
        """
        slots = [{"role": m["role"], "content": _SLOT.format(n)} for n, m in enumerate(messages)]
        rendered = self._template(messages=slots).prompt
        llama = self._llama
        tokens: list[int] = []
        if llama._model.add_bos_token() and not rendered.startswith(self.bos_text or "\x00"):
            tokens.append(llama.token_bos())
        position = 0
        for match in _SLOTS.finditer(rendered):
            markup = rendered[position : match.start()]
            if markup:
                tokens += llama.tokenize(markup.encode("utf-8"), add_bos=False, special=True)
            content = messages[int(match.group(1))]["content"]
            if content:
                tokens += llama.tokenize(content.encode("utf-8"), add_bos=False, special=False)
            position = match.end()
        if rendered[position:]:
            tokens += llama.tokenize(
                rendered[position:].encode("utf-8"), add_bos=False, special=True
            )
        return tokens

    def grammar(self, constraint: CitationConstraint) -> Any:
        """The compiled llama.cpp grammar of a constraint (cached)."""
        if constraint not in self._grammars:
            from llama_cpp import LlamaGrammar

            if len(self._grammars) > 64:
                self._grammars.clear()
            self._grammars[constraint] = LlamaGrammar.from_string(constraint.gbnf(), verbose=False)
        return self._grammars[constraint]

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int,
        constraint: CitationConstraint | None = None,
    ) -> Iterator[str]:
        """Stream the completion of the chat ``messages`` (constrained by ``constraint``).

        Raises:
            GenerationError: llama.cpp failed while generating.
        """
        try:
            tokens = self.prompt_tokens(messages)
            self._reset_perf()
            chunks = self._llama.create_completion(
                tokens,
                max_tokens=max_tokens,
                stream=True,
                temperature=self.temperature,
                repeat_penalty=REPEAT_PENALTY,
                stop=[*STOP_STRINGS, *([self.eos_text] if self.eos_text else [])],
                grammar=self.grammar(constraint) if constraint is not None else None,
            )
            for chunk in chunks:
                piece = chunk["choices"][0]["text"]
                if piece:
                    yield piece
            self.last_perf = self.perf(len(tokens))
        except GenerationError:
            raise
        except Exception as exc:
            raise GenerationError(f"the generator {self.name} failed: {exc}") from exc

    def count_tokens(self, text: str) -> int:
        """Exact count with the model's own tokenizer, as plain text."""
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _reset_perf(self) -> None:
        import llama_cpp

        llama_cpp.llama_perf_context_reset(self._llama._ctx.ctx)

    def perf(self, prompt_tokens: int) -> dict[str, float]:
        """llama.cpp's own figures for the completion since the last reset (``llama_perf``).

        ``evaluated`` counts the prompt tokens llama.cpp computed; the rest of ``prompt_tokens``
        came from its cache of the previous prompt's prefix (the fixed system message and
        instructions, when questions follow each other).
        """
        import llama_cpp

        data = llama_cpp.llama_perf_context(self._llama._ctx.ctx)

        def rate(count: int, ms: float) -> float:
            return round(count / (ms / 1000), 1) if ms > 0 else 0.0

        return {
            "prompt_tokens": prompt_tokens,
            "evaluated": int(data.n_p_eval),
            "reused": max(prompt_tokens - int(data.n_p_eval), 0),
            "prompt_ms": round(float(data.t_p_eval_ms), 1),
            "prompt_tokens_per_s": rate(int(data.n_p_eval), float(data.t_p_eval_ms)),
            "generated": int(data.n_eval),
            "generation_tokens_per_s": rate(int(data.n_eval), float(data.t_eval_ms)),
        }


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
    delay_s: float = 0.0  # pause before each piece (a slow model, for concurrency tests)
    constraints: list[CitationConstraint | None] = field(default_factory=list)

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int,
        constraint: CitationConstraint | None = None,
    ) -> Iterator[str]:
        """Yield the scripted reply in small pieces (a script is not constrained)."""
        self.calls.append(list(messages))
        self.constraints.append(constraint)
        reply = self.script(messages) if callable(self.script) else self._fill(messages)
        for number, start in enumerate(range(0, len(reply), self.chunk)):
            if self.fail_after is not None and number >= self.fail_after:
                raise GenerationError("scripted failure")
            if self.delay_s:
                time.sleep(self.delay_s)
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


def generator_file(rag: RagSettings, settings: Settings) -> Path | None:
    """The GGUF the generator loads, if it is on disk (never downloads); None for a scheme."""
    if _scheme(rag.llm) is not None:
        return None
    if settings.offline:
        return offline_llm_path()
    local = Path(rag.llm).expanduser()
    if local.is_file():
        return local
    parts = rag.llm.split("/")
    target = settings.models_dir.joinpath(*parts) if len(parts) >= 3 else None
    return target if target is not None and target.is_file() else None


# GGUF file types (llama.cpp's ``general.file_type``) that llama.cpp has no repacked CPU
# kernels for, and the type each is repacked into once (see :func:`fast_layout`).
LLAMA_FTYPE_Q4_1, LLAMA_FTYPE_Q8_0 = 3, 7
REPACKED = {LLAMA_FTYPE_Q4_1: ("Q4_1", "Q8_0", LLAMA_FTYPE_Q8_0)}
REPACK_MAX_BYTES = 2 * 2**30  # a bigger Q4_1 file is read as it is: repacking would take minutes


def gguf_file_type(path: Path) -> int | None:
    """The GGUF's ``general.file_type`` (reads the vocabulary only: a fraction of a second)."""
    from llama_cpp import Llama

    try:
        vocab = Llama(str(path), vocab_only=True, verbose=False)
    except Exception:  # unreadable here: load_generator reports it when loading for real
        return None
    value = vocab.metadata.get("general.file_type")
    return int(value) if value is not None and str(value).isdigit() else None


def fast_layout(path: Path, rag: RagSettings, settings: Settings) -> Path:
    """The GGUF to load: ``path``, or its Q8_0 copy when ``path`` is Q4_1 (made once).

    llama.cpp repacks Q4_0, Q8_0 and the K-quants into interleaved CPU kernels at load time,
    but not Q4_1, the bundled SmolLM2's type. Measured on AMD EPYC Zen 4 (2026-12-02, 1,500-token
    prompt, 2 threads), prompt reading goes from 375 to 532 tokens/s with llama.cpp built for
    AVX2 only, and 354 to 600 with AVX-512; generation is unchanged. Q8_0 holds every Q4_1
    weight to within 1/254 of its block's range, about a seventeenth of Q4_1's own step, so the repack
    adds next to no error (Q4_0, faster still, would quantize again and is not used). The copy is
    written under ``<models>/repacked/`` beside a temporary name and renamed when complete, so a
    killed run leaves nothing that loads; ``PUBMED_RAG_LLM_REPACK=off`` reads ``path`` as it is.
    """
    if rag.llm_repack == "off" or path.stat().st_size > REPACK_MAX_BYTES:
        return path
    found = REPACKED.get(gguf_file_type(path) or -1)
    if found is None:
        return path
    source, target_name, target_type = found
    stem = (
        path.stem.replace(source, target_name)
        if source in path.stem
        else f"{path.stem}.{target_name}"
    )
    folder = settings.models_dir / "repacked"
    target = folder / f"{stem}.gguf"
    if target.is_file() and target.stat().st_mtime >= path.stat().st_mtime:
        return target
    import llama_cpp

    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{stem}.{os.getpid()}.partial"
    log.info("repacking %s as %s once (%s has no fast CPU kernels): %s", path.name, target_name,
             source, target)  # fmt: skip
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = target_type
    params.allow_requantize = True
    params.nthread = rag.llm_threads or os.cpu_count() or 1
    try:
        code = llama_cpp.llama_model_quantize(str(path).encode(), str(partial).encode(), params)
        if code != 0:
            raise OSError(f"llama.cpp returned {code}")
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        log.warning("could not repack %s (%s); reading it as it is", path.name, exc)
        return path
    return target


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
        fast_layout(path, rag, settings),
        name,
        n_ctx=rag.n_ctx,
        gpu_layers=rag.gpu_layers,
        threads=rag.llm_threads,
        temperature=rag.temperature,
        flash_attention=rag.llm_flash_attention,
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
    try:
        fetched = hub.download_file(repo_id, filename, target)
    except Exception as exc:
        why = str(exc) if isinstance(exc, hub.ChecksumError) else hub.reason(exc)
        raise GeneratorUnavailableError(
            f"could not download {filename} from the Hugging Face repo {repo_id} at "
            f"{hub.endpoint()} ({why}). "
            f"Put the file at {target} yourself, point PUBMED_RAG_LLM at a local .gguf file, "
            "or set PUBMED_RAG_OFFLINE=1 to use the bundled SmolLM2-135M"
        ) from exc
    return llm, fetched
