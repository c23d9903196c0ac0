"""Answers: citation checking, abstention, streaming and budgets; one real SmolLM2 run."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from indexing.settings import Settings
from rag import prompts
from rag.citations import CitationFilter, RepetitionGuard, split_sentences
from rag.constraints import CitationConstraint
from rag.errors import GenerationError, GeneratorBusyError, GeneratorUnavailableError
from rag.generation import (
    OFFLINE_LLM_NAME,
    ScriptedGenerator,
    generator_name,
    load_generator,
    resolve_llm,
)
from rag.prompts import EXAMPLE_ANSWER, EXAMPLE_PMID
from rag.search import Filters, Hit
from rag.service import Answer, AnswerService, Failed, KeyEvidence, Queued, Sources, Token
from rag.settings import RagSettings
from tests.fixtures_index import RETRACTED_PMID, SampleIndex, sample_index

__all__ = ["sample_index"]

QUESTION = "Is long-term use of proton pump inhibitors safe?"
OFF_TOPIC = "How do I change a flat tyre on a racing bicycle?"
# A claim no abstract of the sample supports: the check can neither keep nor attribute it.
UNRELATED = "Racing bicycles need tyres inflated to high pressure."


def _service(sample_index: SampleIndex, generator: object = None, **rag: object) -> AnswerService:
    settings = RagSettings(**rag)  # type: ignore[arg-type]
    return AnswerService(sample_index.settings(), settings, generator=generator)  # type: ignore[arg-type]


class RefusingGenerator(ScriptedGenerator):
    """Fails the test if anything asks it to generate."""

    def stream(  # type: ignore[override]
        self,
        messages: Sequence[prompts.Message],
        max_tokens: int,
        constraint: CitationConstraint | None = None,
    ):
        raise AssertionError("the generator must not be called")


def _every_sentence_cites_the_context(answer: Answer) -> None:
    context = {hit.pmid for hit in answer.context}
    assert answer.sentences
    for sentence in answer.sentences:
        assert sentence.citations and set(sentence.citations) <= context, sentence
        assert all(f"[PMID:{pmid}]" in sentence.text for pmid in sentence.citations)
        assert sentence.support in {"supported", "weak", "unsupported"}


# -- citation checking -------------------------------------------------------------------------


def test_valid_citation_is_kept(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator("Long-term use has rare risks [PMID:{pmid1}].")
    answer = _service(sample_index, generator).answer(QUESTION)

    top = answer.context[0].pmid
    assert top == RETRACTED_PMID
    assert answer.text == f"Long-term use has rare risks [PMID:{top}]."
    assert answer.citations == (top,)
    assert [hit.pmid for hit in answer.cited] == [top]
    assert answer.removed_citations == ()
    assert not answer.abstained
    assert len(generator.calls) == 1
    (sentence,) = answer.sentences
    assert sentence.citations == (top,) and not sentence.attributed
    assert sentence.quote and sentence.quote_pmid == top
    # The generator was asked for an answer whose every sentence cites the prompt's PMIDs.
    (constraint,) = generator.constraints
    assert constraint is not None and top in constraint.pmids
    assert set(constraint.pmids) == {hit.pmid for hit in answer.context}


def test_fabricated_pmid_is_removed_and_reported(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator(f"Safe [PMID:{{pmid1}}]. {UNRELATED[:-1]} [PMID:99999999].")
    service = _service(sample_index, generator)

    events = list(service.ask(QUESTION))

    answer = events[-1]
    assert isinstance(answer, Answer)
    top = answer.context[0].pmid
    # The claim lost its fabricated citation, and nothing in the sources supports it: gone.
    assert answer.text == f"Safe [PMID:{top}]."
    assert answer.uncited == (f"{UNRELATED[:-1]}.",)
    assert answer.citations == (top,)
    assert answer.removed_citations == ("99999999",)
    assert any("99999999" in notice for notice in answer.notices)
    streamed = "".join(event.text for event in events if isinstance(event, Token))
    assert "99999999" not in streamed  # never shown, not even while streaming
    assert "99999999" in answer.raw_text


def test_citation_of_a_retrieved_article_outside_the_context_is_removed(
    sample_index: SampleIndex,
) -> None:
    service = _service(sample_index, top_k=1, search_limit=5, prompt_passages=True)
    sources = service.search(QUESTION).hits
    outside = sources[3].pmid
    service.generator = ScriptedGenerator(f"Safe [PMID:{{pmid1}}] and [PMID:{outside}].")

    answer = service.answer(QUESTION)

    assert [hit.pmid for hit in answer.context] == [sources[0].pmid]
    assert outside in [hit.pmid for hit in answer.sources]
    assert answer.citations == (sources[0].pmid,)
    assert answer.removed_citations == (outside,)
    assert outside not in answer.text


def test_numbered_and_loose_citation_forms_map_to_context_pmids(
    sample_index: SampleIndex,
) -> None:
    generator = ScriptedGenerator("One [1]. Two (PMID: {pmid2}). Three [2, 3]. Four [9].")
    answer = _service(sample_index, generator, top_k=3, prompt_passages=True).answer(QUESTION)

    # Passage numbers count the articles of the context in ranking order; {pmid2} is the
    # second PMID the prompt names.
    first, second, third = (hit.pmid for hit in answer.context)
    prompt = generator.calls[0][-1]["content"].split("Question:")[0]
    named = list(dict.fromkeys(re.findall(r"\[PMID:(\d+)\]", prompt)))
    assert answer.text == (
        f"One [PMID:{first}]. Two [PMID:{named[1]}]. Three [PMID:{second}][PMID:{third}]. Four."
    )
    assert set(answer.citations) == {first, second, third, named[1]}
    assert answer.removed_citations == ("9",)


@pytest.mark.parametrize(
    ("text", "clean", "cited", "removed"),
    [
        ("A [PMID:1].", "A [PMID:1].", ["1"], []),
        ("A [PMID 1; PMID: 2] b", "A [PMID:1][PMID:2] b", ["1", "2"], []),
        ("A [7].", "A.", [], ["7"]),
        ("See PMID 5 and PMID:1.", "See and [PMID:1].", ["1"], ["5"]),
        ("In (n = 45) cases [see text] (PMID: 3, 1).", None, ["1"], ["3"]),
        ("Ranges [1-2]", "Ranges [PMID:1][PMID:2]", ["1", "2"], []),
    ],
)
def test_citation_filter_cases(
    text: str, clean: str | None, cited: list[str], removed: list[str]
) -> None:
    checker = CitationFilter(["1", "2"])
    result = checker.clean(text)
    if clean is not None:
        assert result == clean
    else:
        assert "(n = 45)" in result and "[see text]" in result and "3" not in result
    assert checker.cited == cited
    assert checker.removed == removed


@pytest.mark.parametrize("size", [1, 2, 5, 11])
def test_citation_filter_streams_like_the_whole_text(size: int) -> None:
    text = "Risk rises [PMID:2] (PMID 404) but not [3]; PMID: 1 agrees [1, 2]. Done [PMID:77777]"
    whole = CitationFilter(["1", "2", "3"]).clean(text)
    streaming = CitationFilter(["1", "2", "3"])
    pieces = [streaming.feed(text[i : i + size]) for i in range(0, len(text), size)]
    shown = "".join(pieces) + streaming.finish()
    assert shown.strip() == whole
    assert "404" not in shown and "77777" not in shown


LOOP = (
    "H. pylori is a major risk factor for gastric cancer [PMID:1]. Eradication is advised.\n "
    "H. pylori is a major risk factor for gastric cancer [PMID:1]. Eradication is advised."
)


@pytest.mark.parametrize("size", [1, 3, 8, 200])
def test_repetition_guard_stops_a_loop_before_showing_the_repeat(size: int) -> None:
    guard = RepetitionGuard()
    shown = ""
    for start in range(0, len(LOOP), size):
        shown += guard.feed(LOOP[start : start + size])
        if guard.stopped:
            break
    shown += guard.finish()

    assert guard.stopped
    assert guard.repeated.startswith("H. pylori is a major risk factor")
    assert shown.strip() == LOOP.split("\n", maxsplit=1)[0]


def test_repetition_guard_passes_distinct_and_short_sentences_unchanged() -> None:
    text = "Yes. Yes. PPIs are safe for most [PMID:1]. Risks rise with dose [PMID:2]. Yes."
    guard = RepetitionGuard()
    shown = "".join(guard.feed(text[i : i + 4]) for i in range(0, len(text), 4))
    assert shown + guard.finish() == text
    assert not guard.stopped


def test_a_trailing_citation_belongs_to_its_sentence() -> None:
    text = "PPIs are safe. [PMID:1] Dementia risk is not raised [PMID:2]. No. Fractures rise."
    assert split_sentences(text) == [
        "PPIs are safe. [PMID:1]",
        "Dementia risk is not raised [PMID:2].",
        "No.",
        "Fractures rise.",
    ]


def test_looping_generator_is_stopped_and_the_repeat_never_shown(
    sample_index: SampleIndex,
) -> None:
    sentence = "Long-term use is associated with rare adverse effects [PMID:{pmid1}]. "
    generator = ScriptedGenerator(sentence * 40)
    events = list(_service(sample_index, generator).ask(QUESTION))

    answer = events[-1]
    assert isinstance(answer, Answer)
    top = answer.context[0].pmid
    once = sentence.replace("{pmid1}", top).strip()
    assert answer.text == once
    streamed = "".join(event.text for event in events if isinstance(event, Token))
    assert streamed.strip() == once
    assert len(answer.raw_text) < 3 * len(once)  # generation stopped right after the repeat
    assert any("repeat itself" in notice for notice in answer.notices)


def test_uncited_sentence_no_source_supports_is_left_out(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator(f"Long-term use has rare risks [PMID:{{pmid1}}]. {UNRELATED}")
    answer = _service(sample_index, generator).answer(QUESTION)

    top = answer.context[0].pmid
    assert answer.text == f"Long-term use has rare risks [PMID:{top}]."
    assert answer.uncited == (UNRELATED,)
    assert answer.to_dict()["uncited_sentences"] == [UNRELATED]
    assert any("1 sentence(s) of the generated answer were left out" in n for n in answer.notices)
    _every_sentence_cites_the_context(answer)


def test_uncited_sentence_a_source_supports_gets_that_citation(sample_index: SampleIndex) -> None:
    service = _service(sample_index)
    quoted = next(e for e in service.answer(QUESTION).evidence if len(e.text.split()) > 8)
    service.generator = ScriptedGenerator(quoted.text)  # a generator that cites nothing

    answer = service.answer(QUESTION)

    (sentence,) = answer.sentences
    assert sentence.attributed and sentence.citations == (quoted.pmid,)
    assert sentence.support == "supported" and quoted.text.rstrip(".") in sentence.quote
    assert sentence.text.endswith(f"[PMID:{quoted.pmid}].")
    assert answer.citations == (quoted.pmid,)


def test_answer_citing_nothing_valid_is_not_shown(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator(f"{UNRELATED[:-1]} [PMID:99999999].")
    answer = _service(sample_index, generator).answer(QUESTION)

    assert answer.citations == () and answer.sentences == ()
    assert answer.text == prompts.UNGROUNDED_TEXT
    assert answer.evidence  # what the literature says is still there
    assert answer.uncited == (f"{UNRELATED[:-1]}.",)


# -- abstention and failures -------------------------------------------------------------------


def test_off_topic_question_abstains_without_calling_the_generator(
    sample_index: SampleIndex,
) -> None:
    generator = RefusingGenerator("unused")
    events = list(_service(sample_index, generator).ask(OFF_TOPIC))

    assert isinstance(events[0], Sources) and events[0].abstaining
    assert isinstance(events[1], KeyEvidence)
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert answer.abstained
    assert answer.text == prompts.ABSTAIN_TEXT
    assert answer.citations == () and answer.context == ()
    assert answer.sources  # the closest articles are still shown
    assert answer.timings.first_token_ms is None
    assert not any(isinstance(event, Token) for event in events)


def test_threshold_setting_forces_abstention(sample_index: SampleIndex) -> None:
    generator = RefusingGenerator("unused")
    answer = _service(sample_index, generator, abstain_threshold=0.99).answer(QUESTION)

    assert answer.abstained
    assert answer.sources[0].pmid == RETRACTED_PMID


def test_no_hits_abstains_with_its_own_message(sample_index: SampleIndex) -> None:
    generator = RefusingGenerator("unused")
    answer = _service(sample_index, generator).answer(QUESTION, Filters(lang="xxx"))

    assert answer.abstained
    assert answer.sources == ()
    assert answer.text == prompts.NO_HITS_TEXT


def test_generator_failure_is_an_event_and_keeps_the_sources(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator("A long answer [PMID:{pmid1}] that breaks", fail_after=2)
    service = _service(sample_index, generator)

    events = list(service.ask(QUESTION))

    assert isinstance(events[0], Sources)
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.sources == events[0].hits
    assert "scripted failure" in failed.message
    with pytest.raises(GenerationError):
        service.answer(QUESTION)


def test_unloadable_generator_is_a_failed_event(sample_index: SampleIndex, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    settings = Settings(data_dir=sample_index.data_dir, offline=False)
    service = AnswerService(settings, RagSettings(llm=str(broken)))

    events = list(service.ask(QUESTION))

    assert isinstance(events[-1], Failed)
    assert isinstance(events[-1].error, GeneratorUnavailableError)
    assert events[-1].sources


# -- events, streaming, budget -----------------------------------------------------------------


def test_events_come_in_order_and_tokens_make_the_answer(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator(
        "PPIs are mostly safe [PMID:{pmid1}], with caveats [PMID:{pmid2}]."
    )
    events = list(_service(sample_index, generator, prompt_passages=True).ask(QUESTION))

    assert isinstance(events[0], Sources)
    assert isinstance(events[1], KeyEvidence) and events[1].evidence
    assert events[1].elapsed_ms >= events[0].result.elapsed_ms
    assert isinstance(events[-1], Answer)
    tokens = [event for event in events[2:-1] if isinstance(event, Token)]
    assert len(tokens) > 5  # streamed in pieces, not at the end
    answer = events[-1]
    assert "".join(token.text for token in tokens).strip() == answer.text
    assert set(answer.citations) <= {hit.pmid for hit in answer.context}
    timings = answer.timings
    assert timings.retrieval_ms > 0
    assert timings.evidence_ms is not None and timings.evidence_ms >= timings.retrieval_ms
    assert timings.first_token_ms is not None and timings.first_token_ms >= timings.evidence_ms
    assert timings.total_ms >= timings.first_token_ms
    assert answer.model == "scripted"
    assert answer.evidence == events[1].evidence
    assert not any(isinstance(event, Queued) for event in events)  # nobody else was asking
    _every_sentence_cites_the_context(answer)


def test_prompt_quotes_the_key_evidence_grouped_by_article(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator("ok")
    answer = _service(sample_index, generator, top_k=3).answer(QUESTION)

    system, user = generator.calls[0]  # no worked example by default
    assert system["role"] == "system" and "[PMID:" in system["content"]
    content = user["content"]
    assert content.startswith("Evidence from PubMed:\n")
    assert content.rstrip().endswith(f"Question: {QUESTION}")
    ranks = {hit.pmid: rank for rank, hit in enumerate(answer.sources)}
    lines = [line for line in content.splitlines() if line.startswith("- ")]
    assert len(lines) == len(answer.evidence) > 0
    for item in answer.evidence:
        assert f"- {item.text.rstrip('.')} [PMID:{item.pmid}]" in lines
    cited_ranks = [ranks[line.rsplit("[PMID:", 1)[1].rstrip("]")] for line in lines]
    assert cited_ranks == sorted(cited_ranks)  # grouped by article, best article first
    assert {hit.pmid for hit in answer.context} == {item.pmid for item in answer.evidence}
    assert "Abstracts:" not in content  # whole passages only with prompt_passages


def test_prompt_passages_follow_the_evidence_best_first(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator("ok")
    answer = _service(sample_index, generator, top_k=3, prompt_passages=True).answer(QUESTION)

    content = generator.calls[0][-1]["content"]
    positions = [content.index(f"[PMID:{hit.pmid}] {hit.title}") for hit in answer.context]
    assert positions == sorted(positions)
    assert content.index("Evidence from PubMed:") < content.index("Abstracts:") < positions[0]


def test_answer_copying_the_worked_example_never_reaches_the_reader(
    sample_index: SampleIndex,
) -> None:
    generator = ScriptedGenerator(EXAMPLE_ANSWER)  # word for word, as SmolLM2 once did
    answer = _service(sample_index, generator, example_turn=True).answer(QUESTION)

    assert [m["role"] for m in generator.calls[0]] == ["system", "user", "assistant", "user"]
    assert f"[PMID:{EXAMPLE_PMID}]" in generator.calls[0][2]["content"]
    assert answer.removed_citations == (EXAMPLE_PMID,)
    assert answer.sentences == () and answer.text == prompts.UNGROUNDED_TEXT
    assert "vitamin" not in answer.text.lower()
    assert any("worked example" in notice for notice in answer.notices)


def test_worked_example_is_off_by_default(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator("ok")
    _service(sample_index, generator).answer(QUESTION)
    assert [m["role"] for m in generator.calls[0]] == ["system", "user"]


def test_context_budget_drops_the_weakest_passages_first(sample_index: SampleIndex) -> None:
    generator = ScriptedGenerator("ok")
    service = _service(
        sample_index,
        generator,
        top_k=10,
        search_limit=10,
        n_ctx=1024,
        max_answer_tokens=256,
        prompt_passages=True,
    )
    events = list(service.ask(QUESTION))

    answer = events[-1]
    assert isinstance(answer, Answer)
    prompt = "\n".join(message["content"] for message in generator.calls[0])
    kept = [hit.pmid for hit in answer.sources if f"[PMID:{hit.pmid}] {hit.title}" in prompt]
    assert 1 <= len(kept) < 10
    assert kept == [hit.pmid for hit in answer.sources[: len(kept)]]  # a prefix: best first
    assert any("left out" in notice for notice in answer.notices)
    assert generator.count_tokens(prompt) <= 1024 - 256


def test_fit_context_shortens_a_single_passage_that_is_too_long() -> None:
    hit = Hit(
        pmid="1", title="T", journal="J", year=2020, authors="", pubtypes=(), mesh=(),
        doi="", pmc="", retracted=False, has_abstract=True, score=1.0,
        passage="word " * 5000, passage_id="1#0",
    )  # fmt: skip
    context = prompts.fit_context("q?", [hit], prompts.estimate_tokens, 1024, 256)

    assert context.hits == (hit,) and context.truncated
    assert context.prompt_tokens <= 1024 - 256


# -- settings and model resolution -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("answer_prompt", "Answer {question} please", "evidence"),
        ("answer_prompt", "{evidence} {question} {secret}", "unknown"),
        ("evidence_template", "{text}", "pmid"),
        ("passage_template", "{title}: {passage}", "pmid"),
        ("llm", "Qwen/Qwen2.5-1.5B-Instruct", ".gguf"),
        ("max_answer_tokens", 3000, "half of n_ctx"),
    ],
)
def test_bad_settings_fail_at_load(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RagSettings(**{field: value})  # type: ignore[arg-type]


def test_every_setting_is_described() -> None:
    for name, info in RagSettings.model_fields.items():
        assert info.description and len(info.description) > 15, name


def test_offline_mode_uses_the_bundled_smollm2(tmp_path: Path) -> None:
    name, path = resolve_llm("org/repo/model.gguf", Settings(data_dir=tmp_path, offline=True))
    assert name == OFFLINE_LLM_NAME
    assert path.is_file() and path.suffix == ".gguf"


def test_local_and_already_fetched_gguf_are_used_without_download(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", offline=False)
    local = tmp_path / "mine.gguf"
    local.write_bytes(b"x")
    assert resolve_llm(str(local), settings) == ("mine.gguf", local)

    fetched = settings.models_dir / "org" / "repo" / "sub" / "model.gguf"
    fetched.parent.mkdir(parents=True)
    fetched.write_bytes(b"x")
    assert resolve_llm("org/repo/sub/model.gguf", settings) == ("org/repo/sub/model.gguf", fetched)


def test_failed_download_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings(data_dir=tmp_path / "data", offline=False)

    with pytest.raises(GeneratorUnavailableError, match="PUBMED_RAG_OFFLINE=1") as info:
        resolve_llm("org/repo/model.gguf", settings)
    assert str(settings.models_dir / "org" / "repo" / "model.gguf") in str(info.value)


def test_scripted_scheme_is_registered_like_a_model(tmp_path: Path) -> None:
    generator = load_generator(
        RagSettings(llm="scripted:Answer [PMID:{pmid1}]"), Settings(data_dir=tmp_path)
    )
    assert isinstance(generator, ScriptedGenerator)
    assert generator.script == "Answer [PMID:{pmid1}]"


def test_generator_name_is_known_before_loading(tmp_path: Path) -> None:
    offline = Settings(data_dir=tmp_path, offline=True)
    online = Settings(data_dir=tmp_path, offline=False)
    assert generator_name(RagSettings(llm="org/repo/model.gguf"), offline) == OFFLINE_LLM_NAME
    assert generator_name(RagSettings(llm="org/repo/model.gguf"), online) == "org/repo/model.gguf"
    assert generator_name(RagSettings(llm="scripted:Answer [PMID:{pmid1}]"), offline) == "scripted"


def test_abstention_in_offline_mode_names_the_offline_generator(
    sample_index: SampleIndex,
) -> None:
    service = AnswerService(sample_index.settings(), RagSettings(llm="org/repo/model.gguf"))

    answer = service.answer(OFF_TOPIC)

    assert answer.abstained
    assert answer.model == OFFLINE_LLM_NAME
    assert service.generator is None  # naming it did not load it


# -- the real model --------------------------------------------------------------------------


def test_real_smollm2_answers_with_citations_among_its_sources(sample_index: SampleIndex) -> None:
    service = _service(sample_index, max_answer_tokens=64, n_ctx=2048, top_k=3)

    events = list(service.ask("What are the risks of long-term proton pump inhibitor use?"))

    assert isinstance(events[0], Sources) and not events[0].abstaining
    answer = events[-1]
    assert isinstance(answer, Answer), getattr(answer, "message", answer)
    assert answer.model == OFFLINE_LLM_NAME
    assert not answer.abstained
    assert answer.text.strip()
    assert sum(isinstance(event, Token) for event in events) > 3
    context = {hit.pmid for hit in answer.context}
    assert context and context <= {hit.pmid for hit in answer.sources}
    assert set(answer.citations) <= context
    # By construction, whatever the model's words: cited sentences, evidence shown first.
    assert answer.evidence and isinstance(events[1], KeyEvidence)
    _every_sentence_cites_the_context(answer)
    assert answer.citations  # at least one, always: the grammar ends each sentence with one
    assert [hit.pmid for hit in answer.cited] == list(answer.citations)
    for pmid in answer.removed_citations:
        assert pmid not in answer.text
    for echo in prompts.STOP_STRINGS:  # an echo of the prompt's structure ends the answer
        assert echo not in answer.raw_text
    timings = answer.timings
    assert timings.first_token_ms is not None and timings.first_token_ms > 0
    assert timings.tokens_per_s is not None and timings.tokens_per_s > 0
    assert 0 < timings.generated_tokens <= 64 + 8  # re-tokenised text may differ slightly


# -- many users at once ------------------------------------------------------------------------

SLOW_REPLY = "PPIs are mostly safe [PMID:{pmid1}]."  # 13 pieces of 3 characters


def _ask_in_thread(
    service: AnswerService, generator: ScriptedGenerator
) -> tuple[list, threading.Thread]:
    """Start a question in another thread and return once the generator is working on it."""
    events: list = []
    thread = threading.Thread(target=lambda: events.extend(service.ask(QUESTION)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not generator.calls:
        assert time.monotonic() < deadline and thread.is_alive(), events
        time.sleep(0.01)
    return events, thread


def test_second_question_is_told_its_place_in_line_then_answered(
    sample_index: SampleIndex,
) -> None:
    generator = ScriptedGenerator(SLOW_REPLY, delay_s=0.1)
    service = _service(sample_index, generator)
    first, thread = _ask_in_thread(service, generator)

    second = list(service.ask(QUESTION))
    thread.join(60)

    kinds = [type(event).__name__ for event in second]
    assert kinds[:3] == ["Sources", "KeyEvidence", "Queued"]
    assert second[2].position == 1
    assert set(kinds[3:-1]) == {"Token"} and kinds[-1] == "Answer"
    assert isinstance(first[-1], Answer) and not any(isinstance(e, Queued) for e in first)
    assert len(generator.calls) == 2


def test_question_waiting_longer_than_the_setting_fails_busy_and_the_first_is_answered(
    sample_index: SampleIndex,
) -> None:
    generator = ScriptedGenerator(SLOW_REPLY, delay_s=0.1)
    service = _service(sample_index, generator, generator_wait_s=0.3)
    first, thread = _ask_in_thread(service, generator)

    started = time.monotonic()
    second = list(service.ask(QUESTION))
    waited = time.monotonic() - started
    thread.join(60)

    assert isinstance(second[2], Queued)
    assert isinstance(second[-1], Failed) and isinstance(second[-1].error, GeneratorBusyError)
    assert "busy" in second[-1].message and "try again" in second[-1].message
    assert second[-1].sources  # the sources are still there to show
    assert waited < 5 and len(generator.calls) == 1  # it never reached the generator
    assert isinstance(first[-1], Answer)
    # The line is empty again: the next question is not queued.
    assert not any(isinstance(event, Queued) for event in service.ask(QUESTION))
