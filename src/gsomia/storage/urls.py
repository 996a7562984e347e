"""A database URL as the product shows it: in banners, ``/healthz``, ``/api/v1/scenario``, the
impact report and error messages.

What an operator needs to recognise the database stays (backend, user, host, port, database,
connection options such as ``sslmode``); every secret is masked as ``***``: the password of
``user:password@``, and any query parameter that carries one or points to one (libpq's
``password``, ``sslpassword``, ``passfile``, ``sslkey``; any name with ``pass``, ``key``,
``secret``, ``token`` or ``credential`` in it, in any case).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["masked_url"]

MASK = "***"
_SECRET = re.compile(r"pass|key|secret|token|credential", re.IGNORECASE)
# for text that does not parse as a URL: user:password@ and name=value pairs of secret names
_USERINFO = re.compile(r"(://[^/:@?#\s]*):[^@/?#\s]*@")
_PAIR = re.compile(r"([?&;\s])([^=&;\s]*(?:pass|key|secret|token|credential)[^=&;\s]*)=[^&;\s]*", re.IGNORECASE)


def masked_url(url: str | URL) -> str:
    """``url`` with its password and every secret query parameter shown as ``***``; text that is
    not a URL SQLAlchemy can parse is masked by pattern (``user:password@``, ``password=…``)."""
    if isinstance(url, URL):
        parsed = url
    else:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            return _PAIR.sub(rf"\1\2={MASK}", _USERINFO.sub(rf"\1:{MASK}@", url))
    base = parsed.set(query={}).render_as_string(hide_password=True)
    if not parsed.query:
        return base
    pairs = []
    for name in sorted(parsed.query):
        given = parsed.query[name]
        for value in (given,) if isinstance(given, str) else given:
            shown = MASK if _SECRET.search(name) else quote(value, safe="/:,.-_~")
            pairs.append(f"{quote(name, safe='_-.')}={shown}")
    return base + "?" + "&".join(pairs)
