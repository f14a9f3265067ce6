"""The PostgreSQL schema: packaged ``sql/NNN_name.sql`` files applied in order at open.

All pending steps run in one transaction that first takes an advisory lock keyed by the
schema, so processes opening a fresh database at the same moment apply each step exactly
once (the others wait, then find the work done), and a failed step leaves the previous
version intact (PostgreSQL DDL is transactional). Applied versions are recorded in
``devcrew_schema_version``.
"""

from __future__ import annotations

import contextlib
from importlib import resources
from typing import Any

import psycopg2  # type: ignore[import-untyped,unused-ignore]

from devcrew_core.errors import StoreError

_PACKAGE = "devcrew_postgres.sql"
#: First half of every advisory lock key this backend takes ("devc"); the second half
#: is the hash of the schema, so devcrew installations in two schemas of one database
#: never wait for each other.
LOCK_CLASS = 0x64657663
MIGRATION_LOCK = f"pg_advisory_xact_lock({LOCK_CLASS}, hashtext('migrate.' || current_schema()))"

_PREPARE = (
    f"BEGIN; SELECT {MIGRATION_LOCK}; "  # noqa: S608 - constants only
    "CREATE TABLE IF NOT EXISTS devcrew_schema_version ("
    " version integer PRIMARY KEY,"
    " applied_at timestamptz NOT NULL DEFAULT now()); "
    "SELECT coalesce(max(version), 0) FROM devcrew_schema_version"
)


def migrations() -> list[tuple[int, str]]:
    """The packaged schema migrations as (version, SQL), in order."""
    found = []
    for entry in resources.files(_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: Any, masked_url: str) -> int:
    """Bring the schema of ``conn`` (an autocommit connection) to the latest version;
    return that version. Raises :class:`StoreError` for a schema newer than this
    devcrew, or a failed step (nothing of it is kept)."""
    steps = migrations()
    latest = steps[-1][0]
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT current_schema()")
            row = cur.fetchone()
            if row is None or row[0] is None:
                raise StoreError(
                    f"PostgreSQL {masked_url}: no schema to create tables in (the "
                    "search_path names no existing schema); create it or fix the URL's "
                    "options=-csearch_path=..."
                )
            cur.execute(_PREPARE)
            fetched = cur.fetchone()
            version = int(fetched[0]) if fetched is not None else 0
            if version > latest:
                raise StoreError(
                    f"PostgreSQL {masked_url} has schema version {version}, newer than "
                    f"this devcrew understands ({latest}); upgrade devcrew"
                )
            for number, sql in steps:
                if number > version:
                    _apply(cur, number, sql, masked_url)
            cur.execute("COMMIT")
        except BaseException as exc:
            if not conn.closed:
                with contextlib.suppress(psycopg2.Error):
                    cur.execute("ROLLBACK")
            if isinstance(exc, psycopg2.Error):
                raise StoreError(
                    f"PostgreSQL {masked_url}: cannot check the schema version: {_reason(exc)}"
                ) from None
            raise
        return latest


def _apply(cur: Any, number: int, sql: str, masked_url: str) -> None:
    try:
        cur.execute(sql)
        cur.execute("INSERT INTO devcrew_schema_version (version) VALUES (%s)", (number,))
    except psycopg2.Error as exc:
        raise StoreError(
            f"PostgreSQL {masked_url}: schema migration {number} failed: {_reason(exc)}"
        ) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
