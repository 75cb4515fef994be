"""Where training runs, as the configs of every domain's networks name it."""

from __future__ import annotations

import torch


def training_device(name: str) -> torch.device:
    """The device ``name`` names: ``cpu``, ``cuda`` (``cuda:N``), or ``auto`` (CUDA when
    available, else the CPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
