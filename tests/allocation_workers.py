"""The contender of the allocation race test, importable by spawned processes."""

from __future__ import annotations

import threading
from typing import Any

from devcrew_core import ResourceAllocator


def race_round(allocator: ResourceAllocator, who: str, round_: int,
               barrier: threading.Barrier | None = None) -> tuple[bool, float]:
    """Try to allocate 1 CPU on agent ``hot``; return whether it was granted and the
    CPU in use read back from the store right after."""
    if barrier is not None:
        barrier.wait()
    won = allocator.allocate("hot", f"{who}-r{round_}", 1, 1, preempt=False) is not None
    usage = allocator.get_agent_usage("hot")
    return won, usage.cpu_used if usage is not None else float("inf")


def race_process(url: str, index: int, rounds: int, start: Any, results: Any) -> None:
    """Process entry point: one contender per round, when the round starts."""
    with ResourceAllocator(state_url=url) as allocator:
        for _ in range(rounds):
            round_ = start.get(timeout=120)
            results.put(race_round(allocator, f"p{index}", round_))
