"""The one-statement fast paths of allocate and release (schema version 6).

Each is one prepared UPDATE of the agent's totals row, which holds the allocations the
fast allocate granted in its ``quick`` column (text: one entry per allocation) until
another call locks the agent; ``sql/005_quick_allocations.sql`` explains why and how the
other calls see them, ``sql/006_text_quick.sql`` the entries' format:

* :data:`FAST_ALLOCATE` adds the allocation to the totals and appends its entry to
  ``quick`` when it fits, the agent has no reservation to look at, and the task holds
  nothing on the agent; otherwise (or for an unknown agent) it updates nothing (row
  count 0).
* :data:`FAST_RELEASE` releases an allocation this store granted, given the same
  arguments as its allocate: it updates nothing (row count 0) unless ``quick`` holds
  exactly the entry that allocate appended.

A row count of 0 changes nothing, and the store calls the general PL/pgSQL function.

The arguments are written into the ``EXECUTE`` as literals by :func:`allocate_arguments`
(once per allocation: the release takes the allocate's) rather than interpolated by
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
from collections.abc import Mapping
from typing import Any

from devcrew_core.ids import ID_PATTERN
from devcrew_core.models.resources import Priority
from devcrew_postgres.sessions import Prepared

#: SQLSTATEs after which a fast statement changed nothing and the general function
#: decides: a deadlock or a serialization failure, never expected (a fast statement
#: locks one row).
FALLBACK_STATES = frozenset({"40P01", "40001"})

#: Both statements' parameters: agent, task, created_at, the four amounts, priority,
#: preemptable, ``now`` (the slot's time), then the task's entry in ``quick`` as text
#: (sql/006_text_quick.sql), written from the same values by :func:`allocate_arguments`.
_PARAMETER_TYPES = ("text", "text", "float8", "numeric", "numeric", "numeric", "numeric",
                    "integer", "boolean", "float8", "text")

FAST_ALLOCATE = Prepared(
    "devcrew_fast_allocate6",
    _PARAMETER_TYPES,
    "UPDATE agent_totals SET load = load + 1, allocations = allocations + 1,"
    " alloc_cpu = alloc_cpu + $4, alloc_memory = alloc_memory + $5,"
    " alloc_disk = alloc_disk + $6, alloc_network = alloc_network + $7,"
    " quick = quick || $11 "
    "WHERE agent_id = $1 AND load < max_tasks"
    " AND $10 >= resv_swept_at AND (resv_next_expiry IS NULL OR resv_next_expiry > $10)"
    " AND (limit_cpu IS NULL OR alloc_cpu + resv_cpu + $4 <= limit_cpu + 1e-9)"
    " AND (limit_memory IS NULL OR alloc_memory + resv_memory + $5 <= limit_memory + 1e-9)"
    " AND (limit_disk IS NULL OR alloc_disk + resv_disk + $6 <= limit_disk + 1e-9)"
    " AND (limit_network IS NULL"
    "      OR alloc_network + resv_network + $7 <= limit_network + 1e-9)"
    " AND strpos(quick, ';' || $2 || ',') = 0"
    # No `holdings` row for the agent at all, or none for the task as committed when
    # the function is called (see sql/005_quick_allocations.sql).
    " AND (held_rows = 0 OR devcrew_task_holds_nothing($1, $2))",
)

FAST_RELEASE = Prepared(
    "devcrew_fast_release6",
    _PARAMETER_TYPES,
    "UPDATE agent_totals SET load = load - 1, allocations = allocations - 1,"
    " alloc_cpu = alloc_cpu - $4, alloc_memory = alloc_memory - $5,"
    " alloc_disk = alloc_disk - $6, alloc_network = alloc_network - $7,"
    " quick = replace(quick, ';' || $11, ';') "
    "WHERE agent_id = $1 AND strpos(quick, ';' || $11) > 0",
)

_finite = math.isfinite
_match_id = ID_PATTERN.fullmatch
_float, _str, _bool, _Priority = float, str, bool, Priority

#: Bound of each of the caches below (cleared when full: an entry only saves formatting).
WRITTEN_MAX = 1024

#: Amounts, priority and preemptable -> their literals ("1.0, 64.0, 0.0, 0.0, 2, true"):
#: a crew allocates the same few sizes over and over, and formatting four floats was a
#: fifth of the Python of a fast pair. Keys are only ever made of exact floats, a
#: Priority and a bool, checked before the look-up (an equal key of a subclass could
#: not reach an entry: its type is refused first).
_AMOUNTS: dict[tuple[float, float, float, float, Priority, bool], str] = {}
#: Agent IDs that matched the ID alphabet -> their literal and separator ("'a-1', ").
_AGENTS: dict[str, str] = {}


def _write_amounts(key: tuple[float, float, float, float, Priority, bool]) -> str:
    """The literals of a key of :data:`_AMOUNTS`, remembered."""
    if len(_AMOUNTS) >= WRITTEN_MAX:
        _AMOUNTS.clear()
    cpu, memory, disk, network, priority, preemptable = key
    # Exact floats (checked by the caller) write their own repr: 1.5, 1e-05.
    written = _AMOUNTS[key] = (f"{cpu!r}, {memory!r}, {disk!r}, {network!r}, "
                               f"{int(priority)}, {'true' if preemptable else 'false'}")
    return written


def _write_agent(agent_id: str) -> str | None:
    """The literal of an agent ID (exactly a ``str``), remembered; None if it does not
    match the ID alphabet."""
    if _match_id(agent_id) is None:
        return None
    if len(_AGENTS) >= WRITTEN_MAX:
        _AGENTS.clear()
    written = _AGENTS[agent_id] = f"'{agent_id}', "
    return written


def allocate_arguments(fields: Mapping[str, Any], now: float) -> str | None:
    """The arguments of :data:`FAST_ALLOCATE` for the allocation whose fields (an
    ``Allocation``'s ``__dict__``) are ``fields``, at ``now``, which are also those
    of :data:`FAST_RELEASE` for the allocation it grants; None when it is not for the
    fast path (a reservation to redeem, an ID that is not exactly a ``str`` ID, an amount
    or time that is not a finite float, a priority that is not a :class:`Priority`)."""
    # On the path of every fast pair, under the GIL the client threads share: the
    # fields from the model's dict, exact types tested (see the module's docstring).
    agent_id, task_id = fields["agent_id"], fields["task_id"]
    created, cpu, memory = fields["created_at"], fields["cpu_cores"], fields["memory_mb"]
    disk, network = fields["disk_mb"], fields["network_mbps"]
    priority, preemptable = fields["priority"], fields["preemptable"]
    if type(now) is int:
        now = float(now)
    if (fields["reservation_id"] is not None
            or type(agent_id) is not _str or type(task_id) is not _str
            or type(created) is not _float or type(cpu) is not _float
            or type(memory) is not _float or type(disk) is not _float
            or type(network) is not _float or type(now) is not _float
            or type(priority) is not _Priority or type(preemptable) is not _bool
            # One sum says whether all are finite (inf and nan spread; a sum too large
            # to be finite only sends the call to the general function).
            or not _finite(created + cpu + memory + disk + network + now)
            or _match_id(task_id) is None):
        return None
    agent = _AGENTS.get(agent_id) or _write_agent(agent_id)
    if agent is None:
        return None
    key = (cpu, memory, disk, network, priority, preemptable)
    values = f"{created!r}, {_AMOUNTS.get(key) or _write_amounts(key)}, {now!r}"
    # The entry in `quick` is the same values after the task ID (sql/006_text_quick.sql).
    return f"{agent}'{task_id}', {values}, '{task_id}, {values};'"


#: Bound of a store's :class:`HeldSlots` (cleared when full: an entry only saves a trip).
HELD_SLOTS_MAX = 8192


class HeldSlots:
    """The (agent, task) pairs this store saw take a load slot, until it sees the slot
    freed or handed on. An allocate for one of them (the engine allocates after its task
    took a slot) goes straight to the general function: the fast statement would find
    the task's row and update nothing, a wasted round trip. A hint
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
