"""How the sentence encoder runs: bf16 where the CPU computes bf16 natively, int8 through ONNX
Runtime where it does not, fp32 when neither can run.

For bf16 and fp32 txtai loads the encoder itself (``method: sentence-transformers``); we only
choose the weights' dtype, passed through txtai's ``vectors`` model arguments to
``SentenceTransformer(..., model_kwargs={"dtype": ...})``. For int8 the model is exported once
to a quantized ONNX file (:mod:`indexing.onnx_encoder`) that txtai's ONNX vectors method runs.
The choice is saved in the index's txtai configuration (and so in ``manifest.json``), which is
how a reader encodes queries with the precision the passages were encoded with.

Why bf16 and int8 rather than one of them everywhere: see the README's design notes (measured
on the same machines; on CPUs with native bf16 it is as fast as int8 and more faithful, needs
no export; without it bf16 is emulated and slower than fp32, while int8 runs on AVX2's and
AVX-512's 8-bit dot products).

``PUBMED_RAG_ENCODER_PRECISION``:

* ``auto`` (default): bf16 where the CPU has native bf16 instructions (x86 AVX512-BF16 or
  AMX-BF16, ARM BF16); else int8 where ONNX Runtime is installed and the model is one the
  export covers (BERT with mean pooling); else fp32.
* ``bf16`` / ``int8``: that one where it can run; elsewhere fp32 with a warning that says why.
* ``fp32``: the fast paths off, for new indexes and for reading existing ones.
"""

from __future__ import annotations

import contextlib
import logging
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Precision = Literal["bf16", "int8", "fp32"]
Requested = Literal["auto", "bf16", "int8", "fp32"]
BACKENDS: dict[str, str] = {"bf16": "torch", "fp32": "torch", "int8": "onnxruntime"}
# torch dtype names as transformers' from_pretrained accepts them (JSON-serialisable).
DTYPES: dict[str, str] = {"bf16": "bfloat16", "fp32": "float32"}
# CPU flags (Linux /proc/cpuinfo) that mean native bf16 arithmetic.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@dataclass(frozen=True, slots=True)
class EncoderChoice:
    """The precision the encoder runs in, what was asked for, and why they differ."""

    precision: Precision
    requested: str
    reason: str = ""  # non-empty when fp32 runs although a fast path was asked for

    def describe(self) -> dict[str, str]:
        """What ``manifest.json`` records under ``embeddings_config["encoder"]``."""
        described = {
            "backend": BACKENDS[self.precision],
            "precision": self.precision,
            "requested": self.requested,
        }
        if self.reason:
            described["fallback"] = self.reason
        return described


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Instruction-set flags of this CPU (``flags`` on x86, ``Features`` on ARM; Linux only)."""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return frozenset(value.split())
    return frozenset()


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (else PyTorch emulates it, slower than fp32)."""
    return bool(BF16_FLAGS & cpu_flags())


_warned: set[str] = set()


def choose_precision(
    requested: str, model_path: str | None = None, method: str = "sentence-transformers"
) -> EncoderChoice:
    """The precision to run for a requested one (``auto``, ``bf16``, ``int8`` or ``fp32``).

    ``model_path`` and ``method`` (the profile's txtai vectors method) decide whether the int8
    export covers the model; without a path only ONNX Runtime's presence is checked. Falls
    back to fp32 when the fast path cannot run, saying so once per process: a warning when
    it was asked for explicitly (or recorded by the index being read), else an info line; the
    reason is also recorded in the manifest.
    """
    if requested == "fp32":
        return EncoderChoice("fp32", requested)
    if requested not in ("auto", "bf16", "int8"):
        raise ValueError(f"unknown encoder precision {requested!r}: use auto, bf16, int8 or fp32")
    if requested in ("auto", "bf16") and native_bf16():
        return EncoderChoice("bf16", requested)
    if requested == "bf16":
        reason = (
            f"this CPU ({platform.machine()}) has no native bf16 instructions "
            "(AVX512-BF16, AMX-BF16 or ARM BF16), so the encoder runs in fp32"
        )
    else:
        from indexing.onnx_encoder import unavailable

        blocker = unavailable(model_path, method)
        if not blocker:
            return EncoderChoice("int8", requested)
        reason = f"the int8 encoder cannot run ({blocker}), so the encoder runs in fp32"
        if requested == "auto":
            reason = f"this CPU has no native bf16 and {reason}"
    if reason not in _warned:
        _warned.add(reason)
        if requested != "auto":
            log.warning("%s; set PUBMED_RAG_ENCODER_PRECISION=fp32 to silence this", reason)
        else:
            log.info("%s (the index records it)", reason)
    return EncoderChoice("fp32", requested, reason)


def vectors_args(precision: str) -> dict[str, Any]:
    """txtai ``vectors`` arguments (``SentenceTransformer`` kwargs) for a torch precision."""
    return {"model_kwargs": {"dtype": DTYPES[precision]}}


def recorded_precision(config: dict[str, Any] | None) -> Precision:
    """The precision an index was built with, from its txtai configuration.

    Indexes built before the precision was recorded were built in fp32.
    """
    precision = ((config or {}).get("encoder") or {}).get("precision")
    return precision if precision in ("bf16", "int8") else "fp32"


def encoder_config(choice: EncoderChoice, model_path: str, cache: Path) -> dict[str, Any]:
    """txtai keys that run the encoder in a chosen precision, and record it.

    int8 exports the model first if this machine has no export of it yet
    (:func:`indexing.onnx_encoder.ensure_export`).
    """
    config: dict[str, Any] = {"encoder": choice.describe()}
    if choice.precision == "int8":
        from indexing.onnx_encoder import txtai_config

        config.update(txtai_config(model_path, cache))
    else:
        config["vectors"] = vectors_args(choice.precision)
    return config


def reading_overrides(
    config: dict[str, Any] | None, setting: str, model_path: str, cache: Path
) -> dict[str, Any]:
    """txtai configuration overrides to open an index with: ``{}`` to run as recorded.

    An index is read (queries encoded, upserts added) with the precision it was built with,
    unless ``setting`` is ``fp32`` (the fast path off) or that precision cannot run here; then
    fp32, and the next published version records fp32. int8 always needs overrides: the export
    lives on this machine, not in the index.
    """
    config = config or {}
    if "encoder" not in config:
        return {}  # built before this module: txtai's own fp32 defaults, left as they are
    recorded = recorded_precision(config)
    # an int8 index records its ONNX method; the export covers models sentence-transformers runs
    method = (
        "sentence-transformers"
        if recorded == "int8"
        else str(config.get("method") or "sentence-transformers")
    )
    choice = choose_precision("fp32" if setting == "fp32" else recorded, model_path, method)
    if choice.precision == recorded and recorded != "int8":
        return {}
    overrides = encoder_config(choice, model_path, cache)
    if recorded == "int8" and choice.precision != "int8":
        overrides.update(method=method, path=model_path, tokenizer=None)
    if "vectors" in overrides:
        overrides["vectors"] = {**(config.get("vectors") or {}), **overrides["vectors"]}
    return overrides
