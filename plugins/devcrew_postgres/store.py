"""``postgresql://user:password@host:port/database``: the Store contract on PostgreSQL.

Every invariant is one transaction on the server: the slot, allocation and reservation
checks are PL/pgSQL functions (``sql/NNN_*.sql``), each one statement and one round
trip, and the common allocate and release are one plain prepared statement each
(``fastpaths.py``). A task's slot and allocation are one row of ``holdings``, an
agent's totals one narrow row of ``agent_totals``, which also holds the allocations the
fast allocate granted until another call locks the agent (readers see both through the
``all_holdings`` view): the fast allocate and release change the totals row only, and
never the wide ``agents`` row (``sql/003_holdings.sql``, ``sql/004_plain_fast_paths.sql``,
``sql/005_quick_allocations.sql`` and ``sql/006_text_quick.sql`` describe the rows and
the locking).
Read-modify-write updates lock the row with ``SELECT ... FOR UPDATE``. Statements are
parameterised, except the fast statements' literal arguments (checked IDs and finite
numbers only), and identifiers are validated before they reach the server."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from devcrew_core.errors import NotFoundError, StoreError
from devcrew_core.ids import validate_id, validate_optional_id
from devcrew_core.stores.base import (
    AGENT_MUTABLE_FIELDS,
    HANDOFF_MUTABLE_FIELDS,
    RUN_MUTABLE_FIELDS,
    Store,
    already_delegated,
    apply_changes,
)
from devcrew_core.stores.filters import where_clause
from devcrew_core.stores.granted import GrantedAllocations, holding_slot, stored_allocation
from devcrew_core.stores.records import (
    AgentRecord,
    Allocation,
    AuditRecord,
    DelegationRecord,
    DelegationStatus,
    Event,
    HandoffRecord,
    Reservation,
    RunRecord,
    SlotResult,
    TaskState,
    WaitRecord,
    WorkflowDefinition,
)
from devcrew_postgres.connection import ConnectionPool
from devcrew_postgres.fastpaths import (
    FALLBACK_STATES,
    FAST_ALLOCATE,
    FAST_RELEASE,
    HeldSlots,
    allocate_arguments,
)
from devcrew_postgres.migrations import migrate
from devcrew_postgres.sessions import Prepared, Row, Sessions, Transaction

if TYPE_CHECKING:
    from devcrew_core.config import Settings

_DERIVED = {"current_load", "running_tasks"}

#: Taken (until commit) by every transaction that appends audit records or events, so
#: sequence numbers become visible in the order they were drawn: a reader polling with
#: ``after=seq`` can never miss a row that commits late with a smaller seq.
_LOG_LOCK = "SELECT devcrew_lock('log')"

_AGENT_COLUMNS = (
    "agent_id, agent_type, capabilities, max_concurrent_tasks, limit_cpu_cores, "
    "limit_memory_mb, limit_disk_mb, limit_network_mbps, data"
)
_AGENT_VALUES = "%s, %s, %s::text[], %s, %s, %s, %s, %s, %s::jsonb"
_UPSERT_AGENT = (
    f"INSERT INTO agents ({_AGENT_COLUMNS}) VALUES ({_AGENT_VALUES}) "  # noqa: S608 - constants
    "ON CONFLICT (agent_id) DO UPDATE SET agent_type = excluded.agent_type, "
    "capabilities = excluded.capabilities, "
    "max_concurrent_tasks = excluded.max_concurrent_tasks, "
    "limit_cpu_cores = excluded.limit_cpu_cores, limit_memory_mb = excluded.limit_memory_mb, "
    "limit_disk_mb = excluded.limit_disk_mb, "
    "limit_network_mbps = excluded.limit_network_mbps, data = excluded.data"
)
_RUNNING_TASKS = (
    "ARRAY(SELECT h.task_id FROM all_holdings h WHERE h.agent_id = a.agent_id "
    "AND h.slot_at IS NOT NULL ORDER BY h.slot_at, h.task_id)"
)
#: An agent's load, from its narrow totals row (the agent row carries none).
_LOAD = "coalesce((SELECT t.load FROM agent_totals t WHERE t.agent_id = a.agent_id), 0)"
#: put_agent and update_agent lock the agent (its advisory lock and totals row) before
#: the agent row: their trigger writes the totals row (lock order: sql/003_holdings.sql).
_LOCK_TOTALS = "SELECT devcrew_lock_agent(%s)"
_READ_AGENT = (
    f"SELECT a.data::text, {_RUNNING_TASKS} FROM agents a WHERE a.agent_id = %s"  # noqa: S608
)
# Lock first, then read in a second statement, which sees the slots that the previous
# holder of the lock committed (the first statement's snapshot predates the wait).
_LOCK_AND_READ_AGENT = (
    f"{_LOCK_TOTALS}; "  # noqa: S608
    f"SELECT 1 FROM agents WHERE agent_id = %s FOR UPDATE; {_READ_AGENT}"
)
_ALLOCATE = Prepared(
    "devcrew_allocate3",
    ("text", "text", "text", "text[]", "float8", "numeric", "numeric", "numeric", "numeric",
     "float8", "integer", "boolean"),
    "SELECT * FROM devcrew_allocate($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
)
_RELEASE_ALLOCATION = Prepared(
    "devcrew_release_allocation4", ("text", "text"),
    "SELECT * FROM devcrew_release_allocation($1, $2)",
)
#: An allocation's fields as columns of `all_holdings`, in the order of _allocation's row.
_ALLOCATION_COLUMNS = (
    "holds_slot, created_at, cpu_cores::float8, memory_mb::float8, disk_mb::float8, "
    "network_mbps::float8, priority, preemptable, reservation_id, agent_id, task_id"
)
_PUT_STATES = (
    "INSERT INTO task_states (run_id, task_id, data) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::jsonb[]) "
    "ON CONFLICT (run_id, task_id) DO UPDATE SET data = excluded.data"
)
_APPEND_AUDIT = (
    "INSERT INTO audit (kind, workflow_id, created_at, data) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::jsonb[]) RETURNING seq"
)
_PUBLISH_EVENTS = (
    "INSERT INTO events (kind, created_at, data) "
    "SELECT * FROM unnest(%s::text[], %s::float8[], %s::jsonb[]) RETURNING seq"
)


def _where(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    return where_clause(filters, "%s")


def _agent_params(agent: AgentRecord) -> tuple[Any, ...]:
    limits = agent.resource_limits
    return (
        agent.agent_id,
        agent.agent_type,
        sorted(set(agent.capabilities)),
        agent.max_concurrent_tasks,
        None if limits is None else limits.cpu_cores,
        None if limits is None else limits.memory_mb,
        None if limits is None else limits.disk_mb,
        None if limits is None else limits.network_mbps,
        agent.model_dump_json(exclude=_DERIVED),
    )


def _allocation(row: Sequence[Any], agent_id: str, task_id: str) -> Allocation:
    """The allocation of an ``all_holdings`` row: (holds_slot, created_at, cpu, memory, disk,
    network, priority, preemptable, reservation_id), as the functions return it. The
    values were validated when they were stored, so the model is built without
    re-validating them."""
    holds, created, cpu, memory, disk, network, priority, preemptable, reservation = row[:9]
    return stored_allocation(agent_id, task_id, created, cpu, memory, disk, network,
                             priority, preemptable, reservation, holds)


def _agent(data: str, load: int, tasks: list[str] | None = None) -> AgentRecord:
    agent = AgentRecord.model_validate_json(data)
    # The derived fields are set without re-validating the whole record.
    agent.__dict__.update(current_load=int(load), running_tasks=tasks or [])
    return agent


def _latest_states(states: Sequence[TaskState]) -> list[TaskState]:
    """One state per (run, task), the last given winning (an upsert may not touch a row
    twice), in key order (so concurrent writers lock rows in the same order)."""
    latest = {(s.run_id, s.task_id): s for s in states}
    return [latest[key] for key in sorted(latest)]


M = TypeVar("M", bound=BaseModel)


class PostgresStore(Store):
    """The Store contract on one PostgreSQL database (or one schema of it)."""

    blocking = True

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        self._pool = ConnectionPool(url, settings)
        self.url = self._pool.masked_url
        self._sessions = Sessions(self._pool)
        self._granted = GrantedAllocations[str]()
        self._held = HeldSlots()
        try:
            with self._pool.connection() as conn:
                migrate(conn, self.url)
        except BaseException:
            self._pool.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------
    def ping(self) -> bool:
        """Run a trivial query on a pooled connection."""
        rows = self._sessions.run(lambda tx: tx.query("SELECT 1"))
        return rows == [(1,)]

    def close(self) -> None:
        """Close every pooled connection. Safe to call twice."""
        self._sessions.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Run the calls this thread makes inside in one transaction (all or nothing).
        Batches run one at a time (an advisory lock), like SQLite's write transactions."""
        with self._sessions.batch():
            yield

    # -- agents ------------------------------------------------------------------------
    def put_agent(self, agent: AgentRecord) -> None:
        """Insert or replace an agent (its capability index is its own column), keeping
        its slots."""
        self._sessions.run(lambda tx: tx.query(
            f"{_LOCK_TOTALS}; {_UPSERT_AGENT}", (agent.agent_id, *_agent_params(agent))))

    def get_agent(self, agent_id: str) -> AgentRecord | None:
        """Return an agent with its load and running tasks (one consistent snapshot)."""
        validate_id(agent_id, "agent_id")
        rows = self._sessions.run(lambda tx: tx.query(
            _READ_AGENT, (agent_id,)))
        if not rows:
            return None
        tasks = list(rows[0][1])
        return _agent(rows[0][0], len(tasks), tasks)

    def update_agent(self, agent_id: str, changes: Mapping[str, Any]) -> AgentRecord | None:
        """Apply allowed changes with the agent's row locked (two round trips)."""
        validate_id(agent_id, "agent_id")

        def work(tx: Transaction) -> AgentRecord | None:
            rows = tx.query(_LOCK_AND_READ_AGENT, (agent_id, agent_id, agent_id), begin=True)
            if not rows:
                tx.finish()
                return None
            tasks = list(rows[0][1])
            agent = apply_changes(AgentRecord.model_validate_json(rows[0][0]), changes,
                                  AGENT_MUTABLE_FIELDS)
            tx.query(_UPSERT_AGENT, _agent_params(agent), commit=True)
            agent.__dict__.update(current_load=len(tasks), running_tasks=tasks)
            return agent

        return self._sessions.run(work)

    def delete_agent(self, agent_id: str,
                     expired_by: float | None = None) -> AgentRecord | None:
        """Remove an agent and its slots in one statement; with ``expired_by``, in one
        transaction that locks the agent, reads it, and removes it only if it had
        expired by then (three round trips)."""
        validate_id(agent_id, "agent_id")

        def work(tx: Transaction) -> list[Row]:
            if expired_by is not None:
                found = tx.query(_LOCK_AND_READ_AGENT, (agent_id, agent_id, agent_id),
                                 begin=True)
                if not found or not AgentRecord.model_validate_json(found[0][0]).is_expired(
                        expired_by):
                    tx.finish()
                    return []
            removed = tx.query("SELECT o_data, o_tasks FROM devcrew_delete_agent(%s)",
                               (agent_id,))
            tx.finish()  # (a COMMIT sent with the statement would hide its rows)
            return removed

        rows = self._sessions.run(work)
        if not rows:
            return None
        tasks = list(rows[0][1])
        return _agent(rows[0][0], len(tasks), tasks)

    def list_agents(self, agent_type: str | None = None) -> list[AgentRecord]:
        """All agents, optionally of one type, with their load."""
        if agent_type is not None:
            validate_id(agent_type, "agent_type")
        where, params = _where({"agent_type": agent_type})
        rows = self._sessions.run(lambda tx: tx.query(
            f"SELECT a.data::text, {_LOAD} FROM agents a{where} ORDER BY agent_id",  # noqa: S608
            params))
        return [_agent(data, load) for data, load in rows]

    def find_agents(
        self, capabilities: Sequence[str], agent_type: str | None = None
    ) -> list[AgentRecord]:
        """Agents having every capability, answered by the GIN index on capabilities."""
        caps = sorted(set(capabilities))
        if not caps:
            return self.list_agents(agent_type)
        if agent_type is not None:
            validate_id(agent_type, "agent_type")
        where, params = _where({"capabilities @>": caps, "agent_type": agent_type})
        rows = self._sessions.run(lambda tx: tx.query(
            f"SELECT a.data::text, {_LOAD} FROM agents a{where} ORDER BY agent_id",  # noqa: S608
            params))
        return [_agent(data, load) for data, load in rows]

    def acquire_slot(self, agent_id: str, task_id: str) -> SlotResult:
        """Take a slot in one statement."""
        return self.acquire_slots(agent_id, [task_id])[0]

    def acquire_slots(self, agent_id: str, task_ids: Sequence[str]) -> list[SlotResult]:
        """Take several slots on one agent in one statement (the agent's row locked)."""
        validate_id(agent_id, "agent_id")
        for task_id in task_ids:
            validate_id(task_id, "task_id")
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT o_acquired, o_already_held, o_load, o_limit "
            "FROM devcrew_acquire_slots(%s, %s::text[], %s)",
            (agent_id, list(task_ids), time.time())))
        if any(row[3] is None for row in rows):
            raise NotFoundError(f"agent {agent_id!r} is not registered")
        for task_id, row in zip(task_ids, rows, strict=True):
            if row[0]:
                self._held.add(agent_id, task_id)
        return [
            SlotResult(acquired=acquired, already_held=held, current_load=load,
                       max_concurrent_tasks=limit)
            for acquired, held, load, limit in rows
        ]

    def release_slot(self, agent_id: str, task_id: str) -> bool:
        """Free a slot; idempotent."""
        return self.release_slots([(agent_id, task_id)])[0]

    def release_slots(self, slots: Sequence[tuple[str, str]]) -> list[bool]:
        """Free several slots in one statement."""
        if not slots:
            return []
        for agent_id, task_id in slots:
            validate_id(agent_id, "agent_id")
            validate_id(task_id, "task_id")
        agents = [agent_id for agent_id, _ in slots]
        tasks = [task_id for _, task_id in slots]
        for agent_id, task_id in slots:
            self._held.discard(agent_id, task_id)
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT devcrew_release_slots(%s::text[], %s::text[])", (agents, tasks)))
        return [bool(freed) for freed in rows[0][0]]

    def transfer_slots(self, moves: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Hand slots on to other tasks in one statement: each move changes the slot's
        task with the agent's row locked, so the load never drops in between."""
        if not moves:
            return []
        for agent_id, from_task, to_task in moves:
            validate_id(agent_id, "agent_id")
            validate_id(from_task, "task_id")
            validate_id(to_task, "task_id")
        columns = [list(column) for column in zip(*moves, strict=True)]
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT devcrew_transfer_slots(%s::text[], %s::text[], %s::text[])", columns))
        done = [bool(moved) for moved in rows[0][0]]
        for (agent_id, from_task, to_task), moved in zip(moves, done, strict=True):
            self._held.discard(agent_id, from_task)
            if moved:
                self._held.add(agent_id, to_task)
        return done

    # -- delegations -----------------------------------------------------------------------
    def delegate(self, record: DelegationRecord,
                 audit: AuditRecord | None = None) -> SlotResult:
        """Take the slot and store the record (and audit) in one statement; refused
        (:func:`already_delegated`) while the task is active on another agent."""
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT o_acquired, o_already_held, o_load, o_limit, o_active_agent "
            "FROM devcrew_delegate(%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s::jsonb)",
            (record.agent_id, record.task_id, time.time(), record.status.value,
             record.delegated_at, record.model_dump_json(), *_one_audit(audit))))
        acquired, held, load, limit, active_agent = rows[0]
        if active_agent is not None:
            raise already_delegated(record.task_id, active_agent)
        if limit is None:
            raise NotFoundError(f"agent {record.agent_id!r} is not registered")
        if acquired:
            self._held.add(record.agent_id, record.task_id)
        return SlotResult(acquired=acquired, already_held=held, current_load=load,
                          max_concurrent_tasks=limit)

    def complete_delegation(
        self, agent_id: str, task_id: str, completed_at: float,
        audit: AuditRecord | None = None,
    ) -> tuple[DelegationRecord | None, bool]:
        """Free the slot and mark the delegation completed in one statement."""
        validate_id(agent_id, "agent_id")
        validate_id(task_id, "task_id")
        patch = json.dumps({"status": DelegationStatus.COMPLETED.value,
                            "completed_at": completed_at})
        self._held.discard(agent_id, task_id)
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT o_data, o_completed_now FROM devcrew_complete_delegation("
            "%s, %s, %s::jsonb, %s, %s, %s, %s::jsonb)",
            (agent_id, task_id, patch, *_one_audit(audit))))
        if not rows:
            return None, False
        return DelegationRecord.model_validate_json(rows[0][0]), bool(rows[0][1])

    def _get_one(self, model: type[M], table: str, column: str, key: str) -> M | None:
        """One record by its key. ``table`` and ``column`` are this module's constants,
        never input; the key is a bound parameter."""
        rows = self._sessions.run(lambda tx: tx.query(
            f"SELECT data::text FROM {table} WHERE {column} = %s", (key,)))  # noqa: S608
        return model.model_validate_json(rows[0][0]) if rows else None

    def _list(self, model: type[M], table: str, filters: Mapping[str, Any],
              order: str) -> list[M]:
        """The records of ``table`` matching ``filters`` (None: any), in ``order``.
        ``table`` and ``order`` are this module's constants, never input; the filters'
        values are bound parameters (their IDs checked by the caller)."""
        where, params = _where(filters)
        rows = self._sessions.run(lambda tx: tx.query(
            f"SELECT data::text FROM {table}{where} ORDER BY {order}", params))  # noqa: S608
        return [model.model_validate_json(r[0]) for r in rows]

    def get_delegation(self, task_id: str) -> DelegationRecord | None:
        """The latest delegation of a task."""
        validate_id(task_id, "task_id")
        return self._get_one(DelegationRecord, "delegations", "task_id", task_id)

    def list_delegations(
        self, agent_id: str | None = None, status: str | None = None
    ) -> list[DelegationRecord]:
        """Delegations, oldest first."""
        validate_optional_id(agent_id, "agent_id")
        return self._list(DelegationRecord, "delegations",
                          {"agent_id": agent_id, "status": status}, "delegated_at, task_id")

    # -- resources -----------------------------------------------------------------------
    def allocate(self, allocation: Allocation, now: float) -> Allocation | None:
        """Check capacity and the slot, take both and record the allocation in one
        statement: the fast one in the common case (``fastpaths.FAST_ALLOCATE``), else
        the general function."""
        sessions = self._sessions
        if not sessions.in_batch():
            # Checks the IDs as it writes them (validate_id below says what is wrong).
            # A copy: what is written and what is granted are the same values, whatever
            # another thread does to the caller's object meanwhile.
            fields = allocation.__dict__.copy()
            arguments = allocate_arguments(fields, now)
            if arguments is not None \
                    and (fields["agent_id"], fields["task_id"]) not in self._held \
                    and sessions.fast(FAST_ALLOCATE, arguments, FALLBACK_STATES) == 1:
                # Kept for the release, which takes the same arguments.
                return self._granted.grant(fields, allocation.__pydantic_fields_set__,
                                           arguments)
        validate_id(allocation.agent_id, "agent_id")
        validate_id(allocation.task_id, "task_id")
        # Nothing was written: the task has a row here (its slot, see HeldSlots), or the
        # agent has reservations, is full, or is unknown. The general function decides
        # with the agent locked.
        return self._allocate(allocation, (), now)

    def preempt_and_allocate(self, allocation: Allocation, victims: Sequence[str],
                             now: float) -> Allocation | None:
        """Remove the victims' allocations and allocate in one statement, all or nothing."""
        validate_id(allocation.agent_id, "agent_id")
        validate_id(allocation.task_id, "task_id")
        for victim in victims:
            validate_id(victim, "task_id")
        return self._allocate(allocation, sorted(set(victims)), now)

    def _allocate(self, allocation: Allocation, victims: Sequence[str],
                  now: float) -> Allocation | None:
        """The general path: ``devcrew_allocate``, with the agent locked."""
        if allocation.reservation_id is not None:
            validate_id(allocation.reservation_id, "reservation_id")
        agent_id, task_id = allocation.agent_id, allocation.task_id
        rows = self._sessions.run(lambda tx: tx.call(_ALLOCATE, (
            agent_id, task_id, allocation.reservation_id, list(victims), now,
            allocation.cpu_cores, allocation.memory_mb, allocation.disk_mb,
            allocation.network_mbps, allocation.created_at, int(allocation.priority),
            allocation.preemptable)))
        status = rows[0][0]
        if status == "allocated":
            # What was stored: the caller's allocation, with whether it took the slot.
            stored = holding_slot(allocation, bool(rows[0][1]))
            if stored.holds_slot and stored.reservation_id is None:
                # A row: the release answers with this object (the general function).
                self._granted.remember(stored)
            return stored
        if status == "existing":
            return _allocation(rows[0][1:], agent_id, task_id)
        if status == "missing":
            raise NotFoundError(f"agent {agent_id!r} is not registered")
        return None

    def release_allocation(self, agent_id: str, task_id: str) -> Allocation | None:
        """Remove an allocation, freeing the slot it holds, in one statement: the fast
        one for an allocation this store granted (``fastpaths.FAST_RELEASE``; the same
        object comes back), else the general function."""
        granted, arguments = self._granted.take_for_release(agent_id, task_id)
        sessions = self._sessions
        # Arguments were written for what the fast allocate granted (and the object is
        # unchanged): its entry may still be in the totals row. Anything else is a row.
        if arguments is not None and not sessions.in_batch() and sessions.fast(
                FAST_RELEASE, arguments, FALLBACK_STATES) == 1:
            return granted
        validate_id(agent_id, "agent_id")
        validate_id(task_id, "task_id")
        rows = sessions.run(lambda tx: tx.call(_RELEASE_ALLOCATION, (agent_id, task_id)))
        if rows[0][1] is None:
            return None
        released = _allocation(rows[0], agent_id, task_id)
        # A granted allocation another call moved into `holdings` (sql/005) is still the
        # one this store handed out: the same object comes back, as from the fast path.
        return granted if granted == released else released

    def put_wait(self, wait: WaitRecord) -> None:
        """Record or refresh a waiting request (one per agent and task)."""
        validate_id(wait.agent_id, "agent_id")
        validate_id(wait.task_id, "task_id")
        self._sessions.run(lambda tx: tx.query(
            "INSERT INTO waits (agent_id, task_id, since, data) VALUES (%s, %s, %s, %s::jsonb) "
            "ON CONFLICT (agent_id, task_id) DO UPDATE SET since = excluded.since, "
            "data = excluded.data",
            (wait.agent_id, wait.task_id, wait.since, wait.model_dump_json())))

    def delete_wait(self, agent_id: str, task_id: str) -> bool:
        """Forget a waiting request."""
        validate_id(agent_id, "agent_id")
        validate_id(task_id, "task_id")
        rows = self._sessions.run(lambda tx: tx.query(
            "DELETE FROM waits WHERE agent_id = %s AND task_id = %s RETURNING 1",
            (agent_id, task_id)))
        return bool(rows)

    def list_waits(self, agent_id: str | None = None) -> list[WaitRecord]:
        """Waiting requests, oldest first."""
        validate_optional_id(agent_id, "agent_id")
        return self._list(WaitRecord, "waits", {"agent_id": agent_id},
                          "since, agent_id, task_id")

    def list_allocations(self, agent_id: str | None = None) -> list[Allocation]:
        """Allocations by creation time."""
        validate_optional_id(agent_id, "agent_id")
        where, params = _where({"agent_id": agent_id})
        rows = self._sessions.run(lambda tx: tx.query(
            f"SELECT {_ALLOCATION_COLUMNS} FROM all_holdings{where}"  # noqa: S608
            f"{' AND' if where else ' WHERE'} created_at IS NOT NULL "
            "ORDER BY created_at, agent_id, task_id", params))
        return [_allocation(r, r[9], r[10]) for r in rows]

    def reserve(self, reservation: Reservation, now: float) -> bool:
        """Check capacity and record the reservation in one statement."""
        validate_id(reservation.reservation_id, "reservation_id")
        validate_id(reservation.agent_id, "agent_id")
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT devcrew_reserve(%s, %s, %s, %s, %s, %s::numeric, %s::numeric, "
            "%s::numeric, %s::numeric, %s::jsonb)",
            (reservation.reservation_id, reservation.agent_id, now, reservation.expires_at,
             reservation.created_at, reservation.cpu_cores, reservation.memory_mb,
             reservation.disk_mb, reservation.network_mbps, reservation.model_dump_json())))
        status = rows[0][0]
        if status == "missing":
            raise NotFoundError(f"agent {reservation.agent_id!r} is not registered")
        if status == "exists":
            raise StoreError(f"reservation {reservation.reservation_id!r} exists already")
        return bool(status == "reserved")

    def get_reservation(self, reservation_id: str) -> Reservation | None:
        """Return a reservation (expired or not)."""
        validate_id(reservation_id, "reservation_id")
        return self._get_one(Reservation, "reservations", "reservation_id", reservation_id)

    def cancel_reservation(self, reservation_id: str) -> bool:
        """Remove a reservation (and what it held of its agent's capacity)."""
        validate_id(reservation_id, "reservation_id")
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT devcrew_cancel_reservation(%s)", (reservation_id,)))
        return bool(rows[0][0])

    def list_reservations(self, agent_id: str | None = None) -> list[Reservation]:
        """Reservations by creation time."""
        validate_optional_id(agent_id, "agent_id")
        return self._list(Reservation, "reservations", {"agent_id": agent_id},
                          "created_at, reservation_id")

    def expire_reservations(self, now: float) -> list[Reservation]:
        """Drop the reservations that have expired, in one statement."""
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT * FROM devcrew_expire_reservations(%s)", (now,)))
        gone = [Reservation.model_validate_json(r[0]) for r in rows]
        return sorted(gone, key=lambda r: (r.created_at, r.reservation_id))

    # -- workflows and runs ----------------------------------------------------------------
    def put_workflow(self, workflow: WorkflowDefinition) -> None:
        """Insert or replace a workflow definition."""
        self._sessions.run(lambda tx: tx.query(
            "INSERT INTO workflows (workflow_id, data) VALUES (%s, %s::jsonb) "
            "ON CONFLICT (workflow_id) DO UPDATE SET data = excluded.data",
            (workflow.workflow_id, workflow.model_dump_json())))

    def get_workflow(self, workflow_id: str) -> WorkflowDefinition | None:
        """Return a workflow definition."""
        validate_id(workflow_id, "workflow_id")
        return self._get_one(WorkflowDefinition, "workflows", "workflow_id", workflow_id)

    def list_workflows(self) -> list[WorkflowDefinition]:
        """All workflow definitions."""
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT data::text FROM workflows ORDER BY workflow_id"))
        return [WorkflowDefinition.model_validate_json(r[0]) for r in rows]

    def delete_workflow(self, workflow_id: str) -> bool:
        """Remove a workflow definition (its runs are kept)."""
        validate_id(workflow_id, "workflow_id")
        rows = self._sessions.run(lambda tx: tx.query(
            "DELETE FROM workflows WHERE workflow_id = %s RETURNING 1", (workflow_id,)))
        return bool(rows)

    def put_snapshot(self, snapshot_id: str, document: str) -> None:
        """Keep a document; an existing ID keeps its first document."""
        validate_id(snapshot_id, "snapshot_id")
        self._sessions.run(lambda tx: tx.query(
            "INSERT INTO snapshots (snapshot_id, data) VALUES (%s, %s) "
            "ON CONFLICT (snapshot_id) DO NOTHING", (snapshot_id, document)))

    def get_snapshot(self, snapshot_id: str) -> str | None:
        """A stored document, exactly as it was stored."""
        validate_id(snapshot_id, "snapshot_id")
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT data FROM snapshots WHERE snapshot_id = %s", (snapshot_id,)))
        return str(rows[0][0]) if rows else None

    @staticmethod
    def _run_params(run: RunRecord) -> tuple[Any, ...]:
        return (run.run_id, run.workflow_id, run.status.value, run.created_at,
                run.cancel_requested, run.model_dump_json())

    def create_run(self, run: RunRecord) -> None:
        """Insert a new run; :class:`StoreError` if its id is taken."""
        rows = self._sessions.run(lambda tx: tx.query(
            "INSERT INTO runs (run_id, workflow_id, status, created_at, cancel_requested, data) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (run_id) DO NOTHING RETURNING 1",
            self._run_params(run)))
        if not rows:
            raise StoreError(f"run {run.run_id!r} exists already")

    def cancel_requested(self, run_id: str) -> bool | None:
        """Whether a cancel was requested, from its own column (the data is not read)."""
        validate_id(run_id, "run_id")
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT cancel_requested FROM runs WHERE run_id = %s", (run_id,)))
        return bool(rows[0][0]) if rows else None

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return a run."""
        validate_id(run_id, "run_id")
        return self._get_one(RunRecord, "runs", "run_id", run_id)

    def update_run(self, run_id: str, changes: Mapping[str, Any]) -> RunRecord | None:
        """Apply allowed changes with the run's row locked (two round trips)."""
        validate_id(run_id, "run_id")

        def work(tx: Transaction) -> RunRecord | None:
            rows = tx.query("SELECT data::text FROM runs WHERE run_id = %s FOR UPDATE",
                            (run_id,), begin=True)
            if not rows:
                tx.finish()
                return None
            run = apply_changes(RunRecord.model_validate_json(rows[0][0]), changes,
                                RUN_MUTABLE_FIELDS)
            tx.query("UPDATE runs SET status = %s, cancel_requested = %s, data = %s::jsonb "
                     "WHERE run_id = %s",
                     (run.status.value, run.cancel_requested, run.model_dump_json(), run_id),
                     commit=True)
            return run

        return self._sessions.run(work)

    def list_runs(
        self, workflow_id: str | None = None, status: str | None = None
    ) -> list[RunRecord]:
        """Runs, oldest first."""
        validate_optional_id(workflow_id, "workflow_id")
        return self._list(RunRecord, "runs", {"workflow_id": workflow_id, "status": status},
                          "created_at, run_id")

    def put_task_states(self, states: Sequence[TaskState]) -> None:
        """Upsert many task states in one statement (group commit)."""
        if states:
            self._sessions.run(lambda tx: tx.query(_PUT_STATES, _states_params(states)))

    def write_batch(self, states: Sequence[TaskState], audit: Sequence[AuditRecord],
                    events: Sequence[Event]) -> None:
        """Task states, audit records and events in one transaction and one round trip."""
        statements: list[str] = []
        params: list[Any] = []
        if audit or events:
            statements.append(_LOG_LOCK)
        if states:
            statements.append(_PUT_STATES)
            params.extend(_states_params(states))
        if audit:
            statements.append(_APPEND_AUDIT)
            params.extend(_audit_params(audit))
        if events:
            statements.append(_PUBLISH_EVENTS)
            params.extend(_event_params(events))
        if statements:
            self._sessions.run(lambda tx: tx.query("; ".join(statements), params))

    def get_task_states(self, run_id: str) -> list[TaskState]:
        """Task states of a run, by task_id."""
        validate_id(run_id, "run_id")
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT data::text FROM task_states WHERE run_id = %s ORDER BY task_id", (run_id,)))
        return [TaskState.model_validate_json(r[0]) for r in rows]

    # -- handoffs ------------------------------------------------------------------------
    def put_handoff(self, handoff: HandoffRecord, context: Mapping[str, Any] | None) -> None:
        """Insert or replace a handoff and its context."""
        blob = None if context is None else json.dumps(dict(context))
        self._sessions.run(lambda tx: tx.query(
            "INSERT INTO handoffs (handoff_id, workflow_id, created_at, data, context) "
            "VALUES (%s, %s, %s, %s::jsonb, %s::jsonb) ON CONFLICT (handoff_id) DO UPDATE SET "
            "workflow_id = excluded.workflow_id, created_at = excluded.created_at, "
            "data = excluded.data, context = excluded.context",
            (handoff.handoff_id, handoff.workflow_id, handoff.created_at,
             handoff.model_dump_json(), blob)))

    def get_handoff(self, handoff_id: str) -> HandoffRecord | None:
        """Return a handoff."""
        validate_id(handoff_id, "handoff_id")
        return self._get_one(HandoffRecord, "handoffs", "handoff_id", handoff_id)

    def update_handoff(self, handoff_id: str, changes: Mapping[str, Any]) -> HandoffRecord | None:
        """Apply allowed changes with the handoff's row locked (two round trips)."""
        validate_id(handoff_id, "handoff_id")

        def work(tx: Transaction) -> HandoffRecord | None:
            rows = tx.query("SELECT data::text FROM handoffs WHERE handoff_id = %s FOR UPDATE",
                            (handoff_id,), begin=True)
            if not rows:
                tx.finish()
                return None
            handoff = apply_changes(HandoffRecord.model_validate_json(rows[0][0]), changes,
                                    HANDOFF_MUTABLE_FIELDS)
            tx.query("UPDATE handoffs SET data = %s::jsonb WHERE handoff_id = %s",
                     (handoff.model_dump_json(), handoff_id), commit=True)
            return handoff

        return self._sessions.run(work)

    def get_handoff_context(self, handoff_id: str) -> dict[str, Any] | None:
        """Return the context stored with a handoff."""
        validate_id(handoff_id, "handoff_id")
        rows = self._sessions.run(lambda tx: tx.query(
            "SELECT context::text FROM handoffs WHERE handoff_id = %s", (handoff_id,)))
        if not rows or rows[0][0] is None:
            return None
        context: dict[str, Any] = json.loads(rows[0][0])
        return context

    def list_handoffs(self, workflow_id: str | None = None) -> list[HandoffRecord]:
        """Handoffs, oldest first."""
        validate_optional_id(workflow_id, "workflow_id")
        return self._list(HandoffRecord, "handoffs", {"workflow_id": workflow_id},
                          "created_at, handoff_id")

    # -- audit and events ------------------------------------------------------------------
    def append_audit(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append audit records in one statement; their seqs increase in order."""
        if not records:
            return []
        rows = self._sessions.run(lambda tx: tx.query(
            f"{_LOG_LOCK}; {_APPEND_AUDIT}", _audit_params(records)))
        return sorted(int(r[0]) for r in rows)

    def list_audit(
        self,
        workflow_id: str | None = None,
        kind: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Audit records after ``after``, in seq order."""
        validate_optional_id(workflow_id, "workflow_id")
        rows = self._list_numbered(
            "audit", {"workflow_id": workflow_id, "kind": kind}, after, limit)
        return [AuditRecord.model_validate_json(r[0]) for r in rows]

    def publish_events(self, events: Sequence[Event]) -> list[int]:
        """Append events in one statement; their seqs increase in order."""
        if not events:
            return []
        rows = self._sessions.run(lambda tx: tx.query(
            f"{_LOG_LOCK}; {_PUBLISH_EVENTS}", _event_params(events)))
        return sorted(int(r[0]) for r in rows)

    def list_events(
        self, after: int = 0, kind: str | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events after ``after``, in seq order."""
        rows = self._list_numbered("events", {"kind": kind}, after, limit)
        return [Event.model_validate_json(r[0]) for r in rows]

    def _list_numbered(self, table: str, filters: Mapping[str, Any], after: int,
                       limit: int) -> list[Row]:
        """The records of ``table`` (a constant) after ``after``, with their seq, as JSON."""
        where, params = _where({"seq >": after, **filters})
        # A negative limit means no limit, as in SQLite (LIMIT NULL is LIMIT ALL).
        bound = None if limit < 0 else limit
        return self._sessions.run(lambda tx: tx.query(
            f"SELECT (data || jsonb_build_object('seq', seq))::text FROM {table}{where} "  # noqa: S608
            "ORDER BY seq LIMIT %s", [*params, bound]))


def _states_params(states: Sequence[TaskState]) -> tuple[list[str], list[str], list[str]]:
    latest = _latest_states(states)
    return ([s.run_id for s in latest], [s.task_id for s in latest],
            [s.model_dump_json() for s in latest])


def _audit_params(records: Sequence[AuditRecord]) -> tuple[list[Any], ...]:
    return ([r.kind for r in records], [r.workflow_id for r in records],
            [r.created_at for r in records],
            [r.model_dump_json(exclude={"seq"}) for r in records])


def _one_audit(record: AuditRecord | None) -> tuple[Any, ...]:
    """(kind, workflow_id, created_at, data) of an optional audit record, or NULLs."""
    if record is None:
        return (None, None, None, None)
    return (record.kind, record.workflow_id, record.created_at,
            record.model_dump_json(exclude={"seq"}))


def _event_params(events: Sequence[Event]) -> tuple[list[Any], ...]:
    return ([e.kind for e in events], [e.created_at for e in events],
            [e.model_dump_json(exclude={"seq"}) for e in events])


def open_postgres_store(url: str, settings: Settings | None = None) -> PostgresStore:
    """Store factory for ``postgresql://`` and ``postgres://`` URLs."""
    return PostgresStore(url, settings)
