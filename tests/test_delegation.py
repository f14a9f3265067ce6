"""DelegationManager: the registry, matching, atomic delegation, TTLs, on every backend."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devcrew_core import (
    DefinitionError,
    DelegationManager,
    NoCapacityError,
    NotFoundError,
    ResourceLimits,
    TaskPriority,
    TaskRequest,
)
from devcrew_core.stores.base import Store

from delegation_workers import AGENTS, delegation_loop, delegation_process


@pytest.fixture
def url(store_and_url: tuple[Store, str]) -> str:
    """A fresh store of each backend, by URL."""
    return store_and_url[1]


@pytest.fixture
def manager(url: str) -> Iterator[DelegationManager]:
    with DelegationManager(state_url=url) as face:
        yield face


def request(task_id: str, caps: list[str], agent_type: str | None = None,
            **extra: Any) -> TaskRequest:
    return TaskRequest(task_id=task_id, task_type="job", required_capabilities=caps,
                       required_agent_type=agent_type, **extra)


def test_spec_register_and_manage_agents_example(manager: DelegationManager) -> None:
    # The spec's "Register and Manage Agents" example, on this backend.
    resource_limits = ResourceLimits(memory_mb=4096, cpu_cores=4, disk_mb=10240,
                                     network_mbps=1000)
    assert manager.register_agent(
        agent_id="ml-specialist-001", agent_type="ML-Engineer",
        capabilities=["machine-learning", "tensorflow", "model-training",
                      "feature-engineering"],
        max_concurrent_tasks=2, priority_weight=20, available=True,
        resource_limits=resource_limits,
        metadata={"gpu_available": True, "gpu_model": "NVIDIA A100",
                  "specialization": "deep-learning"},
    ) is True
    assert manager.set_agent_availability("ml-specialist-001", available=False) is True
    assert manager.heartbeat_agent("ml-specialist-001") is True
    status = manager.get_agent_status("ml-specialist-001")
    assert status is not None
    assert (status["current_load"], status["max_concurrent_tasks"]) == (0, 2)
    assert status["capabilities"] == ["machine-learning", "tensorflow", "model-training",
                                      "feature-engineering"]
    assert status["has_capacity"] is True and status["available"] is False
    assert status["resource_limits"]["cpu_cores"] == 4
    assert manager.list_agents(filter_type="ML-Engineer", available_only=True,
                               has_capacity=True) == []
    manager.set_agent_availability("ml-specialist-001", available=True)
    [row] = manager.list_agents(filter_type="ML-Engineer", available_only=True,
                                has_capacity=True)
    assert row["load_percentage"] == 0.0
    for key in ("agent_id", "agent_type", "capabilities", "available", "current_load",
                "max_concurrent_tasks", "has_capacity", "load_percentage",
                "priority_weight", "last_heartbeat"):
        assert key in row


def test_spec_delegate_tasks_example(manager: DelegationManager) -> None:
    from devcrew_core import RetryBackoff, RetryPolicy

    for agent_id, weight in (("ml-specialist-001", 20), ("ml-specialist-002", 30)):
        manager.register_agent(agent_id=agent_id, agent_type="ML-Engineer",
                               capabilities=["machine-learning", "tensorflow"],
                               max_concurrent_tasks=2, priority_weight=weight)
    retry_policy = RetryPolicy(max_retries=3, backoff=RetryBackoff.EXPONENTIAL,
                               initial_delay=5, max_delay=300)
    task_request = TaskRequest(
        task_id="train-model-001", task_type="model-training",
        required_capabilities=["machine-learning", "tensorflow"],
        priority=TaskPriority.HIGH, estimated_duration=3600,
        context={"model_type": "cnn", "dataset": "imagenet-subset", "epochs": 10,
                 "batch_size": 32},
        timeout=7200, retry_policy=retry_policy, required_agent_type="ML-Engineer",
        exclude_agents=["ml-specialist-002"],
    )
    agent_match = manager.find_best_agent(task_request)
    assert agent_match is not None
    assert agent_match.agent_id == "ml-specialist-001"  # 002 scores higher but is excluded
    assert 0 < agent_match.score <= 1 and agent_match.effective_score > 0
    assert agent_match.matched_capabilities == ["machine-learning", "tensorflow"]
    assert (agent_match.current_load, agent_match.max_load) == (0, 2)
    delegation_result = manager.delegate_task(task_request, agent_match)
    assert delegation_result["agent_id"] == "ml-specialist-001"
    assert delegation_result["delegated_at"].startswith("20")
    assert manager.complete_task(agent_id="ml-specialist-001",
                                 task_id="train-model-001") is True
    record = manager.get_delegation("train-model-001")
    assert record is not None and record["status"] == "completed"
    assert record["context"]["dataset"] == "imagenet-subset" and record["priority"] == "high"
    kinds = [a.kind for a in manager.engine.audit_store.list_audit()]
    assert kinds.count("delegation") == 1 and kinds.count("delegation.completed") == 1


def test_complete_task_is_exactly_once_and_wrong_ids_are_errors(
        manager: DelegationManager) -> None:
    manager.register_agent(agent_id="a1", agent_type="Worker", capabilities=["work"],
                           max_concurrent_tasks=1)
    manager.register_agent(agent_id="a2", agent_type="Worker", capabilities=["work"])
    manager.delegate_task(request("t1", ["work"]), manager.find_best_agent(
        request("t1", ["work"], exclude_agents=["a2"])))
    with pytest.raises(NotFoundError, match="delegated to 'a1'"):
        manager.complete_task("a2", "t1")
    with pytest.raises(NotFoundError, match="'never'"):
        manager.complete_task("a1", "never")
    assert manager.complete_task("a1", "t1") is True
    assert manager.complete_task("a1", "t1") is False
    status = manager.get_agent_status("a1")
    assert status is not None and status["current_load"] == 0


def test_failover_when_the_chosen_agent_filled_up(manager: DelegationManager) -> None:
    manager.register_agent(agent_id="best", agent_type="Worker", capabilities=["work"],
                           max_concurrent_tasks=1, priority_weight=90)
    manager.register_agent(agent_id="next", agent_type="Worker", capabilities=["work"],
                           max_concurrent_tasks=1, priority_weight=10)
    first, second = request("t1", ["work"]), request("t2", ["work"])
    match_1, match_2 = manager.find_best_agent(first), manager.find_best_agent(second)
    assert match_1 is not None and match_2 is not None
    assert match_1.agent_id == match_2.agent_id == "best"
    assert manager.delegate_task(first, match_1)["agent_id"] == "best"
    moved = manager.delegate_task(second, match_2)  # "best" filled up in between
    assert moved["agent_id"] == "next" and moved["failed_over_from"] == ["best"]
    with pytest.raises(NoCapacityError, match="no available agent"):
        manager.delegate_task(request("t3", ["work"]))


def test_no_eligible_agent_means_no_match(manager: DelegationManager) -> None:
    manager.register_agent(agent_id="a1", agent_type="Worker", capabilities=["work"])
    assert manager.find_best_agent(request("t", ["work", "gpu"])) is None
    assert manager.find_best_agent(request("t", ["work"], agent_type="Other")) is None
    manager.set_agent_availability("a1", available=False)
    assert manager.find_best_agent(request("t", ["work"])) is None
    with pytest.raises(NoCapacityError):
        manager.delegate_task(request("t", ["work"]))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_an_agent_lacking_a_capability_is_never_chosen(
        manager: DelegationManager, data: st.DataObject) -> None:
    caps = ["a", "b", "c", "d", "e"]
    required = data.draw(st.lists(st.sampled_from(caps), min_size=1, max_size=3,
                                  unique=True))
    missing = data.draw(st.sampled_from(required))
    suffix = data.draw(st.integers(0, 10**9)).__str__()
    # A tempting agent (best weight, idle, more capabilities) that lacks one required
    # capability, and a plain one that has them all.
    manager.register_agent(agent_id=f"tempting-{suffix}", agent_type=f"T{suffix}",
                           capabilities=[c for c in caps if c != missing],
                           max_concurrent_tasks=50, priority_weight=100)
    manager.register_agent(agent_id=f"complete-{suffix}", agent_type=f"T{suffix}",
                           capabilities=required, max_concurrent_tasks=1, priority_weight=1)
    match = manager.find_best_agent(request(f"t{suffix}", required, f"T{suffix}"))
    assert match is not None and match.agent_id == f"complete-{suffix}"


def test_reregistering_keeps_the_load_of_running_tasks(manager: DelegationManager) -> None:
    manager.register_agent(agent_id="a1", agent_type="Worker", capabilities=["work"],
                           max_concurrent_tasks=2)
    manager.delegate_task(request("t1", ["work"]))
    manager.register_agent(agent_id="a1", agent_type="Worker", capabilities=["work"],
                           max_concurrent_tasks=2, priority_weight=50)
    status = manager.get_agent_status("a1")
    assert status is not None and status["current_load"] == 1
    assert status["running_tasks"] == ["t1"] and status["priority_weight"] == 50


def test_agents_expire_without_heartbeats_and_cleanup_reports_their_tasks(
        url: str) -> None:
    with DelegationManager(state_url=url, agent_ttl_seconds=0.5) as manager:
        manager.register_agent(agent_id="short", agent_type="Worker", capabilities=["work"])
        manager.register_agent(agent_id="kept", agent_type="Worker", capabilities=["work"],
                               priority_weight=1)
        manager.delegate_task(request("t1", ["work"]))  # lands on "short" (idle, weight 10)
        assert manager.get_delegation("t1")["agent_id"] == "short"  # type: ignore[index]
        deadline = time.monotonic() + 10
        while True:  # keep "kept" alive until "short" has expired
            manager.heartbeat_agent("kept")
            status = manager.get_agent_status("short")
            if status is not None and status["expired"]:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        match = manager.find_best_agent(request("t2", ["work"]))
        assert match is not None and match.agent_id == "kept"
        assert manager.get_statistics()["expired_agents"] == 1
        assert [a["agent_id"] for a in manager.list_agents(available_only=True)] == ["kept"]
        removed = manager.cleanup_expired_agents()
        assert [(r["agent_id"], r["running_tasks"]) for r in removed] == [("short", ["t1"])]
        assert manager.get_agent_status("short") is None
        assert manager.cleanup_expired_agents() == []
        # Listed expired, renewed before the removal: the store keeps it (the removal
        # checks the deadline it stores, not the one the listing saw).
        manager.register_agent(agent_id="late", agent_type="Worker", capabilities=["w3"])
        store = manager.engine.state_store
        stale = [a.model_copy(update={"expires_at": 1.0}) for a in store.list_agents()
                 if a.agent_id == "late"]
        listed = store.list_agents
        store.list_agents = lambda agent_type=None: stale  # type: ignore[method-assign]
        try:
            assert manager.cleanup_expired_agents() == []
        finally:
            store.list_agents = listed  # type: ignore[method-assign]
        assert manager.get_agent_status("late") is not None
        # A heartbeat brings an expired agent back before cleanup removes it.
        manager.register_agent(agent_id="again", agent_type="Worker", capabilities=["w2"])
        time.sleep(0.6)
        assert manager.find_best_agent(request("t3", ["w2"])) is None
        assert manager.heartbeat_agent("again") is True
        assert manager.find_best_agent(request("t3", ["w2"])) is not None
        assert manager.heartbeat_agent("nobody") is False


@pytest.mark.parametrize("bad", ["a:b", "*", "[x]", "a b", "", "x" * 129, "..", "a/b"])
def test_bad_ids_are_rejected_before_touching_the_store(
        manager: DelegationManager, bad: str) -> None:
    manager.register_agent(agent_id="a1", agent_type="Worker", capabilities=["work"])
    with pytest.raises(DefinitionError):
        manager.register_agent(agent_id=bad, agent_type="Worker", capabilities=["work"])
    for call in (lambda: manager.get_agent_status(bad), lambda: manager.heartbeat_agent(bad),
                 lambda: manager.deregister_agent(bad), lambda: manager.complete_task(bad, "t"),
                 lambda: manager.complete_task("a1", bad),
                 lambda: manager.set_agent_availability(bad, False)):
        with pytest.raises(DefinitionError):
            call()
    with pytest.raises(ValueError, match="ID"):  # models raise pydantic's ValueError
        request(bad, ["work"])
    assert [a["agent_id"] for a in manager.list_agents()] == ["a1"]


def test_statistics(manager: DelegationManager) -> None:
    manager.register_agent(agent_id="a1", agent_type="Worker", capabilities=["work"],
                           max_concurrent_tasks=2)
    manager.register_agent(agent_id="b1", agent_type="Builder", capabilities=["build"],
                           max_concurrent_tasks=2)
    manager.delegate_task(request("t1", ["work"]))
    manager.delegate_task(request("t2", ["work"]))
    manager.complete_task("a1", "t2")
    stats = manager.get_statistics()
    assert stats["total_agents"] == 2 and stats["available_agents"] == 2
    assert stats["agents_by_type"] == {"Builder": 1, "Worker": 1}
    assert (stats["total_capacity"], stats["current_load"]) == (4, 1)
    assert stats["utilization_percentage"] == 25.0
    assert (stats["active_delegations"], stats["completed_delegations"]) == (1, 1)
    assert manager.deregister_agent("b1") is True and manager.deregister_agent("b1") is False


def _register_workers(manager: DelegationManager) -> None:
    for agent_id, limit in AGENTS.items():
        manager.register_agent(agent_id=agent_id, agent_type="Worker", capabilities=["work"],
                               max_concurrent_tasks=limit)


def _check_end_state(manager: DelegationManager, completed: list[str], total: int) -> None:
    assert len(completed) == len(set(completed)) == total
    for status in manager.list_agents():
        assert status["current_load"] == 0 and status["running_tasks"] == []
    records = manager.list_delegations()
    assert len(records) == total and all(r["status"] == "completed" for r in records)
    audit = manager.engine.audit_store.list_audit(kind="delegation.completed", limit=10**6)
    assert sorted(a.subject_id or "" for a in audit) == sorted(completed)


@pytest.mark.slow
def test_eight_threads_and_four_processes_delegate_2000_tasks(
        shared_store_and_url: tuple[Store, str]) -> None:
    """No agent ever exceeds max_concurrent_tasks (read back after every delegation),
    every task is completed exactly once, and every load ends at 0."""
    _, url = shared_store_and_url
    with DelegationManager(state_url=url) as manager:
        _register_workers(manager)
        ctx = multiprocessing.get_context("spawn")
        results_queue = ctx.Queue()
        per_process, per_thread = 250, 125  # 4 x 250 + 8 x 125 = 2,000 tasks
        procs = [ctx.Process(target=delegation_process,
                             args=(url, f"p{i}", per_process, results_queue))
                 for i in range(4)]
        for proc in procs:
            proc.start()
        with ThreadPoolExecutor(max_workers=8) as pool:
            thread_results = list(pool.map(
                lambda i: delegation_loop(manager, f"th{i}", per_thread), range(8)))
        results = thread_results + [results_queue.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
            assert proc.exitcode == 0
        assert sum(r["violations"] for r in results) == 0
        completed = [task for r in results for task in r["completed"]]
        _check_end_state(manager, completed, 2000)


def test_agent_ttl_comes_from_the_config_file(tmp_path: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "devcrew.yaml"
    config.write_text(f"agent_ttl_seconds: 42\nstate_url: sqlite:///{tmp_path / 'd.db'}\n")
    monkeypatch.setenv("DEVCREW_CONFIG", str(config))
    with DelegationManager() as manager:
        manager.register_agent(agent_id="a1", agent_type="Worker", capabilities=["work"])
        status = manager.get_agent_status("a1")
        assert status is not None
        assert status["expires_at"] - status["last_heartbeat"] == pytest.approx(42)
    with DelegationManager(agent_ttl_seconds=7) as manager:  # the argument wins
        manager.heartbeat_agent("a1")
        status = manager.get_agent_status("a1")
        assert status is not None
        assert status["expires_at"] - status["last_heartbeat"] == pytest.approx(7)


def test_a_plugin_scorer_selected_in_config_replaces_the_default(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from collections.abc import Iterator as It

    from devcrew_core import hookimpl
    from devcrew_core.plugin_types import Scorer
    from devcrew_core.plugins import get_plugin_manager

    class LowestWeightFirst:
        @hookimpl
        def devcrew_scorers(self) -> It[Scorer]:
            yield Scorer(name="lowest-weight", score=lambda req, a: -float(a.priority_weight))

    plugins = get_plugin_manager()
    plugins.register(LowestWeightFirst(), "lowest-weight-test")
    try:
        monkeypatch.setenv("DEVCREW_SCORER", "lowest-weight")
        with DelegationManager(state_url=url) as manager:
            manager.register_agent(agent_id="heavy", agent_type="Worker",
                                   capabilities=["work"], priority_weight=90)
            manager.register_agent(agent_id="light", agent_type="Worker",
                                   capabilities=["work"], priority_weight=5)
            match = manager.find_best_agent(request("t1", ["work"]))
            assert match is not None and match.agent_id == "light"
            assert match.effective_score == -5.0
        monkeypatch.delenv("DEVCREW_SCORER")
        with DelegationManager(state_url=url) as manager:  # the default again
            match = manager.find_best_agent(request("t1", ["work"]))
            assert match is not None and match.agent_id == "heavy"
    finally:
        plugins.unregister("lowest-weight-test")
