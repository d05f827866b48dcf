"""Where the arithmetic runs: a device by name, batches moved there, and its precision.

A CPU run in fp32 is exactly what it was before devices existed: :func:`move` hands a batch
back untouched and :func:`autocast` is no context at all, so every result stays bit-identical.

Example:
    >>> resolve_device("cpu"), resolve_device("auto").type in ("cpu", "cuda", "mps")
    (device(type='cpu'), True)
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import fields, replace
from typing import Any, TypeVar

import torch

from tagsure.errors import ConfigError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Inference may also run int8: dynamically quantised Linear/LSTM weights (CPU only, no autocast).
INFERENCE_PRECISIONS = (*PRECISIONS, "int8")
DEVICE_HELP = "cpu, cuda, cuda:N, mps or auto"
B = TypeVar("B")


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (a GPU where there is one) as a
    device that exists here; otherwise a :class:`ConfigError` that says what this machine has."""
    text = str(name or "cpu")
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConfigError(f"device {text!r}: not a device name; use {DEVICE_HELP}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device {text!r}: this PyTorch ({torch.__version__}) sees no CUDA GPU; "
                "use --device cpu (or auto)"
            )
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {text!r}: there are {count} CUDA GPUs (cuda:0..{count - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {text!r}: MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        raise ConfigError(f"device {text!r}: tagsure runs on {DEVICE_HELP}")
    return device


def check_precision(precision: str, inference: bool = False) -> str:
    """``precision`` if training (or, with ``inference``, prediction) can run in it."""
    allowed = INFERENCE_PRECISIONS if inference else tuple(PRECISIONS)
    if precision not in allowed:
        hint = "" if inference or precision != "int8" else " (int8 is for prediction only)"
        raise ConfigError(f"precision {precision!r}: use one of {', '.join(allowed)}{hint}")
    return precision


@functools.cache
def native_bf16_cpu() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (AVX-512 BF16 or AMX): there oneDNN's
    bf16 kernels (matmul, LSTM) beat fp32; elsewhere they are emulated, and slower."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own checks
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def move(batch: B, device: torch.device) -> B:
    """The batch (a dataclass of tensors) on ``device``; on the CPU the same object."""
    if device.type == "cpu":
        return batch
    changes: dict[str, Any] = {}
    for f in fields(batch):  # type: ignore[arg-type]
        value = getattr(batch, f.name)
        if isinstance(value, torch.Tensor):
            changes[f.name] = value.to(device, non_blocking=True)
    return replace(batch, **changes)  # type: ignore[type-var]


def autocast(
    device: torch.device, precision: str, enabled: bool = True
) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for a forward pass: none in fp32 or int8 (not even a disabled autocast)."""
    if check_precision(precision, inference=True) in ("fp32", "int8"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision], enabled=enabled)


def autocast_cache(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Around one optimizer step's micro-batches: autocast off, but its cast weights kept.

    Autocast casts each weight to the low precision on its first use and caches the copy until
    the outermost autocast context exits; each micro-batch's own context would make the cache
    last one micro-batch. Inside this one (disabled: backward passes run as autocast left them),
    the weights are cast once per step, not once per micro-batch (a step is 3-4 micro-batches
    when ``split_by_length`` cuts a batch of mixed lengths).
    """
    return autocast(device, precision, enabled=False)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without a loss scale; bf16 and fp32 need none."""
    if check_precision(precision) != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
