"""Writing a run's transitions, audit records and events in batches (group commit).

Everything is queued in memory and written either with the run's next load-slot batch
(:meth:`TransitionWriter.flush_now`, the same store transaction as the slot changes),
or by the run's watcher coroutine every poll interval, or as soon as
:data:`FLUSH_AT` items are waiting. While a flush is in flight new items accumulate and
go out together in the next batch, so a burst of 10,000 transitions costs a handful of
transactions, not 10,000. Queue order is kept: a state is never written before one
queued earlier, so a dependant's ``running`` can never reach the store without its
dependency's ``completed``.

Durability is that of group commit: a process killed between a transition and its
flush loses at most that last batch, and resuming the run re-runs the affected tasks
(delivery is at-least-once; runners get an idempotency key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from devcrew_core.stores.base import Store
from devcrew_core.stores.records import AuditRecord, Event, TaskState

T = TypeVar("T")

#: Queued items (states, audit records, events) that wake the watcher for a flush
#: before its poll interval is up.
FLUSH_AT = 512


async def call_store(store: Store, method: Callable[..., T], *args: Any) -> T:
    """Call a store method without blocking the event loop on a blocking backend."""
    if store.blocking:
        return await asyncio.to_thread(method, *args)
    return method(*args)


class TransitionWriter:
    """Queues task states, audit records and events; flushes them in batches."""

    def __init__(self, state_store: Store, audit_store: Store) -> None:
        self._state_store = state_store
        self._audit_store = audit_store
        self._states: dict[str, TaskState] = {}
        self._audit: list[AuditRecord] = []
        self._events: list[Event] = []
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self.batches = 0

    def record(self, state: TaskState) -> None:
        """Queue the latest state of one task (a later state replaces an unflushed one)."""
        self._states[state.task_id] = state
        self._queued()

    def audit(self, record: AuditRecord) -> None:
        """Queue an audit record."""
        self._audit.append(record)
        self._queued()

    def event(self, event: Event) -> None:
        """Queue a system event."""
        self._events.append(event)
        self._queued()

    def _queued(self) -> None:
        if len(self._states) + len(self._audit) + len(self._events) >= FLUSH_AT:
            self._wakeup.set()

    def flush_now(self) -> bool:
        """Write what is queued synchronously, inside the caller's store batch; False
        (nothing written) while an asynchronous flush is in flight, whose successor will
        take the queue, so the order of writes is kept."""
        if self._lock.locked():
            return False
        states, audit, events = self._take()
        self._write(states, audit, events)
        return True

    def _take(self) -> tuple[list[TaskState], list[AuditRecord], list[Event]]:
        states, self._states = list(self._states.values()), {}
        audit, self._audit = self._audit, []
        events, self._events = self._events, []
        return states, audit, events

    def _write(self, states: list[TaskState], audit: list[AuditRecord],
               events: list[Event]) -> None:
        if self._audit_store is self._state_store:
            if states or audit or events:
                self._state_store.write_batch(states, audit, events)
        else:
            if states or events:
                self._state_store.write_batch(states, [], events)
            if audit:
                self._audit_store.append_audit(audit)
        if states or audit or events:
            self.batches += 1

    async def wait(self, timeout: float) -> None:
        """Sleep until :data:`FLUSH_AT` items are queued, :meth:`wake` is called, or
        ``timeout`` passes.

        ``asyncio.wait`` rather than ``wait_for``: on Python 3.11, ``wait_for`` can lose a
        cancellation that races with its own timeout and then never return.
        """
        waiter = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()

    def wake(self) -> None:
        """Wake a waiting :meth:`wait` now."""
        self._wakeup.set()

    async def flush(self) -> None:
        """Write everything queued so far: states first, then audit records and events.

        The write is shielded: a caller cancelled mid-flush (the run's watcher, when the
        run ends) must not drop the batch it took, nor let a later flush overtake it.
        """
        await asyncio.shield(self._flush())

    async def _flush(self) -> None:
        async with self._lock:
            self._wakeup.clear()
            states, audit, events = self._take()
            if not (states or audit or events):
                return
            if self._state_store.blocking or self._audit_store.blocking:
                await asyncio.to_thread(self._write, states, audit, events)
            else:
                self._write(states, audit, events)
