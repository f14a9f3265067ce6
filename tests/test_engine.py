"""The workflow engine, end to end on the embedded SQLite store, with agents that run.

Parallelism and ordering are proven from the start/end times the agents record in a
ledger, never from how long anything took.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcrew_core import (
    ExecutionMode,
    RetryPolicy,
    Task,
    TaskOrchestrator,
    Workflow,
)

from engine_agents import read_ledger

TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'devcrew.db'}"


@pytest.fixture
def orch(db_url: str) -> Iterator[TaskOrchestrator]:
    face = TaskOrchestrator(state_url=db_url)
    try:
        yield face
    finally:
        face.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.jsonl"


def agent(orch: TaskOrchestrator, agent_id: str, agent_type: str = "Worker",
          runner: str = "engine_agents:work", max_tasks: int = 3) -> None:
    orch.register_agent(agent_id=agent_id, agent_type=agent_type, capabilities=["work"],
                        max_concurrent_tasks=max_tasks, runner=runner)


def intervals(entries: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    starts = {(e["task_id"], e["attempt"]): e["time"] for e in entries if e["event"] == "start"}
    ends = {(e["task_id"], e["attempt"]): e["time"] for e in entries if e["event"] == "end"}
    return {task: (start, ends[(task, attempt)])
            for (task, attempt), start in starts.items() if (task, attempt) in ends}


def max_overlap(spans: list[tuple[float, float]]) -> int:
    points = sorted(itertools.chain.from_iterable(((s, 1), (e, -1)) for s, e in spans),
                    key=lambda p: (p[0], p[1]))
    current = peak = 0
    for _, delta in points:
        current += delta
        peak = max(peak, current)
    return peak


def fan(workflow_id: str, ledger: Path, sleep: float = 0.3, **extra: Any) -> Workflow:
    """a -> (b, c, d) -> e"""
    def task(task_id: str, deps: list[str]) -> Task:
        return Task(task_id=task_id, agent_type="Worker", depends_on=deps,
                    input_data={"ledger": str(ledger), "sleep": sleep, "value": task_id},
                    timeout=60, **extra)
    workflow = Workflow(workflow_id=workflow_id, name="fan")
    for task_id, deps in (("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["a"]),
                          ("e", ["b", "c", "d"])):
        workflow.add_task(task(task_id, deps))
    return workflow


def test_parallel_branches_overlap_and_outputs_flow_downstream(
    orch: TaskOrchestrator, ledger: Path
) -> None:
    agent(orch, "w1", max_tasks=3)
    orch.create_workflow(fan("fan-parallel", ledger))
    result = orch.execute_workflow("fan-parallel")
    assert result["status"] == "completed", result
    assert result["tasks_completed"] == 5 and result["tasks_failed"] == 0
    spans = intervals(read_ledger(ledger))
    middle = [spans[t] for t in "bcd"]
    assert max(s for s, _ in middle) < min(e for _, e in middle), "b, c and d overlapped"
    assert spans["a"][1] <= min(s for s, _ in middle)
    assert spans["e"][0] >= max(e for _, e in middle)
    assert result["results"]["e"]["upstream"] == ["b", "c", "d"]
    assert result["results"]["e"]["upstream_values"] == {"b": "b", "c": "c", "d": "d"}
    assert result["duration_seconds"] is not None and result["started_at"]


def test_sequential_mode_runs_one_task_at_a_time(orch: TaskOrchestrator, ledger: Path) -> None:
    agent(orch, "w1", max_tasks=3)
    orch.create_workflow(fan("fan-sequential", ledger, sleep=0.05))
    result = orch.execute_workflow("fan-sequential", execution_mode=ExecutionMode.SEQUENTIAL)
    assert result["status"] == "completed"
    assert max_overlap(list(intervals(read_ledger(ledger)).values())) == 1


def test_max_concurrent_tasks_bounds_parallelism(orch: TaskOrchestrator, ledger: Path) -> None:
    agent(orch, "solo", max_tasks=2)
    workflow = Workflow(workflow_id="wide", tasks=[
        Task(task_id=f"t{i}", agent_type="Worker", timeout=60,
             input_data={"ledger": str(ledger), "sleep": 0.15}) for i in range(6)])
    orch.create_workflow(workflow)
    result = orch.execute_workflow("wide")
    assert result["status"] == "completed"
    assert max_overlap(list(intervals(read_ledger(ledger)).values())) <= 2
    status = orch.engine.state_store.get_agent("solo")
    assert status is not None and status.current_load == 0


def test_retry_with_backoff_counts_attempts(orch: TaskOrchestrator, ledger: Path) -> None:
    agent(orch, "w1", runner="engine_agents:flaky")
    policy = RetryPolicy(backoff="exponential", initial_delay=0.05, max_delay=1)
    orch.create_workflow(Workflow(workflow_id="flaky", tasks=[
        Task(task_id="t", agent_type="Worker", retry=3, retry_policy=policy, timeout=30,
             input_data={"ledger": str(ledger), "succeed_on": 3})]))
    result = orch.execute_workflow("flaky")
    assert result["status"] == "completed"
    assert result["tasks"][0]["attempt"] == 3
    assert result["results"]["t"] == {"succeeded_on": 3}
    attempts = read_ledger(ledger)
    assert [e["attempt"] for e in attempts] == [1, 2, 3]
    assert len({e["key"] for e in attempts}) == 3
    assert all(e["key"].endswith(f"/t/{e['attempt']}") for e in attempts)
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1, "exponential backoff waited"


def test_retries_exhausted_fail_fast_skips_and_cancels(
    orch: TaskOrchestrator, ledger: Path
) -> None:
    agent(orch, "bad", agent_type="Breaker", runner="engine_agents:fail")
    agent(orch, "slow", agent_type="Sleeper", runner="engine_agents:hang")
    agent(orch, "w1")
    orch.create_workflow(Workflow(workflow_id="ff", tasks=[
        Task(task_id="boom", agent_type="Breaker", retry=2, timeout=30,
             retry_policy=RetryPolicy(backoff="fixed", initial_delay=0.01),
             input_data={"ledger": str(ledger)}),
        Task(task_id="after-boom", agent_type="Worker", depends_on=["boom"]),
        Task(task_id="independent", agent_type="Sleeper", timeout=60,
             input_data={"ledger": str(ledger)}),
    ]))
    result = orch.execute_workflow("ff")
    by_id = {t["task_id"]: t for t in result["tasks"]}
    assert result["status"] == "failed" and "boom" in result["error"]
    assert by_id["boom"]["status"] == "failed" and by_id["boom"]["attempt"] == 3
    assert "always fails" in by_id["boom"]["error"]
    assert by_id["after-boom"]["status"] == "skipped"
    assert by_id["independent"]["status"] == "cancelled"
    events = [e["event"] for e in read_ledger(ledger) if e["task_id"] == "independent"]
    assert events == ["start", "cancelled"]


def test_continue_policy_keeps_independent_branches(orch: TaskOrchestrator,
                                                    ledger: Path) -> None:
    agent(orch, "bad", agent_type="Breaker", runner="engine_agents:fail")
    agent(orch, "w1")
    orch.create_workflow(Workflow(workflow_id="cont", tasks=[
        Task(task_id="boom", agent_type="Breaker"),
        Task(task_id="after-boom", agent_type="Worker", depends_on=["boom"]),
        Task(task_id="after-after", agent_type="Worker", depends_on=["after-boom"]),
        Task(task_id="fine", agent_type="Worker", input_data={"sleep": 0.3}),
        Task(task_id="after-fine", agent_type="Worker", depends_on=["fine"],
             input_data={"sleep": 0.01}),
    ]))
    result = orch.execute_workflow("cont", failure_policy="continue")
    by_id = {t["task_id"]: t["status"] for t in result["tasks"]}
    assert by_id == {"boom": "failed", "after-boom": "skipped", "after-after": "skipped",
                     "fine": "completed", "after-fine": "completed"}
    assert result["status"] == "failed"


def test_no_capable_agent_fails_clearly(orch: TaskOrchestrator) -> None:
    agent(orch, "w1")
    orch.create_workflow(Workflow(workflow_id="orphan", tasks=[
        Task(task_id="t", agent_type="Nobody", agent_capabilities=["magic"], timeout=600)]))
    result = orch.execute_workflow("orphan")
    task = result["tasks"][0]
    assert result["status"] == "failed" and task["status"] == "failed"
    assert "no agent of type 'Nobody'" in task["error"]
    assert "magic" in task["error"] and "is registered" in task["error"]


def test_a_task_waits_visibly_while_its_agents_are_unavailable(
        orch: TaskOrchestrator, db_url: str) -> None:
    """Agents exist but none is available: the task waits (status says why) instead of
    failing, and runs once one becomes available, here from another manager."""
    import threading

    from devcrew_core import DelegationManager
    from devcrew_core.engine.engine import run_sync

    agent(orch, "w1")
    orch.engine.state_store.update_agent("w1", {"available": False})
    orch.create_workflow(Workflow(workflow_id="patient", tasks=[
        Task(task_id="t", agent_type="Worker", timeout=60, input_data={"sleep": 0.01})]))
    run = orch.engine.create_run("patient")
    done: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: done.update(run=run_sync(orch.engine.execute_run(run.run_id))))
    worker.start()
    other = DelegationManager(state_url=db_url)
    try:
        def waiting() -> bool:
            task = other.engine.status(run.run_id)["tasks"][0]
            return task["status"] == "waiting" and "unavailable: w1" in (task["error"] or "")
        _wait_for(waiting)
        assert other.set_agent_availability("w1", True)
        worker.join(timeout=60)
    finally:
        other.close()
    assert done["run"].status.value == "completed"


def test_a_waiting_task_fails_at_its_timeout_saying_why(orch: TaskOrchestrator) -> None:
    agent(orch, "w1")
    orch.engine.state_store.update_agent("w1", {"available": False})
    orch.create_workflow(Workflow(workflow_id="never", tasks=[
        Task(task_id="t", agent_type="Worker", timeout=0.5)]))
    task = orch.execute_workflow("never")["tasks"][0]
    assert task["status"] == "failed"
    assert "before it timed out" in task["error"] and "unavailable: w1" in task["error"]


def test_task_timeout_cancels_the_attempt(orch: TaskOrchestrator, ledger: Path) -> None:
    agent(orch, "sleepy", runner="engine_agents:hang")
    orch.create_workflow(Workflow(workflow_id="to", tasks=[
        Task(task_id="t", agent_type="Worker", timeout=0.5, input_data={"ledger": str(ledger)})]))
    result = orch.execute_workflow("to")
    assert result["tasks"][0]["status"] == "failed"
    assert "timed out after 0.5s" in result["tasks"][0]["error"]
    assert [e["event"] for e in read_ledger(ledger)] == ["start", "cancelled"]


def test_workflow_timeout_is_enforced(orch: TaskOrchestrator, ledger: Path) -> None:
    agent(orch, "sleepy", runner="engine_agents:hang")
    orch.create_workflow(Workflow(workflow_id="wto", timeout=0.5, tasks=[
        Task(task_id="t", agent_type="Worker", timeout=100, input_data={"ledger": str(ledger)}),
        Task(task_id="later", agent_type="Worker", depends_on=["t"]),
    ]))
    result = orch.execute_workflow("wto")
    assert result["status"] == "failed" and "workflow timed out" in result["error"]
    states = {t["task_id"]: t["status"] for t in result["tasks"]}
    assert states == {"t": "cancelled", "later": "skipped"}


def test_a_timeout_kills_a_hung_command(orch: TaskOrchestrator, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    orch.register_agent(
        agent_id="sh", agent_type="Shell", capabilities=["sh"],
        runner={"kind": "command",
                "argv": ["sh", "-c", 'echo $$ > "$1"; exec sleep 1000', "sh", "{input.pidfile}"]})
    orch.create_workflow(Workflow(workflow_id="hung", tasks=[
        Task(task_id="t", agent_type="Shell", timeout=1, input_data={"pidfile": str(pidfile)})]))
    result = orch.execute_workflow("hung")
    assert result["tasks"][0]["status"] == "failed"
    assert "timed out" in result["tasks"][0]["error"]
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_spec_quick_start_runs_with_runners(db_url: str, tmp_path: Path) -> None:
    # The spec's Quick Start on the embedded store (state_url instead of redis_url); the
    # verbatim version against a real Redis is tests/test_spec_examples.py.
    from devcrew_core import DelegationManager, Task, TaskOrchestrator, Workflow

    orchestrator = TaskOrchestrator(state_url=db_url)
    delegation_manager = DelegationManager(state_url=db_url)
    delegation_manager.register_agent(
        agent_id="backend-dev-001", agent_type="Backend-Engineer",
        capabilities=["python", "api-development", "testing"],
        max_concurrent_tasks=3, priority_weight=15, runner="engine_agents:work")
    delegation_manager.register_agent(
        agent_id="qa-tester-001", agent_type="QA-Tester",
        capabilities=["testing", "pytest", "quality-assurance"],
        max_concurrent_tasks=5, priority_weight=10, runner="engine_agents:work")
    workflow = Workflow(workflow_id="feature-dev-001", name="Feature Development Workflow",
                        priority="high")
    test_task = Task(task_id="write-tests", agent_type="QA-Tester",
                     agent_capabilities=["testing", "pytest"],
                     input_data={"action": "write_tests", "feature": "user_authentication",
                                 "sleep": 0.01}, timeout=900)
    impl_task = Task(task_id="implement-feature", agent_type="Backend-Engineer",
                     agent_capabilities=["python", "api-development"],
                     input_data={"action": "implement_feature",
                                 "feature": "user_authentication", "sleep": 0.01},
                     depends_on=["write-tests"], timeout=1800)
    workflow.add_task(test_task)
    workflow.add_task(impl_task)
    orchestrator.create_workflow(workflow)
    result = orchestrator.execute_workflow("feature-dev-001")
    assert result["status"] == "completed"
    assert result["tasks_completed"] == 2
    assert isinstance(result["duration_seconds"], float)
    by_id = {t["task_id"]: t for t in result["tasks"]}
    assert by_id["write-tests"]["agent_id"] == "qa-tester-001"
    assert by_id["implement-feature"]["agent_id"] == "backend-dev-001"
    delegations = orchestrator.engine.state_store.list_audit(kind="delegation")
    assert {d.subject_id for d in delegations} == {"write-tests", "implement-feature"}
    orchestrator.close()
    delegation_manager.close()


def test_local_callable_runner_and_other_process_message(
    orch: TaskOrchestrator, db_url: str
) -> None:
    seen: list[str] = []

    def local_agent(call: Any) -> dict[str, Any]:
        seen.append(call.task_id)
        return {"ok": True}

    orch.register_agent(agent_id="local", agent_type="Local", capabilities=["x"],
                        runner=local_agent)
    orch.create_workflow(Workflow(workflow_id="loc", tasks=[
        Task(task_id="t", agent_type="Local")]))
    assert orch.execute_workflow("loc")["status"] == "completed"
    assert seen == ["t"]
    stored = orch.engine.state_store.get_agent("local")
    assert stored is not None and stored.runner is not None and stored.runner["local"] is True
    # Another process cannot call a callable that lives here; it says what to do instead.
    result = subprocess.run(
        [sys.executable, "-c",
         "from devcrew_core import TaskOrchestrator\n"
         f"o = TaskOrchestrator(state_url={db_url!r})\n"
         "r = o.execute_workflow('loc')\n"
         "print(r['status']); print(r['tasks'][0]['error'])\n"],
        capture_output=True, text=True, timeout=60, env=_env(), check=False)
    assert result.returncode == 0, result.stderr
    status, error = result.stdout.strip().splitlines()
    assert status == "failed"
    assert "module:function" in error


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _devcrew(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devcrew_core", *args], capture_output=True,
                          text=True, timeout=120, env=_env(), check=False, **kwargs)


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _write_workflow(path: Path, ledger: Path, tasks: str, runner: str) -> Path:
    path.write_text(f"""
