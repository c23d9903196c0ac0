"""The answer service: question → hybrid search → budgeted prompt → streamed, checked answer.

``AnswerService.ask`` is the one streaming API the app and the CLI use. It yields, in order:

1. :class:`Sources` — everything retrieved;
2. :class:`KeyEvidence` — the sentences of the top articles that answer the question, quoted
   (before any generation: faithful by construction, and useful without a generator);
   then, only when other questions hold or wait for the shared generator,
   :class:`Queued` — how many are ahead (again whenever that number falls);
3. :class:`Token` — answer text as it is generated from that evidence, its decoding
   constrained so that every sentence cites a PMID of the prompt (citations also checked);
4. :class:`Answer` — the final answer, each sentence cited and labelled supported / weak /
   unsupported against the abstracts it cites; or :class:`Failed` if the generator broke or
   stayed busy longer than ``generator_wait_s`` (the sources and evidence stay valid and can be
   shown).

Search errors (empty query, no index) are raised before anything is yielded.
"""

from __future__ import annotations

import threading
import time
from collections import abc
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from indexing.settings import Settings, get_settings
from indexing.store import IndexReader, PublishedIndex
from rag import prompts
from rag.citations import CitationFilter, RepetitionGuard
from rag.constraints import CitationConstraint
from rag.errors import GenerationError, GeneratorBusyError
from rag.evidence import ArticleSentences, Evidence, collect_sentences, select_evidence, unit
from rag.generation import Generator, generator_name, load_generator
from rag.grounding import AnswerSentence, Grounded, ground_answer
from rag.rerank import LateInteraction, Reranker, second_stage
from rag.search import (
    EVIDENCE_BOOST,
    Feedback,
    Filters,
    Hit,
    SearchResult,
    article_texts,
    encode,
    published_index,
    search,
)
from rag.settings import RagSettings, get_rag_settings
from rag.similar import similar_articles
from rag.support import thresholds_for


@dataclass(frozen=True, slots=True)
class Timings:
    """Where the time of one answer went, in milliseconds (and tokens per second)."""

    retrieval_ms: float
    first_token_ms: float | None = None  # from the question to the first answer token
    tokens_per_s: float | None = None  # generation speed after the first token
    total_ms: float = 0.0
    load_ms: float = 0.0  # loading the generator, when this answer had to
    generated_tokens: int = 0
    evidence_ms: float | None = None  # from the question to the key evidence
    prompt_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded."""
        return {
            "retrieval_ms": round(self.retrieval_ms, 1),
            "first_token_ms": None
            if self.first_token_ms is None
            else round(self.first_token_ms, 1),
            "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 2),
            "total_ms": round(self.total_ms, 1),
            "load_ms": round(self.load_ms, 1),
            "generated_tokens": self.generated_tokens,
            "evidence_ms": None if self.evidence_ms is None else round(self.evidence_ms, 1),
            "prompt_tokens": self.prompt_tokens,
        }


@dataclass(frozen=True, slots=True)
class Sources:
    """First event: the search result, and whether the answer will abstain.

    ``context`` stays empty here: which articles the prompt names is known once the evidence
    is chosen and the prompt fitted (:attr:`Answer.context`).
    """

    result: SearchResult
    context: tuple[Hit, ...]
    abstaining: bool
    notices: tuple[str, ...] = ()

    @property
    def hits(self) -> tuple[Hit, ...]:
        """All retrieved articles, best first."""
        return self.result.hits


@dataclass(frozen=True, slots=True)
class KeyEvidence:
    """Second event: quoted sentences of the top articles that bear on the question."""

    evidence: tuple[Evidence, ...]
    elapsed_ms: float  # from the question to this event


@dataclass(frozen=True, slots=True)
class Queued:
    """The shared generator is busy: ``position`` questions are being answered or wait ahead."""

    position: int


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of answer text, as generated."""

    text: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The final, checked answer."""

    question: str
    text: str  # citations checked: only [PMID:n] of passages in the prompt remain
    citations: tuple[str, ...]  # PMIDs cited, in order of first citation
    cited: tuple[Hit, ...]  # the cited articles
    sources: tuple[Hit, ...]  # every retrieved article, best first
    context: tuple[Hit, ...]  # the articles whose passages were in the prompt
    removed_citations: tuple[str, ...]  # cited but not in the prompt: removed from the text
    abstained: bool
    timings: Timings
    model: str
    index_version: str
    raw_text: str = ""  # what the generator wrote, before the check
    notices: tuple[str, ...] = ()
    uncited: tuple[str, ...] = ()  # sentences the check took out (they cited nothing usable)
    evidence: tuple[Evidence, ...] = ()
    sentences: tuple[AnswerSentence, ...] = ()
    published_at: str = ""  # when ``index_version`` was published
    embeddings_model: str = ""  # the embedder that built that version

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape: ``answer``, ``evidence``, ``sentences``, ``sources``…"""
        return {
            "question": self.question,
            "answer": self.text,
            "evidence": [item.to_dict() for item in self.evidence],
            "sentences": [sentence.to_dict() for sentence in self.sentences],
            "citations": list(self.citations),
            "removed_citations": list(self.removed_citations),
            "uncited_sentences": list(self.uncited),
            "abstained": self.abstained,
            "sources": [hit.to_dict() for hit in self.sources],
            "context_pmids": [hit.pmid for hit in self.context],
            "timings": self.timings.to_dict(),
            "model": self.model,
            "index_version": self.index_version,
            "notices": list(self.notices),
        }


