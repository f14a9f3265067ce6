"""Transactions with as few round trips as possible, and ``batch()`` spanning calls.

Connections are in autocommit mode, so a store call that is one statement (or one
string of statements, which PostgreSQL runs as one implicit transaction) costs one
round trip. A call that must read, decide in Python, then write (``update_run``) sends
``BEGIN`` with its first statement and ``COMMIT`` with its last: two round trips.

Inside :meth:`Sessions.batch` every call of the thread uses the batch's connection and
transaction instead (re-entrant: a nested batch joins the outer one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg2  # type: ignore[import-untyped,unused-ignore]
import psycopg2.extensions  # type: ignore[import-untyped,unused-ignore]

from devcrew_core.errors import StoreError
from devcrew_core.forks import generation
from devcrew_postgres.connection import ConnectionPool
from devcrew_postgres.kept import KeptConnections

T = TypeVar("T")
Row = tuple[Any, ...]

#: How often a call outside a batch is retried when PostgreSQL rolled it back to break a
#: deadlock or a serialization conflict (the whole call was undone, so a retry is safe).
RETRIES = 5

#: Deadlock and serialization failure: a fast statement reports either (it changed
#: nothing), but neither should ever happen to one (see sql/004_plain_fast_paths.sql).
_NEVER_EXPECTED = frozenset({"40P01", "40001"})
logger = logging.getLogger("devcrew.postgres")
_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE

#: Taken by every batch and held until it commits, so batches run one at a time, as
#: SQLite's BEGIN IMMEDIATE makes them: a batch locks agents in the order its caller
#: chooses, and two such batches in parallel could deadlock. 'log' too, up front: every
#: transaction takes 'log' before any row lock (see sql/001_initial.sql), and a batch
#: may append audit records after it has locked agents.
BATCH_LOCKS = "SELECT devcrew_lock('batch'); SELECT devcrew_lock('log')"


class Prepared:
    """A statement the server parses and plans once per connection (``PREPARE``), then
    runs by name (``EXECUTE``): for the hot calls, whose cost is otherwise as much the
    parsing and planning of the call as the work of the function it calls.

    ``body`` refers to its parameters as ``$1``..``$n``, typed by ``types``. A prepared
    statement belongs to its server session and outlives a rolled-back transaction, so
    the connection remembers it until the connection is closed.
    """

    __slots__ = ("execute", "name", "opening", "prepare")

    def __init__(self, name: str, types: Sequence[str], body: str) -> None:
        self.name = name
        self.prepare = f"PREPARE {name} ({', '.join(types)}) AS {body}"
        self.execute = f"EXECUTE {name} ({', '.join(['%s'] * len(types))})"
        #: What precedes arguments written as literals (``Sessions.fast``).
        self.opening = f"EXECUTE {name} ("

    def prepare_on(self, cursor: Any) -> None:
        """Prepare the statement on the cursor's connection unless it has been."""
        prepared: set[str] = cursor.connection.prepared
        if self.name not in prepared:
            cursor.execute(self.prepare)
            prepared.add(self.name)


class Transaction:
    """The statements of one store call. Outside a batch, ``begin=True`` on the first
    statement and ``commit=True`` on the last make it one transaction with no extra
    round trip; inside a batch they are no-ops (the batch commits)."""

    def __init__(self, cursor: Any, own: bool) -> None:
        self._cursor = cursor
        self._own = own
        self._open = False

    def query(self, sql: str, params: Sequence[Any] = (), *, begin: bool = False,
              commit: bool = False) -> list[Row]:
        """Run ``sql`` (one or more statements) and return the rows of the last one."""
        if self._own and begin and not self._open:
            sql = f"BEGIN; {sql}"
            self._open = True
        if self._own and commit and self._open:
            sql = f"{sql}; COMMIT"
            self._open = False
        self._cursor.execute(sql, params)
        if self._cursor.description is None:
            return []
        rows: list[Row] = self._cursor.fetchall()
        return rows

    def call(self, statement: Prepared, params: Sequence[Any]) -> list[Row]:
        """Run a prepared statement (preparing it first on a connection that has not),
        as one statement of its own: no ``begin``/``commit`` handling."""
        statement.prepare_on(self._cursor)
        return self.query(statement.execute, params)

    def finish(self) -> None:
        """Commit a transaction opened with ``begin=True`` that had no last statement."""
        if self._open:
            self._cursor.execute("COMMIT")
            self._open = False


