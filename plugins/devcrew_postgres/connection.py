"""Connections to PostgreSQL: URL to libpq parameters, a fork-safe pool, clear errors.

The URL is handed to libpq as written (``postgresql://user:pass@host:port/db?opt=...``,
any libpq URI parameter works), with ``settings.postgres_password`` added when the URL
carries no password. Messages name the URL with its password masked, never the secret.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg2  # type: ignore[import-untyped,unused-ignore]
import psycopg2.extensions  # type: ignore[import-untyped,unused-ignore]

from devcrew_core.config import MASK, mask_url
from devcrew_core.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from devcrew_core.config import Settings

#: Used when the URL sets no ``connect_timeout``: an unreachable host fails in seconds,
#: not after the operating system's TCP timeout of minutes.
CONNECT_TIMEOUT_S = 10
SCHEMES = ("postgresql", "postgres")
#: The password of ``scheme://user:password@host...`` exactly as written in the URL.
_RAW_PASSWORD = re.compile(r"://[^:/@]*:([^@]*)@")


class Redactor:
    """Removes a connection's password from text: libpq quotes the URL, or a piece of
    its password, in some of its messages."""

    def __init__(self, url: str, *passwords: str | None) -> None:
        self._url = url
        self._masked = mask_url(url)
        found = _RAW_PASSWORD.search(url)
        candidates = [found.group(1) if found else None, *passwords]
        # Longest first, so a password containing another is replaced whole.
        self._secrets = sorted({p for p in candidates if p}, key=len, reverse=True)

    def clean(self, text: str) -> str:
        """``text`` with the URL masked and every known form of the password removed."""
        text = text.replace(self._url, self._masked)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def reason(self, exc: BaseException) -> str:
        """The first line of an error's message, cleaned."""
        text = str(exc).strip()
        return self.clean(text.splitlines()[0]) if text else type(exc).__name__


