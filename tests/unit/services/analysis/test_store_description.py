"""The database as the product shows it (``/api/v1/scenario``'s ``database``, ``/healthz``, the
impact report, the ``serve`` banner): every secret of its URL masked, what an operator needs to
recognise it (backend, user, host, database, connection options) kept."""

from __future__ import annotations

import pytest

from gsomia.storage.store import Store
from gsomia.storage.urls import masked_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://gsomia:s3cret@db.example/gsomia", "postgresql://gsomia:***@db.example/gsomia"),
        (
            "postgresql://gsomia@db.example/gsomia?password=s3cret&sslmode=verify-full",
            "postgresql://gsomia@db.example/gsomia?password=***&sslmode=verify-full",
        ),
        (
            "postgresql://gsomia@db.example:5433/gsomia?sslpassword=s3cret&sslkey=/keys/client.key"
            "&passfile=/home/op/.pgpass&application_name=gsomia",
            "postgresql://gsomia@db.example:5433/gsomia?application_name=gsomia"
            "&passfile=***&sslkey=***&sslpassword=***",
        ),
        (
            "postgresql://gsomia@db.example/gsomia?PASSWORD=s3cret",
            "postgresql://gsomia@db.example/gsomia?PASSWORD=***",
        ),
        ("sqlite:////var/lib/gsomia/gsomia.db", "sqlite:////var/lib/gsomia/gsomia.db"),
    ],
)
def test_every_secret_of_a_database_url_is_masked(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_a_url_that_does_not_parse_is_masked_too() -> None:
    shown = masked_url("post gres://gsomia:s3cret@db.example/g?password=s3cret&sslmode=require")
    assert "s3cret" not in shown and "sslmode=require" in shown and "db.example" in shown


def test_the_store_describes_its_database_without_a_password_in_the_query(db_url: str) -> None:
    sep = "&" if "?" in db_url else "?"
    secret = "s3cret-in-the-query"
    # SQLite hands unknown options to the URI filename only with uri=true: an application name
    # is harmless there, a password is not used (but must not be shown either)
    extra = f"application_name=gsomia&password={secret}" if db_url.startswith("postgresql") else "timeout=5"
    store = Store(f"{db_url}{sep}{extra}")
    try:
        shown = store.describe()
    finally:
        store.close()
    assert secret not in shown
    if db_url.startswith("postgresql"):
        assert "password=***" in shown and "application_name=gsomia" in shown
    else:
        assert shown.endswith("gsomia.db?timeout=5")
