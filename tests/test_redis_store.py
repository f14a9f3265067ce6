"""What only the Redis backend promises, checked against a real redis-server.

The Store contract itself runs on Redis through ``store_backends.BACKENDS``; these
tests cover scripts (EVALSHA, NOSCRIPT), key prefixes and layout, ID validation before
any key is built, round trips, compare-and-set under contention, credentials and TLS.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from pydantic import SecretStr

from devcrew_core.config import Settings
from devcrew_core.errors import ConfigError, DefinitionError, StoreError, UsageError
from devcrew_core.models import Priority, ResourceLimits
from devcrew_core.plugins import PluginManager
from devcrew_core.stores import open_store
from devcrew_core.stores.memory import MemoryStore
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
    RunStatus,
    TaskState,
    WaitRecord,
    WorkflowDefinition,
)
from devcrew_redis.store import RedisStore, open_redis_store

from redis_server import free_port, make_tls_files, running_redis

pytestmark = pytest.mark.redis

PASSWORD = "s3cret-Pw/with@odd:chars"


def _prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def admin(redis_server_url: str) -> Iterator[redis.Redis]:
    """A plain client of the session's server, for looking behind the store's back."""
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return _prefix()


@pytest.fixture
def store(redis_server_url: str, prefix: str) -> Iterator[RedisStore]:
    with open_redis_store(f"{redis_server_url}?prefix={prefix}") as opened:
        assert isinstance(opened, RedisStore)
        yield opened


def _keys(admin: redis.Redis, prefix: str) -> set[str]:
    # SCAN with the (escaped) hash tag: the test may look, the store never does.
    return set(admin.scan_iter(match=f"\\{{{prefix}\\}}:*", count=1000))


def agent(agent_id: str = "a1", agent_type: str = "Backend-Engineer",
          capabilities: tuple[str, ...] = ("python", "testing"),
          max_tasks: int = 3) -> AgentRecord:
    return AgentRecord(agent_id=agent_id, agent_type=agent_type,
                       capabilities=list(capabilities), max_concurrent_tasks=max_tasks)


def delegation(task_id: str, agent_id: str = "a1", at: float = 1.0) -> DelegationRecord:
    return DelegationRecord(task_id=task_id, agent_id=agent_id, agent_type="Backend-Engineer",
                            task_type="api", delegated_at=at)


def _workload(store: RedisStore) -> None:
    """Call every method of the store once or more."""
    now = 1000.0
    store.put_agent(agent())
    store.put_agent(agent("a2", capabilities=("python",)))
    store.get_agent("a1")
    store.update_agent("a1", {"available": False})
    store.list_agents()
    store.list_agents("Backend-Engineer")
    store.find_agents(["python", "testing"])
    store.find_agents(["python"], "Backend-Engineer")
    store.acquire_slots("a1", ["t1", "t2"])
    store.transfer_slots([("a1", "t2", "t3")])
    store.release_slots([("a1", "t1"), ("a1", "t3")])
    store.delegate(delegation("d1"), AuditRecord(kind="delegation", subject_id="d1"))
    with contextlib.suppress(UsageError):  # still active on a1: refused
        store.delegate(delegation("d1", "a2"))
    store.complete_delegation("a1", "d1", now, AuditRecord(kind="completion"))
    store.delegate(delegation("d1", "a2"))
    store.complete_delegation("a2", "d1", now, AuditRecord(kind="completion"))
    store.get_delegation("d1")
    store.list_delegations()
    store.list_delegations("a2", "completed")
    store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=1), now)
    store.allocate(Allocation(agent_id="a1", task_id="t2", cpu_cores=1), now)
    store.preempt_and_allocate(Allocation(agent_id="a1", task_id="t3", cpu_cores=1),
                               ["t2"], now)
    store.put_wait(WaitRecord(agent_id="a1", task_id="t4", cpu_cores=1, since=now))
    store.list_waits()
    store.list_waits("a1")
    store.delete_wait("a1", "t4")
    store.reserve(Reservation(reservation_id="r1", agent_id="a1", cpu_cores=1,
                              expires_at=now + 10), now)
    store.reserve(Reservation(reservation_id="r2", agent_id="a1", cpu_cores=1,
                              expires_at=now + 1), now)
    store.list_allocations()
    store.list_allocations("a1")
    store.get_reservation("r1")
    store.list_reservations()
    store.list_reservations("a1")
    store.expire_reservations(now + 5)
    store.cancel_reservation("r1")
    store.release_allocation("a1", "t1")
    store.release_allocation("a1", "t3")
    store.put_workflow(WorkflowDefinition(workflow_id="wf", definition={"n": 1}))
    store.get_workflow("wf")
    store.list_workflows()
    store.delete_workflow("wf")
    store.put_snapshot("snap", "{}")
    store.get_snapshot("snap")
    store.create_run(RunRecord(run_id="run1", workflow_id="wf"))
    store.update_run("run1", {"status": "running"})
    store.get_run("run1")
    store.cancel_requested("run1")
    store.list_runs()
    store.list_runs(workflow_id="wf", status="running")
    store.write_batch([TaskState(run_id="run1", task_id="t1")],
                      [AuditRecord(kind="delegation", workflow_id="wf")], [Event(kind="e")])
    store.put_task_states([TaskState(run_id="run1", task_id="t2")])
    store.get_task_states("run1")
    handoff = HandoffRecord(handoff_id="h1", workflow_id="wf", source_agent_id="a1",
                            source_agent_type="Backend-Engineer", target_agent_type="QA")
    store.put_handoff(handoff, {"k": 1})
    store.update_handoff("h1", {"status": "failed"})
    store.get_handoff("h1")
    store.get_handoff_context("h1")
    store.list_handoffs()
    store.list_handoffs("wf")
    store.append_audit([AuditRecord(kind="handoff")])
    store.list_audit()
    store.list_audit(workflow_id="wf")
    store.list_audit(kind="handoff")
    store.list_audit(workflow_id="wf", kind="delegation")
    store.publish_events([Event(kind="e")])
    store.list_events()
    store.list_events(kind="e")
    store.delete_agent("a2")
    store.ping()


# -- scripts ------------------------------------------------------------------------------
def test_scripts_are_reloaded_after_script_flush(store: RedisStore,
                                                 admin: redis.Redis) -> None:
    store.put_agent(agent(max_tasks=1))
    assert store.acquire_slot("a1", "t1").acquired
    admin.script_flush()
    assert not any(admin.script_exists(*(s.sha for s in store._scripts.all())))
    # EVALSHA answers NOSCRIPT; the script loads itself and runs, exactly once.
    refused = store.acquire_slot("a1", "t2")
    assert not refused.acquired and refused.current_load == 1
    assert store.release_slot("a1", "t1") is True
    assert store.release_slot("a1", "t1") is False
    assert admin.script_exists(store._scripts.acquire_slots.sha) == [True]
    # The hot path runs its scripts without the Script call, reloading them the same way.
    admin.script_flush()
    got = store.allocate(Allocation(agent_id="a1", task_id="t3"), 1.0)
    assert got is not None and got.holds_slot
    admin.script_flush()
    assert store.release_allocation("a1", "t3") == got
    assert store.acquire_slot("a1", "t4").acquired, "the allocation's slot was freed"


def test_every_script_compiles_and_is_loaded_when_the_store_opens(
    store: RedisStore, admin: redis.Redis
) -> None:
    assert len(store._scripts.all()) >= 18
    assert all(admin.script_exists(*(s.sha for s in store._scripts.all())))


def test_no_keys_or_scan_command_is_ever_used(store: RedisStore, admin: redis.Redis) -> None:
    admin.config_resetstat()
    _workload(store)
    stats = admin.info("commandstats")
    assert "cmdstat_keys" not in stats
    assert "cmdstat_scan" not in stats
    assert "cmdstat_eval" not in stats, "scripts run by SHA, never sent whole"
    assert stats["cmdstat_evalsha"]["calls"] > 10
    assert "cmdstat_sinter" in stats, "find_agents intersects the capability index sets"


# -- keys ------------------------------------------------------------------------------------
def test_prefixes_isolate_stores_on_one_server(redis_server_url: str,
                                               admin: redis.Redis) -> None:
    first, second = _prefix(), _prefix()
    with (open_redis_store(f"{redis_server_url}?prefix={first}") as one,
          open_redis_store(f"{redis_server_url}?prefix={second}") as two):
        one.put_agent(agent(max_tasks=1))
        assert one.acquire_slot("a1", "t1").acquired
        one.append_audit([AuditRecord(kind="delegation")])
        assert two.get_agent("a1") is None and two.list_agents() == []
        assert two.list_audit() == []
        two.put_agent(agent(max_tasks=1))
        assert two.acquire_slot("a1", "t9").acquired, "a slot of one store is not the other's"
        assert two.append_audit([AuditRecord(kind="x")]) == [1], "each store numbers its own"
    assert _keys(admin, first) and _keys(admin, second)
    assert not _keys(admin, first) & _keys(admin, second)


def test_prefix_comes_from_the_url_else_the_settings(redis_server_url: str,
                                                     admin: redis.Redis) -> None:
    from_settings, from_url = _prefix(), _prefix()
    settings = Settings(redis_key_prefix=from_settings, connection_pool_size=3)
    with open_redis_store(redis_server_url, settings) as store:
        store.put_workflow(WorkflowDefinition(workflow_id="wf", definition={}))
        pool: Any = store._client.connection_pool
        assert pool.max_connections == 3
    assert _keys(admin, from_settings) == {f"{{{from_settings}}}:workflows"}
    with open_redis_store(f"{redis_server_url}?prefix={from_url}", settings) as store:
        store.put_workflow(WorkflowDefinition(workflow_id="wf", definition={}))
    assert _keys(admin, from_url) == {f"{{{from_url}}}:workflows"}


@pytest.mark.parametrize("bad", ["a:b", "*", "{x}", ""])
def test_an_invalid_prefix_is_a_config_error(redis_server_url: str, bad: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        open_redis_store(f"{redis_server_url}?prefix={bad}")


def test_key_layout_and_json_values(store: RedisStore, prefix: str,
                                    admin: redis.Redis) -> None:
    store.put_agent(agent())
    store.acquire_slot("a1", "t1")
    store.create_run(RunRecord(run_id="r1", workflow_id="wf", status=RunStatus.RUNNING))
    store.append_audit([AuditRecord(kind="hand:off", workflow_id="wf")])
    store.put_wait(WaitRecord(agent_id="a1", task_id="t2", since=1.0))
    root = f"{{{prefix}}}"
    assert _keys(admin, prefix) >= {
        f"{root}:waits", f"{root}:waits:agent:a1",
        f"{root}:agents", f"{root}:agents:max", f"{root}:allocations:agent:a1",
        f"{root}:agents:version", f"{root}:agents:load", f"{root}:agents:slots:a1",
        f"{root}:agents:type:Backend-Engineer", f"{root}:agents:capability:python",
        f"{root}:runs", f"{root}:runs:created", f"{root}:runs:workflow:wf",
        f"{root}:runs:status:running", f"{root}:audit", f"{root}:audit:seq",
        f"{root}:audit:workflow:wf", f"{root}:audit:kind:hand%3Aoff", f"{root}:clock",
    }
    stored = json.loads(admin.hget(f"{root}:agents", "a1") or "")
    assert stored["agent_id"] == "a1" and "current_load" not in stored
    assert json.loads(admin.hget(f"{root}:runs", "r1") or "")["status"] == "running"
    assert admin.zrange(f"{root}:agents:slots:a1", 0, -1) == ["t1"]
    assert admin.hget(f"{root}:agents:load", "a1") == "1"
    assert admin.hget(f"{root}:waits", "a1:t2") == store.list_waits()[0].model_dump_json()
    # The ledger: allocations by task, and the agent's limits and counters under ':'.
    got = store.allocate(Allocation(agent_id="a1", task_id="t3", cpu_cores=1), 0.0)
    assert got is not None and got.holds_slot
    ledger = admin.hgetall(f"{root}:allocations:agent:a1")
    assert ledger["t3"] == got.model_dump_json()
    assert {k: v for k, v in ledger.items() if k.startswith(":")} == {
        ":max": "3", ":limit:cpu_cores": "-1", ":limit:memory_mb": "-1",
        ":limit:disk_mb": "-1", ":limit:network_mbps": "-1", ":n": "1",
        ":used:cpu_cores": "1", ":used:memory_mb": "0", ":used:disk_mb": "0",
        ":used:network_mbps": "0"}
    assert admin.smembers(f"{root}:allocations:agents") == {"a1"}


BAD_IDS = ["a:b", "*", "[x]", "a?", "x y", "", "..", "{devcrew}", "a\\b", "é", "x" * 129]

BAD_CALLS: dict[str, Callable[[RedisStore, str], object]] = {
    "put_agent": lambda s, b: s.put_agent(AgentRecord.model_construct(
        **{**agent().model_dump(), "agent_id": b})),
    "put_agent type": lambda s, b: s.put_agent(AgentRecord.model_construct(
        **{**agent("a9").model_dump(), "agent_type": b})),
    "put_agent capability": lambda s, b: s.put_agent(AgentRecord.model_construct(
        **{**agent("a9").model_dump(), "capabilities": ["python", b]})),
    "get_agent": lambda s, b: s.get_agent(b),
    "update_agent": lambda s, b: s.update_agent(b, {"available": False}),
    "delete_agent": lambda s, b: s.delete_agent(b),
    "list_agents": lambda s, b: s.list_agents(b),
    "find_agents capability": lambda s, b: s.find_agents(["python", b]),
    "find_agents type": lambda s, b: s.find_agents(["python"], b),
    "acquire_slot agent": lambda s, b: s.acquire_slot(b, "t1"),
    "acquire_slot task": lambda s, b: s.acquire_slot("a1", b),
    "release_slot agent": lambda s, b: s.release_slot(b, "t1"),
    "release_slot task": lambda s, b: s.release_slot("a1", b),
    "release_slots": lambda s, b: s.release_slots([("a1", "t1"), (b, "t1")]),
    "transfer_slots": lambda s, b: s.transfer_slots([("a1", "t1", b)]),
    "allocate": lambda s, b: s.allocate(Allocation.model_construct(
        **{**Allocation(agent_id="a1", task_id="t5").model_dump(), "agent_id": b}), 0.0),
    "preempt_and_allocate agent": lambda s, b: s.preempt_and_allocate(
        Allocation.model_construct(**{**Allocation(agent_id="a1", task_id="t5").model_dump(),
                                      "agent_id": b}), ["t1"], 0.0),
    "preempt_and_allocate victim": lambda s, b: s.preempt_and_allocate(
        Allocation(agent_id="a1", task_id="t5"), ["t1", b], 0.0),
    "allocate task": lambda s, b: s.allocate(Allocation.model_construct(
        **{**Allocation(agent_id="a1", task_id="t5").model_dump(), "task_id": b}), 0.0),
    "allocate reservation": lambda s, b: s.allocate(Allocation.model_construct(
        **{**Allocation(agent_id="a1", task_id="t5").model_dump(), "reservation_id": b}), 0.0),
    "release_allocation": lambda s, b: s.release_allocation(b, "t1"),
    "release_allocation task": lambda s, b: s.release_allocation("a1", b),
    "put_wait agent": lambda s, b: s.put_wait(WaitRecord.model_construct(
        **{**WaitRecord(agent_id="a1", task_id="t1").model_dump(), "agent_id": b})),
    "put_wait task": lambda s, b: s.put_wait(WaitRecord.model_construct(
        **{**WaitRecord(agent_id="a1", task_id="t1").model_dump(), "task_id": b})),
    "delete_wait agent": lambda s, b: s.delete_wait(b, "t1"),
    "delete_wait task": lambda s, b: s.delete_wait("a1", b),
    "list_waits": lambda s, b: s.list_waits(b),
    "list_allocations": lambda s, b: s.list_allocations(b),
    "reserve": lambda s, b: s.reserve(Reservation.model_construct(**{**Reservation(
        reservation_id="r9", agent_id="a1", expires_at=9e9).model_dump(), "agent_id": b}), 0.0),
    "get_reservation": lambda s, b: s.get_reservation(b),
    "cancel_reservation": lambda s, b: s.cancel_reservation(b),
    "list_reservations": lambda s, b: s.list_reservations(b),
    "put_workflow": lambda s, b: s.put_workflow(WorkflowDefinition.model_construct(
        workflow_id=b, definition={}, created_at=0.0, updated_at=0.0)),
    "get_workflow": lambda s, b: s.get_workflow(b),
    "delete_workflow": lambda s, b: s.delete_workflow(b),
    "put_snapshot": lambda s, b: s.put_snapshot(b, "{}"),
    "get_snapshot": lambda s, b: s.get_snapshot(b),
    "create_run": lambda s, b: s.create_run(RunRecord.model_construct(
        **{**RunRecord(run_id="r9", workflow_id="wf").model_dump(), "workflow_id": b})),
    "get_run": lambda s, b: s.get_run(b),
    "cancel_requested": lambda s, b: s.cancel_requested(b),
    "update_run": lambda s, b: s.update_run(b, {"status": "failed"}),
    "list_runs workflow": lambda s, b: s.list_runs(workflow_id=b),
    "list_runs status": lambda s, b: s.list_runs(status=b),
    "put_task_states": lambda s, b: s.put_task_states([TaskState.model_construct(
        **{**TaskState(run_id="r1", task_id="t1").model_dump(), "run_id": b})]),
    "get_task_states": lambda s, b: s.get_task_states(b),
    "get_handoff": lambda s, b: s.get_handoff(b),
    "update_handoff": lambda s, b: s.update_handoff(b, {"status": "failed"}),
    "get_handoff_context": lambda s, b: s.get_handoff_context(b),
    "list_handoffs": lambda s, b: s.list_handoffs(b),
    "list_audit": lambda s, b: s.list_audit(workflow_id=b),
    "append_audit": lambda s, b: s.append_audit([AuditRecord.model_construct(
        **{**AuditRecord(kind="k").model_dump(), "workflow_id": b})]),
}


def test_invalid_ids_are_rejected_before_any_key_is_touched(
    store: RedisStore, prefix: str, admin: redis.Redis
) -> None:
    store.put_agent(agent(max_tasks=2))
    store.acquire_slot("a1", "t1")
    store.create_run(RunRecord(run_id="r1", workflow_id="wf"))
    before = {key: admin.dump(key) for key in _keys(admin, prefix)}
    size = admin.dbsize()
    for name, call in BAD_CALLS.items():
        for bad in BAD_IDS:
            with pytest.raises(DefinitionError):
                call(store, bad)
                pytest.fail(f"{name} accepted the ID {bad!r}")
    assert {key: admin.dump(key) for key in _keys(admin, prefix)} == before
    assert admin.dbsize() == size
    got = store.get_agent("a1")
    assert got is not None and got.running_tasks == ["t1"]


def test_free_text_kinds_never_act_as_patterns(store: RedisStore) -> None:
    store.append_audit([AuditRecord(kind="a:b"), AuditRecord(kind="*"), AuditRecord(kind="x")])
    store.publish_events([Event(kind="[x]"), Event(kind="x")])
    assert [r.kind for r in store.list_audit(kind="*")] == ["*"]
    assert [r.kind for r in store.list_audit(kind="a:b")] == ["a:b"]
    assert store.list_audit(kind="a*") == []
    assert [e.kind for e in store.list_events(kind="[x]")] == ["[x]"]
    assert store.list_events(kind="?") == []


# -- round trips ---------------------------------------------------------------------------------
class _RoundTrips:
    """Counts the requests the store's connections write to the socket."""

    def __init__(self, store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._lock = threading.Lock()
        # Connect three pooled connections first: the hot paths keep one per thread
        # (devcrew_redis.pinned), and opening another (its handshake) is not the call's.
        pool = store._client.connection_pool
        connections = [pool.get_connection() for _ in range(3)]
        for connection in connections:
            connection.connect()
            pool.release(connection)
        original = type(connection).send_packed_command

        def counting(conn: Any, command: Any, check_health: bool = True) -> None:
            with self._lock:
                self.count += 1
            original(conn, command, check_health)

        monkeypatch.setattr(type(connection), "send_packed_command", counting)

    def of(self, call: Callable[[], object]) -> int:
        start = self.count
        call()
        return self.count - start


def test_hot_path_calls_are_one_round_trip_each(store: RedisStore,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store.put_agent(agent())
    store.create_run(RunRecord(run_id="r1", workflow_id="wf"))
    trips = _RoundTrips(store, monkeypatch)
    assert trips.of(lambda: store.find_agents(["python", "testing"], "Backend-Engineer")) == 1
    assert trips.of(lambda: store.acquire_slot("a1", "t1")) == 1
    assert trips.of(lambda: store.acquire_slots("a1", ["t2", "t3"])) == 1
    assert trips.of(lambda: store.transfer_slots([("a1", "t3", "t4")])) == 1
    assert trips.of(lambda: store.release_slot("a1", "t1")) == 1
    assert trips.of(lambda: store.release_slots([("a1", "t2"), ("a1", "t4")])) == 1
    assert trips.of(lambda: store.get_agent("a1")) == 1
    assert trips.of(lambda: store.cancel_requested("r1")) == 1
    assert trips.of(lambda: store.write_batch(
        [TaskState(run_id="r1", task_id=f"t{i}") for i in range(50)],
        [AuditRecord(kind="delegation", workflow_id="wf") for _ in range(20)],
        [Event(kind="task.completed") for _ in range(20)])) == 1
    assert trips.of(lambda: store.list_audit(workflow_id="wf", limit=5)) == 1
    assert trips.of(lambda: store.list_runs(workflow_id="wf", status="pending")) == 1
    assert trips.of(lambda: store.update_run("r1", {"status": "running"})) == 2
    audit = AuditRecord(kind="delegation", workflow_id="wf", subject_id="d1")
    assert trips.of(lambda: store.delegate(delegation("d1"), audit)) == 1
    assert trips.of(lambda: store.complete_delegation("a1", "d1", 2.0, audit)) == 1
    assert trips.of(lambda: store.get_delegation("d1")) == 1
    assert trips.of(lambda: store.list_delegations("a1", "completed")) == 1
    now = time.time()
    reservation = Reservation(reservation_id="r1", agent_id="a1", task_id="t8", cpu_cores=1,
                              expires_at=now + 60)
    assert trips.of(lambda: store.reserve(reservation, now)) == 1
    assert trips.of(lambda: store.allocate(Allocation(agent_id="a1", task_id="t7"), now)) == 1
    assert trips.of(lambda: store.allocate(
        Allocation(agent_id="a1", task_id="t8", reservation_id="r1"), now)) == 1
    assert trips.of(lambda: store.preempt_and_allocate(
        Allocation(agent_id="a1", task_id="t9"), ["t7", "t8"], now)) == 1
    assert trips.of(lambda: store.release_allocation("a1", "t9")) == 1
    # A counted reservation expired: the script asks for the reservation keys once.
    store.reserve(Reservation(reservation_id="r2", agent_id="a1", cpu_cores=1,
                              expires_at=now + 1), now)
    assert trips.of(lambda: store.allocate(Allocation(agent_id="a1", task_id="t10"),
                                           now + 2)) == 2
    assert trips.of(lambda: store.allocate(Allocation(agent_id="a1", task_id="t11"),
                                           now + 3)) == 1
    wait = WaitRecord(agent_id="a1", task_id="t9", since=now)
    assert trips.of(lambda: store.put_wait(wait)) == 1
    assert trips.of(lambda: store.list_waits("a1")) == 1
    assert trips.of(lambda: store.list_waits()) == 1
    assert trips.of(lambda: store.delete_wait("a1", "t9")) == 1


# -- the resource ledger ------------------------------------------------------------------------
DIMS = ("cpu_cores", "memory_mb", "disk_mb", "network_mbps")


def _ledger(admin: redis.Redis, prefix: str, agent_id: str = "a1") -> dict[str, float]:
    """The counters of an agent's ledger (absent ones are 0)."""
    fields = [":n", *(f":used:{d}" for d in DIMS), *(f":reserved:{d}" for d in DIMS)]
    values = admin.hmget(f"{{{prefix}}}:allocations:agent:{agent_id}", fields)
    return {f: float(v or 0) for f, v in zip(fields, values, strict=True)}


def _expected_ledger(store: RedisStore, admin: redis.Redis, prefix: str,
                     agent_id: str = "a1") -> dict[str, float]:
    """What the ledger should say: the sums of the allocations and of the reservations
    it still counts (those expiring after ``:swept``, the latest time a capacity check
    saw; a reservation stops counting once a check sees it expired)."""
    swept = admin.hget(f"{{{prefix}}}:allocations:agent:{agent_id}", ":swept")
    allocations = store.list_allocations(agent_id)
    live = [r for r in store.list_reservations(agent_id)
            if swept is None or r.expires_at > float(swept)]
    return {":n": len(allocations),
            **{f":used:{d}": sum(getattr(a, d) for a in allocations) for d in DIMS},
            **{f":reserved:{d}": sum(getattr(r, d) for r in live) for d in DIMS}}


def test_allocate_and_release_never_read_every_allocation(store: RedisStore,
                                                          admin: redis.Redis) -> None:
    store.put_agent(agent(max_tasks=1000))
    now = time.time()
    for i in range(200):
        store.allocate(Allocation(agent_id="a1", task_id=f"bg{i}", cpu_cores=0.5), now)
        store.reserve(Reservation(reservation_id=f"r{i}", agent_id="a1", cpu_cores=0.5,
                                  expires_at=now + 3600), now)
    admin.config_resetstat()
    for i in range(20):
        assert store.allocate(Allocation(agent_id="a1", task_id=f"t{i}", cpu_cores=1),
                              now) is not None
        assert store.release_allocation("a1", f"t{i}") is not None
    stats = admin.info("commandstats")
    # The usage counters answer: no call lists the agent's records.
    assert not {"cmdstat_hvals", "cmdstat_hgetall", "cmdstat_zrangebyscore",
                "cmdstat_zrange", "cmdstat_smembers"} & set(stats)
    assert stats["cmdstat_evalsha"]["calls"] == 40


def test_the_ledger_counts_exactly_what_the_records_hold(store: RedisStore, prefix: str,
                                                         admin: redis.Redis) -> None:
    """A random mix of every call that changes allocations and reservations, compared
    call by call with the memory store; the ledger's counters match the records."""
    rng = random.Random(20240607)  # noqa: S311 - a reproducible workload, not a secret
    limits = ResourceLimits(cpu_cores=8, memory_mb=4096, disk_mb=1000)
    memory = MemoryStore()
    for one in (store, memory):
        one.put_agent(AgentRecord(agent_id="a1", agent_type="T", capabilities=["x"],
                                  max_concurrent_tasks=4, resource_limits=limits))
    tasks = [f"t{i}" for i in range(8)]
    now = 1000.0
    made = 0
    for step in range(400):
        now += rng.choice((0.0, 0.5, 2.0))  # time only moves forward
        task = rng.choice(tasks)
        # Amounts on a binary grid: sums are exact, so both stores decide alike.
        amounts = {"cpu_cores": rng.choice((0.5, 1, 2, 3)),
                   "memory_mb": rng.choice((0, 256, 1024)), "disk_mb": rng.choice((0, 100))}
        kind = rng.choice(("allocate", "allocate", "release", "reserve", "redeem", "cancel",
                           "expire", "preempt", "slot"))
        if kind in ("allocate", "redeem", "preempt"):
            redeem = None
            if kind == "redeem":
                live = memory.list_reservations("a1")
                redeem = rng.choice(live).reservation_id if live else None
            request = Allocation(agent_id="a1", task_id=task, reservation_id=redeem,
                                 created_at=now, **amounts)
            if kind == "preempt":
                held = [a.task_id for a in memory.list_allocations("a1")]
                victims = rng.sample(held, k=min(len(held), rng.choice((1, 2))))
                if rng.random() < 0.2:
                    victims.append("nobody")
                got = [one.preempt_and_allocate(request, victims, now)
                       for one in (store, memory)]
            else:
                got = [one.allocate(request, now) for one in (store, memory)]
        elif kind == "release":
            got = [one.release_allocation("a1", task) for one in (store, memory)]
        elif kind == "reserve":
            made += 1
            reservation = Reservation(reservation_id=f"r{made}", agent_id="a1", task_id=task,
                                      expires_at=now + rng.choice((0.5, 2, 10)),
                                      created_at=now, **amounts)
            got = [one.reserve(reservation, now) for one in (store, memory)]
        elif kind == "cancel":
            rid = f"r{rng.randint(1, max(made, 1))}"
            got = [one.cancel_reservation(rid) for one in (store, memory)]
        elif kind == "expire":
            got = [one.expire_reservations(now) for one in (store, memory)]
        elif rng.random() < 0.5:
            # A task holding its slot before it is allocated keeps it (the allocation
            # leaves that slot alone); a slot freed behind an allocation's back is not
            # freed again when the allocation goes.
            got = [one.acquire_slot("a1", task).acquired for one in (store, memory)]
        else:
            got = [one.release_slot("a1", task) for one in (store, memory)]
        assert got[0] == got[1], f"step {step}: {kind} {task}"
        assert _ledger(admin, prefix) == _expected_ledger(store, admin, prefix), f"step {step}"
        redis_agent, memory_agent = store.get_agent("a1"), memory.get_agent("a1")
        assert redis_agent is not None and memory_agent is not None
        assert sorted(redis_agent.running_tasks) == sorted(memory_agent.running_tasks)
        assert redis_agent.current_load == memory_agent.current_load
    assert store.list_allocations() == memory.list_allocations()
    assert store.list_reservations() == memory.list_reservations()


def test_a_reservation_seen_expired_stops_counting_once(store: RedisStore, prefix: str,
                                                        admin: redis.Redis) -> None:
    store.put_agent(AgentRecord(agent_id="a1", agent_type="T", capabilities=["x"],
                                resource_limits=ResourceLimits(cpu_cores=4, memory_mb=100)))
    now = 1000.0
    assert store.reserve(Reservation(reservation_id="r1", agent_id="a1", cpu_cores=3,
                                     expires_at=now + 10), now)
    assert _ledger(admin, prefix)[":reserved:cpu_cores"] == 3
    # An allocation at a later time sees it expired: it stops counting, but stays.
    assert store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=4),
                          now + 20) is not None
    assert _ledger(admin, prefix)[":reserved:cpu_cores"] == 0
    assert store.get_reservation("r1") is not None
    # Expiring or cancelling it later subtracts nothing more.
    assert [r.reservation_id for r in store.expire_reservations(now + 20)] == ["r1"]
    assert store.release_allocation("a1", "t1") is not None
    assert _ledger(admin, prefix) == {k: 0.0 for k in _ledger(admin, prefix)}
    assert store.reserve(Reservation(reservation_id="r2", agent_id="a1", cpu_cores=4,
                                     expires_at=now + 60), now + 20)
    assert store.allocate(Allocation(agent_id="a1", task_id="t2", cpu_cores=1),
                          now + 20) is None, "r2 holds everything"


