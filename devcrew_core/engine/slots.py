"""Batching load-slot claims and releases (group commit for slots).

Every claim and release asked for during one turn of the event loop is gathered and sent
to the store together: one ``acquire_slots`` per chosen agent and one ``release_slots``
for all releases, inside one ``Store.batch()`` (one transaction on SQL backends). A
fan-out of 10,000 ready tasks therefore takes its slots in a handful of statements
instead of 10,000 transactions, and the store still checks capacity atomically, so
nothing can be over-committed.

Two ways in: :meth:`SlotBatcher.claim_now` claims for many tasks at once, synchronously
(the scheduler uses it when it dispatches ready tasks), and :meth:`SlotBatcher.claim`
waits for the end of the current loop turn (retries and tasks waiting for capacity).

**Hand-over.** When a task is dispatched while a finished task's slot on the agent it
would pick anyway is still queued for release, the slot is handed over instead: the
load does not change, so nothing has to be checked or committed before the new task
runs. The store learns of it later (``Store.transfer_slots``, with the next batch or
the next :meth:`SlotBatcher.flush`); chains of hand-overs collapse into one move. A chain
of tasks on one agent therefore runs with no store transaction per step.

A ``before_commit`` callback runs inside every batch: the engine passes its transition
writer, so queued task states ride in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devcrew_core.engine.matching import AgentMatcher, Claim
from devcrew_core.errors import NotFoundError
from devcrew_core.models import AgentMatch, TaskRequest
from devcrew_core.stores.records import AgentRecord

logger = logging.getLogger("devcrew.engine")

#: One wanted slot: the delegation request and the agents eligible for it.
Wanted = tuple[TaskRequest, Sequence[AgentRecord]]


@dataclass
class _Pending:
    request: TaskRequest
    agents: Sequence[AgentRecord]
    future: asyncio.Future[Claim | None]


class SlotBatcher:
    """Claims and releases load slots in batches, one store transaction per batch."""

    def __init__(
        self,
        matcher: AgentMatcher,
        on_released: Callable[[], None],
        before_commit: Callable[[], object] | None = None,
    ) -> None:
        self.matcher = matcher
        self.store = matcher.store
        self._on_released = on_released
        self._before_commit = before_commit
        self._claims: list[_Pending] = []
        self._releases: list[tuple[str, str]] = []
        # Hand-overs not yet in the store: (agent_id, holder now) -> holder in the store.
        self._moved: dict[tuple[str, str], str] = {}
        self._scheduled = False

    async def claim(self, request: TaskRequest, agents: Sequence[AgentRecord]) -> Claim | None:
        """A slot on the best agent with room (at the end of this loop turn), or None when
        all of them are full."""
        future: asyncio.Future[Claim | None] = asyncio.get_running_loop().create_future()
        self._claims.append(_Pending(request, agents, future))
        self._schedule()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result() is not None:
                claim = future.result()
                assert claim is not None
                self.release(claim.agent.agent_id, request.task_id)
            raise

    def claim_now(self, wanted: Sequence[Wanted]) -> list[Claim | None]:
        """Claim slots for several requests now, one result per request: a claim, or
        None when its agents are full. Queued releases are handed over to requests that
        pick their agent; the rest of the releases and the claims go to the store in
        one batch."""
        spare: dict[str, list[str]] = {}
        for agent_id, slot_id in self._releases:
            spare.setdefault(agent_id, []).append(slot_id)
            self.matcher.released(agent_id)
        self._releases = []
        results: list[Claim | None] = [None] * len(wanted)
        rest: list[int] = []
        for index, (request, agents) in enumerate(wanted):
            handed = self._hand_over(request, agents, spare) if spare else None
            if handed is None:
                rest.append(index)
            results[index] = handed
        leftover = [(agent_id, slot) for agent_id, slots in spare.items() for slot in slots]
        if rest or leftover:
            try:
                with self.store.batch():
                    self._commit_hook()
                    self._send_moves()
                    self._release(leftover, counted=True)
                    granted = self._grant([wanted[index] for index in rest])
            finally:
                if leftover:
                    self._on_released()
            for index, claim in zip(rest, granted, strict=True):
                results[index] = claim
        return results

    def _hand_over(self, request: TaskRequest, agents: Sequence[AgentRecord],
                   spare: dict[str, list[str]]) -> Claim | None:
        """Give ``request`` a queued-for-release slot on the agent it ranks best."""
        ranked = self.matcher.rank(request, agents, limit=1)
        if not ranked or not spare.get(ranked[0].agent_id):
            return None
        best = ranked[0]
        held = spare[best.agent_id].pop()
        if not spare[best.agent_id]:
            del spare[best.agent_id]
        in_store = self._moved.pop((best.agent_id, held), held)
        if in_store != request.task_id:
            self._moved[(best.agent_id, request.task_id)] = in_store
        load = best.current_load + 1
        self.matcher.note_load(best.agent_id, load)
        agent = next(a for a in agents if a.agent_id == best.agent_id)
        return Claim(agent=agent, match=best)

    def release(self, agent_id: str, slot_id: str) -> None:
        """Free a slot (with the next batch, at the latest at the end of this loop turn)."""
        self._releases.append((agent_id, slot_id))
        self._schedule()

    def flush(self) -> None:
        """Send queued hand-overs and releases now (the run's watcher calls this
        periodically, so the store's view of who holds a slot stays fresh)."""
        if self._moved or self._releases:
            self._run(with_moves=True)

    def drain(self) -> None:
        """Send what is queued now (the run is ending: nothing may be left behind)."""
        if self._releases or self._claims or self._moved:
            self._run(with_moves=True)

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _commit_hook(self) -> None:
        if self._before_commit is not None:
            self._before_commit()

    def _send_moves(self) -> None:
        if not self._moved:
            return
        moves, self._moved = self._moved, {}
        done = self.store.transfer_slots(
            [(agent_id, in_store, holder) for (agent_id, holder), in_store in moves.items()])
        for ((agent_id, holder), in_store), ok in zip(moves.items(), done, strict=True):
            if not ok:  # freed behind our back (agent deregistered, run force-resumed)
                logger.warning("slot of %s on agent %s was gone before it could be handed "
                               "to %s", in_store, agent_id, holder)

    def _release(self, releases: list[tuple[str, str]], counted: bool = False) -> None:
        """Free slots in the store; ``counted``: the matcher was told already."""
        if not releases:
            return
        # A slot handed over but not yet moved in the store is freed under the name
        # the store knows it by.
        in_store = [(a, self._moved.pop((a, slot), slot)) for a, slot in releases]
        self.store.release_slots(in_store)
        if not counted:
            for agent_id, _ in releases:
                self.matcher.released(agent_id)

    def _run(self, with_moves: bool = False) -> None:
        self._scheduled = False  # a call_soon that finds nothing queued does nothing
        releases, self._releases = self._releases, []
        pending = [p for p in self._claims if not p.future.done()]
        self._claims = []
        # Hand-overs alone wait for a flush: sending them is bookkeeping, not capacity.
        if not releases and not pending and not (with_moves and self._moved):
            return
        try:
            with self.store.batch():
                self._commit_hook()
                self._release(releases)  # before the moves: it may cancel some
                self._send_moves()
                results = self._grant([(p.request, p.agents) for p in pending])
        except Exception as exc:  # a store failure fails the waiting claims, loudly
            for item in pending:
                if not item.future.done():
                    item.future.set_exception(exc)
        else:
            for item, claim in zip(pending, results, strict=True):
                if not item.future.done():
                    item.future.set_result(claim)
                elif claim is not None:  # its task was cancelled meanwhile
                    self.release(claim.agent.agent_id, item.request.task_id)
        if releases:
            self._on_released()

    def _grant(self, wanted: Sequence[Wanted]) -> list[Claim | None]:
        results: list[Claim | None] = [None] * len(wanted)
        todo = list(range(len(wanted)))
        full: set[str] = set()
        while todo:
            plan: dict[str, list[tuple[int, AgentRecord, AgentMatch]]] = {}
            for index in todo:
                request, agents = wanted[index]
                choices = [a for a in agents if a.agent_id not in full]
                ranked = self.matcher.rank(request, choices, limit=1)
                if not ranked:
                    continue  # every eligible agent is full: None
                best = ranked[0]
                agent = next(a for a in choices if a.agent_id == best.agent_id)
                plan.setdefault(best.agent_id, []).append((index, agent, best))
                # Count the tentative claim so the next request ranks with it in mind.
                self.matcher.note_load(best.agent_id, best.current_load + 1)
            todo = []
            for agent_id, items in plan.items():
                try:
                    granted = self.store.acquire_slots(
                        agent_id, [wanted[index][0].task_id for index, _, _ in items])
                except NotFoundError:
                    self.matcher.invalidate()  # deregistered since it was cached
                    full.add(agent_id)
                    todo.extend(index for index, _, _ in items)
                    continue
                self.matcher.note_load(agent_id, granted[-1].current_load)
                for (index, agent, match), result in zip(items, granted, strict=True):
                    if not result.acquired:
                        full.add(agent_id)
                        todo.append(index)
                    else:
                        results[index] = Claim(agent=agent, match=match)
        return results
