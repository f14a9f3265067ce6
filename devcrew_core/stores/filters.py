"""A WHERE clause from optional filters, for the SQL backends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def where_clause(filters: Mapping[str, Any], placeholder: str) -> tuple[str, list[Any]]:
    """``(" WHERE a = ? AND b > ?", [1, 2])`` from the filters whose value is not None.

    Keys are column names chosen by the calling backend (never user input); a key may
    carry its operator (``"seq >"``), else ``=`` is used. Values are always bound
    parameters; ``placeholder`` is the driver's (``?`` for sqlite3, ``%s`` for psycopg2).
    """
    clauses, params = [], []
    for key, value in filters.items():
        if value is not None:
            clauses.append(f"{key} {placeholder}" if " " in key else f"{key} = {placeholder}")
            params.append(value)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params
