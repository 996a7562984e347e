"""The TAXII 2.1 HTTP interface (OASIS Standard, 10 June 2021), mounted on the node under
``/taxii2/``: discovery (§4.1), one API root (§4.2), status (§4.3), collections (§5.1, §5.2),
manifest (§5.3), objects GET and POST (§5.4, §5.5), an object (§5.6, §5.7) and its versions
(§5.8). Errors are TAXII error messages (§3.6.1) in the TAXII media type.

Route handlers parse, call the service, render: no authorisation branches beyond the
collection's own ``can_read``/``can_write`` (§5.4, §5.5).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from gsomia import jsontext
from gsomia.errors import InvalidInput, StorageError
from gsomia.interop.stix import extension_definition, identifier_problem
from gsomia.node.taxii.service import (
    TAXII_MEDIA_TYPE,
    BadQuery,
    Collection,
    Principal,
    TaxiiService,
    Throttled,
    next_token,
    parse_query,
)
from gsomia.node.taxii.store import Page, Query, VersionFilter, from_us

API_ROOT = "api"
_REALM = 'Basic realm="gsomia TAXII", Bearer realm="gsomia TAXII"'
_OBJECT_FILTERS = frozenset({"id", "type", "version", "spec_version"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_AUTHORIZATION = 8192
"""The longest ``Authorization`` header read: a node user's name and password (at most 1024
characters) in Basic, or a bearer token, fit in far less. A longer one is answered 401 before
it is decoded or any password is checked."""


class TaxiiError(Exception):
    """An HTTP error answered as a TAXII error message."""

    def __init__(self, status: int, title: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.title = title
        self.description = description
        self.headers = headers or {}


def _taxii(body: object | str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A TAXII answer. None is kept by a cache (``Cache-Control: no-store``): the inbox's are
    decrypted deliveries, and every other answer says what the user may see."""
    data = body.encode("utf-8") if isinstance(body, str) else jsontext.compact_bytes(body)
    return Response(
        data, status_code=status, media_type=TAXII_MEDIA_TYPE, headers={**(headers or {}), "Cache-Control": "no-store"}
    )


def _error(e: TaxiiError) -> Response:
    return _taxii(
        {"title": e.title, "description": e.description, "http_status": str(e.status)}, e.status, e.headers or None
    )


