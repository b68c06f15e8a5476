"""Where and how the math runs: device choice, threads, seeds, mixed precision, and batched prediction."""

from __future__ import annotations

import contextlib
import os
import random
import warnings
import weakref

import numpy as np
import torch
from torch import nn

from glyphkit.data import iterate_batches


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU. Asking for CUDA without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


_threads_set = False


def set_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads once: one per core this process may use (2 on the reference machine)."""
    global _threads_set
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = num_threads or cores
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


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for a device: bf16 on capable CPUs and on CUDA GPUs that have it (Ampere and newer:
    no loss scaling needed), fp16 on older GPUs, None for plain fp32."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # pixel shifts (dx, dy) averaged by test-time augmentation
INFERENCE_BATCH = 256  # images per inference batch (and the one shape a compiled network is built for)

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (weights version, compiled model)


def _weights_version(model: nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter or buffer is modified in place (optimizer step, EMA update, load_state_dict)."""
    return tuple(t._version for t in (*model.parameters(), *model.buffers()))


def compile_for_inference(model: nn.Module) -> nn.Module:
    """`model` through torch.compile with frozen weights, for fast repeated inference.

    Freezing lets the compiler fold each BatchNorm into its convolution and pre-pack the weights (measured
    speed-ups in README, "Faster inference"). It also bakes the current weights in, so
    the compiled model is cached per model and rebuilt when any weight has changed since. Compilation itself
    happens on the first call (seconds to a minute; it needs a C++ compiler on the CPU).
    """
    version = _weights_version(model)
    cached = _compiled.get(model)
    if cached is None or cached[0] != version:
        cached = (version, torch.compile(model, dynamic=False, options={"freezing": True}))
        _compiled[model] = cached
    return cached[1]


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, mean: float, std: float, input_size: int,
                   device: torch.device, batch_size: int = INFERENCE_BATCH, amp_dtype: torch.dtype | None = None,
                   channels_last: bool = False, tta: bool = False, progress: bool = False,
                   compile_model: bool = False) -> torch.Tensor:
    """Float32 logits [N, classes] on the CPU for uint8 images [N, 28, 28] (eval mode, batched, no grad).

    With `tta`, logits are averaged over small shifts of each glyph (TTA_SHIFTS). With `compile_model`, the
    network runs through `compile_for_inference` (the last batch is zero-padded to full size so one compiled
    shape serves every batch); if compilation fails, a warning says why and the eager network takes over.
    """
    was_training = model.training
    model.eval()
    net = compile_for_inference(model) if compile_model else model
    dummy = torch.zeros(len(images), dtype=torch.long)
    batches = iterate_batches(images, dummy, batch_size, mean=mean, std=std, input_size=input_size,
                              device=device, channels_last=channels_last)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=-(-len(images) // batch_size), desc="predict", leave=False)
    def forward(x: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp_dtype):
            if tta:
                return sum(net(torch.roll(x, shifts=(dy, dx), dims=(2, 3))).float() for dx, dy in TTA_SHIFTS) \
                    / len(TTA_SHIFTS)
            return net(x).float()

    out = []
    for x, _ in batches:
        n = len(x)
        if net is not model and n < batch_size:
            x = torch.cat([x, x.new_zeros(batch_size - n, *x.shape[1:])])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        try:
            logits = forward(x)[:n]
        except Exception as exc:  # noqa: BLE001 - any compiler failure: fall back, the eager network still works
            if net is model:
                raise
            warnings.warn(f"torch.compile could not compile the network ({type(exc).__name__}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no message'}); "
                          "running it uncompiled instead", RuntimeWarning, stacklevel=2)
            net = model
            logits = forward(x)[:n]
        out.append(logits.cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)