def test_counters_drop_back_to_exact_zero(store: RedisStore, prefix: str,
                                          admin: redis.Redis) -> None:
    store.put_agent(agent(max_tasks=50))
    now = 1000.0
    for round_ in range(3):
        for i in range(10):
            assert store.allocate(Allocation(agent_id="a1", task_id=f"t{i}", cpu_cores=0.1,
                                             memory_mb=0.3), now) is not None
            assert store.reserve(Reservation(reservation_id=f"r{round_}-{i}", agent_id="a1",
                                             cpu_cores=0.1, expires_at=now + 1), now)
        for i in range(10):
            store.release_allocation("a1", f"t{i}")
            store.cancel_reservation(f"r{round_}-{i}")
        # 0.1 added and taken away ten times is not 0.0 in floats; the counters are.
        root = f"{{{prefix}}}"
        counters = admin.hmget(f"{root}:allocations:agent:a1",
                               [":n", *(f":used:{d}" for d in DIMS),
                                *(f":reserved:{d}" for d in DIMS)])
        assert counters == ["0"] * 9
        assert admin.smembers(f"{root}:allocations:agents") == set()


def test_racing_allocations_preemptions_and_releases_keep_the_ledger_exact(
    store: RedisStore, prefix: str, admin: redis.Redis
) -> None:
    store.put_agent(AgentRecord(agent_id="a1", agent_type="T", capabilities=["x"],
                                max_concurrent_tasks=3,
                                resource_limits=ResourceLimits(cpu_cores=4, memory_mb=4096)))
    errors: list[str] = []

    def contend(who: int) -> None:
        rng = random.Random(who)  # noqa: S311 - a reproducible workload
        for i in range(150):
            task = f"w{who}-{rng.randint(0, 4)}"
            choice = rng.random()
            request = Allocation(agent_id="a1", task_id=task, cpu_cores=rng.choice((1, 2)),
                                 priority=Priority.HIGH)
            if choice < 0.45:
                store.allocate(request, 1000.0 + i)
            elif choice < 0.65:
                held = [a.task_id for a in store.list_allocations("a1")]
                if held:
                    store.preempt_and_allocate(request, rng.sample(held, 1), 1000.0 + i)
            else:
                store.release_allocation("a1", task)
            got = store.get_agent("a1")
            if got is None or got.current_load > 3:
                errors.append(f"load {got and got.current_load}")
            used = sum(a.cpu_cores for a in store.list_allocations("a1"))
            if used > 4:
                errors.append(f"cpu {used}")

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(contend, range(6)))
    assert errors == []
    allocations = store.list_allocations("a1")
    assert _ledger(admin, prefix) == _expected_ledger(store, admin, prefix)
    got = store.get_agent("a1")
    assert got is not None
    assert sorted(got.running_tasks) == sorted(a.task_id for a in allocations)
    assert all(a.holds_slot for a in allocations)


