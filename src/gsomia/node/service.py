"""NodeService: everything the node's API and CLI do, in one place.

Officers act through it; every action that changes something is written to the node's audit
log under the officer's name (the exchange only ever sees the party). Reads of what the party
received come from the encrypted store; consents, standing consents and previews are asked of
the exchange at the time.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping, func, insert, select, update

from gsomia import jsontext
from gsomia.client.http import ExchangeClient
from gsomia.client.reports import ReportDraft, sign_report
from gsomia.crypto import DEFAULT_PROFILE, PartyKeys, read_private_keyfile
from gsomia.crypto.ledger_key import LedgerKey
from gsomia.errors import (
    Conflict,
    ExchangeError,
    ExchangeUnreachable,
    GsomiaError,
    InvalidInput,
    KeysRetired,
    StorageError,
    UnknownEntity,
)
from gsomia.node.audit import SYSTEM, AuditLog
from gsomia.node.config import (
    CONFIG_FILE,
    DB_FILE,
    KEY_FILE,
    NodeConfig,
    check_node_dir,
    create_node_key,
    read_node_key,
)
from gsomia.node.keyring import KeyRing
from gsomia.node.store import NodeStore, acknowledgements, deliveries, incidents, iso_now
from gsomia.node.sync import REASONS, Syncer, banner, upsert_incident
from gsomia.node.users import Role, Session, UserService
from gsomia.node.witness import LedgerWitness

__all__ = ["EventBus", "NodeService", "init_node"]

log = logging.getLogger(__name__)

CAVEATS = ["REL TO", "ORCON", "NOFORN"]
MAX_PAGE = 200
MAX_PAYLOAD = 512 * 1024  # the exchange takes 1 MiB bodies; base64 grows a payload by a third


# An internal event: a session ended (``{"session": token_sha256}``) or every session of a user
# did (``{"user": name}``); the console's event streams of those sessions end on it and never
# forward it.
SESSION_ENDED = "session_ended"


class EventBus:
    """Fan-out of node events (``delivery``, ``consent``, ``alarm``, ``status``, ``incident``)
    to the open event streams of the console; thread-safe."""

    def __init__(self) -> None:
        self._subscribers: set[Callable[[str, dict[str, Any]], None]] = set()
        self._lock = threading.Lock()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Send an event to every subscriber (a failing subscriber is dropped)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(kind, data)
            except Exception:  # noqa: BLE001 - one closed stream must not stop the others
                self.unsubscribe(callback)

    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """Receive every later event."""
        with self._lock:
            self._subscribers.add(callback)

    def unsubscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """Stop receiving events."""
        with self._lock:
            self._subscribers.discard(callback)


@dataclass(frozen=True, slots=True)
class InitResult:
    """What ``gsomia node init`` made."""

    config: NodeConfig
    fingerprint: str
    witness_vkey: str
    key_file: Path | None
    registered: bool


def init_node(config: NodeConfig, *, keys_file: Path, token: str, ledger_key: str | None = None) -> InitResult:
    """Create a node: the store key, the encrypted store, the party's keys imported from
    ``keys_file``, a fresh witness key, the exchange token; then register the keys and the
    witness with the exchange and pin its ledger key.

    Raises:
        InvalidInput: a node already in the folder, a key file for another party, a bad token.
        ExchangeUnreachable: the exchange could not be reached (nothing is left behind).
        GsomiaError: the exchange refused the token or the keys (nothing is left behind: init
            may be run again).
    """
    keys = read_private_keyfile(keys_file)
    if keys.party != config.party:
        raise InvalidInput(f"{keys_file} holds {keys.party}'s keys, not {config.party}'s")
    _check_new_node_dir(config)
    token = token.strip()
    if not token:
        raise InvalidInput("the token file is empty")
    with ExchangeClient(config.exchange, token=token) as ex:
        who = ex.whoami()
        if who.get("party") != config.party:
            raise InvalidInput(f"the token acts for {who.get('party') or who.get('role')}, not {config.party}")
        pinned = LedgerKey.parse(ledger_key) if ledger_key else LedgerKey.parse(json.dumps(ex.ledger_key()))
    config = NodeConfig(
        party=config.party,
        exchange=config.exchange,
        dir=config.dir,
        host=config.host,
        port=config.port,
        witness=config.witness or f"{config.party.lower()}.node.gsomia",
        ledger_origin=pinned.name,
    )
    made_dir = not config.dir.exists()
    config.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_new_node_dir(config)  # again: the folder as it is now, made or found
    key_file: Path | None = None
    try:
        if read_key_env() is None:
            create_node_key(config.key_path)
            key_file = config.key_path
        return _make_node(config, keys, token, pinned, key_file)
    except BaseException:
        _unmake_node(config, key_file, made_dir)
        raise


def _check_new_node_dir(config: NodeConfig) -> None:
    """Refuse a folder another user could change, or one holding any of a node's files (a node,
    the remains of one, or a link planted where init would write: init never writes through one).

    Raises:
        InvalidInput: the folder is unsafe or not empty of node files; the message says what to do.
    """
    check_node_dir(config.dir)
    if (config.dir / CONFIG_FILE).exists() or config.db_path.exists():
        raise InvalidInput(f"{config.dir} already holds a node; give another --dir")
    names = (CONFIG_FILE, KEY_FILE, DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", DB_FILE + "-journal")
    found = [n for n in names if os.path.lexists(config.dir / n)]
    if found:
        raise InvalidInput(
            f"{config.dir} already holds {', '.join(found)}: remove {'it' if len(found) == 1 else 'them'} "
            "(left by an earlier attempt, or put there by someone else: look first), or give another --dir"
        )


def _make_node(config: NodeConfig, keys: PartyKeys, token: str, pinned: LedgerKey, key_file: Path | None) -> InitResult:
    """The node of :func:`init_node` in its folder (its store key made): everything made, then
    registered.

    Raises:
        GsomiaError: the exchange refused the keys or the witness (the caller removes the node).
    """
    store = NodeStore(config.db_path, read_node_key(config.key_path))
    try:
        store.put("exchange.token", token)
        store.put("ledger.key", pinned.vkey())
        store.put("party", config.party)
        ring = KeyRing(store)
        ring.add(keys, state="pending")
        cosigner = ring.create_witness(config.witness)
        config.write()
        AuditLog(store).record(
            SYSTEM, "init", config.party, {"fingerprint": keys.fingerprint(), "witness": config.witness}
        )
        service = NodeService(config, store)
        registered = True
        try:
            service.register_keys(keys)
            with service.connect() as ex:
                service.syncer.prepare(ex)
        except ExchangeUnreachable:
            registered = False
        finally:
            service.syncer.close()
        return InitResult(config, keys.fingerprint(), cosigner.public.vkey(), key_file, registered)
    finally:
        store.close()


def _unmake_node(config: NodeConfig, key_file: Path | None, made_dir: bool) -> None:
    """Remove what init made of a node the exchange refused, so that init can be run again: the
    store (with its journal files), node.json, the store key if init made it, and the folder if
    init made it."""
    db = config.dir / DB_FILE
    for path in (db, db.with_name(DB_FILE + "-wal"), db.with_name(DB_FILE + "-shm"), config.dir / CONFIG_FILE):
        path.unlink(missing_ok=True)
    if key_file is not None:
        key_file.unlink(missing_ok=True)
    if made_dir:
        shutil.rmtree(config.dir, ignore_errors=True)


def read_key_env() -> str | None:
    """``GSOMIA_NODE_KEY`` if set."""
    import os  # noqa: PLC0415

    return os.environ.get("GSOMIA_NODE_KEY") or None


class NodeService:
    """One node: its store, keys, users, audit log, ledger witness and sync."""

    def __init__(self, config: NodeConfig, store: NodeStore, *, bus: EventBus | None = None) -> None:
        self.config = config
        self.store = store
        self.bus = bus or EventBus()
        self.keyring = KeyRing(store)
        self.audit = AuditLog(store)
        self.users = UserService(store)
        key = store.get("ledger.key")
        if key is None:
            raise StorageError("the node store has no pinned ledger key: run 'gsomia node init'")
        self.witness = LedgerWitness(
            store, key=LedgerKey.parse(key), cosigner=self.keyring.witness(), publish=self.bus.publish
        )
        self.syncer = Syncer(
            store,
            party=config.party,
            keyring=self.keyring,
            witness=self.witness,
            connect=self.connect,
            publish=self.bus.publish,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def open(cls, directory: Path) -> NodeService:
        """Open the node in ``directory`` with its key.

        Raises:
            UnknownEntity: no node there.
            InvalidInput: no key, or node.json names another party than the one whose keys and
                token the store holds.
            StorageError: the key does not open the store, or a newer version wrote it.
        """
        config = NodeConfig.read(directory)
        store = NodeStore(config.db_path, read_node_key(config.key_path))
        try:
            _check_party(config, store)
            return cls(config, store)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        """Stop the background work and close the store."""
        self.stop()
        self.syncer.close()
        self.store.close()

    def connect(self) -> ExchangeClient:
        """A client of the exchange, as the party."""
        return ExchangeClient(self.config.exchange, token=self.store.get("exchange.token"), timeout=30.0)

    # --- background ----------------------------------------------------------------------------------

    def start(self, *, witness_interval: float = 10.0) -> None:
        """Start following the exchange (inbox and ledger) in background threads."""
        self._stop.clear()
        for target, args in (
            (self.syncer.run, (self._stop,)),
            (self.syncer.witness_loop, (self._stop, witness_interval)),
        ):
            thread = threading.Thread(target=target, args=args, daemon=True, name=f"node-{target.__name__}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Ask the background threads to stop (they are daemons: a stream blocked on the
        network ends with the process)."""
        self._stop.set()
        self._threads.clear()

    # --- status and meta -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The node's status (see docs/node.md and the API's ``GET /api/status``)."""
        with self.store.read() as c:
            counts: dict[str, int] = dict(
                c.execute(select(deliveries.c.state, func.count()).group_by(deliveries.c.state)).all()
            )
        cosigner = self.keyring.witness()
        ledger = self.witness.summary()
        return {
            "party": self.config.party,
            "exchange": {
                "url": self.config.exchange,
                "reachable": {"true": True, "false": False}.get(self.store.get("exchange.reachable") or ""),
                "error": self.store.get("exchange.error") or None,
                "last_event_at": self.store.get("exchange.last_event_at"),
                "cursor": self.syncer.cursor,
                # the exchange's inbox once ended before the node's cursor (a restored database)
                "rewound": self.store.get_json("sync.rewound"),
            },
            "deliveries": {s: int(counts.get(s, 0)) for s in ("verified", "quarantined", "pending")},
            "ledger": {k: ledger[k] for k in ("size", "root", "checked_at")} | {"accepted": ledger["accepted"]},
            "witness": {
                "name": cosigner.name if cosigner else None,
                "vkey": cosigner.public.vkey() if cosigner else None,
                "registered": cosigner is not None and self.store.get("witness.registered") == cosigner.public.vkey(),
                "cosigned_size": ledger["cosigned_size"],
                "cosigned_at": ledger["cosigned_at"],
                "error": self.store.get("witness.last_error") or None,
            },
            "keys": self._key_status(),
            "alarm": self.witness.alarm(),
            "exercise": self.store.get_json("exchange.exercise"),
            # the CoT bridge's counters, as 'node serve' last noted them (every 5 s at most)
            "cot": self.store.get_json("interop.cot"),
        }

    def _key_status(self) -> dict[str, Any]:
        """The party's key sets as the exchange sees them: the current one (None while none is
        registered), one kept but not registered yet, the exchange's current set when the node
        does not hold it (the node then cannot open new deliveries), the exchange's last refusal."""
        current = self.keyring.current_fingerprint()
        pending = self.keyring.pending()
        return {
            "current": current,
            "registered": current is not None,
            "pending": pending.fingerprint() if pending is not None else None,
            "missing": self.store.get_json("keys.missing"),
            "error": self.store.get("keys.error") or None,
        }

    def meta(self) -> dict[str, Any]:
        """The party's ladder and the scenario's topics and parties (read once, then cached).

        Raises:
            ExchangeUnreachable: never read yet and the exchange cannot be reached.
        """
        scenario = self.store.get_json("exchange.scenario")
        if scenario is None:
            with self.connect() as ex:
                scenario = _scenario(ex.scenario())
            self.store.put_json("exchange.scenario", scenario)
        own: dict[str, Any] = next((p for p in scenario["parties"] if p["id"] == self.config.party), {"ladder": []})
        return {
            "party": self.config.party,
            "ladder": [{"level": lv["name"], "rank": lv["rank"], "english": lv.get("english")} for lv in own["ladder"]],
            "topics": [t["id"] if isinstance(t, dict) else t for t in scenario["topics"]],
            "parties": [p["id"] for p in scenario["parties"]],
            "caveats": CAVEATS,
        }

    # --- the inbox ---------------------------------------------------------------------------------------

    def inbox(
        self,
        *,
        topic: str | None = None,
        originator: str | None = None,
        level: str | None = None,
        start: str | None = None,
        end: str | None = None,
        q: str | None = None,
        state: str = "all",
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """What the party received, newest first, filtered; ``q`` searches decrypted content
        and metadata (of verified deliveries; quarantined content is never searched).

        Raises:
            InvalidInput: a bad state, instant, cursor or limit.
        """
        if state not in {"verified", "quarantined", "pending", "all"}:
            raise InvalidInput("state: verified, quarantined, pending or all")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit: between 1 and {MAX_PAGE}")
        query = select(deliveries).order_by(deliveries.c.n.desc()).limit(limit + 1)
        if state != "all":
            query = query.where(deliveries.c.state == state)
        if topic:
            query = query.where((deliveries.c.topic == topic) | deliveries.c.topic.startswith(topic + "."))
        if originator:
            query = query.where(deliveries.c.originator == originator.upper())
        if level:
            query = query.where(deliveries.c.level == level)
        if start:
            query = query.where(deliveries.c.received_at >= _utc(start, "from"))
        if end:
            query = query.where(deliveries.c.received_at < _utc(end, "to"))
        if q:
            needle = q.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(deliveries.c.search.like(f"%{needle}%", escape="\\"))
        if cursor:
            if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
                raise InvalidInput("cursor: give the 'next' of an earlier page")
            query = query.where(deliveries.c.n < int(cursor))
        with self.store.read() as c:
            rows = c.execute(query).mappings().all()
            acked = self._acked(c, [r["delivery_id"] for r in rows])
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [_item(r, r["delivery_id"] in acked) for r in rows],
            "next": str(rows[-1]["n"]) if more else None,
        }

    @staticmethod
    def _acked(c: Any, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        return set(
            c.execute(select(acknowledgements.c.delivery_id).where(acknowledgements.c.delivery_id.in_(ids))).scalars()
        )

    def delivery(self, delivery_id: str, session: Session, *, show_quarantined: bool = False) -> dict[str, Any]:
        """One delivery with its payload, verification, incidents and acknowledgements. A
        quarantined delivery's payload is shown only to an approver who asks for it.

        Raises:
            UnknownEntity: no such delivery here.
            NotPermitted: ``show_quarantined`` by an officer.
        """
        with self.store.read() as c:
            row = c.execute(select(deliveries).where(deliveries.c.delivery_id == delivery_id)).mappings().first()
            if row is None:
                raise UnknownEntity(f"no delivery {delivery_id} on this node")
            acks = (
                c.execute(
                    select(acknowledgements)
                    .where(acknowledgements.c.delivery_id == delivery_id)
                    .order_by(acknowledgements.c.id)
                )
                .mappings()
                .all()
            )
            incs = c.execute(select(incidents.c.document).where(incidents.c.delivery_id == delivery_id)).scalars().all()
        if show_quarantined:
            session.require(Role.APPROVER)
        payload = None
        if row["payload"] is not None and (
            row["state"] == "verified" or (show_quarantined and row["state"] == "quarantined")
        ):
            payload = _payload(row["content_type"], bytes(row["payload"]))
            if row["state"] == "quarantined":
                self.audit.record(session.username, "view_quarantined", delivery_id, {"reason": row["reason"]})
        return _item(row, bool(acks)) | {
            "payload": payload,
            "verification": json.loads(row["verification"]),
            "incidents": [json.loads(d) for d in incs],
            "acknowledgements": [{"user": a["username"], "at": a["at"]} for a in acks],
        }

    def acknowledge(self, delivery_id: str, session: Session) -> dict[str, Any]:
        """Acknowledge a verified delivery at the exchange (attesting need-to-know, rule 5),
        recording which officer did.

        Raises:
            UnknownEntity: no such delivery here.
            Conflict: the delivery is not verified.
            ExchangeUnreachable: the exchange could not be reached (nothing recorded).
        """
        state = self._state(delivery_id)
        if state != "verified":
            raise Conflict(f"delivery {delivery_id} is {state}: only a verified delivery is acknowledged")
        with self.connect() as ex:
            answer = ex.acknowledge(delivery_id)
        at = iso_now()
        with self.store.write() as c:
            c.execute(insert(acknowledgements).values(delivery_id=delivery_id, username=session.username, at=at))
            c.execute(
                update(deliveries)
                .where(deliveries.c.delivery_id == delivery_id, deliveries.c.acknowledged_at.is_(None))
                .values(acknowledged_at=str(answer.get("acked_at") or at))
            )
            self.audit.record(session.username, "acknowledge", delivery_id, {"leaf_index": answer.get("leaf_index")}, c)
        return {"acknowledged": True, "at": answer.get("acked_at") or at}

    def _state(self, delivery_id: str) -> str:
        with self.store.read() as c:
            state = c.execute(select(deliveries.c.state).where(deliveries.c.delivery_id == delivery_id)).scalar()
        if state is None:
            raise UnknownEntity(f"no delivery {delivery_id} on this node")
        return str(state)

    # --- incidents (Art. 17) --------------------------------------------------------------------------------

    def file_incident(self, delivery_id: str, kind: str, description: str, session: Session) -> dict[str, Any]:
        """Report the loss or compromise of a delivery to its originator, through the exchange.

        Raises:
            UnknownEntity: no such delivery here.
            InvalidInput: a bad kind or description.
            ExchangeUnreachable: the exchange could not be reached (nothing recorded).
        """
        self._state(delivery_id)
        if kind not in {"loss", "compromise", "possible_compromise"}:
            raise InvalidInput("kind: loss, compromise or possible_compromise")
        with self.connect() as ex:
            doc = ex.file_incident(delivery_id, kind=kind, description=description)
        with self.store.write() as c:
            upsert_incident(c, doc)
            self.audit.record(
                session.username, "file_incident", str(doc["id"]), {"delivery": delivery_id, "kind": kind}, c
            )
        return doc

    def incidents(self) -> dict[str, Any]:
        """Incidents this party filed or was told of, newest first."""
        with self.store.read() as c:
            docs = c.execute(select(incidents.c.document).order_by(incidents.c.updated_at.desc())).scalars().all()
        return {"items": [json.loads(d) for d in docs]}

    def follow_up_incident(self, incident_id: str, result: str, measures: str, session: Session) -> dict[str, Any]:
        """Append an investigation result and measures to an incident.

        Raises:
            UnknownEntity: no such incident for this party.
            InvalidInput: both texts empty or one too long.
            ExchangeUnreachable: the exchange could not be reached.
        """
        with self.connect() as ex:
            doc = ex.update_incident(incident_id, result=result, measures=measures)
        with self.store.write() as c:
            upsert_incident(c, doc)
            self.audit.record(session.username, "follow_up_incident", incident_id, {}, c)
        return doc

    # --- sending -------------------------------------------------------------------------------------------

    def preview(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """What the exchange would decide for each recipient now (``GET /api/v1/route``, at the
        exchange's clock and under its exercise what-if), before anything is signed.

        Raises:
            InvalidInput: a malformed request.
            ExchangeUnreachable: the exchange could not be reached.
        """
        draft = self._spec(spec, payload_needed=False)
        out = []
        with self.connect() as ex:
            at = _exchange_clock(ex)
            for recipient in draft["recipients"]:
                params: dict[str, Any] = {
                    "originator": self.config.party,
                    "recipient": recipient,
                    "topic": draft["topic"],
                    "level": draft["level"],
                    "at": at,
                    "noforn": draft["noforn"],
                    "orcon": draft["orcon"],
                    "as_exchange": True,
                }
                if draft["rel_to"] is not None:
                    params["rel_to"] = ",".join(draft["rel_to"])
                out.append(_preview(recipient, ex.route(params)))
        return {"at": at, "recipients": out}

    def submit(self, spec: Mapping[str, Any], session: Session) -> dict[str, Any]:
        """Sign a report with the party's current key, in the node, and submit it.

        Raises:
            InvalidInput: a malformed request (the exchange's 422s too).
            ReleaseDenied, BadSignature, Conflict: as the exchange answers.
            ExchangeUnreachable: the exchange could not be reached.
        """
        draft = self._spec(spec, payload_needed=True)
        keys = self.keyring.current()
        with self.connect() as ex:
            created = datetime.fromisoformat(_exchange_clock(ex))
            report_id = f"{self.config.party}-{created:%Y%m%d}-{secrets.token_hex(5)}"
            body = sign_report(
                keys,
                ReportDraft(
                    id=report_id,
                    topic=draft["topic"],
                    level=draft["level"],
                    payload=draft["payload"],
                    created=created,
                    recipients=draft["recipients"],
                    rel_to=draft["rel_to"],
                    noforn=draft["noforn"],
                    orcon=draft["orcon"],
                    content_type=draft["content_type"],
                ),
            )
            result = ex.submit(body)
        outcomes = {r["recipient"]: r["outcome"] for r in result.get("recipients", [])}
        self.audit.record(
            session.username,
            "submit",
            report_id,
            {"topic": draft["topic"], "level": draft["level"], "outcomes": outcomes, "key": keys.fingerprint()},
        )
        return result

    def _spec(self, spec: Mapping[str, Any], *, payload_needed: bool) -> dict[str, Any]:
        topic, level = spec.get("topic"), spec.get("level")
        if not isinstance(topic, str) or not topic or not isinstance(level, str) or not level:
            raise InvalidInput("give a topic and a level of your ladder")
        recipients = spec.get("recipients")
        if not isinstance(recipients, list) or not recipients or not all(isinstance(r, str) and r for r in recipients):
            raise InvalidInput("recipients: name at least one party (need-to-know)")
        caveats = spec.get("caveats") or {}
        if not isinstance(caveats, Mapping):
            raise InvalidInput("caveats: {rel_to: [..] or null, orcon: bool, noforn: bool}")
        rel_to = caveats.get("rel_to")
        if rel_to is not None and (not isinstance(rel_to, list) or not all(isinstance(p, str) for p in rel_to)):
            raise InvalidInput("caveats.rel_to: a list of parties, or null")
        out: dict[str, Any] = {
            "topic": topic,
            "level": level,
            "recipients": sorted({r.upper() for r in recipients}),
            # docs/protocol.md §3.5: REL TO in ascending order, or recipients cannot verify
            "rel_to": sorted({p.upper() for p in rel_to}) if rel_to else None,
            "noforn": bool(caveats.get("noforn", False)),
            "orcon": bool(caveats.get("orcon", False)),
            "content_type": str(spec.get("content_type") or "text/plain; charset=utf-8"),
        }
        if payload_needed:
            payload = spec.get("payload")
            if isinstance(payload, str):
                data = payload.encode("utf-8")
            elif isinstance(payload, dict | list):
                data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            else:
                raise InvalidInput("payload: text, or a JSON object or array")
            if len(data) > MAX_PAYLOAD:
                raise InvalidInput(f"payload: at most {MAX_PAYLOAD} bytes")
            out["payload"] = data
        return out

    # --- consents --------------------------------------------------------------------------------------------

    def consents(self, state: str = "pending") -> dict[str, Any]:
        """Consent requests for relays of the party's reports (the exchange's shape).

        Raises:
            InvalidInput: a bad state.
            ExchangeUnreachable: the exchange could not be reached.
        """
        with self.connect() as ex:
            answer = ex.consents(state=state)
        exercise = self.store.get_json("exchange.exercise") is not None
        return {"items": [c | {"exercise": exercise} for c in answer.get("consents", [])]}

    def answer_consent(self, consent_id: str, *, grant: bool, reason: str, session: Session) -> dict[str, Any]:
        """Grant or refuse a relay (approver), with the reason.

        Raises:
            NotPermitted: an officer.
            Conflict: already answered or expired.
            ExchangeUnreachable: the exchange could not be reached.
        """
        session.require(Role.APPROVER)
        with self.connect() as ex:
            answer = ex.answer_consent(consent_id, grant=grant, reason=reason)
        self.audit.record(
            session.username,
            "grant_consent" if grant else "refuse_consent",
            consent_id,
            {"reason": reason, "report": answer.get("report")},
        )
        self.bus.publish("consent", {"id": consent_id, "state": answer.get("state")})
        return answer

    def standing_consents(self) -> dict[str, Any]:
        """The party's standing consents, revoked ones included."""
        with self.connect() as ex:
            return {"items": ex.standing_consents().get("standing_consents", [])}

    def add_standing_consent(self, spec: Mapping[str, Any], session: Session) -> dict[str, Any]:
        """Give a standing consent (approver).

        Raises:
            NotPermitted: an officer.
            InvalidInput: as the exchange answers.
        """
        session.require(Role.APPROVER)
        with self.connect() as ex:
            sc = ex.add_standing_consent(spec)
        self.audit.record(session.username, "standing_consent", str(sc.get("id")), dict(spec))
        return sc

    def revoke_standing_consent(self, standing_id: str, session: Session) -> dict[str, Any]:
        """Revoke a standing consent (approver).

        Raises:
            NotPermitted: an officer.
            UnknownEntity: no such standing consent.
        """
        session.require(Role.APPROVER)
        with self.connect() as ex:
            sc = ex.revoke_standing_consent(standing_id)
        self.audit.record(session.username, "revoke_standing_consent", standing_id, {})
        return sc

    # --- keys --------------------------------------------------------------------------------------------------

    def keys(self) -> dict[str, Any]:
        """``{"current", "history"}``: the party's key sets, public halves only."""
        history = self.keyring.history()
        current = next((k for k in history if k["state"] == "current"), None)
        return {"current": current, "history": history}

    def register_keys(self, keys: PartyKeys) -> dict[str, Any]:
        """Register a kept (pending) key set with the exchange and make it current.

        Raises:
            ExchangeUnreachable: the exchange could not be reached (the set stays pending).
            KeysRetired: the exchange registered this set before and retired it since.
        """
        with self.connect() as ex:
            answer = self.syncer.register_keys(ex, keys)
        self.keyring.make_current(keys.fingerprint(), registered_at=str(answer.get("registered_at") or iso_now()))
        self.syncer.settle_keys()
        return answer

    def rotate_keys(self, user: str) -> dict[str, Any]:
        """Generate a new key set, keep it, register it with the exchange and make it current;
        earlier sets are kept (retired) to open older deliveries. A set kept by an attempt
        the exchange did not answer is the one the next attempt registers (no second one),
        unless the exchange retired it: it is kept retired and a new set made. A node with no
        current set (its init could not register its keys) gets one. One rotation at a time:
        another waits for it.

        Raises:
            ExchangeUnreachable: the exchange could not be reached (the new set stays pending
                and is registered by the next sync or rotation attempt; the attempt is audited;
                the message says so).
            StorageError: the store could not be written after the set was kept (the exchange
                may hold it current: the message says the next sync puts the node in line).
        """
        with self.keyring.changing:
            current = self.keyring.current_fingerprint()
            fresh = self._fresh_keys()
            try:
                try:
                    self.register_keys(fresh)
                except KeysRetired:
                    self.keyring.retire(fresh.fingerprint())
                    self.audit.record(
                        user, "retire_pending_keys", fresh.fingerprint(), {"detail": "retired at the exchange"}
                    )
                    fresh = self._fresh_keys()
                    self.register_keys(fresh)
            except ExchangeUnreachable as e:
                detail = {"current": current, "detail": "the exchange could not be reached; the set stays pending"}
                self.audit.record(user, "rotate_keys_pending", fresh.fingerprint(), detail)
                raise ExchangeUnreachable(
                    f"{e}; the new key set {fresh.fingerprint()} is kept in this node, pending, and the current "
                    f"set ({current or 'none'}) stays in use: the next sync ('gsomia node serve' or 'gsomia node "
                    "sync --once') registers it, or run 'gsomia node keys rotate' again"
                ) from e
            except StorageError as e:
                # the exchange may have taken the set: the sync makes the node's current set the
                # exchange's once the store can be written again
                raise StorageError(
                    f"{e}; the new key set {fresh.fingerprint()} is kept in this node and the exchange may hold it "
                    "current already: once the store can be written (disk space), run 'gsomia node sync --once' "
                    "(or 'gsomia node serve'), which makes the exchange's current set current here"
                ) from e
            self.audit.record(user, "rotate_keys", fresh.fingerprint(), {"retired": current})
        return self.keys()["current"] or {}

    def _fresh_keys(self) -> PartyKeys:
        """The pending key set, else a new one (of the newest kept set's profile), kept pending."""
        fresh = self.keyring.pending()
        if fresh is not None:
            return fresh
        newest = next(iter(self.keyring.history()), None)
        kept = self.keyring.get(str(newest["fingerprint"])) if newest is not None else None
        fresh = PartyKeys.generate(self.config.party, kept.profile if kept is not None else DEFAULT_PROFILE)
        self.keyring.add(fresh, state="pending")
        return fresh

    # --- users -------------------------------------------------------------------------------------------------

    def add_user(self, username: str, password: str, role: str, by: str) -> dict[str, Any]:
        """Create an officer's account.

        Raises:
            InvalidInput: bad name, role or password.
            Conflict: the name exists.
        """
        user = self.users.add(username, password, Role.parse(role), by=by)
        self.audit.record(by, "add_user", username, {"role": user["role"]})
        return user

    def revoke_user(self, username: str, by: str) -> dict[str, Any]:
        """Revoke an account; its sessions end at once.

        Raises:
            UnknownEntity: no such user.
            NotPermitted: revoking the last active admin.
        """
        user = self.users.revoke(username)  # refuses the last active admin in its transaction
        self.audit.record(by, "revoke_user", username, {})
        self.bus.publish(SESSION_ENDED, {"user": username})
        return user

    def recheck(self, by: str) -> dict[str, Any]:
        """Verify every quarantined delivery again (admin; audited): see :meth:`Syncer.recheck`.

        Raises:
            ExchangeUnreachable: the exchange could not be reached (nothing is changed).
            LedgerInvalid: the ledger alarm stands.
        """
        result: dict[str, Any] = {}
        try:
            self.syncer.recheck(result)
        finally:
            # audited as far as it went: a recheck cut short has still changed what it reached
            if result.get("rechecked"):
                self.audit.record(
                    by,
                    "recheck",
                    f"{len(result['verified'])} of {result['rechecked']} verified",
                    {"verified": result["verified"], "quarantined": result["quarantined"]},
                )
        return result

    def clear_alarm(self, by: str) -> dict[str, Any] | None:
        """Clear the ledger alarm after investigation (admin); audited."""
        cleared = self.witness.clear_alarm(by)
        if cleared is not None:
            self.audit.record(by, "clear_alarm", cleared["kind"], {"detail": cleared["detail"]})
            self.bus.publish("alarm", {"cleared": True})
        return cleared


def _check_party(config: NodeConfig, store: NodeStore) -> None:
    """Refuse a node.json that names another party than the one the store was made for (its
    keys and token act for that party). A store made before the party was recorded is taken
    to be its keys' party, and recorded.

    Raises:
        InvalidInput: the two differ.
    """
    recorded = store.get("party")
    held = recorded
    if held is None:
        parties = KeyRing(store).parties()
        held = next(iter(parties)) if len(parties) == 1 else None
    if held is not None and held != config.party:
        raise InvalidInput(
            f"{config.dir / CONFIG_FILE} names party {config.party}, but this node's store holds {held}'s "
            f'keys and token: put back "party": "{held}" in node.json (or give --dir of {config.party}\'s node)'
        )
    if recorded is None:
        store.put("party", config.party)


# --- shapes -----------------------------------------------------------------------------------------------------


def _item(row: RowMapping, acknowledged: bool) -> dict[str, Any]:
    """The node's Item shape (node-api.md)."""
    marking = json.loads(row["marking"]) if row["marking"] else {}
    caveats = json.loads(row["caveats"]) if row["caveats"] else {}
    state = str(row["state"])
    return {
        "delivery_id": row["delivery_id"],
        "report_id": row["report_id"],
        "originator": row["originator"],
        "topic": row["topic"],
        "level": row["level"],
        "banner": banner(marking | ({"exercise": True} if row["exercise"] else {})),
        "originator_marking": {
            "party": row["originator"],
            "level": marking.get("originator_level"),
            "caveats": caveats or None,
        },
        "exercise": bool(row["exercise"]),
        "state": state,
        "reason": row["reason"],
        "reason_text": REASONS.get(str(row["reason"])) if row["reason"] else None,
        "received_at": row["received_at"],
        "created": row["created"] or None,
        "acknowledged": acknowledged or row["acknowledged_at"] is not None,
        "content_type": row["content_type"] or None,
        "via": row["via"],
        "purpose": row["purpose"],
    }


def _payload(content_type: str, data: bytes) -> dict[str, Any]:
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    parsed = None
    if text is not None and "json" in content_type:
        try:
            # strict: a value the answer could not carry (NaN, Infinity, nesting deeper than
            # the stack) leaves the payload shown as text
            parsed = jsontext.parse(text)
        except ValueError:
            parsed = None
    return {"content_type": content_type, "text": text, "json": parsed, "size": len(data)}


def _scenario(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The parties (id, name, ladder) and topics of the exchange's scenario, as the console reads
    them: what has another shape (a party without an id, a level without a name and a rank, a
    topic that is neither an id nor an object with one) is left out."""
    parties, topics = doc.get("parties"), doc.get("topics")
    return {
        "parties": [
            {"id": p["id"], "name": p.get("name"), "ladder": _ladder(p.get("ladder"))}
            for p in (parties if isinstance(parties, list) else [])
            if isinstance(p, dict) and isinstance(p.get("id"), str)
        ],
        "topics": [
            t
            for t in (topics if isinstance(topics, list) else [])
            if isinstance(t, str) or (isinstance(t, dict) and isinstance(t.get("id"), str))
        ],
    }


def _ladder(levels: object) -> list[dict[str, Any]]:
    return [
        lv
        for lv in (levels if isinstance(levels, list) else [])
        if isinstance(lv, dict) and isinstance(lv.get("name"), str) and "rank" in lv
    ]


def _preview(recipient: str, route: Mapping[str, Any]) -> dict[str, Any]:
    marking, reasons = route.get("marking"), route.get("reasons")
    if not isinstance(marking, dict):
        marking = {}
    return {
        "party": recipient,
        "decision": route.get("decision"),
        "via": route.get("via"),
        "needs_consent": bool(route.get("consent_required")),
        "translated_level": marking.get("recipient_level"),
        "banner": marking.get("banner"),
        "reasons": [
            {"code": r.get("rule"), "article": r.get("agreement"), "text": r.get("message")}
            for r in (reasons if isinstance(reasons, list) else [])
            if isinstance(r, dict)
        ],
    }


def _exchange_clock(ex: ExchangeClient) -> str:
    """The exchange's clock (the exercise clock in exercise mode), else this machine's."""
    try:
        info = ex.exercise()
    except (ExchangeUnreachable, StorageError):
        raise
    except GsomiaError:
        info = {}
    clock = info.get("clock") if info.get("exercise") else None
    if not clock:
        return datetime.now(UTC).isoformat(timespec="seconds")
    try:
        if datetime.fromisoformat(str(clock)).tzinfo is not None:
            return str(clock)
    except ValueError:
        pass
    raise ExchangeError(f"the exchange's exercise clock {str(clock)[:40]!r} is not an ISO 8601 instant with an offset")


def _utc(text: str, what: str) -> str:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what}: an ISO 8601 instant with an offset") from None
    if at.tzinfo is None:
        raise InvalidInput(f"{what}: give the instant's offset (e.g. +09:00)")
    try:
        return at.astimezone(UTC).isoformat(timespec="microseconds")
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise InvalidInput(f"{what}: {text!r} is out of range") from None
