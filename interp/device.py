"""Choosing the torch device from a user's ``auto`` / ``cpu`` / ``cuda[:N]``."""

from __future__ import annotations

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