agents:
  - agent_id: worker-001
    agent_type: Worker
    capabilities: [work]
    max_concurrent_tasks: 4
    runner: {{kind: python, callable: "{runner}"}}
workflow:
  id: cli-flow
  name: CLI flow
  tasks:
{tasks}
""")
    return path


def test_cancel_from_a_second_process(tmp_path: Path, db_url: str, ledger: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_url: {db_url}\n")
    flow = _write_workflow(tmp_path / "flow.yaml", ledger, f"""
    - task_id: forever
      agent_type: Worker
      input: {{ledger: "{ledger}"}}
      timeout: 600
    - task_id: never
      agent_type: Worker
      depends_on: [forever]
""", "engine_agents:hang")
    runner = subprocess.Popen(
        [sys.executable, "-m", "devcrew_core", "--config", str(config), "run", str(flow),
         "--quiet"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any(e["event"] == "start" for e in read_ledger(ledger)))
        cancel = _devcrew("--config", str(config), "workflow", "cancel", "--id", "cli-flow",
                          "--confirm", "--output", "json")
        assert cancel.returncode == 0, cancel.stderr
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1, err
    status = _devcrew("--config", str(config), "workflow", "status", "--id", "cli-flow",
                      "--output", "json")
    import json

    doc = json.loads(status.stdout)
    assert doc["status"] == "cancelled"
    assert {t["task_id"]: t["status"] for t in doc["tasks"]} == {
        "forever": "cancelled", "never": "cancelled"}
    assert [e["event"] for e in read_ledger(ledger)] == ["start", "cancelled"]


def test_resume_after_sigkill_does_not_rerun_completed_tasks(
    tmp_path: Path, db_url: str, ledger: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_url: {db_url}\n")
    flow = _write_workflow(tmp_path / "flow.yaml", ledger, f"""
    - task_id: first
      agent_type: Worker
      input: {{ledger: "{ledger}", sleep: 0.01}}
    - task_id: second
      agent_type: Worker
      depends_on: [first]
      input: {{ledger: "{ledger}", sleep: {{"1": 600, default: 0.01}}}}
      timeout: 900
    - task_id: third
      agent_type: Worker
      depends_on: [second]
      input: {{ledger: "{ledger}", sleep: 0.01}}
