"""Connections that threads keep for the fast statements (``Sessions.fast``).

A thread that allocates and releases in a loop would otherwise take a connection from
the pool and give it back twice per pair; with several threads, that Python (a lock, a
health check, a wake-up) is paid under the GIL they share, and measured on two vCPUs at
4 and 8 client threads a connection kept per thread raised allocate + release pairs by
~0.07 of the benchmark's floor (docs/performance.md, "PostgreSQL schema 5").

Rules that keep the pool fair and nothing leaked:

* At most half the pool's connections are kept at once; a thread past that takes one
  from the pool per statement, as before.
* A kept connection goes back to the pool when its thread ends (its thread-local entry
  goes, and with it the :class:`_Kept` holding it), when a statement on it fails (the
  pool then checks it), when the store is closed (the closing thread's at once, any
  other thread's at its next call), and never in another process (a forked child keeps
  its own, the pool's fork rules apply).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from devcrew_core.forks import generation
from devcrew_postgres.connection import FORK_GUARD, ConnectionPool


class _Kept:
    """One thread's kept connection; gives it back when the thread's locals go."""

    __slots__ = ("conn", "generation", "keeper")

    def __init__(self, keeper: KeptConnections, conn: Any) -> None:
        self.keeper = keeper
        self.conn = conn
        #: The process it was kept in (see devcrew_core.forks).
        self.generation = generation()

    def __del__(self) -> None:
        # A finalizer must not raise (at interpreter exit the pool may be half gone, and
        # module globals with it: no context manager here).
        try:  # noqa: SIM105 - contextlib may be gone already
            self.keeper.give_back(self.conn)
        except Exception:  # noqa: S110 - nothing to report to at that point
            pass


class KeptConnections:
    """The connections threads keep from ``pool`` for fast statements."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._local = threading.local()
        self._limit = pool.maxconn // 2
        self._reset()

    def _reset(self) -> None:
        self._guard = threading.Lock()
        self._count = 0
        self._pid = os.getpid()
        self._generation = generation()

    def take(self) -> Any | None:
        """The current thread's kept connection (kept now if none is and the limit
        allows), or None: then the caller uses the pool."""
        kept: _Kept | None = getattr(self._local, "kept", None)
        # On the path of every fast statement: kept in this process, still open.
        if (kept is not None and kept.generation == generation() and not self._pool.closed
                and not kept.conn.closed):
            return kept.conn
        return self._keep()

    def _keep(self) -> Any | None:
        if self._generation != generation():  # cheaper than os.getpid() per call
            with FORK_GUARD:  # not self._guard: another thread may have held it at the fork
                if self._generation != generation():
                    self._reset()  # a forked child: the parent's are not counted here
        # Gone (given back at close, or broken), or a parent's (left alone, see
        # give_back): forgotten.
        self._local.kept = None
        if self._count >= self._limit or self._pool.closed:
            return None
        with self._guard:
            if self._count >= self._limit:
                return None
            self._count += 1
        try:
            conn = self._pool.acquire()
        except BaseException:
            with self._guard:
                self._count -= 1
            raise
        self._local.kept = _Kept(self, conn)
        return conn

    def drop(self) -> None:
        """Give the current thread's kept connection back to the pool (after a failed
        statement on it, or when the store closes)."""
        self._local.kept = None

    def give_back(self, conn: Any) -> None:
        """A kept connection back to the pool (not in another process: see module)."""
        if conn.owner != os.getpid() or conn.owner != self._pid:
            return
        with self._guard:
            self._count -= 1
        self._pool.release(conn)
