"""Where and how the math runs: device choice, threads, seeds, mixed precision, memory layout."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch
from torch import nn

from glyphkit.config import ConfigError
from glyphkit.distributed import launched_by_torchrun, local_rank, local_world_size


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU. Asking for CUDA without one is a clear error. Under torchrun each
    process takes the GPU of its LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name == "cuda" and launched_by_torchrun():
        return torch.device("cuda", local_rank())
    return torch.device(name)


_threads_set = False


def set_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads once: one per core this process may use (2 on the reference machine), shared
    out among the processes torchrun started on this machine (two PyTorch processes that each take every core
    slow each other several times over)."""
    global _threads_set
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = num_threads or max(1, cores // local_world_size())
    if not _threads_set or num_threads:
        torch.set_num_threads(n)
        _threads_set = True
    return torch.get_num_threads()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 math (AVX-512 BF16 or AMX), where bf16 autocast is a real speed-up."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a device and a `precision` setting (None: plain fp32).

    auto: bf16 on CPUs with native bf16 math and on CUDA GPUs that have it (Ampere and newer: no loss scaling
    needed), fp16 on older GPUs, fp32 elsewhere. bf16 forces bf16 (on a CPU without native bf16 it is emulated
    and slower than fp32); fp32 forces fp32.
    """
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"--precision bf16: this GPU ({torch.cuda.get_device_name(device)}) has no bf16; "
                "use --precision auto (fp16 AMP) or fp32"
            )
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (precision == "bf16" or cpu_supports_bf16()):
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """'bf16', 'fp16' or 'fp32': how logs, configs and the benchmark name an autocast dtype."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model
