"""Writing a run's transitions, audit records and events in batches (group commit).

Everything is queued in memory and flushed by one background coroutine. While a flush
is in flight new items accumulate and go out together in the next batch, so a burst of
10,000 transitions costs a handful of transactions, not 10,000. Queue order is kept: a
state is never written before one queued earlier, so a dependant's ``running`` can never
reach the store without its dependency's ``completed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from devcrew_core.stores.base import Store
from devcrew_core.stores.records import AuditRecord, Event, TaskState

T = TypeVar("T")


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
        self._wakeup.set()

    def audit(self, record: AuditRecord) -> None:
        """Queue an audit record."""
        self._audit.append(record)
        self._wakeup.set()

    def event(self, event: Event) -> None:
        """Queue a system event."""
        self._events.append(event)
        self._wakeup.set()

    async def wait(self, timeout: float) -> None:
        """Sleep until something is queued or ``timeout`` passes.

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
            states, self._states = list(self._states.values()), {}
            audit, self._audit = self._audit, []
            events, self._events = self._events, []
            if self._audit_store is self._state_store:
                if states or audit or events:
                    await call_store(self._state_store, self._state_store.write_batch,
                                     states, audit, events)
            else:
                if states or events:
                    await call_store(self._state_store, self._state_store.write_batch,
                                     states, [], events)
                if audit:
                    await call_store(self._audit_store, self._audit_store.append_audit, audit)
            if states or audit or events:
                self.batches += 1
