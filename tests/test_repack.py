"""The bundled Q4_1 generator is repacked once into Q8_0, which llama.cpp has fast kernels for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexing.settings import Settings, offline_llm_path
from rag.generation import LLAMA_FTYPE_Q8_0, fast_layout, gguf_file_type, load_generator
from rag.settings import RagSettings

pytestmark = pytest.mark.skipif(
    not offline_llm_path().is_file(), reason=f"offline generator missing at {offline_llm_path()}"
)


def last_logits(path: Path, text: str) -> np.ndarray:
    from llama_cpp import Llama

    llama = Llama(str(path), n_ctx=256, n_threads=2, logits_all=True, verbose=False)
    tokens = llama.tokenize(text.encode("utf-8"), add_bos=False)
    llama.eval(tokens)
    return np.asarray(llama.scores[len(tokens) - 1], dtype=np.float64)


def test_the_q4_1_model_is_repacked_once_and_that_copy_is_loaded(tmp_path: Path) -> None:
    settings = Settings(offline=True, data_dir=tmp_path / "data")
    rag = RagSettings(n_ctx=1024)
    original = offline_llm_path()

    repacked = fast_layout(original, rag, settings)

    assert repacked == settings.models_dir / "repacked" / "SmolLM2-135M-Instruct.Q8_0.gguf"
    assert gguf_file_type(repacked) == LLAMA_FTYPE_Q8_0
    assert not list(repacked.parent.glob(".*partial"))  # written aside, then renamed
    made = repacked.stat().st_mtime_ns
    assert fast_layout(original, rag, settings) == repacked
    assert repacked.stat().st_mtime_ns == made  # made once
    generator = load_generator(rag, settings)
    assert getattr(generator, "path", None) == repacked
    # Off: the file as it is.
    assert fast_layout(original, RagSettings(llm_repack="off"), settings) == original


def test_the_repacked_model_predicts_what_the_original_does(tmp_path: Path) -> None:
    settings = Settings(offline=True, data_dir=tmp_path / "data")
    repacked = fast_layout(offline_llm_path(), RagSettings(), settings)
    text = "Proton pump inhibitors reduce gastric acid secretion and are used to treat"

    before, after = last_logits(offline_llm_path(), text), last_logits(repacked, text)

    # The same weights to within a seventeenth of Q4_1's step: the next-token scores agree.
    assert np.corrcoef(before, after)[0, 1] > 0.995
    top_before, top_after = set(np.argsort(-before)[:10]), set(np.argsort(-after)[:10])
    assert len(top_before & top_after) >= 8


def test_a_file_without_a_repack_is_loaded_as_it_is(tmp_path: Path) -> None:
    settings = Settings(offline=True, data_dir=tmp_path / "data")
    q8 = fast_layout(offline_llm_path(), RagSettings(), settings)

    assert fast_layout(q8, RagSettings(), settings) == q8  # Q8_0 has fast kernels already
    junk = tmp_path / "not-a-model.gguf"
    junk.write_bytes(b"GGUF but not really")
    assert fast_layout(junk, RagSettings(), settings) == junk  # the load reports it, not this