class _PlainPaths:
    """Answer a path holding a control character (a percent-encoded CR or LF, say) with a TAXII
    404 before routing: no TAXII resource is named so, and a route's pattern would take a final
    line feed for the end of the path (``/taxii2/%0a`` would be discovery). The path is not
    echoed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _CONTROL.search(scope["path"]):
            found = TaxiiError(404, "Not Found", "no TAXII resource has a control character in its path")
            await _error(found)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _accepts_taxii(request: Request) -> None:
    """TAXII 2.1 §1.6.8: the TAXII media type, with no version or version 2.1, or any type
    (``*/*``, ``application/*``); anything else is 406. A request without Accept accepts
    anything (RFC 9110 §12.5.1)."""
    header = request.headers.get("accept")
    if header is None:
        return
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        mtype = parts[0].lower()
        params = _media_params(parts[1:])
        if _weight(params.get("q", "1")) <= 0:
            continue
        if mtype in ("*/*", "application/*"):
            return
        if mtype == "application/taxii+json" and params.get("version", "2.1") == "2.1":
            return
    raise TaxiiError(406, "Not Acceptable", f"this server answers {TAXII_MEDIA_TYPE}; the Accept header allows none")


def _media_params(raw: Sequence[str]) -> dict[str, str]:
    """A media type's parameters: names in any case, values as tokens or quoted strings
    (``version="2.1"`` is ``version=2.1``, RFC 9110 §5.6.6)."""
    params: dict[str, str] = {}
    for p in raw:
        name, sep, value = p.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[name.strip().lower()] = value
    return params


def _weight(q: str) -> float:
    """A ``q`` weight (RFC 9110 §12.4.2); one that is not a number counts as 1, as if absent."""
    try:
        return float(q)
    except ValueError:
        return 1.0


def _content_is_taxii(request: Request) -> None:
    header = request.headers.get("content-type", "")
    parts = [p.strip() for p in header.split(";")]
    params = _media_params(parts[1:])
    if parts[0].lower() != "application/taxii+json" or params.get("version", "2.1") != "2.1":
        raise TaxiiError(415, "Unsupported Media Type", f"POST an envelope as {TAXII_MEDIA_TYPE}")


def _principal(service: TaxiiService, request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ") if len(header) <= MAX_AUTHORIZATION else ("", "", "")
    who: Principal | None = None
    if scheme.lower() == "basic":
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
            sep = ""
        if sep:
            try:
                who = service.auth.basic(user, password, client=request.client.host if request.client else "unknown")
            except Throttled as e:  # the console's answer (RFC 6585 §4), as a TAXII error message
                raise TaxiiError(
                    429,
                    "Too Many Requests",
                    f"too many failed logins for this user or from this address: try again in {e.retry_after} seconds",
                    {"Retry-After": str(e.retry_after)},
                ) from None
    elif scheme.lower() in ("bearer", "token"):
        who = service.auth.bearer(value.strip())
    if who is None:
        raise TaxiiError(
            401,
            "Unauthorized",
            "give a node user's credentials (HTTP Basic) or a bearer token",
            {"WWW-Authenticate": _REALM},
        )
    return who


def _dates(page: Page) -> dict[str, str]:
    if not page.rows:
        return {}
    return {
        "X-TAXII-Date-Added-First": from_us(page.rows[0].date_added),
        "X-TAXII-Date-Added-Last": from_us(page.rows[-1].date_added),
    }


MAX_ENVELOPE_OBJECTS = 10_000
"""Objects one POSTed envelope may carry (a bulk feed posts several envelopes)."""


def _envelope(page: Page, digest: str, member: str = "objects", items: Sequence[str] | None = None) -> str:
    parts: list[str] = []
    if page.more:
        parts.append('"more":true')
        token = next_token(page, digest)
        if token:
            parts.append(f'"next":{json.dumps(token)}')
    elif page.rows:
        parts.append('"more":false')
    bodies = items if items is not None else [r.body for r in page.rows]
    if bodies:
        parts.append(f'"{member}":[' + ",".join(bodies) + "]")
    return "{" + ",".join(parts) + "}"


def _require_identifiers(objs: Sequence[object]) -> None:
    """Every object of a POSTed envelope has a STIX identifier of its type: the status resource
    names each object it reports on by one (TAXII 2.1 §4.3.1, status-details ``id``), so an
    object without one could be reported on by no conforming status. All or nothing.

    Raises:
        TaxiiError: 422 naming the first object without one.
    """
    for i, o in enumerate(objs):
        why = identifier_problem(o)
        if why is not None:
            raise TaxiiError(
                422,
                "Unprocessable Entity",
                f"object {i} of the envelope {why}: give every object the STIX id of its type; nothing was sent",
            )


def _with_topic(q: Query, c: Collection) -> Query:
    return Query(
        after_us=q.after_us,
        limit=q.limit,
        ids=q.ids,
        types=q.types,
        spec_versions=q.spec_versions,
        versions=q.versions,
        topic_prefix=c.topic_prefix,
    )


class _Routes:
    """The handlers of the TAXII endpoints, over one service."""

    def __init__(self, service: TaxiiService, root_url: str) -> None:
        self.service = service
        self.root_url = root_url

    async def guard(self, request: Request) -> Principal:
        _accepts_taxii(request)
        return await run_in_threadpool(_principal, self.service, request)

    def collection_for(self, key: str) -> Collection:
        c = self.service.collection(key)
        if c is None:
            raise TaxiiError(404, "Not Found", f"no collection {key!r}")
        return c

    def readable(self, key: str, who: Principal) -> Collection:
        c = self.collection_for(key)
        if not c.resource(who)["can_read"]:
            raise TaxiiError(403, "Forbidden", f"the collection {c.alias} cannot be read (can_read is false)")
        return c

    def query(self, request: Request, allowed: frozenset[str], *, all_versions: bool = False) -> tuple[Query, str]:
        try:
            return parse_query(
                list(request.query_params.multi_items()),
                allowed=allowed,
                max_page=self.service.settings.max_page,
                versions_default_all=all_versions,
            )
        except (BadQuery, InvalidInput) as e:
            raise TaxiiError(400, "Bad Request", str(e)) from e

    async def discovery(self, request: Request) -> Response:
        await self.guard(request)
        s = self.service.settings
        body: dict[str, Any] = {
            "title": s.title or f"gsomia node {s.party}",
            "description": f"{s.party}'s gsomia node: STIX 2.1 over TAXII 2.1, national markings carried "
            f"({extension_definition()['id']}).",
            "default": self.root_url,
            "api_roots": [self.root_url],
        }
        if s.contact:
            body["contact"] = s.contact
        return _taxii(body)

    async def api_root(self, request: Request) -> Response:
        await self.guard(request)
        return _taxii(
            {
                "title": f"{self.service.settings.party} node",
                "description": "The party's inbox (what it received) and outbox (what it sends).",
                "versions": [TAXII_MEDIA_TYPE],
                "max_content_length": self.service.settings.max_content_length,
            }
        )

    async def status(self, request: Request, status_id: str) -> Response:
        who = await self.guard(request)
        found = await run_in_threadpool(self.service.store.status, status_id)
        # Another user's status is not found, as if it did not exist (§4.3: 404 "or the client
        # does not have access"); an admin sees every one.
        if found is None or (found[0] != who.username and not who.at_least("admin")):
            raise TaxiiError(404, "Not Found", f"no status {status_id!r}")
        return _taxii(found[1])

    async def collections(self, request: Request) -> Response:
        who = await self.guard(request)
        return _taxii({"collections": [c.resource(who) for c in self.service.collections]})

    async def collection(self, request: Request, cid: str) -> Response:
        who = await self.guard(request)
        return _taxii(self.collection_for(cid).resource(who))

    async def manifest(self, request: Request, cid: str) -> Response:
        who = await self.guard(request)
        c = self.readable(cid, who)
        q, digest = self.query(request, _OBJECT_FILTERS)
        page = await run_in_threadpool(self.service.store.page, c.base, _with_topic(q, c))
        records = [
            json.dumps(
                {
                    "id": r.stix_id,
                    "date_added": from_us(r.date_added),
                    "version": r.version,
                    "media_type": "application/stix+json;version=2.1",
                }
            )
            for r in page.rows
        ]
        return _taxii(_envelope(page, digest, items=records), headers=_dates(page))

    async def objects(self, request: Request, cid: str) -> Response:
        who = await self.guard(request)
        c = self.collection_for(cid)
        if request.method == "POST":
            return await self.add_objects(request, c, who)
        c = self.readable(cid, who)
        q, digest = self.query(request, _OBJECT_FILTERS)
        page = await run_in_threadpool(self.service.store.page, c.base, _with_topic(q, c))
        return _taxii(_envelope(page, digest), headers=_dates(page))

    async def add_objects(self, request: Request, c: Collection, who: Principal) -> Response:
        if not c.resource(who)["can_write"]:
            raise TaxiiError(403, "Forbidden", f"the collection {c.alias} cannot be written (can_write is false)")
        _content_is_taxii(request)
        limit = self.service.settings.max_content_length
        declared = request.headers.get("content-length")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise TaxiiError(413, "Payload Too Large", f"the envelope is over max_content_length ({limit} bytes)")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise TaxiiError(413, "Payload Too Large", f"the envelope is over max_content_length ({limit} bytes)")
        try:
            envelope = jsontext.parse(bytes(raw), unique=True)
        except ValueError as e:
            raise TaxiiError(422, "Unprocessable Entity", f"the body is not a JSON envelope: {e}") from e
        objs = envelope.get("objects") if isinstance(envelope, dict) else None
        if not isinstance(objs, list) or not objs:
            raise TaxiiError(422, "Unprocessable Entity", "an envelope carries a non-empty list of objects")
        if len(objs) > MAX_ENVELOPE_OBJECTS:
            # within max_content_length, a quarter of a million empty objects: each gets its
            # line in the status resource, which would be kept at seven times the request's size
            raise TaxiiError(
                413,
                "Payload Too Large",
                f"an envelope carries at most {MAX_ENVELOPE_OBJECTS} objects ({len(objs)} given): post them in several",
            )
        _require_identifiers(objs)
        # RFC 7240: "Prefer: respond-async" answers at once with the pending status; otherwise
        # the POST answers when its reports are decided (or after the configured wait).
        prefer = request.headers.get("prefer", "").replace(" ", "").lower()
        wait = "respond-async" not in prefer.split(",")
        body = await run_in_threadpool(self.service.outbox.accept, objs, owner=who.username, wait=wait)
        return _taxii(body, 202)

    async def one_object(self, request: Request, cid: str, object_id: str) -> Response:
        who = await self.guard(request)
        c = self.collection_for(cid)
        if request.method == "DELETE":
            # §5.7 needs both can_read and can_write; no collection of the node has both: what a
            # party received stays as it was received (Art. 21.4), and what it sent is sent.
            raise TaxiiError(403, "Forbidden", f"objects cannot be deleted from {c.alias}")
        c = self.readable(cid, who)
        q, digest = self.query(request, frozenset({"version", "spec_version"}))
        await self._exists(c, object_id)
        q = Query(
            after_us=q.after_us,
            limit=q.limit,
            ids=(object_id,),
            spec_versions=q.spec_versions,
            versions=q.versions,
            topic_prefix=c.topic_prefix,
        )
        page = await run_in_threadpool(self.service.store.page, c.base, q)
        if not page.rows:
            # Versions are there, none that the filters (the last by default, added_after) name
            # in this view: TAXII 2.1 §5.6 answers 404, never 200 with nothing.
            raise TaxiiError(404, "Not Found", f"no version of {object_id!r} in {c.alias} matches the filters")
        return _taxii(_envelope(page, digest), headers=_dates(page))

    async def versions(self, request: Request, cid: str, object_id: str) -> Response:
        who = await self.guard(request)
        c = self.readable(cid, who)
        q, digest = self.query(request, frozenset({"spec_version"}), all_versions=True)
        await self._exists(c, object_id)
        q = Query(
            after_us=q.after_us,
            limit=q.limit,
            ids=(object_id,),
            spec_versions=q.spec_versions,
            versions=VersionFilter(last=False, all=True),
            topic_prefix=c.topic_prefix,
        )
        page = await run_in_threadpool(self.service.store.page, c.base, q)
        return _taxii(
            _envelope(page, digest, "versions", [json.dumps(r.version) for r in page.rows]), headers=_dates(page)
        )

    async def _exists(self, c: Collection, object_id: str) -> None:
        store = self.service.store
        if not await run_in_threadpool(store.has_object, c.base, object_id, topic_prefix=c.topic_prefix):
            raise TaxiiError(404, "Not Found", f"no object {object_id!r} in {c.alias}")


def create_taxii_app(service: TaxiiService, *, prefix: str = "/taxii2") -> FastAPI:
    """The TAXII 2.1 application, to be mounted at ``prefix`` on the node."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="gsomia TAXII 2.1")
    app.add_middleware(_PlainPaths)
    routes = _Routes(service, f"{prefix}/{API_ROOT}/")

    @app.exception_handler(TaxiiError)
    async def _taxii_error(_: Request, e: TaxiiError) -> Response:
        return _error(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, e: StarletteHTTPException) -> Response:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(e.status_code, "Error")
        headers = dict(e.headers or {})
        return _error(TaxiiError(e.status_code, title, str(e.detail), headers))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception) -> Response:
        # A bug still answers as TAXII does (an error message in the TAXII media type), not
        # as Starlette's text/plain; the traceback goes to the node's log.
        return _error(TaxiiError(500, "Internal Server Error", "an unexpected error; the node's log has the details"))

    @app.exception_handler(StorageError)
    async def _storage_error(_: Request, e: StorageError) -> Response:
        return _error(
            TaxiiError(503, "Service Unavailable", "the node's store failed; nothing was changed", {"Retry-After": "5"})
        )

    collection = f"/{API_ROOT}/collections/{{cid}}"
    table: list[tuple[str, list[str], Callable[..., Any]]] = [
        ("/", ["GET"], routes.discovery),
        (f"/{API_ROOT}/", ["GET"], routes.api_root),
        (f"/{API_ROOT}/status/{{status_id}}/", ["GET"], routes.status),
        (f"/{API_ROOT}/collections/", ["GET"], routes.collections),
        (f"{collection}/", ["GET"], routes.collection),
        (f"{collection}/manifest/", ["GET"], routes.manifest),
        (f"{collection}/objects/", ["GET", "POST"], routes.objects),
        (f"{collection}/objects/{{object_id}}/", ["GET", "DELETE"], routes.one_object),
        (f"{collection}/objects/{{object_id}}/versions/", ["GET"], routes.versions),
    ]
    for path, listed, handler in table:
        # HEAD wherever GET is (RFC 9110 §9.3.2): the same status and headers, no body.
        methods = [*listed, "HEAD"] if "GET" in listed else listed
        app.add_api_route(path, handler, methods=methods, include_in_schema=False)
        # Also without the trailing slash: clients build some URLs without it (taxii2-client's
        # status URL).
        if path.endswith("/") and len(path) > 1:
            app.add_api_route(path.rstrip("/"), handler, methods=methods, include_in_schema=False)
    return app
