"""Choosing the torch device from a user's ``auto`` / ``cpu`` / ``cuda[:N]``."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from interp.errors import InterpError


class DeviceError(InterpError, ValueError):
    """A device that this machine does not have."""


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None) is the GPU when torch sees one, else the CPU."""
    name = str(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but torch sees no GPU here; "
                          "use --device cpu (or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu or cuda") from None


@functools.cache
def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, stay in fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (a CUDA GPU with bf16, or a CPU with
    AVX512-BF16/AMX), so that bf16 autocast speeds the network up instead of emulating it."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_native_bf16()