""", "engine_agents:work")
    runner = subprocess.Popen(
        [sys.executable, "-m", "devcrew_core", "--config", str(config), "run", str(flow),
         "--quiet"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: any(e["task_id"] == "second" and e["event"] == "start"
                              for e in read_ledger(ledger)))
        time.sleep(0.3)  # let the batched transitions reach the store
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    resumed = _devcrew("--config", str(config), "workflow", "resume", "--id", "cli-flow",
                       "--quiet", "--output", "json")
    assert resumed.returncode == 0, resumed.stderr
    import json

    doc = json.loads(resumed.stdout)
    assert doc["status"] == "completed"
    entries = read_ledger(ledger)
    starts = [(e["task_id"], e["attempt"]) for e in entries if e["event"] == "start"]
    assert starts.count(("first", 1)) == 1, "completed work is not repeated"
    assert ("second", 1) in starts and ("second", 2) in starts
    assert [s for s in starts if s[0] == "third"] == [("third", 1)]
    keys = [e["key"] for e in entries if e["task_id"] == "second" and e["event"] == "start"]
    assert len(set(keys)) == 2 and keys[1].endswith("/second/2")
    # The killed process's load slots did not leak: the agent is idle again.
    status = _devcrew("--config", str(config), "workflow", "status", "--id", "cli-flow",
                      "--output", "json")
    assert status.returncode == 0
    face = TaskOrchestrator(state_url=db_url)
    try:
        worker = face.engine.state_store.get_agent("worker-001")
        assert worker is not None and worker.current_load == 0 and worker.running_tasks == []
    finally:
        face.close()


def test_status_list_result_export_from_other_processes(tmp_path: Path, db_url: str,
                                                         ledger: Path) -> None:
    import json

    import yaml

    config = tmp_path / "config.yaml"
    config.write_text(f"state_url: {db_url}\n")
    flow = _write_workflow(tmp_path / "flow.yaml", ledger, f"""
    - task_id: only
      agent_type: Worker
      input: {{ledger: "{ledger}", sleep: 0.01, value: 42}}
