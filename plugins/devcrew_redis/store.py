"""``redis://`` and ``rediss://``: the Store contract on Redis.

Records are JSON. Every check-then-write runs inside Redis as one Lua script
(:mod:`devcrew_redis.scripts`), so it is atomic across threads, processes and machines:
Redis runs one script at a time and nothing else in between. Reads that span several
keys use one script or one MULTI/EXEC, so a reader never sees half of a change.

Updates of whole records (``update_agent``, ``update_run``, ``update_handoff``,
``put_agent``, ``put_handoff``) are compare-and-set: Python reads the record and its
version, validates the change with pydantic, and a script writes the result only if
the version is still the one read; otherwise the read and validation are repeated.
Versions come from one counter and are never reused, so a record deleted and made
again cannot be mistaken for the one read.

Key layout: :mod:`devcrew_redis.keys`. Connections and errors:
:mod:`devcrew_redis.connection`.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from redis import exceptions as rex

from devcrew_core.errors import NotFoundError, StoreError
from devcrew_core.ids import validate_id
from devcrew_core.stores.base import (
    AGENT_MUTABLE_FIELDS,
    HANDOFF_MUTABLE_FIELDS,
    RUN_MUTABLE_FIELDS,
    Store,
    already_delegated,
    apply_changes,
    limits_of,
)
from devcrew_core.stores.records import (
    AgentRecord,
    Allocation,
    AuditRecord,
    DelegationRecord,
    DelegationStatus,
    Event,
    HandoffRecord,
    Reservation,
    ResourceAmounts,
    RunRecord,
    SlotResult,
    TaskState,
    WaitRecord,
    WorkflowDefinition,
)
from devcrew_redis.connection import DEFAULT_PREFIX, connect, parse_target, store_error
from devcrew_redis.keys import Keys
from devcrew_redis.pinned import PinnedConnections
from devcrew_redis.scripts import Scripts

if TYPE_CHECKING:
    from devcrew_core.config import Settings

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Arg = str | int | float

_DERIVED = {"current_load", "running_tasks"}
_DIMS = ("cpu_cores", "memory_mb", "disk_mb", "network_mbps")
#: Agents whose allocation keys a store keeps built (the cache is emptied when full).
_AGENT_KEYS_CACHED = 4096
# The scripts read allocations and reservations without decoding their JSON (see
# lua/_ledger.lua): the amounts come first, then an allocation's agent and task, and its
# holds_slot last (the store and allocate.lua set it by rewriting the end of the JSON).
if (list(Allocation.model_fields)[:6] != [*_DIMS, "agent_id", "task_id"]
        or list(Allocation.model_fields)[-1] != "holds_slot"
        or list(Reservation.model_fields)[:4] != list(_DIMS)):  # pragma: no cover - a guard
    raise ImportError("devcrew_redis: the field order of Allocation or Reservation changed; "
                      "the Lua scripts read their JSON by position")
# delegate.lua and complete_delegation.lua read a delegation's JSON by position too:
# task_id and agent_id first, then fields holding strings only up to status (so the
# first ',"status":"' is the field), and completed_at last.
_DELEGATION_FIELDS = list(DelegationRecord.model_fields)
if (_DELEGATION_FIELDS[:2] != ["task_id", "agent_id"] or _DELEGATION_FIELDS[-1] != "completed_at"
        or _DELEGATION_FIELDS.index("status") != 6
        or [s.value for s in DelegationStatus] != ["active", "completed"]):  # pragma: no cover
    raise ImportError("devcrew_redis: the fields of DelegationRecord changed; the Lua "
                      "scripts read its JSON by position")
#: How often a compare-and-set update is tried before giving up: each retry means
#: another writer changed the record in the few hundred microseconds in between.
_CAS_ATTEMPTS = 100
#: Page size when both a workflow and a kind filter the audit trail.
_AUDIT_PAGE = 500


class _Conflict:
    """Returned by an update attempt whose compare-and-set lost a race."""


_CONFLICT = _Conflict()


def _translated(
    method: Callable[Concatenate[RedisStore, P], R],
) -> Callable[Concatenate[RedisStore, P], R]:
    """Turn a redis-py error raised by ``method`` into a :class:`StoreError`."""

    @functools.wraps(method)
    def wrapper(self: RedisStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except rex.RedisError as exc:
            raise store_error(exc, self.url) from exc

    return wrapper


def _ceilings(agent: AgentRecord) -> list[Arg]:
    """The agent's four resource ceilings, -1 meaning unlimited."""
    limits = limits_of(agent)
    return [-1 if math.isinf(getattr(limits, d)) else getattr(limits, d) for d in _DIMS]


def _amounts(amounts: ResourceAmounts) -> list[Arg]:
    return [getattr(amounts, d) for d in _DIMS]


def _agent(data: str, held: Sequence[str] | int) -> AgentRecord:
    """An agent from its JSON, with its load (from the tasks holding slots, or a count)."""
    agent = AgentRecord.model_validate_json(data)
    # Set directly: validate_assignment would re-validate the whole record.
    if isinstance(held, int):
        agent.__dict__["current_load"] = held
    else:
        agent.__dict__.update(current_load=len(held), running_tasks=list(held))
    return agent


