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

from devcrew_core.models import AgentMatch, TaskRequest
from devcrew_core.plugin_types import Scorer
from devcrew_core.stores.base import Store
from devcrew_core.stores.records import AgentRecord


def capability_fit(required: Collection[str], agent: AgentRecord) -> float:
    """How well ``agent``'s capabilities fit ``required``, in [0, 1]; specialists
    (fewer capabilities beyond those required) fit a little better."""
    need, have = set(required), set(agent.capabilities)
    if not need:
        return 0.8
    if not need <= have:
        return 0.8 * len(need & have) / len(need)
    return 0.8 + 0.2 * len(need) / len(have)


@dataclass(frozen=True)
class Claim:
    """A load slot taken on ``agent`` for one task, with how it was chosen."""

    agent: AgentRecord
    match: AgentMatch


class AgentMatcher:
    """Finds, ranks and claims agents in one store with one scorer."""

    def __init__(self, store: Store, scorer: Scorer) -> None:
        self.store = store
        self.scorer = scorer

    def eligible(
        self,
        request: TaskRequest,
        *,
        require_runner: bool = False,
        now: float | None = None,
    ) -> list[AgentRecord]:
        """Agents that may take ``request`` (capacity not considered)."""
        moment = time.time() if now is None else now
        excluded = set(request.exclude_agents)
        return [
            agent
            for agent in self.store.find_agents(
                request.required_capabilities, request.required_agent_type
            )
            if agent.available
            and not agent.is_expired(moment)
            and agent.agent_id not in excluded
            and (agent.runner is not None or not require_runner)
        ]

    def rank(self, request: TaskRequest, agents: Sequence[AgentRecord]) -> list[AgentMatch]:
        """Score agents with free capacity, best first (ties: lower agent_id first)."""
        matches = [
            AgentMatch(
                agent_id=agent.agent_id,
                agent_type=agent.agent_type,
                score=capability_fit(request.required_capabilities, agent),
                effective_score=float(self.scorer.score(request, agent)),
                matched_capabilities=list(request.required_capabilities),
                current_load=agent.current_load,
                max_load=agent.max_concurrent_tasks,
                priority_weight=agent.priority_weight,
            )
            for agent in agents
            if agent.current_load < agent.max_concurrent_tasks
        ]
        matches.sort(key=lambda m: (-m.effective_score, m.agent_id))
        return matches

    def claim(self, request: TaskRequest, agents: Sequence[AgentRecord]) -> Claim | None:
        """Take a slot on the best agent that still has one; None when all are full."""
        by_id = {agent.agent_id: agent for agent in agents}
        for match in self.rank(request, agents):
            result = self.store.acquire_slot(match.agent_id, request.task_id)
            if result.acquired:
                agent = by_id[match.agent_id].model_copy(
                    update={"current_load": result.current_load}
                )
                return Claim(agent=agent, match=match)
        return None
