"""What route handlers share: the application, the authenticated caller, the ledger reader.

Who may do what is decided by :func:`gsomia.services.exchange.access.authorize`, which every
exchange service calls; route handlers never branch on roles themselves. The bearer scheme
declared here is what ``/openapi.json`` names as the security of every protected route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gsomia.bootstrap import App
from gsomia.services.exchange.access import Action, Principal, authorize, ledger_party

__all__ = ["BEARER", "Caller", "LedgerScope", "app_of", "ledger_reader", "ledger_scope", "principal"]

BEARER = HTTPBearer(
    scheme_name="bearer",
    description="An API token from 'gsomia principals add' (party, operator or auditor): "
    "'Authorization: Bearer gsm_…'.",
    auto_error=False,
)
"""The bearer scheme (RFC 6750). Missing or bad credentials are answered by the service's own
401 problem, so the scheme never answers for itself (``auto_error=False``)."""


def app_of(request: Request) -> App:
    """The application the server was built around."""
    app: App = request.app.state.gsomia
    return app


async def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Principal:
    """The authenticated caller.

    Raises:
        NotAuthenticated: no bearer token, or an unknown or revoked one (HTTP 401).
    """
    token = credentials.credentials.strip() if credentials is not None else None
    return app_of(request).exchange.identity.authenticate(token or None)


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


async def ledger_scope(caller: Annotated[Principal, Depends(ledger_reader)]) -> str | None:
    """Whose ledger entries the caller may read: a party only those about it (its reports,
    deliveries, consents, incidents, and the public ones); auditors and operators every entry
    (metadata only: the ledger never holds a payload).

    Raises:
        NotAuthenticated: no valid token.
        NotPermitted: the role may not read the ledger.
    """
    return ledger_party(caller)


LedgerScope = Annotated[str | None, Depends(ledger_scope)]
"""A route parameter: the party whose entries the caller may read, or None for all."""
