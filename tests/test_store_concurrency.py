"""Concurrency cases of the Store contract: load slots are never over-committed."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

from devcrew_core.stores.base import Store
from devcrew_core.stores.records import AgentRecord

from slot_workers import slot_loop, slot_process

MAX_TASKS = 3


def _register(store: Store) -> None:
    store.put_agent(AgentRecord(agent_id="hot", agent_type="Worker",
                                capabilities=["general"], max_concurrent_tasks=MAX_TASKS))


def test_eight_threads_never_exceed_max_concurrent_tasks(store: Store) -> None:
    _register(store)
    holders = multiprocessing.Value("i", 0, lock=True)
    peak = multiprocessing.Value("i", 0, lock=True)
    rounds = 60
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(
            lambda w: slot_loop(store, "hot", w, rounds, holders, peak, MAX_TASKS), range(8)))
    assert sum(r[2] for r in results) == 0, "a thread saw load above max_concurrent_tasks"
    assert peak.value <= MAX_TASKS
    assert sum(r[0] + r[1] for r in results) == 8 * rounds
    assert sum(r[0] for r in results) > 0
    final = store.get_agent("hot")
    assert final is not None and final.current_load == 0 and final.running_tasks == []


def test_four_processes_never_exceed_max_concurrent_tasks(
    shared_store_and_url: tuple[Store, str],
) -> None:
    store, url = shared_store_and_url
    _register(store)
    ctx = multiprocessing.get_context("spawn")
    holders = ctx.Value("i", 0, lock=True)
    peak = ctx.Value("i", 0, lock=True)
    results_queue = ctx.Queue()
    rounds = 40
    workers = [
        ctx.Process(target=slot_process,
                    args=(url, "hot", w, rounds, holders, peak, MAX_TASKS, results_queue))
        for w in range(4)
    ]
    for proc in workers:
        proc.start()
    results = [results_queue.get(timeout=120) for _ in workers]
    for proc in workers:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert sum(r[2] for r in results) == 0, "a process saw load above max_concurrent_tasks"
    assert peak.value <= MAX_TASKS
    assert sum(r[0] + r[1] for r in results) == 4 * rounds
    final = store.get_agent("hot")
    assert final is not None and final.current_load == 0


def test_concurrent_release_frees_a_slot_exactly_once(store: Store) -> None:
    _register(store)
    for round_ in range(20):
        task_id = f"t{round_}"
        assert store.acquire_slot("hot", task_id).acquired
        barrier = threading.Barrier(8)

        def release(_: int, task_id: str = task_id, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return store.release_slot("hot", task_id)

        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(release, range(8)))
        assert outcomes.count(True) == 1
    final = store.get_agent("hot")
    assert final is not None and final.current_load == 0
