"""A database URL as the product shows it: in banners, ``/healthz``, ``/api/v1/scenario``, the
impact report and error messages.

What an operator needs to recognise the database stays (backend, user, host, port, database,
connection options such as ``sslmode``); every secret is masked as ``***``: the password of
``user:password@``, and any query parameter that carries one or points to one (libpq's
``password``, ``sslpassword``, ``passfile``, ``sslkey``; any name with ``pass``, ``key``,
``secret``, ``token`` or ``credential`` in it, in any case).

A password may hold any character once percent-encoded (``%40`` for ``@``); one typed as it is
may hold ``@``, ``/``, ``#`` or spaces, and a URL parser then reads part of it as the host.
Such text is masked by pattern, from the user name's ``:`` to the last ``@``: never a piece of
the password, at worst more than it.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["MASK", "hosts_in_query", "masked_text", "masked_url", "unencoded_at"]

MASK = "***"
_SECRET = re.compile(r"pass|key|secret|token|credential", re.IGNORECASE)
# for text that does not parse as a URL: user:password@ (to the last @) and name=value pairs of secret names
_USERINFO = re.compile(r"(://[^/:?#\s]*):.*@", re.DOTALL)
_PAIR = re.compile(r"([?&;\s])([^=&;\s]*(?:pass|key|secret|token|credential)[^=&;\s]*)=[^&;\s]*", re.IGNORECASE)


def masked_url(url: str | URL) -> str:
    """``url`` with its password and every secret query parameter shown as ``***``; text that is
    not a URL SQLAlchemy can parse, or that it parses with an ``@`` in the host (a password
    holding ``@`` as it is), is masked by pattern (``user:password@``, ``password=…``)."""
    if isinstance(url, URL):
        parsed = url
    else:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            return _masked_by_pattern(url)
    if "@" in (parsed.host or ""):
        return _masked_by_pattern(url if isinstance(url, str) else parsed.render_as_string(hide_password=True))
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


def _masked_by_pattern(text: str) -> str:
    return _PAIR.sub(rf"\1\2={MASK}", _USERINFO.sub(rf"\1:{MASK}@", text))


def unencoded_at(url: str) -> bool:
    """Whether the user name or password of ``url`` holds ``@`` as it is (not as ``%40``): its
    authority has several ``@``. The authority ends at the query, which starts at the first
    ``?`` after a ``/``: an ``@`` in a query value (``?application_name=ops@host``) does not
    count, one in a password that also holds ``/`` and ``?`` in that order may be missed. A URL
    without an authority (``sqlite:///PATH``) has none: its path may hold any ``@``."""
    rest = url.partition("://")[2]
    if rest.startswith("/"):
        return False
    path = rest.find("/")
    query = rest.find("?", path) if path >= 0 else -1
    return (rest[:query] if query >= 0 else rest).count("@") > 1


def hosts_in_query(url: str) -> str:
    """``url`` with the several hosts libpq's URI form lists in its authority
    (``postgresql://u:p@h1:5432,[::1]:5433/db``, libpq's multi-host fail-over) moved to the
    query, in a form SQLAlchemy reads (``postgresql://u:p@/db?host=h1,::1&port=5432,5433``), in
    the same order and before the URL's own query; a host without a port gets an empty one
    (libpq's default). Any other URL is returned as it is."""
    scheme, sep, rest = url.partition("://")
    if not sep or rest.startswith("/"):
        return url
    ends = [i for i in (rest.find("/"), rest.find("?")) if i >= 0]
    end = min(ends) if ends else len(rest)
    userinfo, at, hosts = rest[:end].rpartition("@")
    if "," not in hosts:
        return url
    pairs = [_host_and_port(entry) for entry in hosts.split(",")]
    params = ["host=" + ",".join(host for host, _ in pairs)]
    if any(port for _, port in pairs):
        params.append("port=" + ",".join(port for _, port in pairs))
    path, _, query = rest[end:].partition("?")
    return f"{scheme}://{userinfo}{at}{path or '/'}?{'&'.join(params + ([query] if query else []))}"


def _host_and_port(entry: str) -> tuple[str, str]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` as (host, port or "")."""
    if entry.startswith("["):
        host, _, after = entry[1:].partition("]")
        return host, after.removeprefix(":")
    host, _, port = entry.partition(":")
    return host, port


def masked_text(text: str, url: str | URL) -> str:
    """``text`` (a driver's error message, say) with every secret of the database URL ``url``
    shown as ``***``, as given and percent-decoded, and any ``user:password@`` or
    ``password=…`` in it masked by pattern."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _masked_by_pattern(" " + text)[1:]


def _secrets(url: str | URL) -> set[str]:
    """The password and the values of the secret query parameters of ``url``, as written and
    decoded; for text, also what follows the user name's ``:`` up to the last ``@``."""
    found: set[str] = set()
    if isinstance(url, str):
        raw = re.match(r"[^:]*://[^/:?#\s]*:(.*)@", url, re.DOTALL)
        if raw is not None:
            found |= {raw.group(1), unquote(raw.group(1))}
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            return found - {""}
    else:
        parsed = url
    if parsed.password:
        found.add(str(parsed.password))
    for name, given in parsed.query.items():
        if _SECRET.search(name):
            values = (given,) if isinstance(given, str) else given
            found |= set(values) | {quote(value) for value in values}
    return found - {""}
