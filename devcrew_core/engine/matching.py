"""Choosing an agent for a task: eligibility, scoring, and an atomic load slot.

Eligible agents have every required capability and the required type (answered by the
store's indexes), are available, have not expired, are not excluded, and (for the
engine) declare a runner. They are ranked by the configured scorer; ties go to the
lower agent_id so the choice is deterministic. A slot is then taken atomically in the
store, falling over to the next agent when one filled up in the meantime.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from devcrew_core.errors import NotFoundError
from devcrew_core.models import AgentMatch, TaskRequest
from devcrew_core.plugin_types import Scorer
from devcrew_core.stores.base import Store
from devcrew_core.stores.records import AgentRecord


def capability_fit(required: Collection[str], agent: AgentRecord) -> float:
    """How well ``agent``'s capabilities fit ``required``, in [0, 1]; specialists
    (fewer capabilities beyond those required) fit a little better."""
    # Capabilities are normalised and de-duplicated by the models, and the lists are
    # short: membership tests on them are cheaper than building sets (hot path).
    if not required:
        return 0.8
    have = agent.capabilities
    matched = sum(1 for cap in required if cap in have)
    if matched < len(required):
        return 0.8 * matched / len(required)
    return min(0.8 + 0.2 * len(required) / len(have), 1.0)


#: Ranking order of rank()'s rows: -score, then agent_id.
_RANK_KEY = itemgetter(0, 1)
#: Sets of required capabilities the scoring memo keeps before it is cleared.
_MEMO_KINDS = 4096


@dataclass(frozen=True)
class Claim:
    """A load slot taken on ``agent`` for one task, with how it was chosen.

    ``agent`` is the record the choice was made from (its ``current_load`` may predate
    the claim: ``match.current_load`` is the load the ranking saw)."""

    agent: AgentRecord
    match: AgentMatch


class AgentMatcher:
    """Finds, ranks and claims agents in one store with one scorer.

    With ``cache_seconds > 0`` the eligible agents of each kind of request are kept for
    that long and their loads are tracked from this matcher's own claims and releases, so
    a burst of tasks does not query the registry once per task. The slot itself is always
    taken atomically in the store, so a stale cache can only cost a refused attempt (the
    next agent is tried), never an over-commit.
    """

    def __init__(self, store: Store, scorer: Scorer, cache_seconds: float = 0.0) -> None:
        self.store = store
        self.scorer = scorer
        self.cache_seconds = cache_seconds
        # key -> (valid until (monotonic), agents, the first of their expiry times)
        self._cache: dict[tuple[Any, ...], tuple[float, list[AgentRecord], float]] = {}
        self._loads: dict[str, int] = {}
        # required capabilities -> agent_id -> (agent record, base, per_task): see rank
        self._memo: dict[tuple[str, ...], dict[str, tuple[AgentRecord, float, float]]] = {}

    def invalidate(self) -> None:
        """Forget cached agents and loads (the next lookup asks the store)."""
        self._cache.clear()
        self._loads.clear()
        self._memo.clear()

    def released(self, agent_id: str) -> None:
        """Note that this process freed a slot on ``agent_id``."""
        # (Loads are tracked whether or not eligible agents are cached.)
        if agent_id in self._loads:
            self._loads[agent_id] = max(self._loads[agent_id] - 1, 0)

    def eligible(
        self,
        request: TaskRequest,
        *,
        require_runner: bool = False,
        now: float | None = None,
    ) -> list[AgentRecord]:
        """Agents that may take ``request`` (capacity not considered)."""
        moment = time.time() if now is None else now
        key = (tuple(sorted(request.required_capabilities)), request.required_agent_type,
               tuple(sorted(request.exclude_agents)), require_runner)
        if self.cache_seconds > 0:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > time.monotonic():
                if moment < cached[2]:  # none of them can have expired yet
                    return list(cached[1])
                return [a for a in cached[1] if not a.is_expired(moment)]
        excluded = set(request.exclude_agents)
        agents = [
            agent
            for agent in self.store.find_agents(
                request.required_capabilities, request.required_agent_type
            )
            if agent.available
            and not agent.is_expired(moment)
            and agent.agent_id not in excluded
            and (agent.runner is not None or not require_runner)
        ]
        if self.cache_seconds > 0:
            first_expiry = min((a.expires_at for a in agents if a.expires_at is not None),
                               default=float("inf"))
            self._cache[key] = (time.monotonic() + self.cache_seconds, agents, first_expiry)
        for agent in agents:  # fresh from the store: forget what we had tracked
            self._loads[agent.agent_id] = agent.current_load
        return agents

    def registered(self, request: TaskRequest, *, require_runner: bool = False
                   ) -> list[AgentRecord]:
        """Agents that could take ``request`` were they available: the capabilities, the
        type and (for the engine) a runner, whatever their availability, expiry or load.
        Asked of the store each time (this is the slow path of a task that waits)."""
        return [agent for agent in self.store.find_agents(request.required_capabilities,
                                                          request.required_agent_type)
                if agent.runner is not None or not require_runner]

    def note_load(self, agent_id: str, load: int) -> None:
        """Record the load of ``agent_id`` as this process last saw (or expects) it."""
        self._loads[agent_id] = load

    def _load(self, agent: AgentRecord) -> int:
        return self._loads.get(agent.agent_id, agent.current_load)

    def rank(self, request: TaskRequest, agents: Sequence[AgentRecord],
             limit: int | None = None) -> list[AgentMatch]:
        """Score agents with free capacity, best first (ties: lower agent_id first); with
        ``limit``, only the best ``limit`` become :class:`AgentMatch` models (the hot
        paths want the best one only)."""
        # Rows: (-score, agent_id, agent, tracked load).
        rows: list[tuple[float, str, AgentRecord, int]] = []
        loads = self._loads
        if self.scorer.by_load is not None:
            memo = self._memo_for(request.required_capabilities)
            for agent in agents:
                agent_id = agent.agent_id
                terms = memo.get(agent_id)
                if terms is None or terms[0] is not agent:
                    terms = self._terms(memo, request.required_capabilities, agent)
                load = loads.get(agent_id, agent.current_load)
                if load < agent.max_concurrent_tasks:
                    # -(base - per_task * load), exactly (IEEE subtraction is symmetric)
                    rows.append((terms[2] * load - terms[1], agent_id, agent, load))
        else:
            for agent in agents:
                view = self._with_tracked_load(agent)
                if view.current_load < view.max_concurrent_tasks:
                    rows.append((-float(self.scorer.score(request, view)), view.agent_id,
                                 view, view.current_load))
        # Ordered by (-score, agent_id) only: the records themselves do not compare.
        if limit == 1:
            chosen = [min(rows, key=_RANK_KEY)] if rows else []
        else:
            rows.sort(key=_RANK_KEY)
            chosen = rows if limit is None else rows[:limit]
        return [self._match(request, agent, -negative, load)
                for negative, _, agent, load in chosen]

    def match_for(self, request: TaskRequest, agent: AgentRecord) -> AgentMatch | None:
        """The match of one agent (with its tracked load), or None when it is full."""
        ranked = self.rank(request, (agent,), limit=1)
        return ranked[0] if ranked else None

    def score_for(self, request: TaskRequest, agent: AgentRecord
                  ) -> tuple[float, float, int] | None:
        """``(capability fit, effective score, tracked load)`` of one agent, or None when
        it is full: :meth:`match_for` without building the model (the delegation hot
        path re-scores the caller's choice and needs only these)."""
        by_load = self.scorer.by_load
        if by_load is None:
            match = self.match_for(request, agent)
            return None if match is None else \
                (match.score, match.effective_score, match.current_load)
        load = self._loads.get(agent.agent_id, agent.current_load)
        if load >= agent.max_concurrent_tasks:
            return None
        memo = self._memo_for(request.required_capabilities)
        terms = memo.get(agent.agent_id)
        if terms is None or terms[0] is not agent:
            terms = self._terms(memo, request.required_capabilities, agent)
        # The same arithmetic as rank's, so both give the same effective score.
        return (capability_fit(request.required_capabilities, agent),
                -(terms[2] * load - terms[1]), load)

    def _memo_for(self, required: Sequence[str]
                  ) -> dict[str, tuple[AgentRecord, float, float]]:
        """The scoring memo of one set of required capabilities: agent_id -> (record,
        base, per_task) from the scorer's ``by_load``."""
        key = tuple(required)
        memo = self._memo.get(key)
        if memo is None:
            if len(self._memo) > _MEMO_KINDS:  # a bound on its memory
                self._memo.clear()
            memo = self._memo[key] = {}
        return memo

    def _terms(self, memo: dict[str, tuple[AgentRecord, float, float]],
               required: Sequence[str], agent: AgentRecord
               ) -> tuple[AgentRecord, float, float]:
        """(record, base, per_task) of ``agent`` from the scorer's ``by_load``, kept in
        ``memo`` for as long as the same record object is asked about (a fresh read of
        the agent is a new object, so nothing stale is reused)."""
        by_load = self.scorer.by_load
        assert by_load is not None
        terms = memo[agent.agent_id] = (agent, *by_load(required, agent))
        return terms

    @staticmethod
    def _match(request: TaskRequest, agent: AgentRecord, effective: float,
               load: int) -> AgentMatch:
        return AgentMatch(
            agent_id=agent.agent_id,
            agent_type=agent.agent_type,
            score=capability_fit(request.required_capabilities, agent),
            effective_score=effective,
            matched_capabilities=list(request.required_capabilities),
            current_load=load,
            max_load=agent.max_concurrent_tasks,
            priority_weight=agent.priority_weight,
        )

    def _with_tracked_load(self, agent: AgentRecord) -> AgentRecord:
        load = self._load(agent)
        if load == agent.current_load:
            return agent
        return agent.model_copy(update={"current_load": load})

    def claim(self, request: TaskRequest, agents: Sequence[AgentRecord]) -> Claim | None:
        """Take a slot on the best agent that still has one; None when all are full."""
        by_id = {agent.agent_id: agent for agent in agents}
        for match in self.rank(request, agents):
            try:
                result = self.store.acquire_slot(match.agent_id, request.task_id)
            except NotFoundError:
                self.invalidate()  # deregistered since we cached it
                continue
            if self.cache_seconds > 0:
                self._loads[match.agent_id] = result.current_load
            if result.acquired:
                agent = by_id[match.agent_id].model_copy(
                    update={"current_load": result.current_load}
                )
                return Claim(agent=agent, match=match)
        return None
