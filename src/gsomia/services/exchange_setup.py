"""The exchange's use cases, wired together once by the composition root.

Nothing here starts a thread or touches a key until it is used: a CLI command that only reads
the record never creates the KEK file or the writer thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gsomia.crypto.kek import load_or_create_kek, parse_kek
from gsomia.domain.instants import parse_instant
from gsomia.errors import GsomiaError
from gsomia.scenario.loader import read_file
from gsomia.services.agreements import AgreementService
from gsomia.services.analysis import AnalysisService
from gsomia.services.clock import ExchangeClock
from gsomia.services.committer import GroupCommitter
from gsomia.services.consents import ConsentService
from gsomia.services.exchange import ExchangeConfig, ExchangeContext, Ledger, RecordCache
from gsomia.services.identity import IdentityService
from gsomia.services.inbox import InboxService
from gsomia.services.notify import Notifier
from gsomia.services.standing import StandingConsentService
from gsomia.services.submissions import SubmissionService
from gsomia.storage.store import Store

__all__ = ["Exchange", "ExchangeOptions", "build_exchange"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeOptions:
    """The exchange's settings, as the composition root reads them."""

    data_dir: Path
    kek: str | None = None
    exercise_clock: str | None = None
    exercise_whatif: Path | None = None
    consent_ttl_hours: float = 72.0
    consent_sweep_seconds: float = 30.0
    group_commit_max: int = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """Every exchange use case, sharing one context."""

    context: ExchangeContext
    identity: IdentityService
    submissions: SubmissionService
    consents: ConsentService
    standing: StandingConsentService
    inbox: InboxService
    agreements: AgreementService

    @property
    def clock(self) -> ExchangeClock:
        """The exchange clock (exercise mode included)."""
        return self.context.clock

    @property
    def notifier(self) -> Notifier:
        """Wake-ups for inbox streams."""
        return self.context.notifier

    def start(self) -> None:
        """Start the background work a server needs (the consent-expiry sweep)."""
        self.consents.start_sweeper()

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

    def close(self) -> None:
        """Stop the sweep and finish queued writes."""
        self.consents.stop_sweeper()
        self.context.committer.close()


def build_exchange(
    options: ExchangeOptions,
    *,
    store: Store,
    analysis: AnalysisService,
    ledger: Ledger,
    clock: Callable[[], datetime],
) -> Exchange:
    """Wire the exchange over ``store`` and ``ledger``.

    Raises:
        InvalidInput: a bad KEK setting, exercise clock, or an unreadable exercise what-if file.
    """
    start = parse_instant(options.exercise_clock, "UTC") if options.exercise_clock else None
    whatif_text = read_file(options.exercise_whatif) if options.exercise_whatif is not None else None
    whatif_name = options.exercise_whatif.name if options.exercise_whatif is not None else ""
    if options.kek:
        key = parse_kek(options.kek)

        def kek() -> bytes:
            return key
    else:

        def kek() -> bytes:
            return load_or_create_kek(options.data_dir / "exchange.kek")

    exchange_clock = ExchangeClock(system=clock, exercise_start=start, whatif_name=whatif_name)
    records = RecordCache(analysis, whatif_text=whatif_text, whatif_name=whatif_name)

    def known_parties() -> frozenset[str] | None:
        if store.summary() is None:
            return None
        return frozenset(records.record().parties)

    identity = IdentityService(store, clock=clock, known_parties=known_parties)
    context = ExchangeContext(
        store=store,
        committer=GroupCommitter(store, max_batch=options.group_commit_max),
        ledger=ledger,
        identity=identity,
        clock=exchange_clock,
        records=records,
        kek=kek,
        notifier=Notifier(),
        config=ExchangeConfig(
            consent_ttl=timedelta(hours=options.consent_ttl_hours), sweep_seconds=options.consent_sweep_seconds
        ),
    )
    return Exchange(
        context=context,
        identity=identity,
        submissions=SubmissionService(context),
        consents=ConsentService(context),
        standing=StandingConsentService(context),
        inbox=InboxService(context),
        agreements=AgreementService(context),
    )