def connect_parameters(url: str, settings: Settings | None) -> dict[str, Any]:
    """Keyword arguments for ``psycopg2.connect``: the URL itself as ``dsn``, plus the
    password from settings and defaults for what the URL leaves unset. Raises
    :class:`ConfigError` for a URL libpq cannot parse."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(
            f"not a PostgreSQL URL: {mask_url(url)!r} "
            "(expected postgresql://user:password@host:port/database)"
        )
    try:
        given = psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError as exc:
        reason = Redactor(url).reason(exc)
        raise ConfigError(f"invalid PostgreSQL URL {mask_url(url)!r}: {reason}") from None
    params: dict[str, Any] = {"dsn": url}
    secret = settings.postgres_password if settings is not None else None
    if "password" not in given and secret is not None:
        params["password"] = secret.get_secret_value()
    if "connect_timeout" not in given:
        params["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in given:
        params["application_name"] = "devcrew"
    params["connection_factory"] = Connection
    return params


def connect_error(exc: psycopg2.Error, masked_url: str, redactor: Redactor) -> StoreError:
    """A :class:`StoreError` saying why a connection to ``masked_url`` failed, with the
    fix where there is an obvious one."""
    reason = redactor.reason(exc)
    lowered = str(exc).lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        hint = "; check the user and password (in the URL or POSTGRES_PASSWORD)"
    elif "does not exist" in lowered and "database" in lowered:
        hint = "; create the database first (e.g. `createdb NAME`) or fix its name in the URL"
    elif any(text in lowered for text in ("connection refused", "could not connect",
                                          "timeout expired", "could not translate host")):
        hint = "; is the server running and reachable at that host and port?"
    else:
        hint = ""
    return StoreError(f"cannot connect to PostgreSQL at {masked_url}: {reason}{hint}")


class Connection(psycopg2.extensions.connection):  # type: ignore[misc,unused-ignore]
    """A psycopg2 connection with the cursor its calls reuse and the names of the
    statements it has prepared on its server session (see
    :class:`devcrew_postgres.sessions.Prepared`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: set[str] = set()
        self.calls: Any = None
        #: The process that opened it: only that one may use or close it.
        self.owner = os.getpid()


#: Pools of live stores, so a forked child can let go of them (see _detach_in_child).
_POOLS: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()
#: Serialises the second guard against a fork (a pool, or its kept connections,
#: noticing a new process id).
FORK_GUARD = threading.Lock()


class ConnectionPool:
    """A bounded, fork-safe pool of autocommit connections to one database.

    Callers block (rather than fail) while ``maxconn`` connections are in use. The idle
    connection used last is handed out first. A process forked from the one that
    opened the pool never touches the parent's connections: it opens its own on first
    use.

    Plain Python around one lock: handing a connection out and taking it back are on
    the path of every call, so they do as little as they can (psycopg2's pool, with a
    semaphore in front of it for the waiting, cost several times as much).
    """

    def __init__(self, url: str, settings: Settings | None) -> None:
        self.masked_url = mask_url(url)
        self._params = connect_parameters(url, settings)
        # The password as libpq decodes it from the URL, and as settings give it.
        given = psycopg2.extensions.parse_dsn(url).get("password")
        self._redactor = Redactor(url, given, self._params.get("password"))
        self._minconn = settings.postgres_minconn if settings is not None else 1
        self._maxconn = settings.postgres_maxconn if settings is not None else 10
        self._maxconn = max(self._maxconn, self._minconn)
        #: Whether :meth:`close` was called (read on the path of every fast statement:
        #: a plain attribute, not a property).
        self.closed = False
        self._reset_state()
        self._open()
        _POOLS.add(self)

    @property
    def maxconn(self) -> int:
        """How many connections the pool opens at most."""
        return self._maxconn

    def _reset_state(self) -> None:
        """A fresh, empty pool for this process."""
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._idle: list[Connection] = []
        self._count = 0  # connections open, idle or handed out
        self._waiting = 0  # callers waiting in acquire for a connection
        self._pid = os.getpid()

    def _open(self) -> None:
        """Open ``minconn`` connections now, so a bad URL fails at once."""
        with self._lock:
            self._count += self._minconn
        opened: list[Connection] = []
        try:
            for _ in range(self._minconn):
                opened.append(self._connect())
        except BaseException:
            for conn in opened:
                with contextlib.suppress(psycopg2.Error):
                    conn.close()
            with self._lock:
                self._count -= self._minconn
            raise
        with self._lock:
            self._idle.extend(opened)

    def _connect(self) -> Connection:
        try:
            conn: Connection = psycopg2.connect(**self._params)
        except psycopg2.Error as exc:
            raise connect_error(exc, self.masked_url, self._redactor) from None
        try:
            # Autocommit: a single statement is its own transaction (one round trip, no
            # separate BEGIN/COMMIT); multi-statement transactions say BEGIN themselves.
            conn.autocommit = True
            # READ COMMITTED whatever the server's default: the invariants lock the
            # agent row and then need each later statement to see what the previous
            # lock holder committed.
            conn.calls = conn.cursor()
            conn.calls.execute("SET default_transaction_isolation = 'read committed'")
        except psycopg2.Error as exc:
            with contextlib.suppress(psycopg2.Error):
                conn.close()
            raise connect_error(exc, self.masked_url, self._redactor) from None
        return conn

    def acquire(self) -> Connection:
        """A connection for one call (or one batch); give it back with :meth:`release`.
        Waits while ``maxconn`` are handed out."""
        if self._pid != os.getpid():
            with FORK_GUARD:
                if self._pid != os.getpid():
                    self.forget_inherited()
        with self._lock:
            while True:
                if self.closed:
                    raise StoreError(f"PostgreSQL store {self.masked_url} is closed")
                if self._idle:
                    return self._idle.pop()
                if self._count < self._maxconn:
                    self._count += 1
                    break
                self._waiting += 1
                try:
                    self._freed.wait()
                finally:
                    self._waiting -= 1
        try:
            return self._connect()
        except BaseException:
            with self._lock:
                self._count -= 1
                self._freed.notify()
            raise

    def release(self, conn: Connection) -> None:
        """Take a connection back, outside any transaction; a broken one is closed
        instead (the next call opens a fresh one)."""
        if conn.owner != os.getpid():
            return  # a parent's connection, inherited by a fork: never touched
        healthy = _reset(conn)
        with self._lock:
            if healthy and not self.closed:
                self._idle.append(conn)
            else:
                self._count -= 1
                healthy = False
            if self._waiting:  # counted under this lock: none, none to wake
                self._freed.notify()
            if healthy:
                return
        with contextlib.suppress(psycopg2.Error):
            conn.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for the duration of the block (see :meth:`acquire`)."""
        conn = self.acquire()
        try:
            yield conn
        finally:
            self.release(conn)

    def query_error(self, exc: BaseException) -> StoreError:
        """A :class:`StoreError` for a statement PostgreSQL refused, or a lost connection."""
        return StoreError(f"PostgreSQL {self.masked_url}: {self._redactor.reason(exc)}")

    def forget_inherited(self) -> None:
        """In a forked child: drop the parent's connections and the lock another thread
        may have held at the fork; the next call opens this process's own connection.

        The parent's connections are left alone, never closed: their sockets are shared
        with the parent, and closing one would end the parent's session. (psycopg2 does
        not close a connection that is garbage-collected in another process.)
        """
        self._reset_state()

    def close(self) -> None:
        """Close every idle connection now, and each one handed out when it comes back.
        Safe to call twice."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._freed.notify_all()
        for conn in idle:
            if conn.owner == os.getpid():
                with contextlib.suppress(psycopg2.Error):
                    conn.close()


def _reset(conn: Any) -> bool:
    """End a transaction an interrupted call left open; False if the connection is
    unusable."""
    if conn.closed:
        return False
    # get_transaction_status(): conn.info builds an object at every access.
    status = conn.get_transaction_status()
    if status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        return True
    if status == psycopg2.extensions.TRANSACTION_STATUS_UNKNOWN:
        return False
    try:
        conn.calls.execute("ROLLBACK")
    except psycopg2.Error:
        return False
    return True


def _detach_in_child() -> None:
    # Right after a fork, before any code of the child can touch a parent's pool.
    for pool in list(_POOLS):
        pool.forget_inherited()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_detach_in_child)
