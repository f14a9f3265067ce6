"""Choosing preemption victims and ageing waiting requests (pure functions).

A request that does not fit may preempt **strictly lower-priority, preemptable**
allocations on the same agent. The victims are the *fewest* allocations whose removal
makes the request fit (resources and, when the request needs one, a load slot); among
equally small sets the one with the lowest priorities wins, then the newest allocations
(the least work lost), then task IDs for determinism. When even removing every candidate
would not make room, there are no victims and nothing is preempted.

Waiting requests **age**: their effective priority rises one level per
``aging_seconds`` waited (capped at HIGH: CRITICAL is only ever declared), so low
priority work is not starved by a stream of medium requests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from devcrew_core.models import Priority
from devcrew_core.stores.base import fits, total
from devcrew_core.stores.records import Allocation, ResourceAmounts

#: Up to this many candidates every subset is considered (smallest first); above it the
#: victims are chosen greedily (lowest priority, largest share first).
EXHAUSTIVE_LIMIT = 12


def effective_priority(priority: Priority, waited_seconds: float,
                       aging_seconds: float) -> Priority:
    """``priority`` raised one level per ``aging_seconds`` waited, at most to HIGH (a
    request declared CRITICAL stays CRITICAL)."""
    if priority >= Priority.HIGH or aging_seconds <= 0 or waited_seconds <= 0:
        return priority
    raised = int(priority) + int(waited_seconds // aging_seconds)
    return Priority(min(raised, int(Priority.HIGH)))


def choose_victims(
    request: Allocation,
    priority: Priority,
    held: Sequence[Allocation],
    reserved: ResourceAmounts,
    limits: ResourceAmounts,
    free_slots: int,
    needs_slot: bool,
) -> list[Allocation] | None:
    """The allocations to preempt so that ``request`` fits, or None when none will do.

    ``held`` are the agent's allocations, ``reserved`` what live reservations hold,
    ``free_slots`` the agent's free load slots and ``needs_slot`` whether the request
    must take one. ``priority`` is the request's (effective) priority.
    """
    candidates = [a for a in held if a.preemptable and a.priority < priority]
    if not candidates:
        return None
    others = [a for a in held if a not in candidates]

    def works(victims: Sequence[Allocation]) -> bool:
        keep = others + [a for a in candidates if a not in victims]
        slots = free_slots + sum(1 for v in victims if v.holds_slot)
        return (not needs_slot or slots > 0) and fits(limits, total([*keep, reserved]),
                                                      request)

    ordered = sorted(candidates, key=lambda a: (a.priority, -a.created_at, a.task_id))
    if not works(ordered):
        return None  # even all of them would not make room: preempt nothing
    if len(ordered) <= EXHAUSTIVE_LIMIT:
        for size in range(1, len(ordered) + 1):
            sets = [list(c) for c in itertools.combinations(ordered, size) if works(c)]
            if sets:
                return min(sets, key=_preference)
    return _greedy(ordered, works)


def _preference(victims: Sequence[Allocation]) -> tuple[object, ...]:
    """Lower is better: lowest priorities first, then newest, then by task ID."""
    return (sorted((int(v.priority) for v in victims), reverse=True),
            sorted(-v.created_at for v in victims),
            sorted(v.task_id for v in victims))


def _greedy(ordered: list[Allocation],
            works: Callable[[Sequence[Allocation]], bool]) -> list[Allocation]:
    chosen: list[Allocation] = []
    for allocation in ordered:
        chosen.append(allocation)
        if works(chosen):
            break
    # Drop victims that turned out unnecessary (highest priority first).
    for allocation in sorted(chosen, key=lambda a: -a.priority):
        trial = [a for a in chosen if a is not allocation]
        if trial and works(trial):
            chosen = trial
    return chosen
