"""The benchmark's arithmetic (the runs themselves report; they are not tests)."""

from __future__ import annotations

import pytest

from benchmarks.sections.encoders import flops_per_token, padding_share


def test_bert_base_costs_181_mflop_per_token_at_300_tokens() -> None:
    # 12 layers x (4 x 768^2 + 2 x 768 x 3072) x 2 = 169.9 M; attention 4 x 12 x 300 x 768 = 11.1 M
    assert flops_per_token(12, 768, 3072, 300) == 169_869_312 + 11_059_200


def test_padding_share_counts_positions_padded_to_each_batchs_longest_text() -> None:
    lengths = [10, 2, 10, 2]
    # arrival order in batches of 2, each sorted alone: (10, 2) (10, 2) -> 40 positions, 24 real
    assert padding_share(lengths, window=2, batch=2) == pytest.approx(1 - 24 / 40)
    # sorted across the window first: (10, 10) (2, 2) -> no padding
    assert padding_share(lengths, window=4, batch=2) == 0.0


def test_search_probe_reports_its_own_peak_memory_not_its_parents() -> None:
    import subprocess
    import sys

    ballast = b"x" * (400 * 2**20)  # the parent's peak: 400 MiB resident
    child = subprocess.run(
        [sys.executable, "-c", "from benchmarks.search_probe import peak_rss_mib as p; print(p())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(ballast) and float(child.stdout) < 200


def one_scale(entry: dict) -> dict:
    """A bench result holding one search scale (1M passages, 384-d) with ``entry``."""
    return {
        "date": "2026-01-01",
        "quick": False,
        "json": "bench-2026-01-01.json",
        "machine": {"cpu": "cpu", "cores": 2, "memory_gib": 8, "load_average": [0, 0, 0]},
        "sections": {"search": {"dimensions": 384, "scales": {"1000000": entry}}},
    }


def test_summary_puts_each_search_scales_memory_beside_its_raw_vectors_and_keeps_notes() -> None:
    from benchmarks.report import markdown

    entry = {"p50_ms": 200.0, "p95_ms": 250.0, "peak_rss_serving_mib": 2400.0,
             "faiss": "IDMap,Flat", "ann_recall@10": 1.0, "filtered_dense_recall@10": 1.0}  # fmt: skip
    result = {**one_scale(entry), "notes": ["PostgreSQL at 1M is missing."]}

    text = markdown(result)

    # 1M x 384 float32 = 1,464.8 MiB
    assert "peak RSS 2,400.0 MiB (its float32 vectors alone: 1,464.8 MiB)" in text
    assert "- PostgreSQL at 1M is missing." in text


def test_summary_puts_the_approximate_index_beside_the_exact_one_of_the_same_scale() -> None:
    from benchmarks.report import markdown

    ann = {"p50_ms": 20.0, "p95_ms": 30.0, "peak_rss_serving_mib": 1200.0,
           "faiss": "IVF1000,SQfp16", "nprobe": 40, "ann_recall@10": 0.985,
           "filtered_dense_recall@10": 0.99, "hybrid_overlap@10": 0.99,
           "narrow_filter": "year >= 2025", "narrow_selectivity": 0.02,
           "narrow_dense_p95_ms": 40.0, "narrow_dense_recall@10": 0.98, "layout_s": 60.0}  # fmt: skip
    entry = {"p50_ms": 200.0, "p95_ms": 250.0, "peak_rss_serving_mib": 2400.0,
             "faiss": "IDMap,Flat", "ann_recall@10": 1.0, "filtered_dense_recall@10": 1.0,
             "narrow_dense_p95_ms": 400.0, "ann": ann}  # fmt: skip
    result = one_scale(entry)

    lines = markdown(result).splitlines()
    exact = next(i for i, line in enumerate(lines) if "1,000,000 passages" in line)

    assert "approximate index (IVF1000,SQfp16, nprobe 40)" in lines[exact + 1]
    assert (
        "p95 30.0 ms" in lines[exact + 1]
        and "recall@10 vs the exact index 0.985" in lines[exact + 1]
    )
    assert "(exact 400.0 ms)" in lines[exact + 1]


def test_summary_gives_the_first_token_with_evidence_from_every_source_beside_the_default() -> None:
    from benchmarks.report import markdown

    five = {"settings": "PUBMED_RAG_EVIDENCE_PER_ARTICLE=1", "first_token_ms_median": 1500.0,
            "tokens_per_s_median": 60.0, "answers": [{"sources": 5, "prompt_tokens": 560}, {"sources": 4,
            "prompt_tokens": 500}, {"sources": 5, "prompt_tokens": 610}]}  # fmt: skip
    long = {**five, "first_token_ms_median": 2400.0, "settings": "PUBMED_RAG_EVIDENCE_SENTENCES=10"}
    answer = {"model": "smollm2", "first_token_ms_median": 1100.0, "five_sources": five,
              "five_sources_long": long}  # fmt: skip
    result = one_scale({"p50_ms": 1.0, "p95_ms": 2.0, "peak_rss_serving_mib": 900.0,
                        "faiss": "IDMap,Flat", "ann_recall@10": 1.0,
                        "filtered_dense_recall@10": 1.0})  # fmt: skip
    result["sections"]["answer"] = answer

    text = markdown(result)

    row, longer = [line for line in text.splitlines() if "articles in the prompt" in line]
    assert "evidence from 4/5 articles" in row and "1,500.0 ms" in row
    assert "prompt 560 tokens" in row  # the median prompt
    assert "1,100.0 ms" not in row  # the default prompt's figure stays in its own row
    assert "2,400.0 ms" in longer and "2,400.0 ms" not in row
