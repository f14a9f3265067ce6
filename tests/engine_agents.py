"""Agents for the engine tests, importable as ``engine_agents:<name>`` in any process
that has ``tests/`` on its path. Each appends what it did to ``input.ledger``."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any


def _note(call: Any, event: str, **extra: Any) -> None:
    ledger = call.input.get("ledger")
    if not ledger:
        return
    entry = {"task_id": call.task_id, "attempt": call.attempt, "agent_id": call.agent_id,
             "event": event, "pid": os.getpid(), "time": time.time(),
             "key": call.idempotency_key, **extra}
    with Path(ledger).open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The entries an agent wrote, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def work(call: Any) -> dict[str, Any]:
    """Sleep ``input.sleep`` seconds (a stand-in for work) and say what it saw."""
    _note(call, "start")
    sleep = call.input.get("sleep", 0.2)
    if isinstance(sleep, dict):  # {"1": 30, "default": 0.1}: per-attempt durations
        sleep = sleep.get(str(call.attempt), sleep.get("default", 0.1))
    time.sleep(float(sleep))
    _note(call, "end")
    return {"task": call.task_id, "upstream": sorted(call.upstream),
            "upstream_values": {k: v.get("value") for k, v in call.upstream.items()},
            "value": call.input.get("value"), "attempt": call.attempt}


async def async_work(call: Any) -> dict[str, Any]:
    """The same as :func:`work`, as a coroutine."""
    _note(call, "start")
    await asyncio.sleep(float(call.input.get("sleep", 0.2)))
    _note(call, "end")
    return {"task": call.task_id, "attempt": call.attempt}


def flaky(call: Any) -> dict[str, Any]:
    """Fail until attempt ``input.succeed_on``."""
    _note(call, "attempt")
    if call.attempt < int(call.input.get("succeed_on", 10**6)):
        raise RuntimeError(f"flaky failure on attempt {call.attempt}")
    return {"succeeded_on": call.attempt}


def fail(call: Any) -> dict[str, Any]:
    """Always fail."""
    _note(call, "attempt")
    raise RuntimeError("this agent always fails")


async def hang(call: Any) -> dict[str, Any]:
    """Never finish (until cancelled)."""
    _note(call, "start")
    try:
        await asyncio.sleep(1000)
    except asyncio.CancelledError:
        _note(call, "cancelled")
        raise
    return {}


def sees_own_slot(call: Any) -> dict[str, Any]:
    """Wait (up to 10 s) until the store lists this attempt's slot on this agent, and say
    whether it did: ``input.state_url`` names the store."""
    from devcrew_core.engine.run import slot_key
    from devcrew_core.stores import open_store

    key = slot_key(call.run_id, call.task_id)
    store = open_store(call.input["state_url"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            agent = store.get_agent(call.agent_id)
            if agent is not None and key in agent.running_tasks:
                return {"seen": True, "load": agent.current_load}
            time.sleep(0.02)
        return {"seen": False}
    finally:
        store.close()


def grab_more(call: Any) -> dict[str, Any]:
    """Holding its own allocation, wait for more on ``input.agent`` (as the same task,
    so the wait-for graph links them); release it again and say whether it got it."""
    from devcrew_core import Priority, ResourceAllocator
    from devcrew_core.engine.run import slot_key

    key = slot_key(call.run_id, call.task_id)
    with ResourceAllocator(state_url=call.input["state_url"]) as allocator:
        got = allocator.allocate_or_wait(call.input["agent"], key, 1, 1, Priority.HIGH,
                                         timeout=30, preempt=False)
        if got is not None:
            allocator.release(call.input["agent"], key)
    return {"got": got is not None}
