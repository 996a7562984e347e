"""The exchange feature: submissions, relays (consents and standing consents), deliveries and
the inbox, incidents (Art. 17), operator events, identity and access, the exchange clock.

Every use case shares one :class:`~gsomia.services.exchange.context.ExchangeContext`; the
composition root (:mod:`gsomia.bootstrap`) wires them into one :class:`Exchange`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gsomia.errors import GsomiaError
from gsomia.services.exchange.clock import ExchangeClock
from gsomia.services.exchange.context import ExchangeContext
from gsomia.services.exchange.deliveries import DeliveryService
from gsomia.services.exchange.identity import IdentityService
from gsomia.services.exchange.incidents import IncidentService
from gsomia.services.exchange.keys import KeyService
from gsomia.services.exchange.notify import Notifier
from gsomia.services.exchange.operator import OperatorService
from gsomia.services.exchange.relays import ConsentService
from gsomia.services.exchange.standing import StandingConsentService
from gsomia.services.exchange.submissions import SubmissionService
from gsomia.services.exchange.witnesses import WitnessService
from gsomia.storage.channel import CommitListener

__all__ = ["Exchange"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """Every exchange use case, sharing one context."""

    context: ExchangeContext
    identity: IdentityService
    keys: KeyService
    submissions: SubmissionService
    consents: ConsentService
    standing: StandingConsentService
    deliveries: DeliveryService
    incidents: IncidentService
    operator: OperatorService
    witnesses: WitnessService
    listener: CommitListener | None = None
    """Wake-ups from other processes' commits (LISTEN on PostgreSQL, ``data_version`` on an
    SQLite file); None for an in-memory database."""

    @property
    def clock(self) -> ExchangeClock:
        """The exchange clock (exercise mode included)."""
        return self.context.clock

    @property
    def notifier(self) -> Notifier:
        """Wake-ups for inbox streams."""
        return self.context.notifier

    def start(self) -> None:
        """Start the background work a server needs: the consent-expiry sweep, and listening
        for other processes' commits."""
        self.consents.start_sweeper()
        if self.listener is not None:
            self.listener.start()

    def warm(self) -> None:
        """Compile the record and read the parties' public keys now, so the first submissions
        do not pay for it (a server calls this at start-up, before it freezes the heap).

        An empty database, or an exercise what-if that does not apply, is left for the first
        request to report.

        Raises:
            StorageError: if the database fails while the keys are read.
        """
        try:
            record = self.context.records.record()
        except GsomiaError:
            return
        for party in record.parties:
            self.identity.current_keys(party)

    def stop(self) -> None:
        """Stop the background work (the sweep, the listener); queued writes still finish."""
        self.consents.stop_sweeper()
        if self.listener is not None:
            self.listener.stop()

    def close(self) -> None:
        """Stop the sweep and finish queued writes."""
        self.stop()
        self.context.committer.close()
