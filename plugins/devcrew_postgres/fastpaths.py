"""The one-statement fast paths of allocate and release (schema version 4).

Each is a plain prepared statement that locks the agent's totals row first (its UPDATE,
in a ``WITH``) and then inserts or deletes the task's row; ``sql/004_plain_fast_paths.sql``
explains the locking, and when the store falls back to the general PL/pgSQL functions:

* :data:`FAST_ALLOCATE` inserts nothing when the allocation does not fit, the agent has
  reservations to look at, or is unknown (row count 0); a task that has a row already
  makes it fail with ``unique_violation`` (everything rolled back).
* :data:`FAST_RELEASE` releases an allocation this store granted, given all its fields:
  it fails with SQLSTATE ``DC001`` (everything rolled back) unless the task's row still
  holds exactly those fields and the slot the allocation took.

The statements' arguments are written into the ``EXECUTE`` as literals by
:func:`allocate_arguments` and :func:`release_arguments` rather than interpolated by
psycopg2: on this path psycopg2's adaptation of ten parameters cost more client CPU than
the rest of the call, and with several threads that CPU is spent under the GIL. Only
values that cannot carry SQL are written: IDs that are exactly ``str`` and match
``devcrew_core.ids``'s alphabet (letters, digits, ``.``, ``_``, ``-``; no quote or
backslash), floats that are exactly ``float`` and finite, as Python writes them (``1.5``,
``1e-05``), integers and booleans. Anything else (a ``str`` or ``float`` subclass, which
could format itself as anything, an infinite amount, a reservation to redeem) is not for
the fast path, and the caller uses the general function, with psycopg2's parameters.
"""

from __future__ import annotations

import math

from devcrew_core.ids import ID_PATTERN
from devcrew_core.stores.records import Allocation
from devcrew_postgres.sessions import Prepared

#: SQLSTATEs after which a fast statement changed nothing and the general function
#: decides: the task has a row already, the row is not the granted allocation, and
#: (never expected: every fast statement locks the totals row first) a deadlock.
FALLBACK_STATES = frozenset({"23505", "DC001", "40P01", "40001"})

FAST_ALLOCATE = Prepared(
    "devcrew_fast_allocate4",
    ("text", "text", "float8", "numeric", "numeric", "numeric", "numeric", "float8",
     "integer", "boolean"),
    "WITH totals AS ("
    " UPDATE agent_totals SET load = load + 1, allocations = allocations + 1,"
    "  alloc_cpu = alloc_cpu + $4, alloc_memory = alloc_memory + $5,"
    "  alloc_disk = alloc_disk + $6, alloc_network = alloc_network + $7"
    " WHERE agent_id = $1 AND load < max_tasks"
    "  AND $3 >= resv_swept_at AND (resv_next_expiry IS NULL OR resv_next_expiry > $3)"
    "  AND (limit_cpu IS NULL OR alloc_cpu + resv_cpu + $4 <= limit_cpu + 1e-9)"
    "  AND (limit_memory IS NULL OR alloc_memory + resv_memory + $5 <= limit_memory + 1e-9)"
    "  AND (limit_disk IS NULL OR alloc_disk + resv_disk + $6 <= limit_disk + 1e-9)"
    "  AND (limit_network IS NULL"
    "       OR alloc_network + resv_network + $7 <= limit_network + 1e-9)"
    " RETURNING 1) "
    "INSERT INTO holdings (agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb,"
    " disk_mb, network_mbps, priority, preemptable, holds_slot) "
    "SELECT $1, $2, $3, $8, $4, $5, $6, $7, $9, $10, true FROM totals",
)

FAST_RELEASE = Prepared(
    "devcrew_fast_release4",
    ("text", "text", "float8", "numeric", "numeric", "numeric", "numeric", "integer",
     "boolean"),
    "WITH totals AS ("
    " UPDATE agent_totals SET load = load - 1, allocations = allocations - 1,"
    "  alloc_cpu = alloc_cpu - $4, alloc_memory = alloc_memory - $5,"
    "  alloc_disk = alloc_disk - $6, alloc_network = alloc_network - $7"
    " WHERE agent_id = $1 RETURNING 1), "
    "gone AS ("
    " DELETE FROM holdings h USING totals"
    " WHERE h.agent_id = $1 AND h.task_id = $2 AND h.created_at = $3"
    "  AND h.slot_at IS NOT NULL AND h.holds_slot AND h.reservation_id IS NULL"
    "  AND h.cpu_cores = $4 AND h.memory_mb = $5 AND h.disk_mb = $6"
    "  AND h.network_mbps = $7 AND h.priority = $8 AND h.preemptable = $9"
    " RETURNING 1) "
    "SELECT CASE WHEN count(*) = 1 THEN true ELSE devcrew_fast_path_mismatch() END "
    "FROM gone",
)

