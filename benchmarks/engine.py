"""Engine throughput and overhead, each beside a floor measured in the same run.

Cases (one JSON line each):

* ``chain-1000`` and ``fanout-10000`` (1 -> 10,000 -> 1) of no-op async python-runner
  tasks through the local executor, on the ``memory`` and ``sqlite`` stores;
  floor for memory: ``asyncio.gather`` of the same no-op coroutines (per task);
  floor for sqlite: one committed single-row SQLite write (per task).
* ``single-task``: a 1-task workflow end to end (create run, execute, read status);
  overhead = its time minus the task's own time.
* ``cli-startup``: ``devcrew --version`` against a bare click + pluggy + pydantic script.

Run: ``python -m benchmarks.engine`` (or ``nox -s bench``). Pass ``--quick`` for smaller
sizes. Targets are ratios (see docs/performance.md), so they hold on any machine.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devcrew_core import Task, Workflow
from devcrew_core.config import load_settings
from devcrew_core.engine.engine import Engine
from devcrew_core.models import AgentSpec

TARGETS = {
    "memory": 30.0,   # per-task overhead <= 30x an asyncio.gather per-task time
    "sqlite": 10.0,   # per-task cost <= 10x one committed SQLite row write
}


async def noop(call: Any) -> dict[str, Any]:
    """The no-op agent: returns at once."""
    return {}


def asyncio_floor(n: int) -> float:
    """Seconds per task for asyncio.gather of n no-op coroutines."""
    async def main() -> None:
        await asyncio.gather(*(noop(None) for _ in range(n)))

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        asyncio.run(main())
        best = min(best, time.perf_counter() - start)
    return best / n


def sqlite_floor(directory: Path, n: int = 2000) -> float:
    """Seconds per committed single-row write (WAL, synchronous=NORMAL, like the store)."""
    conn = sqlite3.connect(directory / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (i, "x" * 64))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / n


def chain(n: int) -> Workflow:
    workflow = Workflow(workflow_id=f"chain-{n}")
    for i in range(n):
        workflow.add_task(Task(task_id=f"t{i}", agent_type="Noop",
                               depends_on=[f"t{i - 1}"] if i else []))
    return workflow


def fanout(n: int) -> Workflow:
    workflow = Workflow(workflow_id=f"fanout-{n}")
    workflow.add_task(Task(task_id="root", agent_type="Noop"))
    for i in range(n):
        workflow.add_task(Task(task_id=f"t{i}", agent_type="Noop", depends_on=["root"]))
    workflow.add_task(Task(task_id="sink", agent_type="Noop",
                           depends_on=[f"t{i}" for i in range(n)]))
    return workflow


def engine_for(store: str, directory: Path) -> Engine:
    url = f"memory://bench-{time.monotonic_ns()}" if store == "memory" else \
        f"sqlite:///{directory / f'bench-{time.monotonic_ns()}.db'}"
    engine = Engine(load_settings(state_url=url, home=str(directory)))
    engine.register_agent(AgentSpec(agent_id="noop-agent", agent_type="Noop",
                                    capabilities=["noop"], max_concurrent_tasks=100_000),
                          runner=noop)
    return engine


def time_workflow(engine: Engine, workflow: Workflow) -> float:
    engine.save_workflow(workflow)
    start = time.perf_counter()
    run = engine.execute(workflow.workflow_id)
    elapsed = time.perf_counter() - start
    if run.status.value != "completed":
        raise RuntimeError(f"{workflow.workflow_id}: {run.status.value}: {run.error}")
    return elapsed


def emit(case: dict[str, Any]) -> dict[str, Any]:
    """Print one JSON line (every benchmark's output format) and return the case."""
    print(json.dumps(case), flush=True)
    return case


def throughput_cases(directory: Path, quick: bool) -> list[dict[str, Any]]:
    sizes = {"chain": 200 if quick else 1000, "fanout": 1000 if quick else 10_000}
    floors = {"memory": asyncio_floor(sizes["fanout"]), "sqlite": sqlite_floor(directory)}
    cases = []
    for store in ("memory", "sqlite"):
        for shape, build in (("chain", chain), ("fanout", fanout)):
            n = sizes[shape]
            workflow = build(n)
            engine = engine_for(store, directory)
            try:
                elapsed = time_workflow(engine, workflow)
            finally:
                engine.close()
            tasks = len(workflow.tasks)
            per_task = elapsed / tasks
            ratio = per_task / floors[store]
            cases.append(emit({
                "case": f"{shape}-{n}", "store": store, "tasks": tasks,
                "seconds": round(elapsed, 4), "tasks_per_s": round(tasks / elapsed, 1),
                "per_task_us": round(per_task * 1e6, 1),
                "floor": "asyncio.gather per task" if store == "memory"
                else "one committed SQLite row write",
                "floor_us": round(floors[store] * 1e6, 2),
                "ratio": round(ratio, 2), "target_ratio": TARGETS[store],
                "meets_target": ratio <= TARGETS[store],
            }))
    return cases


def single_task_case(directory: Path) -> dict[str, Any]:
    samples = []
    for store in ("memory",) * 15:
        engine = engine_for(store, directory)
        try:
            workflow = Workflow(workflow_id=f"one-{len(samples)}",
                                tasks=[Task(task_id="only", agent_type="Noop")])
            start = time.perf_counter()
            time_workflow(engine, workflow)
            engine.status(workflow.workflow_id)
            samples.append(time.perf_counter() - start)
        finally:
            engine.close()
    overhead_ms = statistics.median(samples) * 1000
    return emit({"case": "single-task", "store": "memory", "median_ms": round(overhead_ms, 3),
                 "target_ms": 5.0, "meets_target": overhead_ms <= 5.0})


def cli_startup_case() -> dict[str, Any]:
    bare = ("import click, pluggy, pydantic\n"
            "@click.command()\n@click.version_option('1')\ndef main():\n    pass\nmain()\n")

    def best(args: list[str]) -> float:
        times = []
        for _ in range(7):
            start = time.perf_counter()
            subprocess.run(args, capture_output=True, check=True)  # noqa: S603 - fixed argv
            times.append(time.perf_counter() - start)
        return min(times)

    floor = best([sys.executable, "-c", bare, "--version"])
    ours = best([sys.executable, "-m", "devcrew_core", "--version"])
    ratio = ours / floor
    return emit({"case": "cli-startup", "devcrew_ms": round(ours * 1000, 1),
                 "floor": "click + pluggy + pydantic script --version",
                 "floor_ms": round(floor * 1000, 1), "ratio": round(ratio, 2),
                 "target_ratio": 1.5, "meets_target": ratio <= 1.5})


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every case and print one JSON line each."""
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    with tempfile.TemporaryDirectory(prefix="devcrew-bench-") as tmp:
        directory = Path(tmp)
        cases = throughput_cases(directory, quick)
        cases.append(single_task_case(directory))
        cases.append(cli_startup_case())
    return cases


if __name__ == "__main__":
    main()
