"""The slot-taking loop of the concurrency tests, importable by spawned processes."""

from __future__ import annotations

import time
from typing import Any

from devcrew_core.stores.base import Store


def slot_loop(store: Store, agent_id: str, worker: int, rounds: int, holders: Any,
              peak: Any, max_tasks: int) -> tuple[int, int, int]:
    """Acquire and release slots ``rounds`` times while counting concurrent holders.

    ``holders`` and ``peak`` are shared ``multiprocessing.Value`` counters: how many
    tasks believe they hold a slot right now, and the most that ever did at once; they
    are an independent witness of over-commit. Returns (acquired, refused, violations),
    where a violation is a load above ``max_tasks`` read back from the store.
    """
    acquired = refused = violations = 0
    for i in range(rounds):
        task_id = f"w{worker}-t{i}"
        result = store.acquire_slot(agent_id, task_id)
        if result.current_load > max_tasks:
            violations += 1
        if not result.acquired:
            refused += 1
            continue
        acquired += 1
        with holders.get_lock():
            holders.value += 1
            peak.value = max(peak.value, holders.value)
        agent = store.get_agent(agent_id)
        if agent is None or agent.current_load > max_tasks:
            violations += 1
        time.sleep(0.0005)
        with holders.get_lock():
            holders.value -= 1
        if store.release_slot(agent_id, task_id) is not True:
            violations += 1
        if store.release_slot(agent_id, task_id) is not False:
            violations += 1
    return acquired, refused, violations


def slot_process(url: str, agent_id: str, worker: int, rounds: int, holders: Any,
                 peak: Any, max_tasks: int, results: Any) -> None:
    """Process entry point: open the store by URL, run :func:`slot_loop`, report."""
    from devcrew_core.stores import open_store

    store = open_store(url)
    try:
        results.put(slot_loop(store, agent_id, worker, rounds, holders, peak, max_tasks))
    finally:
        store.close()
