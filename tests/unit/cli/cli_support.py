"""What the in-process command-line tests share: the result of one command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """What one command did: its exit code and what it printed."""

    code: int
    out: str
    err: str


Gsomia = Callable[..., Run]
"""``gsomia(*args)``: run the command line in this process (the ``gsomia`` fixture)."""
