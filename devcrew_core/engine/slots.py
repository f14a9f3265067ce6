"""Batching load-slot claims and releases (group commit for slots).

Every claim and release asked for during one turn of the event loop is gathered and sent
to the store together at the end of that turn: one ``acquire_slots`` per chosen agent and
one ``release_slots`` for all releases. A fan-out of 10,000 ready tasks therefore takes
its slots in a handful of transactions instead of 10,000, and the store still checks
capacity atomically, so nothing can be over-committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from devcrew_core.engine.matching import AgentMatcher, Claim
from devcrew_core.errors import NotFoundError
from devcrew_core.models import AgentMatch, TaskRequest
from devcrew_core.stores.records import AgentRecord

logger = logging.getLogger("devcrew.engine")


@dataclass
class _Wanted:
    request: TaskRequest
    agents: list[AgentRecord]
    future: asyncio.Future[Claim | None]


class SlotBatcher:
    """Claims and releases load slots in batches, one store call per batch."""

    def __init__(self, matcher: AgentMatcher, on_released: Callable[[], None]) -> None:
        self.matcher = matcher
        self.store = matcher.store
        self._on_released = on_released
        self._claims: list[_Wanted] = []
        self._releases: list[tuple[str, str]] = []
        self._scheduled = False

    async def claim(self, request: TaskRequest, agents: list[AgentRecord]) -> Claim | None:
        """A slot on the best agent with room, or None when all of them are full."""
        future: asyncio.Future[Claim | None] = asyncio.get_running_loop().create_future()
        self._claims.append(_Wanted(request, agents, future))
        self._schedule()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result() is not None:
                claim = future.result()
                assert claim is not None
                self.release(claim.agent.agent_id, request.task_id)
            raise

    def release(self, agent_id: str, slot_id: str) -> None:
        """Free a slot (at the end of this turn of the loop)."""
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

    def _run(self) -> None:
        self._scheduled = False  # a call_soon that finds nothing queued does nothing
        releases, self._releases = self._releases, []
        wanted = [w for w in self._claims if not w.future.done()]
        self._claims = []
        try:
            # Releases and claims of this turn share one store transaction.
            with self.store.batch():
                if releases:
                    self.store.release_slots(releases)
                    for agent_id, _ in releases:
                        self.matcher.released(agent_id)
                self._grant(wanted)
        except Exception as exc:  # a store failure fails the waiting claims, loudly
            for item in wanted:
                if not item.future.done():
                    item.future.set_exception(exc)
        if releases:
            self._on_released()

    def _grant(self, wanted: list[_Wanted]) -> None:
        full: set[str] = set()
        while wanted:
            plan: dict[str, list[tuple[_Wanted, AgentRecord, AgentMatch]]] = {}
            for item in wanted:
                choices = [a for a in item.agents if a.agent_id not in full]
                ranked = self.matcher.rank(item.request, choices)
                if not ranked:
                    item.future.set_result(None)
                    continue
                best = ranked[0]
                agent = next(a for a in choices if a.agent_id == best.agent_id)
                plan.setdefault(best.agent_id, []).append((item, agent, best))
                # Count the tentative claim so the next request ranks with it in mind.
                self.matcher.note_load(best.agent_id, best.current_load + 1)
            wanted = []
            for agent_id, items in plan.items():
                try:
                    results = self.store.acquire_slots(
                        agent_id, [item.request.task_id for item, _, _ in items])
                except NotFoundError:
                    self.matcher.invalidate()  # deregistered since it was cached
                    full.add(agent_id)
                    wanted.extend(item for item, _, _ in items)
                    continue
                self.matcher.note_load(agent_id, results[-1].current_load)
                for (item, agent, match), result in zip(items, results, strict=True):
                    if not result.acquired:
                        full.add(agent_id)
                        wanted.append(item)
                    elif item.future.done():  # its task was cancelled meanwhile
                        self.release(agent_id, item.request.task_id)
                    else:
                        claimed = agent.model_copy(update={"current_load": result.current_load})
                        item.future.set_result(Claim(agent=claimed, match=match))