@dataclass(frozen=True, slots=True)
class Failed:
    """The generator failed; ``sources`` are still the valid search result."""

    error: GenerationError
    sources: tuple[Hit, ...]
    timings: Timings
    evidence: tuple[Evidence, ...] = ()

    @property
    def message(self) -> str:
        """One line for the user."""
        return str(self.error)


Event = Sources | KeyEvidence | Queued | Token | Answer | Failed


class GeneratorTurns:
    """One generation at a time (one llama.cpp context), with a bounded, counted wait.

    Each caller takes a ticket; its position is the number of earlier tickets still holding
    or waiting for the generator. ``threading.Lock`` is not fair, so the position is what the
    user is told, not a promise of order.
    """

    # How often a waiting caller looks again (to report a smaller position).
    POLL_S = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = threading.Lock()
        self._next = 0
        self._active: set[int] = set()

    def take_ticket(self) -> int:
        """A place in the line; pass it to :meth:`wait` and, in a ``finally``, to :meth:`leave`."""
        with self._count:
            ticket = self._next
            self._next += 1
            self._active.add(ticket)
            return ticket

    def wait(self, ticket: int, timeout_s: float) -> Iterator[int | bool]:
        """Yield positions while waiting, then ``True`` (the turn is held) or ``False`` (timed out).

        Nothing but ``True`` is yielded when the generator is free. After ``True`` the caller
        must :meth:`release` the turn.
        """
        if self._lock.acquire(blocking=False):
            yield True
            return
        deadline = time.monotonic() + timeout_s
        shown = -1
        while True:
            ahead = max(self.ahead(ticket), 1)  # someone holds it: at least one is ahead
            if ahead != shown:
                shown = ahead
                yield ahead
            left = deadline - time.monotonic()
            if left <= 0:
                yield False
                return
            if self._lock.acquire(timeout=min(self.POLL_S, left)):
                yield True
                return

    def ahead(self, ticket: int) -> int:
        """How many earlier tickets still hold or wait for the generator."""
        with self._count:
            return sum(1 for other in self._active if other < ticket)

    def release(self) -> None:
        """Give the generator to the next caller."""
        self._lock.release()

    def leave(self, ticket: int) -> None:
        """Forget a ticket (held, timed out or abandoned)."""
        with self._count:
            self._active.discard(ticket)


