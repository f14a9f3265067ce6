"""A pooled connection kept by each thread for the store's hot commands.

redis-py's client checks a connection out of the pool and back in around every
command, and the checkout polls the socket for stray data: about 20 us of CPU per
command on the machines we measured, a third of a loopback round trip. The hot paths
(delegate, complete, allocate, release: one script each) instead send on a connection
the calling thread keeps between calls.

Rules that keep this safe:

* at most half the pool is ever kept (none when the pool has fewer than two
  connections), so threads beyond that, and every other command, still find free
  connections; those threads check a connection out per command, as redis-py does;
* a kept connection goes back to the pool when its thread ends or the store closes
  (its ``threading.local`` holder is collected); nothing of a forked parent's is used,
  released or counted in the child;
* a kept connection idle for a while is checked as the pool checks one it hands out
  (stray data or a connection the server closed: reconnect), so a server restart or an
  idle timeout does not fail the next call;
* a connection whose reply was not read to the end (a timeout, a broken socket, an
  interrupt) is disconnected before anyone can read a stale reply from it; it
  reconnects on its next use. Nothing is retried: a script whose reply was lost may
  have run.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from redis import exceptions as rex
from redis.connection import Connection, ConnectionPool

from devcrew_core.forks import generation

#: A kept connection unused for longer than this is checked before it is used again.
IDLE_CHECK_SECONDS = 1.0


class _Holder:
    """A thread's kept connection; given back (:func:`_give_back`) when collected."""

    def __init__(self, owner: PinnedConnections, connection: Connection,
                 epoch: object) -> None:
        self.connection = connection
        self.epoch = epoch
        self.last_used = time.monotonic()
        # Weak references only: a holder must not keep its store or its pool alive.
        weakref.finalize(self, _give_back, weakref.ref(owner), weakref.ref(owner.pool),
                         connection, epoch, generation())


def _give_back(owner_ref: weakref.ref[PinnedConnections],
               pool_ref: weakref.ref[ConnectionPool], connection: Connection,
               epoch: object, born: int) -> None:
    if born != generation():
        return  # a forked parent's connection: never touched in the child
    owner = owner_ref()
    if owner is not None:
        owner.forget(epoch)
    pool = pool_ref()
    if pool is None:
        connection.disconnect()  # type: ignore[no-untyped-call]
    else:
        pool.release(connection)


class PinnedConnections:
    """Send commands on a connection the calling thread keeps (see the module doc)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        # Half the pool, from the pool itself (a URL option may have changed its size).
        self._limit = max(0, int(getattr(pool, "max_connections", 0) or 0) // 2)
        self._reset()

    def _reset(self) -> None:
        """Fresh state: at first, and in a forked child (the parent's is not ours)."""
        self._generation = generation()
        self._lock = threading.Lock()
        self._epoch = object()
        self._kept = 0
        self._local = threading.local()

    @property
    def kept(self) -> int:
        """How many connections threads keep now."""
        return self._kept

    def forget(self, epoch: object) -> None:
        """Uncount a kept connection being given back (unless kept before the last
        :meth:`close`, which uncounted it)."""
        with self._lock:
            if epoch is self._epoch:
                self._kept -= 1

    def close(self) -> None:
        """Give every thread's kept connection back to the pool now."""
        with self._lock:
            self._epoch = object()
            self._kept = 0
        # Dropping the thread-local drops every thread's holder: each gives its
        # connection back.
        self._local = threading.local()

    def execute(self, *args: Any) -> Any:
        """Send one command and read its reply, like ``Redis.execute_command`` without
        response callbacks (scripts' replies need none)."""
        if self._generation != generation():
            self._reset()  # a forked child: start over, touching nothing of the parent's
        holder: _Holder | None = getattr(self._local, "holder", None)
        if holder is None or holder.epoch is not self._epoch:
            holder = self._keep()
            if holder is None:  # enough connections are kept: borrow one
                connection = self.pool.get_connection()
                try:
                    return _round_trip(connection, args)
                finally:
                    self.pool.release(connection)
        now = time.monotonic()
        if now - holder.last_used > IDLE_CHECK_SECONDS:
            _check_idle(holder.connection)
        holder.last_used = now
        return _round_trip(holder.connection, args)

    def _keep(self) -> _Holder | None:
        with self._lock:
            if self._kept >= self._limit:
                return None
            self._kept += 1
            epoch = self._epoch
        try:
            connection = self.pool.get_connection()
        except BaseException:
            self.forget(epoch)
            raise
        holder = _Holder(self, connection, epoch)
        self._local.holder = holder
        return holder


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


def _check_idle(connection: Connection) -> None:
    """What the pool does to a connection it hands out: anything readable on an idle
    connection (stray data, or the end of a connection the server closed) means it
    cannot be used as it is; it is disconnected and reconnects when sent to."""
    try:
        if connection.can_read():
            raise rex.ConnectionError("an idle connection had data or was closed")
    except (rex.ConnectionError, rex.TimeoutError, OSError):
        connection.disconnect()  # type: ignore[no-untyped-call]