class RedisStore(Store):
    """The Store contract on one Redis database, under one key prefix."""

    blocking = True

    def __init__(self, url: str, *, key_prefix: str | None = None,
                 password: str | None = None, pool_size: int = 10) -> None:
        """Connect to ``url`` (``?prefix=`` wins over ``key_prefix``) and load the
        scripts; raise :class:`StoreError` when the server cannot be used."""
        target = parse_target(url, key_prefix or DEFAULT_PREFIX)
        self.url = target.shown
        self.keys = Keys(target.prefix)
        self._client = connect(target, password=password, pool_size=pool_size)
        self._pinned = PinnedConnections(self._client.connection_pool)
        self._scripts = Scripts(self._client, self._pinned)
        self._agent_keys: dict[str, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}
        try:
            # One round trip checks the server and credentials and loads the scripts.
            pipe = self._client.pipeline(transaction=False)
            pipe.ping()
            self._scripts.queue_load(pipe)
            pipe.execute()
        except rex.RedisError as exc:
            self.close()
            raise store_error(exc, self.url) from exc

    # -- lifecycle ---------------------------------------------------------------------
    @_translated
    def ping(self) -> bool:
        """PING the server."""
        return bool(self._client.ping())

    def close(self) -> None:
        """Close the pooled connections (the store reconnects if used again)."""
        self._pinned.close()
        self._client.connection_pool.disconnect()

    def _until_set(self, attempt: Callable[[], T | _Conflict], what: str) -> T:
        """Run a compare-and-set ``attempt`` until it does not lose a race."""
        for _ in range(_CAS_ATTEMPTS):
            outcome = attempt()
            if not isinstance(outcome, _Conflict):
                return outcome
        raise StoreError(
            f"Redis at {self.url}: {what} kept changing; gave up after "
            f"{_CAS_ATTEMPTS} attempts to update it"
        )

    def _read_pair(self, key_a: str, key_b: str, field: str) -> tuple[str | None, str]:
        """``HGET key_a field`` and ``HGET key_b field`` as one snapshot (MULTI/EXEC);
        the second (a version) is '' when absent."""
        pipe = self._client.pipeline(transaction=True)
        pipe.hget(key_a, field)
        pipe.hget(key_b, field)
        first, second = pipe.execute()
        return first, second or ""

    # The client decodes replies (decode_responses=True): its str | bytes is always str.
    def _hget(self, key: str, field: str) -> str | None:
        return cast("str | None", self._client.hget(key, field))

    def _hvals(self, key: str) -> list[str]:
        return cast("list[str]", self._client.hvals(key))

    # -- agents ------------------------------------------------------------------------
    def _index_keys(self, agent: AgentRecord) -> list[str]:
        """The index sets ``agent`` belongs to: its type and each capability."""
        keys = self.keys
        return [keys.agent_type(agent.agent_type), *map(keys.capability, agent.capabilities)]

    def _write_agent(self, agent: AgentRecord, old: AgentRecord | None,
                     version: str) -> list[str] | None:
        """Run write_agent.lua: the tasks holding slots, or None on a version conflict."""
        keys = self.keys
        join = self._index_keys(agent)
        leave = [] if old is None else [k for k in self._index_keys(old) if k not in join]
        held: list[str] | None = self._scripts.write_agent(
            keys=[keys.agents, keys.agent_max, keys.allocations(agent.agent_id),
                  keys.agent_version, keys.clock, keys.slots(agent.agent_id), *leave, *join],
            args=[agent.agent_id, version, agent.model_dump_json(exclude=_DERIVED),
                  agent.max_concurrent_tasks, *_ceilings(agent), len(leave)],
        )
        return held

    def _read_agent(self, agent_id: str) -> tuple[AgentRecord | None, str]:
        keys = self.keys
        data, version = self._read_pair(keys.agents, keys.agent_version, agent_id)
        return (None if data is None else AgentRecord.model_validate_json(data)), version

    @_translated
    def put_agent(self, agent: AgentRecord) -> None:
        """Insert or replace an agent and its index entries, keeping its slots."""
        validate_id(agent.agent_id, "agent_id")

        def attempt() -> _Conflict | None:
            old, version = self._read_agent(agent.agent_id)
            return _CONFLICT if self._write_agent(agent, old, version) is None else None

        self._until_set(attempt, f"agent {agent.agent_id!r}")

    @_translated
    def get_agent(self, agent_id: str) -> AgentRecord | None:
        """Return an agent with its load and running tasks (one MULTI/EXEC)."""
        keys = self.keys
        pipe = self._client.pipeline(transaction=True)
        pipe.zrange(keys.slots(agent_id), 0, -1)
        pipe.hget(keys.agents, agent_id)
        held, data = pipe.execute()
        return None if data is None else _agent(data, held)

    @_translated
    def update_agent(self, agent_id: str, changes: Mapping[str, Any]) -> AgentRecord | None:
        """Apply allowed changes to an agent (compare-and-set)."""
        validate_id(agent_id, "agent_id")

        def attempt() -> AgentRecord | _Conflict | None:
            old, version = self._read_agent(agent_id)
            if old is None:
                return None
            new = apply_changes(old, changes, AGENT_MUTABLE_FIELDS)
            held = self._write_agent(new, old, version)
            if held is None:
                return _CONFLICT
            new.__dict__.update(current_load=len(held), running_tasks=list(held))
            return new

        return self._until_set(attempt, f"agent {agent_id!r}")

    @_translated
    def delete_agent(self, agent_id: str,
                     expired_by: float | None = None) -> AgentRecord | None:
        """Remove an agent, its slots and its index entries (only if expired by
        ``expired_by``, if given: the script removes it only at the version read, so a
        heartbeat in between makes it read again)."""
        keys = self.keys
        slots = keys.slots(agent_id)

        def attempt() -> AgentRecord | _Conflict | None:
            old, version = self._read_agent(agent_id)
            if old is None or (expired_by is not None and not old.is_expired(expired_by)):
                return None
            held: list[str] | None = self._scripts.delete_agent(
                keys=[keys.agents, keys.agent_max, keys.agent_version, keys.agent_load,
                      keys.allocations(agent_id), slots, *self._index_keys(old)],
                args=[agent_id, version],
            )
            if held is None:
                return _CONFLICT
            old.__dict__.update(current_load=len(held), running_tasks=list(held))
            return old

        return self._until_set(attempt, f"agent {agent_id!r}")

    def list_agents(self, agent_type: str | None = None) -> list[AgentRecord]:
        """All agents (of one type), by agent_id, from the type index."""
        return self.find_agents([], agent_type)

    @_translated
    def find_agents(
        self, capabilities: Sequence[str], agent_type: str | None = None
    ) -> list[AgentRecord]:
        """Agents in every capability set (and the type set), SINTER inside one script."""
        keys = self.keys
        index = [keys.capability(c) for c in dict.fromkeys(capabilities)]
        if agent_type is not None:
            index.append(keys.agent_type(agent_type))
        ids, datas, loads = self._scripts.find_agents(
            keys=[keys.agents, keys.agent_load, *index])
        found = sorted(zip(ids, datas, loads, strict=True))
        return [_agent(data, int(load or 0)) for _, data, load in found if data is not None]

    @_translated
    def acquire_slot(self, agent_id: str, task_id: str) -> SlotResult:
        """Take a slot if one is free (one EVALSHA)."""
        return self.acquire_slots(agent_id, [task_id])[0]

    @_translated
    def acquire_slots(self, agent_id: str, task_ids: Sequence[str]) -> list[SlotResult]:
        """Take several slots on one agent in one script."""
        for task_id in task_ids:
            validate_id(task_id, "task_id")
        keys = self.keys
        reply: list[int] | None = self._scripts.acquire_slots(
            keys=[keys.agent_max, keys.agent_load, keys.slots(agent_id)],
            args=[agent_id, time.time(), *task_ids],
        )
        if reply is None:
            raise NotFoundError(f"agent {agent_id!r} is not registered")
        limit = reply[0]
        return [
            SlotResult(acquired=outcome != 0, already_held=outcome == 2, current_load=load,
                       max_concurrent_tasks=limit)
            for outcome, load in zip(reply[1::2], reply[2::2], strict=True)
        ]

    @_translated
    def release_slot(self, agent_id: str, task_id: str) -> bool:
        """Free a slot; idempotent (one EVALSHA)."""
        return self.release_slots([(agent_id, task_id)])[0]

    @_translated
    def release_slots(self, slots: Sequence[tuple[str, str]]) -> list[bool]:
        """Free several slots in one script."""
        if not slots:
            return []
        keys: list[str] = [self.keys.agent_load]
        args: list[Arg] = []
        for agent_id, task_id in slots:
            keys.append(self.keys.slots(agent_id))
            args += [agent_id, validate_id(task_id, "task_id")]
        freed: list[int] = self._scripts.release_slots(keys=keys, args=args)
        return [bool(f) for f in freed]

    @_translated
    def transfer_slots(self, moves: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Hand slots on to other tasks in one script (the load never drops between)."""
        if not moves:
            return []
        keys: list[str] = [self.keys.agent_load]
        args: list[Arg] = []
        for agent_id, from_task, to_task in moves:
            keys.append(self.keys.slots(agent_id))
            args += [agent_id, validate_id(from_task, "task_id"),
                     validate_id(to_task, "task_id")]
        moved: list[int] = self._scripts.transfer_slots(keys=keys, args=args)
        return [bool(m) for m in moved]

    # -- delegations ----------------------------------------------------------------------
    def _audit_tail(self, audit: AuditRecord | None) -> tuple[list[str], list[Arg]]:
        """KEYS and ARGV of an optional audit record for delegate/complete_delegation."""
        keys = [self.keys.audit, self.keys.audit_seq]
        if audit is None:
            return keys, [0, "", 0]
        index, entry = self._audit_entry(audit)
        return [*keys, *index], [1, *entry]

    @_translated
    def delegate(self, record: DelegationRecord,
                 audit: AuditRecord | None = None) -> SlotResult:
        """Take the slot, store the delegation and its audit record in one script.

        The script refuses, before looking at any slot, a task whose delegation to
        another agent is still active (:func:`already_delegated`): one round trip."""
        keys = self.keys
        agent_id, task_id = record.agent_id, validate_id(record.task_id, "task_id")
        audit_keys, audit_args = self._audit_tail(audit)
        # The script reads the IDs (and later the status) from the JSON.
        data = record.model_dump_json()
        head = [keys.agent_max, keys.agent_load, keys.slots(agent_id), keys.delegations,
                keys.delegations_created, keys.delegations_of_agent(agent_id)]
        # The agent holding the task's earlier delegation, as far as we know: usually
        # none or the same agent, which the script checks (one round trip).
        earlier = agent_id
        scripts = self._scripts
        for _ in range(_CAS_ATTEMPTS):
            reply: list[Any] | None = scripts.run(
                scripts.delegate, (*head, keys.delegations_of_agent(earlier), *audit_keys),
                (data, time.time(), "" if earlier == agent_id else earlier,
                 record.delegated_at, *audit_args),
            )
            if reply is None:
                raise NotFoundError(f"agent {agent_id!r} is not registered")
            if reply[0] == "busy":
                raise already_delegated(task_id, reply[1])
            if reply[0] != "moved":
                limit, outcome, load = reply
                return SlotResult(acquired=outcome != 0, already_held=outcome == 2,
                                  current_load=load, max_concurrent_tasks=limit)
            earlier = reply[1]
        raise StoreError(f"Redis at {self.url}: the delegation of task {task_id!r} kept "
                         f"moving; gave up after {_CAS_ATTEMPTS} attempts")

    @_translated
    def complete_delegation(
        self, agent_id: str, task_id: str, completed_at: float,
        audit: AuditRecord | None = None,
    ) -> tuple[DelegationRecord | None, bool]:
        """Free the slot and mark the delegation completed in one script."""
        keys = self.keys
        audit_keys, audit_args = self._audit_tail(audit)
        done_at = float(completed_at)
        scripts = self._scripts
        reply: list[Any] | None = scripts.run(
            scripts.complete_delegation,
            (keys.delegations, keys.slots(agent_id), keys.agent_load, *audit_keys),
            (agent_id, validate_id(task_id, "task_id"),
             # As JSON: the script writes it into the record's JSON.
             repr(done_at) if math.isfinite(done_at) else json.dumps(done_at), *audit_args),
        )
        if reply is None:
            return None, False
        now, data = reply
        return DelegationRecord.model_validate_json(data), bool(now)

    @_translated
    def get_delegation(self, task_id: str) -> DelegationRecord | None:
        """The latest delegation of a task (one HGET)."""
        data = self._hget(self.keys.delegations, validate_id(task_id, "task_id"))
        return None if data is None else DelegationRecord.model_validate_json(data)

    @_translated
    def list_delegations(
        self, agent_id: str | None = None, status: str | None = None
    ) -> list[DelegationRecord]:
        """Delegations, oldest first, from the agent index (or all), of one status."""
        keys = self.keys
        index = (keys.delegations_created if agent_id is None
                 else keys.delegations_of_agent(agent_id))
        found = [DelegationRecord.model_validate_json(d)
                 for d in self._listed(keys.delegations, [index])]
        if status is None:
            return found
        validate_id(status, "status")
        return [d for d in found if d.status == status]

    # -- resources -----------------------------------------------------------------------
    @_translated
    def allocate(self, allocation: Allocation, now: float) -> Allocation | None:
        """Check capacity, take the slot and record the allocation in one script."""
        return self._allocate(allocation, now, ())

    @_translated
    def preempt_and_allocate(self, allocation: Allocation, victims: Sequence[str],
                             now: float) -> Allocation | None:
        """Remove the victims and allocate in one script, all or nothing."""
        gone = [validate_id(v, "task_id") for v in dict.fromkeys(victims)]
        return self._allocate(allocation, now, gone)

    def _allocation_keys(self, agent_id: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """KEYS of allocate.lua (all seven) and of release_allocation.lua (the first four,
        which allocate.lua needs unless reservations are involved) for one agent, built
        (and the ID validated) once per agent, and encoded: the hot path builds no key
        names and sends no more of them than it needs."""
        found = self._agent_keys.get(agent_id)
        if found is None:
            keys = self.keys
            ledger, slots = keys.allocations(agent_id), keys.slots(agent_id)
            allocate = (ledger, slots, keys.agent_load, keys.allocation_agents,
                        keys.reservations, keys.agent_reservations(agent_id),
                        keys.reservation_expiry)
            found = (tuple(k.encode() for k in allocate),
                     tuple(k.encode() for k in allocate[:4]))
            if len(self._agent_keys) >= _AGENT_KEYS_CACHED:
                self._agent_keys.clear()
            self._agent_keys[agent_id] = found
        return found

    def _allocate(self, allocation: Allocation, now: float,
                  victims: Sequence[str]) -> Allocation | None:
        """Run allocate.lua (see there): the stored allocation, or None."""
        agent_id = allocation.agent_id
        full, short = self._allocation_keys(agent_id)
        # The script reads the IDs and amounts from the JSON: validate what it will use.
        validate_id(allocation.task_id, "task_id")
        if allocation.reservation_id is not None:
            validate_id(allocation.reservation_id, "reservation_id")
        data = allocation.model_dump_json()
        if not allocation.holds_slot:
            # The script stores the JSON as sent when the task takes its slot (the
            # common case): send it saying so. holds_slot is its last field.
            data = data[:-6] + "true}"
        scripts, args = self._scripts, (data, now, *victims)
        reply: int | str = scripts.run(
            scripts.allocate, full if allocation.reservation_id else short, args)
        if reply == "keys":
            # A reservation it counted expired: the script needs the reservation keys to
            # stop counting it (at most once per expiry, never for a redeeming call).
            reply = scripts.run(scripts.allocate, full, args)
        if isinstance(reply, int):  # allocated; 1 when it took the task's slot
            stored = allocation.model_copy()
            # Set directly: validate_assignment would re-validate the whole record.
            stored.__dict__["holds_slot"] = reply == 1
            return stored
        if reply.startswith("{"):  # the task's existing allocation
            return Allocation.model_validate_json(reply)
        if reply == "missing":
            raise NotFoundError(f"agent {agent_id!r} is not registered")
        return None

    @_translated
    def release_allocation(self, agent_id: str, task_id: str) -> Allocation | None:
        """Remove and return an allocation, freeing the slot it holds (one script)."""
        scripts = self._scripts
        data: str | None = scripts.run(scripts.release_allocation,
                                       self._allocation_keys(agent_id)[1],
                                       (agent_id, validate_id(task_id, "task_id")))
        return None if data is None else Allocation.model_validate_json(data)

    @_translated
    def put_wait(self, wait: WaitRecord) -> None:
        """Record or refresh a wait (one MULTI/EXEC: the record and its agent's index)."""
        keys = self.keys
        index = keys.waits_of_agent(wait.agent_id)
        field = f"{wait.agent_id}:{validate_id(wait.task_id, 'task_id')}"
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(keys.waits, field, wait.model_dump_json())
        pipe.zadd(index, {field: wait.since})
        pipe.execute()

    @_translated
    def delete_wait(self, agent_id: str, task_id: str) -> bool:
        """Forget a wait (one MULTI/EXEC)."""
        keys = self.keys
        index = keys.waits_of_agent(agent_id)
        field = f"{agent_id}:{validate_id(task_id, 'task_id')}"
        pipe = self._client.pipeline(transaction=True)
        pipe.hdel(keys.waits, field)
        pipe.zrem(index, field)
        removed, _ = pipe.execute()
        return bool(removed)

    @_translated
    def list_waits(self, agent_id: str | None = None) -> list[WaitRecord]:
        """Waits (on one agent, from its index), oldest first."""
        keys = self.keys
        if agent_id is None:
            datas = self._hvals(keys.waits)
        else:
            datas = self._listed(keys.waits, [keys.waits_of_agent(agent_id)])
        found = [WaitRecord.model_validate_json(d) for d in datas]
        return sorted(found, key=lambda w: (w.since, w.agent_id, w.task_id))

    @_translated
    def list_allocations(self, agent_id: str | None = None) -> list[Allocation]:
        """Allocations by creation time."""
        keys = self.keys
        if agent_id is not None:
            datas = self._hvals(keys.allocations(agent_id))
        else:
            agents = cast("set[str]", self._client.smembers(keys.allocation_agents))
            pipe = self._client.pipeline(transaction=True)
            for agent in sorted(agents):
                pipe.hvals(keys.allocations(agent))
            datas = [data for chunk in pipe.execute() for data in chunk]
        # A ledger's other fields (limits, counters) are numbers; allocations are JSON.
        found = [Allocation.model_validate_json(d) for d in datas if d.startswith("{")]
        return sorted(found, key=lambda a: (a.created_at, a.agent_id, a.task_id))

    @_translated
    def reserve(self, reservation: Reservation, now: float) -> bool:
        """Check capacity and record the reservation in one script."""
        keys = self.keys
        agent_id = reservation.agent_id
        rid = validate_id(reservation.reservation_id, "reservation_id")
        status: str = self._scripts.reserve(
            keys=[keys.allocations(agent_id), keys.reservations,
                  keys.agent_reservations(agent_id), keys.reservation_expiry],
            args=[rid, reservation.model_dump_json(), now, reservation.expires_at,
                  *_amounts(reservation)],
        )
        if status == "missing":
            raise NotFoundError(f"agent {agent_id!r} is not registered")
        if status == "exists":
            raise StoreError(f"reservation {rid!r} exists already")
        return status == "reserved"

    @_translated
    def get_reservation(self, reservation_id: str) -> Reservation | None:
        """Return a reservation."""
        data = self._hget(
            self.keys.reservations, validate_id(reservation_id, "reservation_id"))
        return None if data is None else Reservation.model_validate_json(data)

    @_translated
    def cancel_reservation(self, reservation_id: str) -> bool:
        """Remove a reservation (read its agent, then one script)."""
        keys = self.keys
        rid = validate_id(reservation_id, "reservation_id")

        def attempt() -> bool | _Conflict:
            data = self._hget(keys.reservations, rid)
            if data is None:
                return False
            agent_id = Reservation.model_validate_json(data).agent_id
            outcome: int = self._scripts.cancel_reservation(
                keys=[keys.reservations, keys.agent_reservations(agent_id),
                      keys.reservation_expiry, keys.allocations(agent_id)],
                args=[rid],
            )
            return _CONFLICT if outcome < 0 else outcome == 1

        return self._until_set(attempt, f"reservation {rid!r}")

    def _listed(self, records: str, index: Sequence[str], low: Arg = "-inf",
                high: Arg = "+inf") -> list[str]:
        """JSON of the records in ``index[0]`` (scores ``low..high``) and every other
        index of ``index``, in the order of ``index[0]`` (list_indexed.lua)."""
        return [row[0] for row in self._listed_columns([records], index, low, high)]

    def _listed_columns(self, columns: Sequence[str], index: Sequence[str],
                        low: Arg = "-inf", high: Arg = "+inf") -> list[tuple[str, ...]]:
        """Like :meth:`_listed`, reading several hashes (columns) of each record; a
        record whose first column is missing is left out."""
        _, *values = self._scripts.list_indexed(
            keys=[*columns, *index], args=[low, high, len(columns)])
        return [row for row in zip(*values, strict=True) if row[0] is not None]

    @_translated
    def list_reservations(self, agent_id: str | None = None) -> list[Reservation]:
        """Reservations by creation time."""
        keys = self.keys
        if agent_id is None:
            datas = self._hvals(keys.reservations)
        else:
            datas = self._listed(keys.reservations, [keys.agent_reservations(agent_id)])
        found = [Reservation.model_validate_json(d) for d in datas]
        return sorted(found, key=lambda r: (r.created_at, r.reservation_id))

    @_translated
    def expire_reservations(self, now: float) -> list[Reservation]:
        """Drop reservations whose ``expires_at`` is not after ``now``."""
        keys = self.keys
        due = [Reservation.model_validate_json(d)
               for d in self._listed(keys.reservations, [keys.reservation_expiry], "-inf", now)]
        if not due:
            return []
        gone: list[str] = self._scripts.expire_reservations(
            keys=[keys.reservations, keys.reservation_expiry,
                  *(key for r in due for key in (keys.agent_reservations(r.agent_id),
                                                 keys.allocations(r.agent_id)))],
            args=[now, *(r.reservation_id for r in due)],
        )
        found = [Reservation.model_validate_json(d) for d in gone]
        return sorted(found, key=lambda r: (r.created_at, r.reservation_id))

    # -- workflows and runs ----------------------------------------------------------------
    @_translated
    def put_workflow(self, workflow: WorkflowDefinition) -> None:
        """Insert or replace a workflow definition (one HSET)."""
        self._client.hset(self.keys.workflows,
                          validate_id(workflow.workflow_id, "workflow_id"),
                          workflow.model_dump_json())

    @_translated
    def get_workflow(self, workflow_id: str) -> WorkflowDefinition | None:
        """Return a workflow definition."""
        data = self._hget(
            self.keys.workflows, validate_id(workflow_id, "workflow_id"))
        return None if data is None else WorkflowDefinition.model_validate_json(data)

    @_translated
    def list_workflows(self) -> list[WorkflowDefinition]:
        """All workflow definitions, by workflow_id."""
        datas = self._hvals(self.keys.workflows)
        found = [WorkflowDefinition.model_validate_json(d) for d in datas]
        return sorted(found, key=lambda w: w.workflow_id)

    @_translated
    def delete_workflow(self, workflow_id: str) -> bool:
        """Remove a workflow definition (runs are kept)."""
        removed: int = self._client.hdel(self.keys.workflows,
                                         validate_id(workflow_id, "workflow_id"))
        return removed == 1

    @_translated
    def put_snapshot(self, snapshot_id: str, document: str) -> None:
        """Keep a document; an existing ID keeps its first document (HSETNX)."""
        self._client.hsetnx(self.keys.snapshots, validate_id(snapshot_id, "snapshot_id"),
                            document)

    @_translated
    def get_snapshot(self, snapshot_id: str) -> str | None:
        """A stored document."""
        return self._hget(self.keys.snapshots, validate_id(snapshot_id, "snapshot_id"))

    @_translated
    def create_run(self, run: RunRecord) -> None:
        """Insert a new run (one script); :class:`StoreError` if it exists."""
        keys = self.keys
        created: int = self._scripts.create_run(
            keys=[keys.runs, keys.run_cancel, keys.run_version, keys.clock, keys.runs_created,
                  keys.runs_of_workflow(run.workflow_id),
                  keys.runs_with_status(run.status.value)],
            args=[validate_id(run.run_id, "run_id"), run.model_dump_json(),
                  int(run.cancel_requested), run.created_at],
        )
        if not created:
            raise StoreError(f"run {run.run_id!r} exists already")

    @_translated
    def get_run(self, run_id: str) -> RunRecord | None:
        """Return a run."""
        data = self._hget(self.keys.runs, validate_id(run_id, "run_id"))
        return None if data is None else RunRecord.model_validate_json(data)

    @_translated
    def cancel_requested(self, run_id: str) -> bool | None:
        """Whether a cancel was requested, from its own hash (the run is not read)."""
        flag = self._hget(self.keys.run_cancel,
                                             validate_id(run_id, "run_id"))
        return None if flag is None else flag == "1"

    @_translated
    def update_run(self, run_id: str, changes: Mapping[str, Any]) -> RunRecord | None:
        """Apply allowed changes to a run (compare-and-set, status index kept)."""
        keys = self.keys
        validate_id(run_id, "run_id")

        def attempt() -> RunRecord | _Conflict | None:
            data, version = self._read_pair(keys.runs, keys.run_version, run_id)
            if data is None:
                return None
            old = RunRecord.model_validate_json(data)
            new = apply_changes(old, changes, RUN_MUTABLE_FIELDS)
            written: int = self._scripts.update_run(
                keys=[keys.runs, keys.run_cancel, keys.run_version, keys.clock,
                      keys.runs_with_status(old.status.value),
                      keys.runs_with_status(new.status.value)],
                args=[run_id, version, new.model_dump_json(), int(new.cancel_requested),
                      new.created_at],
            )
            return new if written else _CONFLICT

        return self._until_set(attempt, f"run {run_id!r}")

    @_translated
    def list_runs(
        self, workflow_id: str | None = None, status: str | None = None
    ) -> list[RunRecord]:
        """Runs, oldest first, from the workflow and status indexes."""
        keys = self.keys
        index = []
        if workflow_id is not None:
            index.append(keys.runs_of_workflow(workflow_id))
        if status is not None:
            index.append(keys.runs_with_status(status))
        datas = self._listed(keys.runs, index or [keys.runs_created])
        return [RunRecord.model_validate_json(d) for d in datas]

    @_translated
    def put_task_states(self, states: Sequence[TaskState]) -> None:
        """Upsert many task states in one script (group commit)."""
        self._write(states, (), ())

    @_translated
    def write_batch(self, states: Sequence[TaskState], audit: Sequence[AuditRecord],
                    events: Sequence[Event]) -> None:
        """Task states, audit records and events in one script: one round trip, atomic."""
        self._write(states, audit, events)

    def _write(self, states: Sequence[TaskState], audit: Sequence[AuditRecord],
               events: Sequence[Event]) -> tuple[list[int], list[int]]:
        """Run write_batch.lua; return the seqs given to the audit records and events."""
        if not (states or audit or events):
            return [], []
        keys = self.keys
        by_run: dict[str, list[TaskState]] = {}
        for state in states:
            by_run.setdefault(state.run_id, []).append(state)
        script_keys = [keys.audit, keys.audit_seq, keys.events, keys.events_seq]
        args: list[Arg] = [len(by_run), len(audit), len(events)]
        for run_id, group in by_run.items():
            script_keys.append(keys.task_states(run_id))
            args.append(len(group))
            for state in group:
                # task_id is a hash field, never part of a key; the model validated it.
                args += [state.task_id, state.model_dump_json()]
        for record in audit:
            index, entry = self._audit_entry(record)
            script_keys += index
            args += entry
        for event in events:
            script_keys.append(keys.events_of_kind(event.kind))
            args += [event.model_dump_json(exclude={"seq"}), 1]
        first_audit, first_event = self._scripts.write_batch(keys=script_keys, args=args)
        return (list(range(first_audit, first_audit + len(audit))),
                list(range(first_event, first_event + len(events))))

    def _audit_entry(self, record: AuditRecord) -> tuple[list[str], list[Arg]]:
        """The index sets an audit record joins, and its arguments for ``append`` in
        _append.lua (its JSON without seq, how many index sets)."""
        index = [self.keys.audit_of_kind(record.kind)]
        if record.workflow_id is not None:
            index.append(self.keys.audit_of_workflow(record.workflow_id))
        return index, [record.model_dump_json(exclude={"seq"}), len(index)]

    @_translated
    def get_task_states(self, run_id: str) -> list[TaskState]:
        """Task states of a run, by task_id."""
        states = cast("dict[str, str]", self._client.hgetall(self.keys.task_states(run_id)))
        return [TaskState.model_validate_json(states[t]) for t in sorted(states)]

    # -- handoffs ----------------------------------------------------------------------------
    @_translated
    def put_handoff(self, handoff: HandoffRecord, context: Mapping[str, Any] | None) -> None:
        """Insert or replace a handoff and its context (compare-and-set, index kept)."""
        keys = self.keys
        handoff_id = validate_id(handoff.handoff_id, "handoff_id")
        index = keys.handoffs_of_workflow(handoff.workflow_id)
        data = handoff.model_dump_json()
        shared = "" if context is None else json.dumps(dict(context))

        def attempt() -> _Conflict | None:
            old, version = self._read_pair(keys.handoffs, keys.handoff_version, handoff_id)
            old_index = index if old is None else keys.handoffs_of_workflow(
                HandoffRecord.model_validate_json(old).workflow_id)
            written: int = self._scripts.put_handoff(
                keys=[keys.handoffs, keys.handoff_context, keys.handoff_version, keys.clock,
                      keys.handoffs_created, old_index, index],
                args=[handoff_id, version, data, shared, handoff.created_at],
            )
            return None if written else _CONFLICT

        self._until_set(attempt, f"handoff {handoff_id!r}")

    @_translated
    def get_handoff(self, handoff_id: str) -> HandoffRecord | None:
        """Return a handoff."""
        data = self._hget(self.keys.handoffs,
                                             validate_id(handoff_id, "handoff_id"))
        return None if data is None else HandoffRecord.model_validate_json(data)

    @_translated
    def update_handoff(self, handoff_id: str, changes: Mapping[str, Any]) -> HandoffRecord | None:
        """Apply allowed changes to a handoff (compare-and-set)."""
        keys = self.keys
        validate_id(handoff_id, "handoff_id")

        def attempt() -> HandoffRecord | _Conflict | None:
            data, version = self._read_pair(keys.handoffs, keys.handoff_version, handoff_id)
            if data is None:
                return None
            new = apply_changes(HandoffRecord.model_validate_json(data), changes,
                                HANDOFF_MUTABLE_FIELDS)
            written: int = self._scripts.compare_and_set(
                keys=[keys.handoffs, keys.handoff_version, keys.clock],
                args=[handoff_id, version, new.model_dump_json()],
            )
            return new if written else _CONFLICT

        return self._until_set(attempt, f"handoff {handoff_id!r}")

    @_translated
    def get_handoff_context(self, handoff_id: str) -> dict[str, Any] | None:
        """Return the context of a handoff."""
        data = self._hget(self.keys.handoff_context,
                                             validate_id(handoff_id, "handoff_id"))
        if data is None:
            return None
        context: dict[str, Any] = json.loads(data)
        return context

    @_translated
    def list_handoffs(self, workflow_id: str | None = None) -> list[HandoffRecord]:
        """Handoffs, oldest first."""
        keys = self.keys
        index = (keys.handoffs_created if workflow_id is None
                 else keys.handoffs_of_workflow(workflow_id))
        return [HandoffRecord.model_validate_json(d)
                for d in self._listed(keys.handoffs, [index])]

    # -- audit and events ----------------------------------------------------------------------
    def _read_log(self, log: str, counter: str, index: str | None, after: int,
                  limit: int) -> list[tuple[int, dict[str, Any]]]:
        """(seq, record dict) of a log after ``after``, at most ``limit`` (read_log.lua)."""
        seqs, datas = self._scripts.read_log(
            keys=[log, counter] if index is None else [log, counter, index],
            args=[after, limit],
        )
        return [(int(s), json.loads(d)) for s, d in zip(seqs, datas, strict=True)
                if d is not None]

    @_translated
    def append_audit(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append audit records in one script; seqs come from one counter."""
        return self._write((), records, ())[0]

    @_translated
    def list_audit(
        self,
        workflow_id: str | None = None,
        kind: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Audit records after ``after``, from the workflow or kind index."""
        keys = self.keys
        after = max(after, 0)
        if limit <= 0:
            return []
        if workflow_id is not None and kind is not None:
            rows = self._both_filters(keys.audit_of_workflow(workflow_id), kind, after, limit)
        else:
            index = (keys.audit_of_workflow(workflow_id) if workflow_id is not None
                     else None if kind is None else keys.audit_of_kind(kind))
            rows = self._read_log(keys.audit, keys.audit_seq, index, after, limit)
        return [AuditRecord.model_validate({**data, "seq": seq}) for seq, data in rows]

    def _both_filters(self, workflow_index: str, kind: str, after: int,
                      limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Page through a workflow's audit records keeping those of ``kind``."""
        keys = self.keys
        found: list[tuple[int, dict[str, Any]]] = []
        page = max(limit, _AUDIT_PAGE)
        while len(found) < limit:
            rows = self._read_log(keys.audit, keys.audit_seq, workflow_index, after, page)
            found += [(seq, data) for seq, data in rows if data.get("kind") == kind]
            if len(rows) < page:
                break
            after = rows[-1][0]
        return found[:limit]

    @_translated
    def publish_events(self, events: Sequence[Event]) -> list[int]:
        """Append events in one script; seqs come from one counter."""
        return self._write((), (), events)[1]

    @_translated
    def list_events(
        self, after: int = 0, kind: str | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events after ``after`` (of ``kind``, from its index)."""
        keys = self.keys
        if limit <= 0:
            return []
        index = None if kind is None else keys.events_of_kind(kind)
        rows = self._read_log(keys.events, keys.events_seq, index, max(after, 0), limit)
        return [Event.model_validate({**data, "seq": seq}) for seq, data in rows]


def open_redis_store(url: str, settings: Settings | None = None) -> RedisStore:
    """Store factory for ``redis://`` and ``rediss://`` URLs.

    From ``settings``: ``redis_key_prefix`` (unless the URL has ``?prefix=``),
    ``redis_password`` (unless the URL has a password) and ``connection_pool_size``.
    """
    if settings is None:
        return RedisStore(url)
    secret = settings.redis_password
    return RedisStore(
        url,
        key_prefix=settings.redis_key_prefix,
        password=None if secret is None else secret.get_secret_value(),
        pool_size=settings.connection_pool_size,
    )
