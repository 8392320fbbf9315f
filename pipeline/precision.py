"""Mixed precision, one vocabulary for every stage: `amp` = 'bf16', 'fp16' or None
(fp32). It applies on CUDA only; the CPU always computes in fp32."""

from __future__ import annotations

import contextlib

from pipeline.errors import ConfigError

AMP_CHOICES = ("bf16", "fp16", None)


def check_amp(amp: str | None, key: str) -> None:
    if amp not in AMP_CHOICES:
        raise ConfigError(f"{key} must be 'bf16', 'fp16' or None, got {amp!r}")


def autocast_dtype(device, amp: str | None):
    """The torch dtype autocast uses on `device`, or None for fp32."""
    import torch

    if device.type != "cuda" or amp is None:
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device, amp: str | None):
    """torch.autocast on CUDA in the `amp` dtype; nothing otherwise."""
    import torch

    dtype = autocast_dtype(device, amp)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
