"""The record the exchange decides on: the stored record with the exercise what-if applied,
compiled once per change and shared by every use case.

The compiled network carries the stored version it was compiled from, so a write can check,
inside its own transaction, that it decides on the record as committed
(:meth:`~gsomia.services.exchange.context.ExchangeContext.require_record`)."""

from __future__ import annotations

import threading
import time

from gsomia.domain.record import Network, Record, WhatIf
from gsomia.services.analysis.service import AnalysisService, WhatIfSpec

__all__ = ["RecordCache"]


class RecordCache:
    """The record the exchange decides on: the stored record with the exercise what-if applied,
    compiled once per change (never re-parsed per request).

    :meth:`current` gives the stored version of the record behind the network (the stored
    record counter), compared inside each write transaction with the version the database
    holds then.
    """

    def __init__(
        self, analysis: AnalysisService, *, whatif_text: str | None = None, whatif_name: str = "", ttl: float = 1.0
    ) -> None:
        self._analysis = analysis
        self._whatif_text = whatif_text
        self._whatif_name = whatif_name
        self._ttl = ttl
        self._lock = threading.Lock()
        self._checked = -1.0
        self._base: object = None
        self._network: Network | None = None
        self._version = ""

    def network(self) -> Network:
        """The compiled network to decide on.

        Raises:
            StorageError: if no scenario is loaded.
            ValidationFailed: if the exercise what-if does not apply to the record.
        """
        now = time.monotonic()
        net = self._network
        if net is not None and now - self._checked < self._ttl:
            return net
        with self._lock:
            base = self._analysis.compiled()
            if base is not self._base or self._network is None:
                if self._whatif_text is not None:
                    whatif = self._analysis.whatif(WhatIfSpec(file_text=self._whatif_text, file_name=self._whatif_name))
                    self._network = self._analysis.with_whatif(whatif).network
                else:
                    self._network = base.network
                self._base = base
                self._version = base.version
            self._checked = now
            return self._network

    def exercise_whatif(self) -> WhatIfSpec | None:
        """The exercise what-if every decision applies, or None (a party's node previews a
        release under it: ``GET /api/v1/route?as_exchange=true``)."""
        if self._whatif_text is None:
            return None
        return WhatIfSpec(file_text=self._whatif_text, file_name=self._whatif_name)

    def current(self) -> tuple[Network, str]:
        """The network to decide on and the stored version it was compiled from, together.

        Raises:
            StorageError: if no scenario is loaded.
            ValidationFailed: if the exercise what-if does not apply to the record.
        """
        with self._lock:
            net = self._network
            if net is not None and time.monotonic() - self._checked < self._ttl:
                return net, self._version
        net = self.network()
        with self._lock:
            return net, self._version

    def warm(self) -> bool:
        """Whether :meth:`network` would answer from memory now (no database read, no compiling)."""
        return self._network is not None and time.monotonic() - self._checked < self._ttl

    def record(self) -> Record:
        """The record behind :meth:`network`."""
        return self.network().record

    def invalidate(self) -> None:
        """Re-read the record on next use (after an agreement event, or when a write found the
        stored record newer than this one)."""
        with self._lock:
            self._analysis.invalidate()
            self._checked = -1.0
            self._base = None

    def whatif(self) -> WhatIf | None:
        """The exercise what-if, parsed (None outside exercise mode)."""
        if self._whatif_text is None:
            return None
        return self._analysis.whatif(WhatIfSpec(file_text=self._whatif_text, file_name=self._whatif_name))
