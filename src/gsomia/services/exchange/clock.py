"""The exchange clock, and exercise mode.

Every release decision is made at the exchange's clock. In normal operation that is the
system clock. In *exercise mode* an operator rehearses history: the clock starts at a chosen
instant (e.g. 2019-11-22T10:00+09:00) and runs on in real time, and a what-if may be applied
to the record for every decision. Exercise mode is never hidden: the API stamps every
response with it and ``/healthz`` reports it. An operator may move the exercise clock
forward (never backwards), so a rehearsal can jump to the next day without waiting.

The exercise clock is only ever set to an instant in the supported range
(:func:`gsomia.domain.instants.require_supported`, the years 1900 to 2999): a clock moved to
the last day of year 9999 would overflow a moment later, and every request after it, the
health check included, would fail until a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gsomia.domain.instants import iso, require_supported
from gsomia.errors import Conflict, InvalidInput, NotPermitted


@dataclass(frozen=True, slots=True, kw_only=True)
class ExerciseInfo:
    """What exercise mode is on: the current exercise instant and the what-if's name."""

    clock: datetime
    whatif: str

    def header(self) -> str:
        """The ``Gsomia-Exercise`` header value, e.g. ``clock=2019-11-22T01:00Z; whatif=none``."""
        name = (self.whatif or "none").encode("ascii", "replace").decode("ascii")  # header values are ASCII
        return f"clock={iso(self.clock)}; whatif={name}"

    def as_dict(self) -> dict[str, str | None]:
        """JSON shape for ``/healthz`` and responses."""
        return {"clock": iso(self.clock), "whatif": self.whatif or None}


class ExchangeClock:
    """The instant at which the exchange decides: the system clock, or an exercise clock.

    The exercise clock keeps a fixed offset from the system clock, so it advances in real
    time; :meth:`advance` moves it forward by changing the offset.
    """

    def __init__(
        self, *, system: Callable[[], datetime], exercise_start: datetime | None = None, whatif_name: str = ""
    ) -> None:
        """Start the clock.

        Raises:
            InvalidInput: if ``exercise_start`` is naive or outside the supported range.
        """
        if exercise_start is not None:
            exercise_start = _exercise_instant(exercise_start)
        self._system = system
        self._lock = threading.Lock()
        self._offset: timedelta | None = None if exercise_start is None else exercise_start - system()
        self.started_offset_us = self.offset_us()
        """The offset this process started with (None outside exercise mode), before any it adopted."""
        self.whatif_name = whatif_name
        self._listeners: list[Callable[[datetime], None]] = []

    @property
    def exercise(self) -> bool:
        """True in exercise mode (an exercise clock, a what-if, or both)."""
        return self._offset is not None or bool(self.whatif_name)

    def now(self) -> datetime:
        """The exchange's current instant."""
        offset = self._offset
        now = self._system()
        return now if offset is None else now + offset

    def info(self) -> ExerciseInfo | None:
        """What exercise mode is on, or None in normal operation."""
        if not self.exercise:
            return None
        return ExerciseInfo(clock=self.now(), whatif=self.whatif_name)

    def on_advance(self, listener: Callable[[datetime], None]) -> None:
        """Call ``listener(new_instant)`` after each :meth:`advance` (e.g. to expire consents)."""
        self._listeners.append(listener)

    def advance(self, to: datetime) -> datetime:
        """Move the exercise clock forward to ``to``.

        Raises:
            NotPermitted: outside exercise mode (the real clock is never set).
            Conflict: if ``to`` is before the exercise clock's current instant.
            InvalidInput: if ``to`` is naive or outside the supported range.
        """
        to = _exercise_instant(to)
        with self._lock:
            if self._offset is None:
                raise NotPermitted("the exchange clock can be set only in exercise mode (GSOMIA_EXERCISE_CLOCK)")
            now = self.now()
            if to < now:
                raise Conflict(f"the exercise clock only moves forward: it is {iso(now)}, asked for {iso(to)}")
            self._offset = to - self._system()
        for listener in self._listeners:
            listener(to)
        return to

    # --- the exercise clock shared by every process over one database -----------------------

    def offset_us(self) -> int | None:
        """The exercise clock's offset from the system clock, in microseconds (None outside
        exercise mode): what the store keeps, so every process runs the same exercise clock."""
        offset = self._offset
        return None if offset is None else int(offset / timedelta(microseconds=1))

    def adopt(self, offset_us: int) -> None:
        """Run on the offset another process stored (the first to start, or the last to advance)."""
        with self._lock:
            if self._offset is not None:
                self._offset = timedelta(microseconds=offset_us)


def _exercise_instant(at: datetime) -> datetime:
    """``at`` in UTC, if the exercise clock may be set to it.

    Raises:
        InvalidInput: if ``at`` is naive or outside the supported range.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput("the exercise clock needs an instant with a UTC offset")
    return require_supported(at, "the exercise clock")