class Sessions:
    """Runs store calls on pooled connections, or on the current thread's batch."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._local = threading.local()
        self._kept = KeptConnections(pool)
        # Batches open in this process: with none (the common case) a call need not
        # look up its thread's batch. Changed under the lock; read without it (a thread
        # counts its own batch before its calls read the count).
        self._batches = 0
        self._batches_lock = threading.Lock()
        self._batches_generation = generation()

    def _batch_cursor(self) -> Any | None:
        cursor = getattr(self._local, "cursor", None)
        # A batch belongs to the process that opened it (a forked child starts fresh).
        if cursor is not None and self._local.pid == os.getpid():
            return cursor
        return None

    def in_batch(self) -> bool:
        """Whether the current thread's calls run inside a batch's transaction."""
        return self._batches > 0 and self._batch_cursor() is not None

    def fast(self, statement: Prepared, arguments: str, fallback: frozenset[str]) -> int:
        """Run ``EXECUTE statement (arguments)`` on the connection the thread keeps
        (``devcrew_postgres.kept``) or a pooled one, as a transaction of its own (never
        inside a batch: see :meth:`in_batch`), preparing it first on a connection that
        has not. ``arguments`` are literals the caller wrote and checked (see
        ``devcrew_postgres.fastpaths``). Returns the statement's row count, or -1 when
        the server refused it with a SQLSTATE in ``fallback`` (it changed nothing)."""
        conn = self._kept.take()
        if conn is None:
            return self._fast_on_pooled(statement, arguments, fallback)
        # The path of every fast pair: no finally, the checks only when it failed.
        try:
            cursor = conn.calls
            if statement.name not in conn.prepared:
                statement.prepare_on(cursor)
            cursor.execute(f"{statement.opening}{arguments})")
        except BaseException as exc:
            if conn.get_transaction_status() != _IDLE:
                self._kept.drop()  # the pool checks it (and rolls back what is open)
            if isinstance(exc, psycopg2.Error):
                return self._fast_failed(statement, exc, fallback)
            raise
        count: int = cursor.rowcount
        return count

    def _fast_on_pooled(self, statement: Prepared, arguments: str,
                        fallback: frozenset[str]) -> int:
        """:meth:`fast` on a connection from the pool (the thread keeps none)."""
        pool = self._pool
        conn = pool.acquire()
        try:
            cursor = conn.calls
            statement.prepare_on(cursor)
            cursor.execute(f"{statement.opening}{arguments})")
            count: int = cursor.rowcount
            return count
        except psycopg2.Error as exc:
            return self._fast_failed(statement, exc, fallback)
        finally:
            pool.release(conn)

    def _fast_failed(self, statement: Prepared, exc: psycopg2.Error,
                     fallback: frozenset[str]) -> int:
        """-1 for a SQLSTATE in ``fallback`` (the statement changed nothing); else the
        error as a :class:`StoreError`."""
        if exc.pgcode not in fallback:
            raise self._pool.query_error(exc) from None
        if exc.pgcode in _NEVER_EXPECTED:
            # The fast statements' lock order should make these impossible: say so
            # rather than let the fallback hide a broken order.
            logger.warning("PostgreSQL %s: %s rolled back (%s); the general function "
                           "decides", self._pool.masked_url, statement.name, exc.pgcode)
        return -1

    def close(self) -> None:
        """Close the pool; the calling thread's kept connection first (other threads'
        go back at their next call or when they end)."""
        self._kept.drop()
        self._pool.close()

    def run(self, work: Callable[[Transaction], T]) -> T:
        """Run one store call: ``work`` gets a :class:`Transaction`; PostgreSQL errors
        become :class:`StoreError`."""
        cursor = self._batch_cursor()
        if cursor is not None:
            try:
                return work(Transaction(cursor, own=False))
            except psycopg2.Error as exc:
                raise self._pool.query_error(exc) from None
        pool = self._pool
        attempt = 0
        while True:
            conn = pool.acquire()
            try:
                return work(Transaction(conn.calls, own=True))
            except psycopg2.extensions.TransactionRollbackError as exc:
                if attempt == RETRIES:
                    raise pool.query_error(exc) from None
            except psycopg2.Error as exc:
                raise pool.query_error(exc) from None
            finally:
                pool.release(conn)
            attempt += 1

    def _count_batch(self, change: int) -> None:
        if self._batches_generation != generation():
            # A forked child: the parent's batches are not open here, and another
            # thread may have held the lock at the fork.
            self._batches_lock = threading.Lock()
            self._batches = 0
            self._batches_generation = generation()
        with self._batches_lock:
            self._batches += change

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every call the current thread makes inside the block:
        committed at its end, rolled back if the block raises."""
        if self._batch_cursor() is not None:
            yield
            return
        with self._pool.connection() as conn:
            cur = conn.calls
            try:
                cur.execute(f"BEGIN; {BATCH_LOCKS}")
            except psycopg2.Error as exc:
                raise self._pool.query_error(exc) from None
            self._local.cursor, self._local.pid = cur, os.getpid()
            self._count_batch(1)
            try:
                yield
            finally:
                # On an exception the connection's return to the pool rolls back.
                self._local.cursor = None
                self._count_batch(-1)
            try:
                cur.execute("COMMIT")
            except psycopg2.Error as exc:
                raise self._pool.query_error(exc) from None
            # PostgreSQL answers COMMIT of a transaction in which a statement failed
            # with a rollback, not an error: a caller that caught that failure inside
            # the block must still learn that nothing of the batch was kept.
            if cur.statusmessage != "COMMIT":
                raise StoreError(
                    f"PostgreSQL {self._pool.masked_url}: the batch was rolled back "
                    "because a statement in it failed"
                )