_finite = math.isfinite
_number = float.__repr__


def _id(value: str) -> str | None:
    """``value`` if it can be written into a statement as it is, else None. Exactly
    ``str`` (a subclass could format itself as anything) and an ID (the store validated
    it already; checked again because it is written into the statement)."""
    if type(value) is not str:
        return None
    if ID_PATTERN.fullmatch(value) is None:
        raise ValueError(f"not an ID: {value!r}")
    return value


def _numbers(*values: object) -> list[str] | None:
    """``values`` as SQL literals if every one is a finite float, else None."""
    written = []
    for value in values:
        # Exactly float (not a subclass, whose repr could be anything, nor a string a
        # caller assigned to an unvalidated model): only then is repr a number literal.
        if type(value) is not float or not _finite(value):
            return None
        written.append(_number(value))
    return written


def allocate_arguments(allocation: Allocation, now: float) -> str | None:
    """The arguments of :data:`FAST_ALLOCATE` for ``allocation`` at ``now``, or None when
    it is not for the fast path (a reservation to redeem, an amount or time that is not
    a finite float)."""
    agent_id, task_id = _id(allocation.agent_id), _id(allocation.task_id)
    if allocation.reservation_id is not None or agent_id is None or task_id is None:
        return None
    numbers = _numbers(float(now), allocation.cpu_cores, allocation.memory_mb,
                       allocation.disk_mb, allocation.network_mbps, allocation.created_at)
    if numbers is None:
        return None
    at, cpu, memory, disk, network, created = numbers
    return (f"'{agent_id}', '{task_id}', {at}, {cpu}, "
            f"{memory}, {disk}, {network}, {created}, {int(allocation.priority)}, "
            f"{'true' if allocation.preemptable is True else 'false'}")


def release_arguments(granted: Allocation) -> str | None:
    """The arguments of :data:`FAST_RELEASE` for an allocation the fast allocate (or a
    general one with the same shape) granted, or None when it is not for the fast path
    (it holds no slot of its own, redeemed a reservation, or was changed by its holder
    to something the fast allocate never grants)."""
    agent_id, task_id = _id(granted.agent_id), _id(granted.task_id)
    if granted.holds_slot is not True or granted.reservation_id is not None \
            or agent_id is None or task_id is None:
        return None
    numbers = _numbers(granted.created_at, granted.cpu_cores, granted.memory_mb,
                       granted.disk_mb, granted.network_mbps)
    if numbers is None:
        return None
    created, cpu, memory, disk, network = numbers
    return (f"'{agent_id}', '{task_id}', {created}, {cpu}, "
            f"{memory}, {disk}, {network}, {int(granted.priority)}, "
            f"{'true' if granted.preemptable is True else 'false'}")


#: Bound of a store's :class:`HeldSlots` (cleared when full: an entry only saves a trip).
HELD_SLOTS_MAX = 8192


class HeldSlots:
    """The (agent, task) pairs this store saw take a load slot, until it sees the slot
    freed or handed on. An allocate for one of them (the engine allocates after its task
    took a slot) goes straight to the general function: the fast INSERT would fail on
    the task's row, costing a round trip and an ERROR line in the server's log. A hint
    only: a stale or missing entry (a slot another process took or freed) costs that
    round trip, never a wrong answer. Safe across threads (single set operations, under
    the GIL)."""

    def __init__(self) -> None:
        self._pairs: set[tuple[str, str]] = set()

    def add(self, agent_id: str, task_id: str) -> None:
        """Note that the task holds a slot on the agent."""
        if len(self._pairs) >= HELD_SLOTS_MAX:
            self._pairs.clear()
        self._pairs.add((agent_id, task_id))

    def discard(self, agent_id: str, task_id: str) -> None:
        """Note that the task's slot on the agent is gone."""
        self._pairs.discard((agent_id, task_id))

    def __contains__(self, pair: object) -> bool:
        return pair in self._pairs
