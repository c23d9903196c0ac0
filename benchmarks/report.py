"""The markdown summary of one run of :mod:`benchmarks.bench` (``bench-latest.md``)."""

from __future__ import annotations

import statistics
from typing import Any

SORT_WINDOW_TEXT = "1024 texts per txtai call"


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:,.4g}" if abs(value) < 10 else f"{value:,.1f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def markdown(result: dict[str, Any]) -> str:
    """The summary table of one run."""
    machine = result["machine"]
    sections = result["sections"]
    lines = [
        f"# Benchmarks ({result['date']}{', quick' if result['quick'] else ''})",
        "",
        *(
            [f"**Incomplete run**: not yet measured: {', '.join(result['pending'])}.", ""]
            if not result.get("complete", True)
            else []
        ),
        *(
            line
            for resume in result.get("resumed", [])
            for line in (
                f"Completed by `--resume` at {resume['at']} (load average "
                f"{[round(x, 2) for x in resume['load_average'] or []]}), keeping "
                f"{', '.join(resume['kept'])}.",
                "",
            )
        ),
        f"Machine: **{machine['cpu']}** "
        f"({', '.join(machine.get('instruction_sets') or []) or 'instruction sets not recorded'}), "
        f"{machine['cores']} cores, "
        f"{machine['memory_gib']} GiB; load average at start {machine['load_average']}.",
        f"fp32 matmul: **{_fmt(_get(sections, 'matmul', 'gflops'))} GFLOP/s** "
        f"(bf16: {_fmt(_get(sections, 'matmul', 'bf16_gflops'))}; "
        f"n={_get(sections, 'matmul', 'size')}, {_get(sections, 'matmul', 'threads')} threads).",
        "",
        "| measure | product | baseline / reference |",
        "|---|---|---|",
    ]
    parsing = sections.get("parsing", {})
    lines.append(
        f"| PubMed XML parsing | {_fmt(parsing.get('records_per_s'))} records/s "
        f"({_fmt(parsing.get('records'))} records) | – |"
    )
    encoders = sections.get("encoders", {})
    for key in ("pubmedbert-shaped", "configured"):
        entry = encoders.get(key)
        if not isinstance(entry, dict):
            continue
        precision = _get(entry, "product_config", "encoder", "precision")
        product, default = entry.get("product", {}), entry.get("txtai_default", {})
        fp32 = entry.get("product_fp32", {})
        lines.append(
            f"| encoder {key} ({precision}): tokens/s, abstracts/s | "
            f"**{_fmt(product.get('tokens_per_s'))}**, {_fmt(product.get('abstracts_per_s'))} | "
            f"txtai default (fp32): {_fmt(default.get('tokens_per_s'))}, "
            f"{_fmt(default.get('abstracts_per_s'))} → product/default "
            f"**{_fmt(entry.get('product_vs_txtai_default'))}×**; product with "
            f"`PUBMED_RAG_ENCODER_PRECISION=fp32`: {_fmt(fp32.get('tokens_per_s'))} "
            f"({_fmt(entry.get('product_vs_fp32'))}×) |"
        )
        lines.append(
            f"| encoder {key}: GFLOP/s (share of fp32 matmul) | "
            f"{_fmt(product.get('gflops'))} ({_fmt(product.get('share_of_matmul'))}) | "
            f"txtai default: {_fmt(default.get('gflops'))} "
            f"({_fmt(default.get('share_of_matmul'))}) |"
        )
        lines.append(
            f"| encoder {key}: cosine to fp32 vectors (mean, min) | "
            f"{_fmt(_get(entry, 'cosine_product_vs_fp32', 'mean'))}, "
            f"{_fmt(_get(entry, 'cosine_product_vs_fp32', 'min'))} | – |"
        )
        int8 = entry.get("product_int8")
        if isinstance(int8, dict):
            lines.append(
                f"| encoder {key} with `PUBMED_RAG_ENCODER_PRECISION=int8` (ONNX Runtime; auto "
                f"without native bf16): tokens/s | **{_fmt(int8.get('tokens_per_s'))}** | "
                f"txtai default: {_fmt(default.get('tokens_per_s'))} → "
                f"**{_fmt(entry.get('product_int8_vs_txtai_default'))}×**; cosine to fp32 "
                f"{_fmt(_get(entry, 'cosine_product_int8_vs_fp32', 'mean'))} (mean), "
                f"{_fmt(_get(entry, 'cosine_product_int8_vs_fp32', 'min'))} (min) |"
            )
        for label, candidate in (entry.get("candidates") or {}).items():
            if "skipped" in candidate:
                lines.append(f"| candidate {label} | {candidate['skipped']} | – |")
                continue
            lines.append(
                f"| candidate {label} | {_fmt(candidate.get('tokens_per_s'))} tok/s | "
                f"{_fmt(candidate.get('vs_txtai_default'))}× txtai default |"
            )
    padding = encoders.get("real_passage_padding") or {}
    shares = [v for k, v in padding.items() if k.startswith("padding_share")]
    if len(shares) == 2:
        lines.append(
            f"| padding share, {_fmt(padding.get('passages'))} real passages "
            f"(mean {_fmt(padding.get('mean_tokens'))} tokens) | {_fmt(shares[1])} "
            f"(sorted within {SORT_WINDOW_TEXT}) | {_fmt(shares[0])} (sorted within each batch) |"
        )
    query = sections.get("query_encode", {})
    for key in ("configured", "pubmedbert-shaped"):
        fast, exact = query.get(f"{key}/product"), query.get(f"{key}/product_fp32")
        if isinstance(fast, dict) and isinstance(exact, dict):
            lines.append(
                f"| short query encode, {key} ({fast.get('precision')}) | "
                f"p50 {_fmt(fast.get('p50'), ' ms')}, p95 {_fmt(fast.get('p95'), ' ms')} | "
                f"fp32: p50 {_fmt(exact.get('p50'), ' ms')} |"
            )
        int8 = query.get(f"{key}/product_int8")
        if isinstance(int8, dict) and isinstance(fast, dict) and fast.get("precision") != "int8":
            lines.append(
                f"| short query encode, {key} (int8) | p50 {_fmt(int8.get('p50'), ' ms')}, "
                f"p95 {_fmt(int8.get('p95'), ' ms')} | fp32: p50 {_fmt(exact.get('p50'), ' ms')} |"
            )
    dimensions = _get(sections, "search", "dimensions")
    for scale, entry in (_get(sections, "search", "scales") or {}).items():
        if "skipped" in entry:
            lines.append(f"| hybrid search + filter, {int(scale):,} passages | skipped: "
                         f"{entry['skipped']} | – |")  # fmt: skip
            continue
        vectors = (
            f" (its float32 vectors alone: {_fmt(int(scale) * dimensions * 4 / 2**20, ' MiB')})"
            if dimensions and entry.get("peak_rss_serving_mib")
            else ""
        )
        lines.append(
            f"| hybrid search + filter, {int(scale):,} passages | p50 {_fmt(entry['p50_ms'], ' ms')},"
            f" p95 {_fmt(entry['p95_ms'], ' ms')}; peak RSS {_fmt(entry['peak_rss_serving_mib'], ' MiB')}"
            f"{vectors} | faiss {entry['faiss']}: recall@10 vs exact {_fmt(entry['ann_recall@10'])}, "
            f"filtered dense {_fmt(entry['filtered_dense_recall@10'])} |"
        )
        ann = entry.get("ann")
        if isinstance(ann, dict) and "p50_ms" in ann:
            lines.append(
                f"| the same, approximate index ({ann.get('faiss')}, nprobe {ann.get('nprobe')}) | "
                f"p50 {_fmt(ann['p50_ms'], ' ms')}, p95 {_fmt(ann['p95_ms'], ' ms')}; peak RSS "
                f"{_fmt(ann.get('peak_rss_serving_mib'), ' MiB')} | recall@10 vs the exact index "
                f"{_fmt(ann.get('ann_recall@10'))}, filtered dense "
                f"{_fmt(ann.get('filtered_dense_recall@10'))}, hybrid hits shared "
                f"{_fmt(ann.get('hybrid_overlap@10'))}; {ann.get('narrow_filter')} "
                f"({_fmt(ann.get('narrow_selectivity'))} of passages): p95 "
                f"{_fmt(ann.get('narrow_dense_p95_ms'), ' ms')} (exact "
                f"{_fmt(entry.get('narrow_dense_p95_ms'), ' ms')}), recall@10 "
                f"{_fmt(ann.get('narrow_dense_recall@10'))}; layout built in "
                f"{_fmt(ann.get('layout_s'), ' s')} |"
            )
    embedded = _get(sections, "search", "scales") or {}
    for scale, entry in (_get(sections, "search_postgres", "scales") or {}).items():
        beside = embedded.get(scale, {})
        if "skipped" in entry:
            lines.append(f"| hybrid search + filter on PostgreSQL, {int(scale):,} passages | "
                         f"skipped: {entry['skipped']} | – |")  # fmt: skip
            continue
        old = entry.get("full_table_pgtext") or {}
        lines.append(
            f"| hybrid search + filter on PostgreSQL, {int(scale):,} passages | "
            f"p50 {_fmt(entry['p50_ms'], ' ms')}, p95 {_fmt(entry['p95_ms'], ' ms')} "
            f"(built at {_fmt(entry.get('build_passages_per_s'))} passages/s) | "
            f"full-table pgtext, same run: p50 {_fmt(old.get('p50_ms'), ' ms')}, "
            f"p95 {_fmt(old.get('p95_ms'), ' ms')}; "
            f"embedded: p50 {_fmt(beside.get('p50_ms'), ' ms')}, "
            f"p95 {_fmt(beside.get('p95_ms'), ' ms')} |"
        )
    ingest = sections.get("ingest", {})
    lines.append(
        f"| ingestion end to end (local E-utilities) | {_fmt(ingest.get('records_per_s'))} records/s "
        f"({_fmt(ingest.get('added'))} records) | – |"
    )
    cold = sections.get("cold_start", {})
    lines.append(
        f"| one-shot `rag search`, wall | {_fmt(cold.get('served_wall_s_median'), ' s')} through "
        f"`rag serve` (ready after {_fmt(cold.get('service_ready_s'), ' s')}) | in-process: "
        f"{_fmt(cold.get('in_process_wall_s_median'), ' s')} |"
    )
    answer = sections.get("answer", {})
    lines.append(
        f"| answer, 5 articles retrieved ({answer.get('model', '–')}) | key evidence "
        f"{_fmt(answer.get('evidence_ms_median'), ' ms')}, first token "
        f"{_fmt(answer.get('first_token_ms_median'), ' ms')}, "
        f"{_fmt(answer.get('tokens_per_s_median'), ' tok/s')} | llama.cpp's own timings: prompt "
        f"{_fmt(answer.get('llama_cpp_prompt_tokens_per_s_median'), ' tok/s')}, generation "
        f"{_fmt(answer.get('llama_cpp_generation_tokens_per_s_median'), ' tok/s')}, prompt "
        f"tokens reused from the previous prompt {_fmt(answer.get('prompt_tokens_reused_median'))}; "
        f"Q4_1 as it is, no flash attention: first token "
        f"{_fmt((answer.get('baseline') or {}).get('first_token_ms_median'), ' ms')}, prompt "
        f"{_fmt((answer.get('baseline') or {}).get('llama_cpp_prompt_tokens_per_s_median'), ' tok/s')}, "
        f"generation "
        f"{_fmt((answer.get('baseline') or {}).get('llama_cpp_generation_tokens_per_s_median'), ' tok/s')} |"
    )
    for key in ("five_sources", "five_sources_long"):
        five = answer.get(key) or {}
        if not five:
            continue
        rows = five.get("answers", [])
        counts = sorted({row.get("sources") for row in rows} - {None})
        tokens = [row["prompt_tokens"] for row in rows if row.get("prompt_tokens")]
        lines.append(
            f"| answer with evidence from {'/'.join(map(str, counts)) or '–'} articles in the "
            f"prompt ({five.get('settings', '')}) | prompt "
            f"{_fmt(round(statistics.median(tokens)) if tokens else None, ' tokens')}, key evidence "
            f"{_fmt(five.get('evidence_ms_median'), ' ms')}, first token "
            f"{_fmt(five.get('first_token_ms_median'), ' ms')}, "
            f"{_fmt(five.get('tokens_per_s_median'), ' tok/s')}, llama.cpp prompt "
            f"{_fmt(five.get('llama_cpp_prompt_tokens_per_s_median'), ' tok/s')} | goal: first "
            "token ≤ 2,000 ms with 5 sources |"
        )
    errors = {
        name: s["error"] for name, s in sections.items() if isinstance(s, dict) and "error" in s
    }
    if errors:
        lines += ["", "Sections that failed:", ""]
        lines += [f"- `{name}`: {message}" for name, message in errors.items()]
    if result.get("notes"):  # written by hand into the JSON after a run; kept by --resume
        lines += ["", "Notes on this run:", ""]
        lines += [f"- {note}" for note in result["notes"]]
    lines += [
        "",
        "Encoder FLOPs per token (matmuls only): `2·layers·(4h² + 2h·ffn) + 4·layers·L·h`; "
        "search vectors are synthetic (see `benchmarks/bench.py`). Full figures: "
        f"`{result['json']}`.",
        "",
    ]
    return "\n".join(lines)