# -- consistency under contention ----------------------------------------------------------------
def test_concurrent_updates_of_different_fields_are_never_lost(store: RedisStore) -> None:
    store.create_run(RunRecord(run_id="r1", workflow_id="wf"))
    rounds = 40
    writers: dict[str, Callable[[int], dict[str, Any]]] = {
        "started_at": lambda i: {"started_at": float(i)},
        "completed_at": lambda i: {"completed_at": float(i)},
        "error": lambda i: {"error": str(i)},
        "data": lambda i: {"data": {"i": i}},
        "status": lambda i: {"status": "running" if i % 2 else "failed"},
    }

    def write(field: str) -> None:
        for i in range(1, rounds + 1):
            assert store.update_run("r1", writers[field](i)) is not None

    with ThreadPoolExecutor(max_workers=len(writers)) as pool:
        list(pool.map(write, writers))
    run = store.get_run("r1")
    assert run is not None
    assert (run.started_at, run.completed_at, run.error, run.data) == (
        float(rounds), float(rounds), str(rounds), {"i": rounds})
    assert run.status is RunStatus.FAILED
    # The status index moved with every update: the run is listed under one status only.
    assert [r.run_id for r in store.list_runs(status="failed")] == ["r1"]
    assert store.list_runs(status="running") == store.list_runs(status="pending") == []


