"""Each typed new row names exactly its table's columns (an autoincrement id aside), so a
column added to a table without its row builder, or the reverse, fails here first."""

from __future__ import annotations

from dataclasses import fields
from typing import get_args

import pytest

from gsomia.storage import exchange

ROW_TYPES = get_args(exchange.NewRow)


@pytest.mark.parametrize("row_type", ROW_TYPES, ids=lambda t: t.__name__)
def test_a_new_row_names_exactly_its_tables_columns(row_type: type[exchange._NewRow]) -> None:
    table = exchange._TABLES[row_type.TABLE]
    columns = {c.name for c in table.columns if not (c.primary_key and c.autoincrement is True)}
    assert {f.name for f in fields(row_type)} == columns


def test_every_exchange_table_has_a_row_builder() -> None:
    assert {t.TABLE for t in ROW_TYPES} == set(exchange._TABLES)
