"""Finding the checkpoint a component loads: the configured file or the shipped one."""

from __future__ import annotations

from pathlib import Path


def checkpoint_file(weights: str | None, default: Path, what: str, command: str) -> Path:
    """The checkpoint to load: ``weights`` when given, else the shipped ``default``.

    Args:
        weights: configured path, or None.
        default: the shipped checkpoint.
        what: what the checkpoint holds, for the message (``generator``).
        command: the command that makes one, for the message.

    Raises:
        ValueError: the file does not exist (naming it and the command).
    """
    path = Path(weights) if weights else default
    if not path.is_file():
        raise ValueError(f"no {what} checkpoint at {path}; train one with `{command}`")
    return path