def test_delegating_a_task_again_to_another_agent_moves_it_between_indexes(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_agent(agent("a1"))
    store.put_agent(agent("a2"))
    store.delegate(delegation("t1", "a1", at=1.0))
    store.complete_delegation("a1", "t1", 2.0)
    trips = _RoundTrips(store, monkeypatch)
    # The script finds the earlier delegation on a1 and asks for a1's index: two trips.
    assert trips.of(lambda: store.delegate(delegation("t1", "a2", at=3.0))) == 2
    assert store.list_delegations(agent_id="a1") == []
    assert [d.task_id for d in store.list_delegations(agent_id="a2")] == ["t1"]
    assert store.list_delegations(status="completed") == []
    got = store.get_delegation("t1")
    assert got is not None and (got.agent_id, got.status, got.completed_at) == (
        "a2", DelegationStatus.ACTIVE, None)
    assert store.complete_delegation("a1", "t1", 4.0) == (None, False)


def test_delegation_json_is_read_by_position_not_fooled_by_its_strings(
    store: RedisStore, prefix: str, admin: redis.Redis
) -> None:
    # The scripts read agent_id and status from the stored JSON and rewrite status and
    # completed_at in place: look-alikes in string fields and the context must not count.
    store.put_agent(agent("a1"))
    store.put_agent(agent("a2"))
    decoy = {"status": "completed", "x": ',"status":"completed","completed_at":7}',
             "completed_at": 8.0, "agent_id": "a2"}
    record = delegation("t1").model_copy(update={
        "priority": '","status":"completed', "task_type": '\\",\\"status\\":\\"x',
        "context": decoy})
    store.delegate(record)
    with pytest.raises(UsageError):  # still active on a1
        store.delegate(delegation("t1", "a2"))
    got, now = store.complete_delegation("a1", "t1", 2.5)
    assert now and got is not None and got.context == decoy
    assert (got.status, got.completed_at, got.priority) == (
        DelegationStatus.COMPLETED, 2.5, record.priority)
    assert store.get_delegation("t1") == got
    assert store.complete_delegation("a1", "t1", 3.0) == (got, False)
    assert store.list_delegations(status="completed") == [got]
    assert store.list_delegations("a1", "active") == []
    root = f"{{{prefix}}}"
    assert json.loads(admin.hget(f"{root}:delegations", "t1") or "") == json.loads(
        got.model_dump_json())


def test_racing_completions_free_the_slot_exactly_once(store: RedisStore) -> None:
    store.put_agent(agent(max_tasks=8))
    for round_ in range(10):
        task = f"t{round_}"
        assert store.delegate(delegation(task)).acquired
        barrier = threading.Barrier(8)

        def complete(_: int, task: str = task, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return store.complete_delegation("a1", task, 9.0,
                                             AuditRecord(kind="done", subject_id=task))[1]

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(complete, range(8))).count(True) == 1
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 0
    assert len(store.list_audit(kind="done")) == 10


def test_reregistering_with_another_type_moves_the_type_index(store: RedisStore) -> None:
    store.put_agent(agent("a1", agent_type="Old"))
    store.put_agent(agent("a1", agent_type="New"))
    assert store.list_agents("Old") == []
    assert [a.agent_id for a in store.list_agents("New")] == ["a1"]
    assert store.find_agents(["python"], "Old") == []


def test_long_lists_are_read_in_chunks(store: RedisStore) -> None:
    store.append_audit([AuditRecord(kind="k", workflow_id="wf", subject_id=str(i))
                        for i in range(2500)])
    assert [r.seq for r in store.list_audit(limit=3000)] == list(range(1, 2501))
    assert len(store.list_audit(workflow_id="wf", limit=3000)) == 2500
    assert [r.seq for r in store.list_audit(after=2490, limit=5)] == [2491, 2492, 2493, 2494,
                                                                       2495]
    for i in range(1100):
        store.put_agent(agent(f"agent-{i:04d}", capabilities=("bulk",)))
    found = store.find_agents(["bulk"])
    assert [a.agent_id for a in found] == [f"agent-{i:04d}" for i in range(1100)]


def test_audit_with_workflow_and_kind_pages_through_the_workflow(store: RedisStore) -> None:
    store.append_audit([AuditRecord(kind="a" if i % 3 == 0 else "b", workflow_id="wf",
                                    subject_id=str(i)) for i in range(1500)])
    store.append_audit([AuditRecord(kind="a", workflow_id="other")])
    found = store.list_audit(workflow_id="wf", kind="a", limit=2000)
    assert [r.subject_id for r in found] == [str(i) for i in range(0, 1500, 3)]
    later = store.list_audit(workflow_id="wf", kind="a", after=found[100].seq or 0, limit=3)
    assert [r.subject_id for r in later] == [str(i) for i in range(303, 312, 3)]


# -- connections and credentials ---------------------------------------------------------------
def test_the_plugin_opens_redis_and_rediss_urls(redis_server_url: str) -> None:
    manager = PluginManager.discover(environ={})
    assert manager.store_backend_for("redis://localhost/0").name == "redis"
    assert manager.store_backend_for("rediss://localhost/0").name == "redis"
    with open_store(f"{redis_server_url}?prefix={_prefix()}", plugins=manager) as store:
        assert isinstance(store, RedisStore) and store.blocking is True
        assert store.ping() is True


def test_unreachable_server_is_a_store_error_with_the_password_masked() -> None:
    url = _with_credentials(f"redis://127.0.0.1:{free_port()}/0", "app", PASSWORD)
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert message.startswith("cannot reach Redis at redis://app:********@127.0.0.1:")
    assert "s3cret" not in message and "s3cret" not in repr(caught.value.__cause__)


@pytest.mark.parametrize("url", [
    f"redis://app:{PASSWORD}@127.0.0.1:6379/0",  # not %-encoded: a malformed URL
    "redis://:s3cret@[::1/0",
    "redis://:s3cret@127.0.0.1:6379/0?socket_timeout=soon",
])
def test_a_malformed_url_is_a_config_error_that_hides_the_password(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid Redis URL") as caught:
        open_redis_store(url)
    assert "s3cret" not in str(caught.value) and caught.value.__cause__ is None


def test_a_store_whose_server_goes_away_raises_store_errors(tmp_path: Path) -> None:
    with running_redis(tmp_path / "brief") as url:
        store = open_redis_store(f"{url}?prefix=p")
        store.put_agent(agent())
    with pytest.raises(StoreError, match=r"cannot reach Redis at redis://127\.0\.0\.1"):
        store.acquire_slot("a1", "t1")
    store.close()
    store.close()  # safe twice


@pytest.fixture(scope="module")
def password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_redis(tmp_path_factory.mktemp("redis-auth"), password=PASSWORD) as url:
        yield url


def _with_credentials(url: str, user: str, password: str) -> str:
    return url.replace("redis://", f"redis://{user}:{quote(password, safe='')}@", 1)


def test_password_in_the_url_or_the_settings(password_server: str) -> None:
    with open_redis_store(_with_credentials(password_server, "", PASSWORD)) as store:
        assert store.ping() and "********" in store.url and PASSWORD not in store.url
    settings = Settings(redis_password=SecretStr(PASSWORD))
    with open_redis_store(password_server, settings) as store:
        store.put_agent(agent())
        assert store.get_agent("a1") is not None


@pytest.mark.parametrize("credentials", ["wrong", None])
def test_a_wrong_or_missing_password_is_a_clear_store_error(password_server: str,
                                                            credentials: str | None) -> None:
    url = (password_server if credentials is None
           else _with_credentials(password_server, "", credentials))
    with pytest.raises(StoreError, match="refused the credentials") as caught:
        open_redis_store(url)
    assert "wrong" not in str(caught.value) and PASSWORD not in str(caught.value)


def test_acl_user_limited_to_its_prefix(password_server: str) -> None:
    admin = redis.Redis.from_url(_with_credentials(password_server, "", PASSWORD))
    # The user may touch only keys under its own prefix and may not list keys at all.
    admin.execute_command("ACL", "SETUSER", "crew", "on", ">crew-pw", "~{crew}:*",
                          "+@all", "-keys", "-scan")
    admin.close()
    own = _with_credentials(password_server, "crew", "crew-pw") + "?prefix=crew"
    with open_redis_store(own) as store:
        _workload(store)
        assert [a.agent_id for a in store.list_agents()] == ["a1"]
    other = _with_credentials(password_server, "crew", "crew-pw") + "?prefix=other"
    with open_redis_store(other) as store, pytest.raises(StoreError, match="permission"):
        store.get_agent("a1")


def test_tls_with_rediss(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    with running_redis(tmp_path / "server", tls=tls) as url:
        assert url.startswith("rediss://")
        with open_redis_store(f"{url}?ssl_ca_certs={tls.cert}&prefix=tls") as store:
            store.put_agent(agent(max_tasks=1))
            assert store.acquire_slot("a1", "t1").acquired
            assert "ssl_ca_certs" in store.url
        # Plain text to a TLS port fails cleanly, and so does TLS without the CA.
        with pytest.raises(StoreError, match=r"cannot reach Redis at redis://127\.0\.0\.1"):
            open_redis_store(url.replace("rediss://", "redis://", 1))
        with pytest.raises(StoreError, match=r"cannot reach Redis at rediss://.*certificate"):
            open_redis_store(url)
