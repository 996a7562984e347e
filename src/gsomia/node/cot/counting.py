"""A count of what the CoT bridge dropped, logged as a warning at most once per interval (a
flood of drops must not become a flood of log lines)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["LOG_INTERVAL", "Dropped"]

LOG_INTERVAL = 60.0
"""Seconds between two warnings about drops of the same kind."""


class Dropped:
    """How many were dropped, in all; the first drop is logged at once, later ones at most once
    per ``interval`` seconds, with how many there were since the last warning."""

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        *,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.message = message
        self.interval = interval
        self.clock = clock
        self.total = 0
        self._since = 0
        self._logged: float | None = None
        self._lock = threading.Lock()

    def add(self, why: str = "") -> None:
        """Count one drop; log if the last warning is older than the interval."""
        with self._lock:
            self.total += 1
            self._since += 1
            now = self.clock()
            if self._logged is not None and now - self._logged < self.interval:
                return
            since, self._since, self._logged = self._since, 0, now
        detail = f" ({why})" if why else ""
        self.logger.warning("%s%s: %d since the last warning, %d in all", self.message, detail, since, self.total)
