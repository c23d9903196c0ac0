"""The int8 encoder: a sentence-transformers BERT model exported once to ONNX, run by ONNX Runtime.

For CPUs without native bf16 (AVX2-only, AVX-512 without BF16), where PyTorch's fp32 path is
already near the fp32 matmul ceiling and only 8-bit arithmetic can go faster. The export is
made once per model and cached under ``data/models/encoders/`` (``encoder_cache_dir``):

1. the model's transformer is exported with PyTorch's ONNX exporter (eager attention, so ONNX
   Runtime's BERT optimizer fuses attention, GELU and layer norms);
2. ``onnxruntime.transformers`` fuses the graph;
3. ``onnxruntime.quantization.quantize_dynamic`` quantizes every MatMul's weights to int8 per
   output channel; activations are quantized per call (dynamic), so no calibration data is needed.

txtai then runs it through its own ``onnx`` vectors method (tokenizer.json, mean pooling,
normalisation); :class:`indexing.onnx_vectors.OnnxVectors` only adds what sentence-transformers does and txtai's ONNX
method does not: sorting one call's texts by length before cutting batches, so short passages
are not padded to the longest one.

Only BERT-family models with mean pooling (PubMedBERT, the offline MiniLM) are exported; for
others :func:`unavailable` says why and the encoder runs in fp32.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Bump when the export recipe changes: older exports are then made again, not reused.
EXPORT_VERSION = 1
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
EXPORT_RECORD = "export.json"
# txtai resolves a vectors ``method`` it does not know as a class path.
METHOD = "indexing.onnx_vectors.OnnxVectors"
# Model types the export is checked on (BERT's inputs: ids, mask, token types).
MODEL_TYPES = frozenset({"bert"})
OPSET = 17


def runtime_missing() -> str:
    """Why ONNX Runtime cannot run here ("" when it can)."""
    missing = [name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is None]
    return f"{' and '.join(missing)} not installed" if missing else ""


def _modules(model_path: Path) -> list[dict[str, Any]]:
    modules = model_path / "modules.json"
    if not modules.is_file():
        return []
    return list(json.loads(modules.read_text(encoding="utf-8")))


def _transformer_dir(model_path: Path) -> Path:
    """The folder of a sentence-transformers model's Transformer module (often the model's own)."""
    for module in _modules(model_path):
        if str(module.get("type", "")).endswith(".Transformer"):
            return model_path / str(module.get("path", ""))
    return model_path


def _mean_pooling(model_path: Path) -> bool:
    for module in _modules(model_path):
        if str(module.get("type", "")).endswith(".Pooling"):
            config = model_path / str(module.get("path", "")) / "config.json"
            if not config.is_file():
                return False
            pooling = json.loads(config.read_text(encoding="utf-8"))
            mode = pooling.get("pooling_mode")
            return bool(
                mode == "mean" or (mode is None and pooling.get("pooling_mode_mean_tokens"))
            )
    return False


def unavailable(model_path: str | None, method: str) -> str:
    """Why the int8 encoder cannot run for this model here ("" when it can)."""
    blocker = runtime_missing()
    if not blocker and method != "sentence-transformers":
        blocker = f"the model's profile runs it through {method}, which the export does not cover"
    if blocker or model_path is None:
        return blocker
    config = _transformer_dir(Path(model_path)) / "config.json"
    if not config.is_file():
        return f"{model_path} has no transformer config.json"
    model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    if model_type not in MODEL_TYPES:
        return f"model type {model_type!r} is not one the int8 export covers (BERT)"
    if not _mean_pooling(Path(model_path)):
        return "the model does not use mean pooling, the only pooling txtai's ONNX method does"
    return ""


def fingerprint(model_path: str) -> str:
    """What identifies a model's weights: its config and each weight file's name, size, mtime.

    Hub snapshots are immutable and local folders change their files' mtimes when rewritten,
    so this is cheap to compute on every load and changes when the weights do.
    """
    folder = _transformer_dir(Path(model_path))
    digest = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    digest.update((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def max_seq_length(model_path: str) -> int:
    """Tokens per text as sentence-transformers truncates them (``sentence_bert_config.json``)."""
    folder = _transformer_dir(Path(model_path))
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    return 512


def export_dir(model_path: str, cache: Path) -> Path:
    """The folder the int8 export of a model lives in (made by :func:`ensure_export`)."""
    name = Path(model_path).name.replace(os.sep, "_") or "model"
    return cache / f"{name}-int8-{fingerprint(model_path)}"


def ensure_export(model_path: str, cache: Path) -> Path:
    """The int8 export of a model: made once (about 10 s for MiniLM, a minute for BERT-base).

    Built in a temporary folder beside the cache entry and renamed into place, so a killed
    export leaves no half-written model for the next run to load; two processes exporting at
    once both finish and one's folder is kept.
    """
    target = export_dir(model_path, cache)
    if (target / EXPORT_RECORD).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log.info("exporting the int8 ONNX encoder of %s once, into %s", model_path, target)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache))
    try:
        with _quiet():
            _export(model_path, work)
        record = {
            "source": str(model_path),
            "export_version": EXPORT_VERSION,
            "quantization": "int8 dynamic, per-channel weights (MatMul)",
            "max_seq_length": max_seq_length(model_path),
            "seconds": round(time.perf_counter() - started, 1),
        }
        (work / EXPORT_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
        try:
            work.rename(target)
        except OSError:
            if not (target / EXPORT_RECORD).is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def _export(model_path: str, work: Path) -> None:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel, AutoTokenizer

    folder = _transformer_dir(Path(model_path))
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    AutoTokenizer.from_pretrained(str(folder)).backend_tokenizer.save(str(work / TOKENIZER_FILE))

    class Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = torch.ones(2, 16, dtype=torch.long)
    plain, fused = work / "plain.onnx", work / "fused.onnx"
    with torch.inference_mode():
        torch.onnx.export(
            Hidden(model),
            (sample, sample, torch.zeros_like(sample)),
            str(plain),
            dynamo=False,
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={key: {0: "batch", 1: "tokens"} for key in [*names, "last_hidden_state"]},
            opset_version=OPSET,
        )
    config = model.config
    optimized = optimize_model(
        str(plain),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
    )
    optimized.save_model_to_file(str(fused))
    quantize_dynamic(
        str(fused),
        str(work / MODEL_FILE),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    plain.unlink()
    fused.unlink()


# The exporter's and the quantizer's loggers; the quantizer also logs on the root logger itself.
NOISY_LOGGERS = ("onnxruntime", "onnx", "torch.onnx")


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporter's and quantizer's warnings (tracer, pre-processing hint) are not the user's.

    Only their loggers are raised to ERROR, and only the records logged on the root logger
    itself are filtered: other threads' loggers keep their levels while an export runs.
    """
    import warnings

    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    root = logging.getLogger()
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    root.addFilter(_errors_only)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(_errors_only)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def txtai_config(model_path: str, cache: Path) -> dict[str, Any]:
    """txtai keys that run the int8 export of a model (exporting it first if needed)."""
    folder = ensure_export(model_path, cache)
    return {
        "method": METHOD,
        "path": str(folder / MODEL_FILE),
        "tokenizer": str(folder / TOKENIZER_FILE),
        "maxlength": max_seq_length(model_path),
    }