@dataclass
class AnswerService:
    """Holds the index reader and the (lazily loaded) generator; answers questions.

    One instance serves many requests and threads: each search takes the currently
    published index version, and generation is serialised (one llama.cpp context).
    """

    settings: Settings = field(default_factory=get_settings)
    rag: RagSettings = field(default_factory=get_rag_settings)
    reader: IndexReader | None = None
    generator: Generator | None = None

    def __post_init__(self) -> None:
        if self.reader is None:
            self.reader = IndexReader(self.settings)
        self._load_lock = threading.Lock()
        self._turns = GeneratorTurns()
        self._reranker: Reranker | LateInteraction | None = None

    @property
    def model_name(self) -> str:
        """Name of the generator: the loaded one, else the one that will load (offline aware)."""
        if self.generator is not None:
            return self.generator.name
        return generator_name(self.rag, self.settings)

    def load_generator(self) -> Generator:
        """The generator, loaded (and downloaded) on first use.

        Raises:
            GeneratorUnavailableError: the model cannot be found, downloaded or loaded.
        """
        if self.generator is None:
            with self._load_lock:
                if self.generator is None:
                    self.generator = load_generator(self.rag, self.settings)
        return self.generator

    def load_reranker(self) -> Reranker | LateInteraction | None:
        """The second stage (``reranker``, else ``late_interaction``), loaded on first use;
        ``None`` when both are off.

        Raises:
            RerankerUnavailableError: the named model cannot be found, downloaded or loaded.
        """
        wanted = self.rag.reranker or self.rag.late_interaction > 0
        if wanted and self._reranker is None:
            with self._load_lock:
                if self._reranker is None:
                    self._reranker = second_stage(
                        self.rag.reranker,
                        self.rag.rerank_depth,
                        self.rag.late_interaction,
                        self.rag.late_interaction_weight,
                        allow_download=not self.settings.offline,
                    )
        return self._reranker

    def search(
        self,
        query: str,
        filters: Filters | None = None,
        limit: int | None = None,
        index: PublishedIndex | None = None,
        rank_by_evidence: bool | None = None,
    ) -> SearchResult:
        """Hybrid search of the published index (see :func:`rag.search.search`).

        ``rank_by_evidence`` (``None``: the ``evidence_boost`` setting) ranks stronger study
        designs higher by :data:`rag.search.EVIDENCE_BOOST`.
        """
        assert self.reader is not None
        boost = self.rag.evidence_boost if rank_by_evidence is None else rank_by_evidence
        return search(
            index or self.reader,
            query,
            filters,
            limit or self.rag.search_limit,
            self.rag.hybrid_weight,
            candidates=self.rag.candidates,
            max_query_chars=self.rag.max_query_chars,
            max_candidates=self.rag.max_candidates,
            evidence_boost=EVIDENCE_BOOST if boost else 0.0,
            reranker=self.load_reranker(),
            feedback=Feedback.chosen(self.rag.feedback_docs, self.rag.feedback_weight),
        )

    def similar(
        self, pmid: str, filters: Filters | None = None, limit: int | None = None
    ) -> SearchResult:
        """Articles like ``pmid`` (see :func:`rag.similar.similar_articles`)."""
        assert self.reader is not None
        return similar_articles(self.reader, pmid, filters, limit or self.rag.search_limit)

    def published(self) -> PublishedIndex:
        """The published version answers are read from (one per question).

        Raises:
            IndexMissingError: nothing has been published yet.
        """
        assert self.reader is not None
        return published_index(self.reader)

    def evidence(
        self, index: PublishedIndex, result: SearchResult
    ) -> tuple[ArticleSentences, list[Evidence]]:
        """The sentences of the top ``top_k`` articles, encoded, and the key evidence in them."""
        top = result.hits[: self.rag.top_k]
        if not top or index.embeddings is None:
            return ArticleSentences((), np.zeros((0, 1), np.float32)), []
        texts = article_texts(index, [hit.pmid for hit in top])
        for hit in top:  # a record the search found but whose rows could not be read back
            texts.setdefault(hit.pmid, hit.passage)
        pool = collect_sentences(
            texts, lambda batch, category: encode(index, batch, category), [h.pmid for h in top]
        )
        question = unit(encode(index, [result.query], "query"))
        chosen = select_evidence(
            result.query,
            question,
            pool,
            {hit.pmid: hit.score for hit in top},
            limit=self.rag.evidence_sentences,
            per_article=self.rag.evidence_per_article,
            floor=self.rag.evidence_floor,
        )
        return pool, chosen

    def ask(
        self,
        question: str,
        filters: Filters | None = None,
        rank_by_evidence: bool | None = None,
    ) -> Iterator[Event]:
        """Answer a question from the index, streaming; see the module docstring for events.

        ``rank_by_evidence`` as in :meth:`search`.

        Raises:
            SearchError: empty question, no index, empty index (before any event).
        """
        started = time.perf_counter()
        index = self._index_for(question)
        result = self.search(question, filters, index=index, rank_by_evidence=rank_by_evidence)
        notices = list(result.notices)
        threshold = self.rag.threshold_for(result.embeddings_model)
        abstaining = not result.hits or result.best_dense < threshold
        yield Sources(result, (), abstaining, tuple(notices))
        pool, evidence = self.evidence(index, result)
        evidence_ms = (time.perf_counter() - started) * 1000
        yield KeyEvidence(tuple(evidence), evidence_ms)
        if abstaining:
            yield replace(
                self._abstain(result, started, notices, tuple(evidence), evidence_ms),
                published_at=index.manifest.published_at,
            )
            return
        load_started = time.perf_counter()
        try:
            generator = self.load_generator()
            load_ms = (time.perf_counter() - load_started) * 1000
            context = self._fit(result, generator, notices, evidence)
        except GenerationError as exc:
            yield Failed(
                exc, result.hits, self._timings(result, started, evidence_ms), tuple(evidence)
            )
            return
        yield from self._generate(
            result,
            generator,
            context,
            started,
            load_ms,
            notices,
            index,
            pool,
            evidence,
            evidence_ms,
        )

    def _index_for(self, question: str) -> PublishedIndex:
        """The published version for one question (an empty question fails first)."""
        from rag.search import prepare_query

        prepare_query(question, self.rag.max_query_chars)
        return self.published()

    def _fit(
        self,
        result: SearchResult,
        generator: Generator,
        notices: list[str],
        evidence: list[Evidence],
    ) -> prompts.Context:
        try:
            context = prompts.fit_context(
                result.query,
                result.hits[: self.rag.top_k],
                generator.count_tokens,
                self.rag.n_ctx,
                self.rag.max_answer_tokens,
                self.rag.system_prompt,
                self.rag.answer_prompt,
                self.rag.passage_template,
                self.rag.example_turn,
                evidence,
                self.rag.evidence_template,
                self.rag.prompt_passages,
            )
        except ValueError as exc:
            raise GenerationError(str(exc)) from exc
        if context.dropped and (self.rag.prompt_passages or not evidence):
            notices.append(
                f"{len(context.dropped)} weaker passage(s) left out to fit the "
                f"{self.rag.n_ctx}-token window"
            )
        if context.truncated:
            notices.append("the best passage was shortened to fit the window")
        return context

    def _generate(
        self,
        result: SearchResult,
        generator: Generator,
        context: prompts.Context,
        started: float,
        load_ms: float,
        notices: list[str],
        index: PublishedIndex,
        pool: ArticleSentences,
        evidence: list[Evidence],
        evidence_ms: float,
    ) -> Iterator[Event]:
        messages = prompts.build_messages(
            result.query,
            context,
            self.rag.system_prompt,
            self.rag.answer_prompt,
            self.rag.example_turn,
            self.rag.evidence_template,
        )
        context_pmids = [hit.pmid for hit in context.hits]
        constraint = (
            CitationConstraint(tuple(context_pmids), self.rag.max_answer_sentences)
            if self.rag.constrain_citations and context_pmids
            else None
        )
        checker = CitationFilter(context_pmids)
        guard = RepetitionGuard()
        raw: list[str] = []
        shown: list[str] = []
        first_token: float | None = None
        error: GenerationError | None = None
        ticket = self._turns.take_ticket()
        try:
            error = yield from self._wait_for_turn(ticket)
            if error is None:
                try:
                    for piece in generator.stream(messages, self.rag.max_answer_tokens, constraint):
                        if first_token is None:
                            first_token = time.perf_counter()
                        raw.append(piece)
                        visible = checker.feed(guard.feed(piece))
                        if visible:
                            shown.append(visible)
                            yield Token(visible)
                        if guard.stopped:
                            break  # closing the stream stops the generator
                except Exception as exc:  # a generator bug must not lose the sources either
                    error = (
                        exc
                        if isinstance(exc, GenerationError)
                        else GenerationError(f"the generator {generator.name} failed: {exc}")
                    )
                finally:
                    self._turns.release()
        finally:
            self._turns.leave(ticket)  # also when the consumer stopped listening
        if error is not None:
            yield Failed(
                error,
                result.hits,
                self._timings(result, started, evidence_ms, load_ms=load_ms),
                tuple(evidence),
            )
            return
        tail = checker.feed(guard.finish()) + checker.finish()
        if tail.strip():
            yield Token(tail)
        shown.append(tail)
        raw_text = "".join(raw)
        grounded = self._ground("".join(shown).strip(), context_pmids, index, pool, result)
        if guard.stopped:
            notices.append("the model began to repeat itself; the answer was cut there")
        if checker.removed:
            notices.append(
                "removed citations of articles that were not given to the model: "
                + ", ".join(checker.removed)
            )
        notices.extend(_dropped_notices(grounded))
        text = grounded.text or prompts.UNGROUNDED_TEXT
        by_pmid = {hit.pmid: hit for hit in result.hits}
        timings = self._generation_timings(
            result, generator, raw_text, started, first_token, load_ms
        )
        yield Answer(
            question=result.query,
            text=text,
            citations=grounded.citations,
            cited=tuple(by_pmid[pmid] for pmid in grounded.citations if pmid in by_pmid),
            sources=result.hits,
            context=context.hits,
            removed_citations=tuple(checker.removed),
            abstained=False,
            timings=replace(timings, evidence_ms=evidence_ms, prompt_tokens=context.prompt_tokens),
            model=generator.name,
            index_version=result.index_version,
            raw_text=raw_text,
            notices=tuple(notices),
            uncited=tuple(sentence for sentence, _ in grounded.dropped),
            evidence=tuple(evidence),
            sentences=grounded.sentences,
            published_at=index.manifest.published_at,
            embeddings_model=result.embeddings_model,
        )

    def _wait_for_turn(self, ticket: int) -> abc.Generator[Queued, None, GeneratorBusyError | None]:
        """Wait for the generator, yielding the place in the line; returns why not, or None."""
        for state in self._turns.wait(ticket, self.rag.generator_wait_s):
            if state is True:
                return None
            if state is False:
                break
            yield Queued(state)
        return GeneratorBusyError(
            f"the generator is busy: {max(self._turns.ahead(ticket), 1)} question(s) still ahead "
            f"after {self.rag.generator_wait_s:g} s; try again in a minute"
        )

    def _ground(
        self,
        text: str,
        context_pmids: list[str],
        index: PublishedIndex,
        pool: ArticleSentences,
        result: SearchResult,
    ) -> Grounded:
        return ground_answer(
            text,
            context_pmids,
            pool,
            lambda claims: encode(index, claims, "data"),
            thresholds_for(result.embeddings_model),
            prompts.demonstrations(self.rag.example_turn),
        )

    @staticmethod
    def _generation_timings(
        result: SearchResult,
        generator: Generator,
        raw_text: str,
        started: float,
        first_token: float | None,
        load_ms: float,
    ) -> Timings:
        ended = time.perf_counter()
        tokens = generator.count_tokens(raw_text) if raw_text else 0
        speed = None
        if first_token is not None and tokens > 1 and ended > first_token:
            speed = (tokens - 1) / (ended - first_token)
        return Timings(
            retrieval_ms=result.elapsed_ms,
            first_token_ms=None if first_token is None else (first_token - started) * 1000,
            tokens_per_s=speed,
            total_ms=(ended - started) * 1000,
            load_ms=load_ms,
            generated_tokens=tokens,
        )

    def answer(self, question: str, filters: Filters | None = None) -> Answer:
        """Run :meth:`ask` to the end and return the final answer.

        Raises:
            SearchError: empty question, no index, empty index.
            GenerationError: the generator failed.
        """
        for event in self.ask(question, filters):
            if isinstance(event, Answer):
                return event
            if isinstance(event, Failed):
                raise event.error
        raise GenerationError("the answer stream ended without an answer")  # pragma: no cover

    def _abstain(
        self,
        result: SearchResult,
        started: float,
        notices: list[str],
        evidence: tuple[Evidence, ...] = (),
        evidence_ms: float | None = None,
    ) -> Answer:
        text = prompts.ABSTAIN_TEXT if result.hits else prompts.NO_HITS_TEXT
        return Answer(
            question=result.query,
            text=text,
            citations=(),
            cited=(),
            sources=result.hits,
            context=(),
            removed_citations=(),
            abstained=True,
            timings=self._timings(result, started, evidence_ms),
            model=self.model_name,
            index_version=result.index_version,
            notices=tuple(notices),
            evidence=evidence,
            embeddings_model=result.embeddings_model,
        )

    @staticmethod
    def _timings(
        result: SearchResult,
        started: float,
        evidence_ms: float | None = None,
        load_ms: float = 0.0,
    ) -> Timings:
        return Timings(
            retrieval_ms=result.elapsed_ms,
            total_ms=(time.perf_counter() - started) * 1000,
            load_ms=load_ms,
            evidence_ms=evidence_ms,
        )


def _dropped_notices(grounded: Grounded) -> list[str]:
    """One notice per reason sentences were taken out of the answer."""
    reasons: dict[str, int] = {}
    for _, reason in grounded.dropped:
        reasons[reason] = reasons.get(reason, 0) + 1
    return [
        f"{count} sentence(s) of the generated answer were left out: {reason}"
        for reason, count in reasons.items()
    ]
