"""Batching load-slot claims and releases (group commit for slots).

Every claim and release asked for during one turn of the event loop is gathered and sent
to the store together: one ``acquire_slots`` per chosen agent and one ``release_slots``
for all releases, inside one ``Store.batch()`` (one transaction on SQL backends). A
fan-out of 10,000 ready tasks therefore takes its slots in a handful of statements
instead of 10,000 transactions, and the store still checks capacity atomically, so
nothing can be over-committed.

Two ways in: :meth:`SlotBatcher.claim_now` claims for many tasks at once, synchronously
(the scheduler uses it when it dispatches ready tasks on an inline store, so a finishing
task's release and its successor's claim share one transaction), and
:meth:`SlotBatcher.claim` waits for the end of the current loop turn (retries and tasks
waiting for capacity). A ``before_commit`` callback runs inside every batch: the engine
passes its transition writer, so queued task states ride in the same transaction.
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
        """Claim slots for several requests now, together with every queued release, in
        one batch. One result per request: a claim, or None when its agents are full."""
        releases, self._releases = self._releases, []
        try:
            with self.store.batch():
                self._commit_hook()
                self._release(releases)
                return self._grant(wanted)
        finally:
            if releases:
                self._on_released()

    def release(self, agent_id: str, slot_id: str) -> None:
        """Free a slot (with the next batch, at the latest at the end of this loop turn)."""
        self._releases.append((agent_id, slot_id))
        self._schedule()

    def drain(self) -> None:
        """Send what is queued now (the run is ending: nothing may be left behind)."""
        if self._releases or self._claims:
            self._run()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _commit_hook(self) -> None:
        if self._before_commit is not None:
            self._before_commit()

    def _release(self, releases: list[tuple[str, str]]) -> None:
        if releases:
            self.store.release_slots(releases)
            for agent_id, _ in releases:
                self.matcher.released(agent_id)

    def _run(self) -> None:
        self._scheduled = False  # a call_soon that finds nothing queued does nothing
        releases, self._releases = self._releases, []
        pending = [p for p in self._claims if not p.future.done()]
        self._claims = []
        if not releases and not pending:
            return
        try:
            with self.store.batch():
                self._commit_hook()
                self._release(releases)
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
                ranked = self.matcher.rank(request, choices)
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
                        claimed = agent.model_copy(update={"current_load": result.current_load})
                        results[index] = Claim(agent=claimed, match=match)
        return results
