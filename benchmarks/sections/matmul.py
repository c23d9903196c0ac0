"""The ``matmul`` section: the attainable fp32 (and bf16) GFLOP/s of this machine."""

from __future__ import annotations

import time
from typing import Any


def bench_matmul(size: int, seconds: float) -> dict[str, Any]:
    """Best fp32 (and bf16) matmul rate over ``seconds`` of repeated ``size``×``size`` products.

    fp32 is the reference every encoder figure is divided by; bf16 is what the bf16 encoder
    path can attain at best on this CPU (reported, not used as a divisor).
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator, dtype=torch.float32)
    b = torch.randn(size, size, generator=generator, dtype=torch.float32)
    report: dict[str, Any] = {"size": size, "threads": torch.get_num_threads()}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, y = a.to(dtype), b.to(dtype)
        torch.matmul(x, y)  # warm up
        best, runs = 0.0, 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or runs < 3:
            began = time.perf_counter()
            torch.matmul(x, y)
            best = max(best, 2 * size**3 / (time.perf_counter() - began))
            runs += 1
        report["gflops" if name == "fp32" else "bf16_gflops"] = round(best / 1e9, 1)
        report[f"{name}_runs"] = runs
    return report
