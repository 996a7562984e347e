"""The one dependency that resolves the caller: ``Authorization: Bearer TOKEN`` → a principal.

What the principal may do is decided by :func:`gsomia.services.exchange.access.authorize`, which every
exchange service calls; route handlers never branch on roles themselves.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gsomia.bootstrap import App
from gsomia.services.exchange.access import Action, Principal, authorize


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def principal(request: Request) -> Principal:
    """The authenticated caller.

    Raises:
        NotAuthenticated: no bearer token, or an unknown or revoked one (HTTP 401).
    """
    app: App = request.app.state.gsomia
    return app.exchange.identity.authenticate(_bearer(request))


Caller = Annotated[Principal, Depends(principal)]
"""A route parameter that is the authenticated caller."""


async def ledger_reader(caller: Caller) -> Principal:
    """A caller allowed to read the ledger (party, operator or auditor).

    Raises:
        NotAuthenticated: no valid token.
        NotPermitted: the role may not read the ledger.
    """
    authorize(caller, Action.READ_LEDGER)
    return caller