""", "engine_agents:work")
    ran = _devcrew("--config", str(config), "run", str(flow), "--quiet", "--output", "json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["status"] == "completed"
    status = json.loads(_devcrew("--config", str(config), "workflow", "status", "--id",
                                 "cli-flow", "--output", "json").stdout)
    assert status["status"] == "completed"
    assert [(t["task_id"], t["status"]) for t in status["tasks"]] == [("only", "completed")]
    listing = json.loads(_devcrew("--config", str(config), "workflow", "list",
                                  "--output", "json").stdout)
    assert [r["workflow_id"] for r in listing] == ["cli-flow"]
    result = json.loads(_devcrew("--config", str(config), "workflow", "result", "--id",
                                 "cli-flow").stdout)
    assert result["results"]["only"]["value"] == 42
    exported = tmp_path / "exported.yaml"
    done = _devcrew("--config", str(config), "workflow", "export", "--id", "cli-flow",
                    "--output", str(exported))
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(exported.read_text())["workflow"]["id"] == "cli-flow"
    missing = _devcrew("--config", str(config), "workflow", "status", "--id", "nope")
    assert missing.returncode == 1 and "no run or workflow" in missing.stderr


def test_create_start_detached_and_monitor_until_done(tmp_path: Path, db_url: str,
                                                      ledger: Path) -> None:
    import json

    config = tmp_path / "config.yaml"
    config.write_text(f"state_url: {db_url}\n")
    flow = _write_workflow(tmp_path / "flow.yaml", ledger, f"""
    - task_id: one
      agent_type: Worker
      input: {{ledger: "{ledger}", sleep: 0.5}}
    - task_id: two
      agent_type: Worker
      depends_on: [one]
      input: {{ledger: "{ledger}", sleep: 0.01}}
