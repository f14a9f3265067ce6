"""A pooled connection kept by each thread for the store's hot commands.

redis-py's client checks a connection out of the pool and back in around every
command, and the checkout polls the socket for stray data: about 20 us of CPU per
command on the machines we measured, a third of a loopback round trip. The hot paths
(delegate, complete, allocate, release: one script each) instead send on a connection
the calling thread keeps between calls.

Rules that keep this safe:

* at most half the pool (at least one connection) is ever kept, so threads beyond
  that, and every other command, still find free connections; those threads check a
  connection out per command, as redis-py does;
* a kept connection goes back to the pool when its thread ends (its ``threading.local``
  holder is collected) and is dropped, never used, in a forked child;
* a connection whose reply was not read to the end (a timeout, a broken socket, an
  interrupt) is disconnected before anyone can read a stale reply from it; it
  reconnects on its next use. Nothing is retried: a script whose reply was lost may
  have run.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from redis import exceptions as rex
from redis.connection import Connection, ConnectionPool

# The process generation, bumped in a forked child: comparing it is cheaper than a
# system call (os.getpid) on every command.
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class _Holder:
    """A thread's kept connection; returned to the pool when collected."""

    def __init__(self, pool: ConnectionPool, connection: Connection,
                 on_release: Any) -> None:
        self.connection = connection
        self.generation = _generation
        self.finalizer = weakref.finalize(self, on_release, pool, connection)


class PinnedConnections:
    """Send commands on a connection the calling thread keeps (see the module doc)."""

    def __init__(self, pool: ConnectionPool, pool_size: int) -> None:
        self._pool = pool
        self._local = threading.local()
        self._limit = max(1, pool_size // 2)
        self._kept = 0
        self._lock = threading.Lock()

    @property
    def kept(self) -> int:
        """How many connections threads keep now."""
        return self._kept

    def execute(self, *args: Any) -> Any:
        """Send one command and read its reply, like ``Redis.execute_command`` without
        response callbacks (scripts' replies need none)."""
        holder: _Holder | None = getattr(self._local, "holder", None)
        if holder is not None and holder.generation != _generation:
            # A forked child: the socket belongs to the parent process. Forget it
            # without sending anything on it or handing it to the child's pool.
            holder.finalizer.detach()
            self._local.holder = holder = None
        if holder is None:
            holder = self._keep()
            if holder is None:  # enough connections are kept: borrow one
                connection = self._pool.get_connection()
                try:
                    return self._round_trip(connection, args)
                finally:
                    self._pool.release(connection)
        return self._round_trip(holder.connection, args)

    @staticmethod
    def _round_trip(connection: Connection, args: tuple[Any, ...]) -> Any:
        try:
            connection.send_command(*args)  # type: ignore[no-untyped-call]
            return connection.read_response()
        except rex.ResponseError:
            raise  # the whole reply was read: the connection is in a clean state
        except BaseException:
            # A reply may still be on its way: never read it.
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise

    def _keep(self) -> _Holder | None:
        with self._lock:
            if self._kept >= self._limit:
                return None
            self._kept += 1
        try:
            connection = self._pool.get_connection()
        except BaseException:
            with self._lock:
                self._kept -= 1
            raise
        holder = _Holder(self._pool, connection, self._give_back)
        self._local.holder = holder
        return holder

    def _give_back(self, pool: ConnectionPool, connection: Connection) -> None:
        with self._lock:
            self._kept -= 1
        if connection.pid == os.getpid():
            pool.release(connection)

    def release_mine(self) -> None:
        """Give the calling thread's connection back to the pool now."""
        holder: _Holder | None = getattr(self._local, "holder", None)
        if holder is not None:
            self._local.holder = None
            holder.finalizer()
