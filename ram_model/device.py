"""Choosing the device and the compute precision: CUDA, MPS or CPU; fp32, bf16 or fp16."""

from __future__ import annotations

from contextlib import nullcontext
from functools import cache
from pathlib import Path

import torch

from ram_model.errors import ConfigError

_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
           "fp16": torch.float16, "float16": torch.float16}


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; anything else is checked to exist."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but no CUDA GPU is available: use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but Apple's MPS is not available: use --device cpu")
    return device


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def resolve_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on CUDA GPUs and MPS, and on CPUs fp32 unless they have native bf16
    (AVX512-BF16/AMX). On a GPU's tensor cores fp16 and bf16 run at the same speed, and fp16
    rounds 8× finer (10 mantissa bits against 7): its tags agree with fp32's where bf16's did not
    always (bench/results/gpu.md); a photo that overflows fp16's range is scored again in bf16
    (``Tagger.probs_later``)."""
    if isinstance(name, torch.dtype):
        return name
    if name != "auto":
        try:
            return _DTYPES[name]
        except KeyError:
            raise ConfigError(f"unknown precision {name!r}: use auto, fp32, bf16 or fp16") from None
    if device.type in ("cuda", "mps"):
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def autocast(device: torch.device, dtype: torch.dtype):  # noqa: ANN201 - a context manager
    """Autocast to ``dtype`` on ``device``; nothing for fp32."""
    return nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