""", "engine_agents:work")
    created = _devcrew("--config", str(config), "workflow", "create", "--file", str(flow),
                       "--output", "json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {"workflow_id": "cli-flow", "name": "CLI flow",
                                          "tasks": 2, "agents_registered": ["worker-001"]}
    started = _devcrew("--config", str(config), "workflow", "start", "--id", "cli-flow",
                       "--detach", "--output", "json")
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    watched = _devcrew("--config", str(config), "workflow", "monitor", "--id", run_id,
                       "--refresh", "0.1", "--output", "json")
    assert watched.returncode == 0, watched.stderr
    doc = json.loads(watched.stdout)
    assert doc["run_id"] == run_id and doc["status"] == "completed"
    pids = {e["pid"] for e in read_ledger(ledger)}
    assert os.getpid() not in pids and len(pids) == 1, "ran in the background process"


def test_spec_data_pipeline_example(db_url: str) -> None:
    # "Create and Execute Workflows" from the spec, import changed, agents given runners.
    from devcrew_core import Task, TaskOrchestrator, Workflow

    orchestrator = TaskOrchestrator(state_url=db_url)
    for capability in ("data-extraction", "data-transformation", "data-loading"):
        orchestrator.register_agent(
            agent_id=f"{capability}-agent", agent_type="Data-Engineer",
            capabilities=[capability, "etl", "pandas"], runner="engine_agents:work")
    workflow = Workflow(workflow_id="data-pipeline-001", name="Data Processing Pipeline",
                        priority="high", timeout=7200)
    extract_task = Task(task_id="extract-data", agent_type="Data-Engineer",
                        agent_capabilities=["data-extraction", "etl"],
                        input_data={"source": "postgresql://data-warehouse",
                                    "query": "SELECT * FROM raw_events", "sleep": 0.01},
                        timeout=1800)
    transform_task = Task(task_id="transform-data", agent_type="Data-Engineer",
                          agent_capabilities=["data-transformation", "pandas"],
                          input_data={"transformations": ["normalize", "deduplicate"],
                                      "sleep": 0.01},
                          depends_on=["extract-data"], timeout=3600)
    load_task = Task(task_id="load-data", agent_type="Data-Engineer",
                     agent_capabilities=["data-loading", "etl"],
                     input_data={"destination": "postgresql://analytics",
                                 "table": "processed_events", "sleep": 0.01},
                     depends_on=["transform-data"], timeout=1800)
    workflow.add_task(extract_task)
    workflow.add_task(transform_task)
    workflow.add_task(load_task)
    orchestrator.create_workflow(workflow)
    result = orchestrator.execute_workflow("data-pipeline-001")
    assert result["status"] == "completed"
    assert result["started_at"] and result["completed_at"]
    assert result["duration_seconds"] >= 0
    agents = {t["task_id"]: t["agent_id"] for t in result["tasks"]}
    assert agents == {"extract-data": "data-extraction-agent",
                      "transform-data": "data-transformation-agent",
                      "load-data": "data-loading-agent"}
    orchestrator.close()


def test_crew_file_agents_and_two_homes_in_one_process(tmp_path: Path, ledger: Path) -> None:
    import json

    crew = tmp_path / "crew.yaml"
    crew.write_text("""
