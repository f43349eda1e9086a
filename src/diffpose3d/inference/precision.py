"""Which number format g's transformer blocks run in at inference (`inference.precision`).

"bf16" runs the blocks under bfloat16 autocast; the state's embedding, the output head, the
context encoder and the DDIM update stay float32, so the coordinates themselves are never rounded
to bfloat16's 8 bits (measured on the default bundle: poses within 0.5 mm of float32 on average).
"auto" picks bf16 where the hardware does it natively (a CPU with AVX-512 BF16 or AMX, a CUDA GPU
with bfloat16), where it is about 2.4x the float32 throughput of g on a 2-core AVX-512 BF16 CPU
(`benchmarks/bench_predict_speed.py`), and float32 elsewhere (emulated bfloat16 is no faster).
In bf16 a frame's result also depends, within that tolerance, on the frames batched with it (the
kernels' rounding changes with the batch's shape); float32 results do not.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")


@functools.cache
def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux: no cheap, reliable way to ask; float32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matrix products natively."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_native_bf16()


def use_bf16(precision: str, device: torch.device) -> bool:
    """`inference.precision` on `device`: True for bf16 (or auto where bf16 is native)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}' ({' | '.join(PRECISIONS)})")
    return precision == "bf16" or (precision == "auto" and native_bf16(device))