agents:
  - agent_id: crew-worker
    agent_type: Worker
    capabilities: [work]
    runner: {kind: python, callable: "engine_agents:work"}
""")
    flow = tmp_path / "flow.yaml"
    flow.write_text(f"""
workflow:
  id: crew-flow
  tasks:
    - task_id: only
      agent_type: Worker
      input: {{ledger: "{ledger}", sleep: 0.01}}
""")
    config = tmp_path / "config.yaml"
    config.write_text(f"state_url: sqlite:///{tmp_path / 'crew.db'}\n")
    ran = _devcrew("--config", str(config), "run", str(flow), "--crew", str(crew), "--quiet",
                   "--output", "json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["tasks"][0]["agent_id"] == "crew-worker"
    # Configuration is read when a face is built: two homes side by side in one process.
    first = TaskOrchestrator(home=str(tmp_path / "home-a"))
    second = TaskOrchestrator(home=str(tmp_path / "home-b"))
    try:
        agent(first, "only-in-a")
        assert first.engine.state_store.get_agent("only-in-a") is not None
        assert second.engine.state_store.get_agent("only-in-a") is None
        assert (tmp_path / "home-a" / "devcrew.db").exists()
        assert (tmp_path / "home-b" / "devcrew.db").exists()
    finally:
        first.close()
        second.close()


def test_gc_thresholds_are_restored_after_a_run(orch: TaskOrchestrator) -> None:
    import gc

    before = gc.get_threshold()
    agent(orch, "w1")
    orch.create_workflow(Workflow(workflow_id="gc", tasks=[
        Task(task_id="t", agent_type="Worker", input_data={"sleep": 0.01})]))
    assert orch.execute_workflow("gc")["status"] == "completed"
    assert gc.get_threshold() == before


def test_resume_frees_slots_a_dead_process_left_behind(orch: TaskOrchestrator) -> None:
    from devcrew_core.engine.run import slot_key
    from devcrew_core.stores.records import RunStatus, TaskState, TaskStatus

    agent(orch, "w1", max_tasks=1)
    orch.create_workflow(Workflow(workflow_id="leak", tasks=[
        Task(task_id="done", agent_type="Worker"),
        Task(task_id="next", agent_type="Worker", depends_on=["done"], timeout=5,
             input_data={"sleep": 0.01})]))  # a leaked slot would starve it: fail, not hang
    engine = orch.engine
    run = engine.create_run("leak")
    store = engine.state_store
    # A process that died right after finishing "done", before freeing its slot.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    store.acquire_slot("w1", slot_key(run.run_id, "done"))
    store.put_task_states([TaskState(run_id=run.run_id, task_id="done",
                                     status=TaskStatus.COMPLETED, attempt=1, agent_id="w1",
                                     output={"ok": True})])
    import socket

    store.update_run(run.run_id, {"status": RunStatus.RUNNING, "data": {
        **run.data, "owner": {"host": socket.gethostname(), "pid": int(dead.stdout)}}})
    result = orch.resume_workflow(run.run_id)
    assert result["status"] == "completed", result
    assert result["tasks"][0]["attempt"] == 1, "the completed task was not run again"
    worker = store.get_agent("w1")
    assert worker is not None and worker.current_load == 0


def test_a_chain_hands_its_slot_on_and_the_store_follows(
        orch: TaskOrchestrator, db_url: str) -> None:
    """On a one-slot agent each task of a chain takes over its predecessor's slot; the
    store learns who holds it (each task waits until the store names it), and the load
    never exceeds one and ends at zero."""
    agent(orch, "solo", runner="engine_agents:sees_own_slot", max_tasks=1)
    tasks = [Task(task_id=f"s{i}", agent_type="Worker", timeout=30,
                  depends_on=[f"s{i - 1}"] if i else [], input_data={"state_url": db_url})
             for i in range(5)]
    orch.create_workflow(Workflow(workflow_id="handover", tasks=tasks))
    result = orch.execute_workflow("handover")
    assert result["status"] == "completed", result
    assert all(out == {"seen": True, "load": 1} for out in result["results"].values()), result
    solo = orch.engine.state_store.get_agent("solo")
    assert solo is not None and solo.current_load == 0 and solo.running_tasks == []


def test_resume_frees_a_slot_whose_task_state_was_never_written(
        orch: TaskOrchestrator) -> None:
    """A process killed right after taking (or being handed) a slot, before the task's
    state reached the store, leaves a slot no task state names: resume still frees it."""
    import socket

    from devcrew_core.engine.run import slot_key
    from devcrew_core.stores.records import RunStatus

    agent(orch, "w1", max_tasks=1)
    orch.create_workflow(Workflow(workflow_id="unnamed", tasks=[
        Task(task_id="only", agent_type="Worker", timeout=5, input_data={"sleep": 0.01})]))
    engine = orch.engine
    run = engine.create_run("unnamed")
    store = engine.state_store
    store.acquire_slot("w1", slot_key(run.run_id, "only"))
    assert store.get_task_states(run.run_id) == []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    store.update_run(run.run_id, {"status": RunStatus.RUNNING, "data": {
        **run.data, "owner": {"host": socket.gethostname(), "pid": int(dead.stdout)}}})
    result = orch.resume_workflow(run.run_id)
    assert result["status"] == "completed", result
    w1 = store.get_agent("w1")
    assert w1 is not None and w1.current_load == 0


def test_a_running_engine_keeps_its_agents_alive_past_their_ttl(db_url: str,
                                                                ledger: Path) -> None:
    """t2 needs the agent after the agent's TTL has passed twice over: only the run's
    own heartbeats keep it eligible."""
    from devcrew_core.config import load_settings

    settings = load_settings(state_url=db_url, agent_ttl_seconds=1.0,
                             agent_heartbeat_interval=0.1)
    with TaskOrchestrator(settings=settings) as face:
        agent(face, "w1")
        face.create_workflow(Workflow(workflow_id="long", tasks=[
            Task(task_id="t1", agent_type="Worker", input_data={"sleep": 2.5}),
            Task(task_id="t2", agent_type="Worker", depends_on=["t1"], timeout=5,
                 input_data={"sleep": 0.01})]))
        result = face.execute_workflow("long")
        assert result["status"] == "completed", result
        assert [t["agent_id"] for t in result["tasks"]] == ["w1", "w1"]
